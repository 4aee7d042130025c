"""The exact color histogram of 8-bit RGB pixels, and the coarse RGB cells of the binned fit
(C: hist.c)."""

from __future__ import annotations

import numpy as np

from colorquant import _cpu

from .common import as_integer, as_points, as_weights, describe, threads

__all__ = ["HISTOGRAM_DENSE_FROM", "bin_colors", "cell_means", "histogram"]

# The wrappers call the compiled core as ``_cpu._kernels``, looked up on the package at every call:
# a test may put another build there (COLORQUANT_TEST_KERNELS, tests/conftest.py).

HISTOGRAM_DENSE_FROM = 1_500_000
"""Pixels from which :func:`histogram` counts into a dense 2^24 table instead of sorting.

Below it an LSD radix sort of the 24-bit keys (16 bytes of scratch a pixel) is faster than
touching the 64 MiB table; above it the table is faster and needs less memory.
"""

TABLE_BLOCKS = 256
"""Blocks of the 2^24 table counted separately (``TABLE_BLOCKS`` in hist.c)."""


def histogram(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact color histogram of ``pixels`` with each pixel's row in it.

    Below :data:`HISTOGRAM_DENSE_FROM` pixels the 24-bit keys ``r << 16 | g << 8 | b`` are radix
    sorted (two passes of 12 bits, carrying pixel ids); from it they are counted into a dense
    2^24 table. Both give the same result.

    Args:
        pixels: ``(N, 3)`` uint8 RGB, ``1 <= N < 2^31``.

    Returns:
        ``(colors, counts, inverse)``: ``(M, 3)`` uint8 distinct colors ascending by key,
        ``(M,)`` int64 pixels of each color, and ``(N,)`` int32 row of every pixel in
        ``colors`` (so ``colors[inverse]`` equals ``pixels``).

    Raises:
        ValueError: ``pixels`` is not a non-empty ``(N, 3)`` uint8 array.
    """
    if (
        not isinstance(pixels, np.ndarray)
        or pixels.dtype != np.uint8
        or pixels.ndim != 2
        or pixels.shape[1] != 3
        or not 1 <= pixels.shape[0] < 2**31
    ):
        raise ValueError(
            "pixels must be a uint8 array of shape (N, 3) with 1 <= N < 2^31, "
            f"got {describe(pixels)}"
        )
    px = np.ascontiguousarray(pixels)
    n = px.shape[0]
    nt = threads()
    if n < HISTOGRAM_DENSE_FROM:
        keys, ids = np.empty(n, np.uint32), np.empty(n, np.uint32)
        m = _cpu._kernels.hist_sort(
            px, keys, ids, np.empty(n, np.uint32), np.empty(n, np.uint32), nt
        )
        colors = np.empty((m, 3), np.uint8)
        counts = np.empty(m, np.int64)
        inverse = np.empty(n, np.int32)
        _cpu._kernels.hist_sort_finish(keys, ids, colors, counts, inverse, nt)
        return colors, counts, inverse
    table = np.zeros(1 << 24, np.uint32)
    inverse = np.empty(n, np.int32)
    blocks = np.empty(TABLE_BLOCKS, np.int64)
    m = _cpu._kernels.hist_dense_count(px, table, inverse, blocks, nt)
    colors = np.empty((m, 3), np.uint8)
    counts = np.empty(m, np.int64)
    _cpu._kernels.hist_dense_finish(table, inverse, blocks, colors, counts, nt)
    return colors, counts, inverse


def bin_colors(colors: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """The occupied cells of the ``2**bits``-per-channel RGB grid, and each color's cell.

    Args:
        colors: ``(M, 3)`` uint8 sRGB, ``M < 2^31``.
        bits: bits kept per channel, 1..8.

    Returns:
        ``(cell, n_cells)``: ``(M,)`` int32 cell of every color in ``0..n_cells-1``, cells
        numbered in the order of their packed key ``r << 2b | g << b | b``.

    Raises:
        ValueError: ``colors`` is not an ``(M, 3)`` uint8 array, or ``bits`` is out of range.
    """
    if (
        not isinstance(colors, np.ndarray)
        or colors.dtype != np.uint8
        or colors.ndim != 2
        or colors.shape[1] != 3
        or colors.shape[0] >= 2**31
    ):
        raise ValueError(
            f"colors must be a uint8 array of shape (M, 3) with M < 2^31, got {describe(colors)}"
        )
    bits = as_integer("bits", bits, 1)
    if bits > 8:
        raise ValueError(f"bits must be an integer in 1..8, got {bits}")
    c = np.ascontiguousarray(colors)
    cell = np.empty(c.shape[0], np.int32)
    n_cells = _cpu._kernels.bin_cells(
        c, c.shape[0], bits, np.empty(1 << (3 * bits), np.int32), cell
    )
    return cell, n_cells


def cell_means(
    points: np.ndarray, weights: np.ndarray, cell: np.ndarray, n_cells: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted mean and weight of every cell, and the weighted scatter inside the cells.

    Args:
        points: ``(M, C)`` float64.
        weights: ``(M,)`` float64, all > 0.
        cell: ``(M,)`` integer cell of every point, in ``0..n_cells-1``, every cell occupied.
        n_cells: number of cells, ``>= 1``.

    Returns:
        ``(means, cell_weight, scatter)``: ``(n_cells, C)`` float64 weighted means (sums in
        index order), ``(n_cells,)`` float64 weights, and
        ``sum_i w_i |x_i - mean_cell(i)|^2 / sum_i w_i``.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    x = as_points("points", points)
    m, c = x.shape
    w = as_weights(weights, m)
    n_cells = as_integer("n_cells", n_cells, 1)
    if not isinstance(cell, np.ndarray) or cell.shape != (m,) or cell.dtype.kind not in "iu":
        raise ValueError(f"cell must be an integer array of shape ({m},), got {describe(cell)}")
    means = np.empty((n_cells, c), np.float64)
    cell_weight = np.empty(n_cells, np.float64)
    scatter = _cpu._kernels.cell_means(
        x, w, np.ascontiguousarray(cell, dtype=np.int32), m, c, n_cells, means, cell_weight
    )
    if not (cell_weight > 0).all():
        raise ValueError("cell must leave no cell in 0..n_cells-1 empty")
    return means, cell_weight, scatter
