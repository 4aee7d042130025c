"""Color histograms of uint8 pixel tensors, and coarse RGB cells (torch, any device)."""

from __future__ import annotations

import torch

__all__ = ["bin_colors", "cell_means", "color_histogram", "merge", "pack_rgb", "unpack_rgb"]

BINCOUNT_FROM = 2_000_000
"""Pixels from which the histogram counts into a 2^24 table instead of sorting."""


def pack_rgb(colors: torch.Tensor) -> torch.Tensor:
    """Pack ``(..., 3)`` uint8 colors into ``(...)`` int32 keys ``r << 16 | g << 8 | b``."""
    keys = colors[..., 0].to(torch.int32) << 16
    keys |= colors[..., 1].to(torch.int32) << 8
    keys |= colors[..., 2]
    return keys


def unpack_rgb(keys: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_rgb`: ``(...)`` int keys to ``(..., 3)`` uint8 colors."""
    shifts = torch.tensor([16, 8, 0], dtype=keys.dtype, device=keys.device)
    return ((keys.unsqueeze(-1) >> shifts) & 0xFF).to(torch.uint8)


def color_histogram(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(colors, counts, inverse)`` of ``(N, 3)`` uint8 pixels, colors sorted by packed key.

    Below ``BINCOUNT_FROM`` pixels: one sort of packed 24-bit keys (``torch.unique``); above it,
    a ``bincount`` into a 2^24 table, which needs far less memory than the sort.
    """
    keys = pack_rgb(pixels)
    if pixels.shape[0] < BINCOUNT_FROM:
        unique, inverse, counts = torch.unique(
            keys, sorted=True, return_inverse=True, return_counts=True
        )
        return unpack_rgb(unique), counts.to(torch.int64), inverse.to(torch.int32)
    table = torch.bincount(keys, minlength=1 << 24)
    unique = torch.nonzero(table).squeeze(1)
    counts = table[unique]
    del table
    lookup = torch.empty(1 << 24, dtype=torch.int32, device=keys.device)
    lookup[unique] = torch.arange(unique.shape[0], dtype=torch.int32, device=keys.device)
    return unpack_rgb(unique.to(torch.int32)), counts, lookup[keys]


def merge(colors: list[torch.Tensor], counts: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Sum histograms given as lists of colors and counts: ``(colors, counts)``, sorted."""
    keys = torch.cat([pack_rgb(c) for c in colors])
    unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    total = torch.zeros(unique.shape[0], dtype=torch.int64, device=keys.device)
    total.index_add_(0, inverse, torch.cat(counts).to(keys.device))
    return unpack_rgb(unique), total


def bin_colors(colors: torch.Tensor, bits: int) -> tuple[torch.Tensor, int]:
    """``(cell, n_cells)``: each color's occupied cell of the ``2**bits``-per-channel grid."""
    coarse = pack_rgb(colors >> (8 - bits))
    occupied, cell = torch.unique(coarse, return_inverse=True)
    return cell.to(torch.int64), int(occupied.shape[0])


def cell_means(
    points: torch.Tensor, weights: torch.Tensor, cell: torch.Tensor, n_cells: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Weighted mean and weight of every cell, and the weighted scatter inside the cells."""
    cell_weight = torch.zeros(n_cells, dtype=points.dtype, device=points.device)
    cell_weight.index_add_(0, cell, weights)
    cell_sum = torch.zeros(n_cells, points.shape[1], dtype=points.dtype, device=points.device)
    cell_sum.index_add_(0, cell, points * weights[:, None])
    means = cell_sum / cell_weight[:, None]
    scatter = float((weights * (points - means[cell]).pow(2).sum(1)).sum() / weights.sum())
    return means, cell_weight, scatter
