"""Color histograms of uint8 pixel tensors, and coarse RGB cells (torch, any device).

The batched pipeline's histograms (:class:`Histograms`) hold every image's distinct colors
padded to one width: ``(B, M, C)`` points and ``(B, M)`` int64 counts, 0 on padding. Their sums
are exact: points in fixed point (:class:`FixedPoint`) times integer counts, added as int64,
which no order of addition changes (float ``index_add_`` is nondeterministic on CUDA, and a
float sum over a padded row depends on the padding).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "Coder",
    "FixedPoint",
    "Histograms",
    "batch_histograms",
    "bin_colors",
    "cell_histograms",
    "cell_means",
    "color_histogram",
    "merge",
    "pack_rgb",
    "segment_means",
    "unpack_rgb",
]

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


Coder = Callable[[torch.Tensor], torch.Tensor]
"""A color conversion: ``(N, 3)`` colors to ``(N, C)`` coordinates of a space."""

# -- the batched pipeline's histograms ----------------------------------------------------------


@dataclass(frozen=True)
class FixedPoint:
    """Integer units for exact sums: ``coord`` per point coordinate, ``dist`` per squared
    distance, both powers of two chosen from the space's reach (``span``, the largest absolute
    coordinate of an 8-bit color), so that sums over 2^32 pixels stay within int64."""

    coord: float
    dist: float

    @classmethod
    def for_span(cls, span: float, n_coords: int) -> FixedPoint:
        """Units for coordinates within ``[-span, span]`` in ``n_coords`` dimensions."""
        span = max(span, 1e-6)
        coord = 2.0 ** math.floor(math.log2(2**29 / span))
        dist = 2.0 ** math.floor(math.log2(2**30 / (4 * n_coords * span * span)))
        return cls(coord, dist)

    def weighted(self, values: torch.Tensor, counts: torch.Tensor, unit: float) -> torch.Tensor:
        """``round(values * unit) * counts`` as int64 (``values`` float, ``counts`` int64)."""
        fixed = torch.round(values.to(torch.float32) * unit).to(torch.int64)
        return fixed * (counts if values.ndim == counts.ndim else counts[..., None])

    def scaled(self, counts: torch.Tensor) -> torch.Tensor:
        """``(..., M)`` float32 ``count * dist``: the factor :meth:`cost` takes."""
        return counts.to(torch.float32) * self.dist

    @staticmethod
    def cost(dist2: torch.Tensor, scaled: torch.Tensor) -> torch.Tensor:
        """``(..., M)`` int64 ``count * dist2`` in ``dist`` units, truncated (exact to sum).

        ``scaled`` is :meth:`scaled` of the counts; one rounded product per element, so the
        value does not depend on the batch.
        """
        return (dist2 * scaled).to(torch.int64)


@dataclass(frozen=True)
class Histograms:
    """Every image's distinct colors, padded to ``M``, sorted by packed color in each image.

    Attributes:
        points: ``(B, M, C)`` float32 coordinates in the clustering space.
        counts: ``(B, M)`` int64 pixels of each color, 0 on padding.
        colors: ``(B, M, 3)`` uint8 the colors (0 on padding).
        distinct: ``(B,)`` int64 distinct colors of each image; ``width`` is ``M`` (host int).
        inverse: ``(B, P)`` int64 position of every pixel's color in its image's row.
    """

    points: torch.Tensor
    counts: torch.Tensor
    colors: torch.Tensor
    distinct: torch.Tensor
    width: int
    inverse: torch.Tensor


def _padded(
    keys: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Group ``(U,)`` int64 keys ``image << 24 | color`` into padded rows.

    Returns ``(unique, inverse, image_of, pos, distinct, width)``: the sorted distinct keys, each
    key's entry, each entry's image and place in its row, the entries of each image, and the
    row width (one host sync).
    """
    unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    image_of = unique >> 24
    distinct = torch.bincount(image_of, minlength=batch)
    start = distinct.cumsum(0) - distinct
    pos = torch.arange(unique.shape[0], device=keys.device) - start[image_of]
    width = int(distinct.max()) if batch else 0
    return unique, inverse, image_of, pos, distinct, width


