"""Pixels to a weighted color histogram: the distinct colors of an image and their pixel counts.

K-means on the histogram minimises the same objective as K-means on every pixel (each distinct
color weighs as many pixels as it covers) with far fewer points: a 0.4 MP photo has 20-150 k
distinct colors. ``bin_colors`` and ``cell_means`` group distinct colors further into coarse RGB
cells, the first, cheaper stage of the fit.

Every function takes NumPy arrays (served by the compiled CPU kernels of
:mod:`colorquant._cpu`) or torch tensors (served by :mod:`colorquant._torch.histogram` on the
tensor's device) and returns the same kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _cpu
from ._array import Array, ArrayT, is_tensor, to_numpy
from .alpha import pack_rgba, unpack_rgba, with_alpha

__all__ = [
    "ColorHistogram",
    "bin_colors",
    "cell_means",
    "color_histogram",
    "merge_histograms",
    "pack_rgb",
]


@dataclass(frozen=True)
class ColorHistogram:
    """The distinct colors of one or more images (NumPy arrays, or tensors on one device).

    Attributes:
        colors: ``(M, 3)`` uint8 sRGB, distinct, sorted by their packed 24-bit value.
        counts: ``(M,)`` int64 pixel count of each color (all >= 1).
        inverse: ``(N,)`` int32 row of ``colors`` for every input pixel, or ``None`` for a merged
            histogram that no longer belongs to one image.
    """

    colors: Any
    counts: Any
    inverse: Any

    @property
    def n_pixels(self) -> int:
        """Number of pixels the histogram was built from."""
        return int(self.counts.sum())

    def __len__(self) -> int:
        return int(self.colors.shape[0])


def pack_rgb(colors: ArrayT) -> ArrayT:
    """Pack ``(..., 3)`` uint8 colors into ``(...)`` int32 keys ``r << 16 | g << 8 | b``."""
    if isinstance(colors, np.ndarray):
        c = colors.astype(np.int32)
        return (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
    from ._torch.histogram import pack_rgb as pack

    return pack(colors)


def _check_pixels(pixels: object) -> None:
    if isinstance(pixels, np.ndarray):
        ok = pixels.dtype == np.uint8 and pixels.ndim == 2 and pixels.shape[1] == 3
    elif is_tensor(pixels):
        import torch

        assert isinstance(pixels, torch.Tensor)
        ok = pixels.dtype == torch.uint8 and pixels.ndim == 2 and pixels.shape[1] == 3
    else:
        raise TypeError(f"pixels must be a NumPy array or a tensor, got {type(pixels).__name__}")
    if not ok:
        raise ValueError(f"pixels must be (N, 3) uint8, got {tuple(pixels.shape)} {pixels.dtype}")


def color_histogram(pixels: Array) -> ColorHistogram:
    """Exact histogram of the colors in ``pixels``, with the pixel -> color map.

    Args:
        pixels: ``(N, 3)`` uint8 sRGB pixels: a NumPy array (the compiled kernel) or a tensor
            (torch, on its device).

    Returns:
        A :class:`ColorHistogram` of the same kind, with ``inverse`` set, so that
        ``colors[inverse]`` equals ``pixels``.

    Example:
        >>> h = color_histogram(np.array([[1, 2, 3], [0, 0, 0], [1, 2, 3]], np.uint8))
        >>> h.colors.tolist(), h.counts.tolist(), h.inverse.tolist()
        ([[0, 0, 0], [1, 2, 3]], [1, 2], [1, 0, 1])
    """
    _check_pixels(pixels)
    if isinstance(pixels, np.ndarray):
        return ColorHistogram(*_cpu.histogram(np.ascontiguousarray(pixels)))
    from ._torch.histogram import color_histogram as torch_histogram

    return ColorHistogram(*torch_histogram(pixels))


def merge_histograms(histograms: Sequence[ColorHistogram]) -> ColorHistogram:
    """Sum several histograms into one (a palette shared across images is fitted on this).

    Args:
        histograms: non-empty sequence of histograms of one kind (and device), RGB ``(M, 3)``
            or RGBA ``(M, 4)`` (NumPy); with one RGBA histogram among them, the RGB ones count
            as opaque RGBA colors and the result is RGBA (NumPy).

    Returns:
        A histogram with ``inverse=None``.
    """
    if len(histograms) == 0:
        raise ValueError("merge_histograms needs at least one histogram")
    if len(histograms) == 1:
        h = histograms[0]
        return ColorHistogram(h.colors, h.counts, None)
    rgba = any(h.colors.shape[1] == 4 for h in histograms)  # RGBA (colorquant.alpha)
    if rgba:
        histograms = [
            ColorHistogram(with_alpha(to_numpy(h.colors)), to_numpy(h.counts), None)
            for h in histograms
        ]
    if isinstance(histograms[0].colors, np.ndarray):
        pack = pack_rgba if rgba else pack_rgb
        keys = np.concatenate([pack(h.colors) for h in histograms])
        counts = np.concatenate([h.counts for h in histograms])
        unique, inverse = np.unique(keys, return_inverse=True)
        total = np.bincount(inverse.ravel(), weights=counts, minlength=unique.size)
        if rgba:
            colors = unpack_rgba(unique)
        else:
            colors = ((unique[:, None] >> np.array([16, 8, 0])) & 0xFF).astype(np.uint8)
        return ColorHistogram(colors, total.astype(np.int64), None)
    from ._torch.histogram import merge

    merged = merge([h.colors for h in histograms], [h.counts for h in histograms])
    return ColorHistogram(merged[0], merged[1], None)


def bin_colors(colors: ArrayT, bits: int) -> tuple[ArrayT, int]:
    """Group colors into cells of a ``2**bits``-per-channel RGB grid.

    Args:
        colors: ``(M, 3)`` uint8 sRGB.
        bits: bits kept per channel, 1..8 (8 keeps every color apart).

    Returns:
        ``(cell, n_cells)``: ``(M,)`` int64 index in ``0..n_cells-1`` of each color's occupied
        cell, cells numbered in the order of their packed coarse key.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    if isinstance(colors, np.ndarray):
        cell, n_cells = _cpu.bin_colors(colors, bits)
        return cell.astype(np.int64), n_cells
    from ._torch.histogram import bin_colors as torch_bin

    return torch_bin(colors, bits)


def cell_means(
    points: ArrayT, weights: ArrayT, cell: ArrayT, n_cells: int
) -> tuple[ArrayT, ArrayT, float]:
    """Weighted mean and weight of every cell, and the weighted scatter inside the cells.

    Args:
        points: ``(M, C)`` float coordinates of the colors.
        weights: ``(M,)`` their pixel counts, same float dtype.
        cell: ``(M,)`` int64 cell of every color (:func:`bin_colors`).
        n_cells: number of cells.

    Returns:
        ``(means, cell_weight, scatter)``: ``(n_cells, C)``, ``(n_cells,)``, and
        ``sum_i w_i |x_i - mean_cell(i)|^2 / sum_i w_i``, the part of the objective that no
        choice of centroids per cell can remove.
    """
    if isinstance(points, np.ndarray):
        means, cell_weight, scatter = _cpu.cell_means(
            np.ascontiguousarray(points, dtype=np.float64),
            np.ascontiguousarray(weights, dtype=np.float64),
            cell,
            n_cells,
        )
        return means.astype(points.dtype), cell_weight.astype(points.dtype), scatter
    from ._torch.histogram import cell_means as torch_means

    return torch_means(points, weights, cell, n_cells)
