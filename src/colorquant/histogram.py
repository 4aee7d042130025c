"""Pixels to a weighted color histogram: the distinct colors of an image and their pixel counts.

K-means on the histogram minimises the same objective as K-means on every pixel (each distinct
color weighs as many pixels as it covers) with far fewer points: a 0.4 MP photo has 20-150 k
distinct colors. ``bin_colors`` groups distinct colors further into coarse RGB cells, the first,
cheaper stage of the fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["ColorHistogram", "bin_colors", "color_histogram", "merge_histograms", "pack_rgb"]


@dataclass(frozen=True)
class ColorHistogram:
    """The distinct colors of one or more images.

    Attributes:
        colors: ``(M, 3)`` uint8 sRGB, distinct, sorted by their packed 24-bit value.
        counts: ``(M,)`` int64 pixel count of each color (all >= 1).
        inverse: ``(N,)`` int32 row of ``colors`` for every input pixel, or ``None`` for a merged
            histogram that no longer belongs to one image.
    """

    colors: torch.Tensor
    counts: torch.Tensor
    inverse: torch.Tensor | None

    @property
    def n_pixels(self) -> int:
        """Number of pixels the histogram was built from."""
        return int(self.counts.sum())

    def __len__(self) -> int:
        return int(self.colors.shape[0])


def pack_rgb(colors: torch.Tensor) -> torch.Tensor:
    """Pack ``(..., 3)`` uint8 colors into ``(...)`` int32 keys ``r << 16 | g << 8 | b``."""
    keys = colors[..., 0].to(torch.int32) << 16
    keys |= colors[..., 1].to(torch.int32) << 8
    keys |= colors[..., 2]
    return keys


BINCOUNT_FROM = 2_000_000
"""Pixels from which the histogram counts into a 2^24 table instead of sorting."""


def _unpack_rgb(keys: torch.Tensor) -> torch.Tensor:
    shifts = torch.tensor([16, 8, 0], dtype=keys.dtype, device=keys.device)
    return ((keys.unsqueeze(-1) >> shifts) & 0xFF).to(torch.uint8)


def color_histogram(pixels: torch.Tensor) -> ColorHistogram:
    """Exact histogram of the colors in ``pixels``, with the pixel -> color map.

    Below ``BINCOUNT_FROM`` pixels: one sort of packed 24-bit keys (``torch.unique``), faster
    than zeroing a 2^24-bin table; above it, a ``bincount`` into that table, which needs far
    less memory than the sort (BENCHMARKS.md, memory).

    Args:
        pixels: ``(N, 3)`` uint8 sRGB pixels (any device).

    Returns:
        A :class:`ColorHistogram` with ``inverse`` set, so ``colors[inverse]`` equals ``pixels``.

    Example:
        >>> h = color_histogram(torch.tensor([[1, 2, 3], [0, 0, 0], [1, 2, 3]], dtype=torch.uint8))
        >>> h.colors.tolist(), h.counts.tolist(), h.inverse.tolist()
        ([[0, 0, 0], [1, 2, 3]], [1, 2], [1, 0, 1])
    """
    if pixels.dtype != torch.uint8 or pixels.ndim != 2 or pixels.shape[1] != 3:
        raise ValueError(
            f"pixels must be a (N, 3) uint8 tensor, got {tuple(pixels.shape)} {pixels.dtype}"
        )
    keys = pack_rgb(pixels)
    if pixels.shape[0] < BINCOUNT_FROM:
        unique, inverse, counts = torch.unique(
            keys, sorted=True, return_inverse=True, return_counts=True
        )
        return ColorHistogram(_unpack_rgb(unique), counts.to(torch.int64), inverse.to(torch.int32))
    # Large images: one counting pass into a fixed 2^24 table (192 MiB with the lookup) instead
    # of a sort whose temporaries cost ~30 bytes a pixel; the inverse is a table lookup.
    table = torch.bincount(keys, minlength=1 << 24)
    unique = torch.nonzero(table).squeeze(1)
    counts = table[unique]
    del table
    lookup = torch.empty(1 << 24, dtype=torch.int32, device=keys.device)
    lookup[unique] = torch.arange(unique.shape[0], dtype=torch.int32, device=keys.device)
    inverse = lookup[keys]
    return ColorHistogram(_unpack_rgb(unique.to(torch.int32)), counts, inverse)


def merge_histograms(histograms: Sequence[ColorHistogram]) -> ColorHistogram:
    """Sum several histograms into one (a palette shared across images is fitted on this).

    Args:
        histograms: non-empty sequence of histograms on the same device.

    Returns:
        A histogram with ``inverse=None``.
    """
    if len(histograms) == 0:
        raise ValueError("merge_histograms needs at least one histogram")
    if len(histograms) == 1:
        h = histograms[0]
        return ColorHistogram(h.colors, h.counts, None)
    keys = torch.cat([pack_rgb(h.colors) for h in histograms])
    counts = torch.cat([h.counts for h in histograms])
    unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    total = torch.zeros(unique.shape[0], dtype=torch.int64, device=keys.device)
    total.index_add_(0, inverse, counts)
    return ColorHistogram(_unpack_rgb(unique), total, None)


def bin_colors(colors: torch.Tensor, bits: int) -> tuple[torch.Tensor, int]:
    """Group colors into cells of a ``2**bits``-per-channel RGB grid.

    Args:
        colors: ``(M, 3)`` uint8 sRGB.
        bits: bits kept per channel, 1..8 (8 keeps every color apart).

    Returns:
        ``(cell, n_cells)``: ``(M,)`` int64 index in ``0..n_cells-1`` of each color's occupied cell.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    coarse = pack_rgb(colors >> (8 - bits))
    occupied, cell = torch.unique(coarse, return_inverse=True)
    return cell.to(torch.int64), int(occupied.shape[0])