def batch_histograms(images: torch.Tensor, encode: Coder) -> Histograms:
    """The histograms of a ``(B, 3, H, W)`` uint8 batch, in one sort of ``image << 24 | rgb``.

    Args:
        images: ``(B, 3, H, W)`` uint8 on any device.
        encode: ``(U, 3)`` uint8 colors -> ``(U, C)`` float32 coordinates (the space).
    """
    batch = images.shape[0]
    device = images.device
    pixels = images.permute(0, 2, 3, 1).reshape(batch, -1, 3)
    keys = pack_rgb(pixels).to(torch.int64) | (torch.arange(batch, device=device)[:, None] << 24)
    unique, inverse, image_of, pos, distinct, width = _padded(keys.reshape(-1), batch)
    counts_flat = torch.bincount(inverse, minlength=unique.shape[0])
    colors_flat = unpack_rgb(unique & 0xFFFFFF)
    coords = encode(colors_flat)
    points = torch.zeros(batch, width, coords.shape[1], dtype=torch.float32, device=device)
    counts = torch.zeros(batch, width, dtype=torch.int64, device=device)
    colors = torch.zeros(batch, width, 3, dtype=torch.uint8, device=device)
    points[image_of, pos] = coords.to(torch.float32)
    counts[image_of, pos] = counts_flat
    colors[image_of, pos] = colors_flat
    return Histograms(points, counts, colors, distinct, width, pos[inverse].reshape(batch, -1))


def segment_means(
    points: torch.Tensor,
    counts: torch.Tensor,
    labels: torch.Tensor,
    k: int,
    unit: FixedPoint,
    weighted: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted means of the points of each label, per image, from exact int64 sums.

    Args:
        points: ``(B, M, C)`` float32; ``counts``: ``(B, M)`` int64 (0 on padding).
        labels: ``(B, M)`` int64 in ``0..k-1``.
        k: labels per image.
        unit: the fixed-point units.
        weighted: ``unit.weighted(points, counts, unit.coord)`` when already made (a Lloyd
            loop makes it once).

    Returns:
        ``(means, weight)``: ``(B, k, C)`` float32 (0 where the weight is 0) and ``(B, k)``
        int64 weights. The same for an image alone and inside any batch, on any device.
    """
    batch, _, c = points.shape
    flat = (labels + (torch.arange(batch, device=labels.device) * k)[:, None]).reshape(-1)
    sums = torch.zeros(batch * k, c, dtype=torch.int64, device=points.device)
    if weighted is None:
        weighted = unit.weighted(points, counts, unit.coord)
    sums.index_add_(0, flat, weighted.reshape(-1, c))
    weight = torch.zeros(batch * k, dtype=torch.int64, device=points.device)
    weight.index_add_(0, flat, counts.reshape(-1))
    scale = weight.to(torch.float32).clamp_min(1.0) * unit.coord
    means = sums.to(torch.float32) / scale[:, None]
    return means.reshape(batch, k, c), weight.reshape(batch, k)


def cell_histograms(
    hist: Histograms, rows: torch.Tensor, bits: int, unit: FixedPoint
) -> tuple[torch.Tensor, torch.Tensor]:
    """The histograms of coarse RGB cells (``bits`` per channel) of the images ``rows``.

    Args:
        hist: the exact histograms.
        rows: ``(R,)`` int64 images to take, in this order.
        bits: bits per channel of the cells.
        unit: the fixed-point units of the means.

    Returns:
        ``(points, counts)``: ``(R, Mc, C)`` float32 weighted means of the occupied cells,
        sorted by cell in each image, and ``(R, Mc)`` int64 pixels (0 on padding).
    """
    n_rows = rows.shape[0]
    colors = hist.colors[rows]
    counts = hist.counts[rows]
    real = counts > 0
    image = torch.arange(n_rows, device=rows.device)[:, None].expand_as(counts)
    keys = pack_rgb(colors >> (8 - bits)).to(torch.int64) | (image << 24)
    unique, inverse, image_of, pos, _, width = _padded(keys[real], n_rows)
    c = hist.points.shape[2]
    sums = torch.zeros(unique.shape[0], c, dtype=torch.int64, device=rows.device)
    sums.index_add_(0, inverse, unit.weighted(hist.points[rows][real], counts[real], unit.coord))
    weight = torch.zeros(unique.shape[0], dtype=torch.int64, device=rows.device)
    weight.index_add_(0, inverse, counts[real])
    means = sums.to(torch.float32) / (weight.to(torch.float32) * unit.coord)[:, None]
    points = torch.zeros(n_rows, width, c, dtype=torch.float32, device=rows.device)
    cell_counts = torch.zeros(n_rows, width, dtype=torch.int64, device=rows.device)
    points[image_of, pos] = means
    cell_counts[image_of, pos] = weight
    return points, cell_counts
