"""Ordered dithering of 8-bit RGB to the nearest palette point in a color space
(C: dither_ordered.c, color.c)."""

from __future__ import annotations

import numpy as np

from colorquant import _cpu

from .common import as_image8, as_points, check_array, threads

__all__ = ["ORDERED_PARAMS", "dither_ordered"]

# The wrappers call the compiled core as ``_cpu._kernels``, looked up on the package at every call:
# a test may put another build there (COLORQUANT_TEST_KERNELS, tests/conftest.py).

ORDERED_PARAMS = 29
"""Constants :func:`dither_ordered` takes: two row-major 3x3 matrices (sRGB linear -> XYZ or LMS,
then LMS' -> OKLab), the white point, DIN99b's ``c1, c2, cos, sin, squeeze, c5, c6`` and the
hybrid weight (``colorquant.dither.ordered_params`` fills them from ``colorquant.color``)."""


def dither_ordered(
    pixels: np.ndarray,
    rgb_table: np.ndarray,
    lin_table: np.ndarray,
    space: int,
    params: np.ndarray,
    palette: np.ndarray,
) -> np.ndarray:
    """Ordered dithering: every pixel, shifted by its offset, to its nearest palette point.

    A pixel at ``(y, x)`` has level ``8 * (y % 8) + x % 8``; ``rgb_table[level, v]`` and
    ``lin_table[level, v]`` are a channel value ``v`` shifted by that level's offset, on the
    0..255 scale of the ``rgb`` space and in linear light. From them the pixel's point in the
    color space is computed (the formulas of :func:`colorquant.color.embed`, in float64) and
    given its exactly nearest palette point (lowest index on ties); in ``rgb`` the point is the
    table's. Rows are split among the threads; the result does not depend on their number.

    Args:
        pixels: ``(H, W, 3)`` uint8 image.
        rgb_table: ``(64, 256)`` float64.
        lin_table: ``(64, 256)`` float64.
        space: index of the space in ``colorquant.color.COLOR_SPACES``.
        params: ``(ORDERED_PARAMS,)`` float64 constants of the spaces.
        palette: ``(K, C)`` float64 palette points in the space (C = 6 for hybrid, else 3).

    Returns:
        ``(H, W)`` int32 palette rows.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    pixels = as_image8(pixels, channels=3)
    check_array("rgb_table", rgb_table, (64, 256), np.float64)
    check_array("lin_table", lin_table, (64, 256), np.float64)
    if isinstance(space, bool) or not isinstance(space, (int, np.integer)) or not 0 <= space < 5:
        raise ValueError(f"space must be an integer in 0..4, got {space!r}")
    check_array("params", params, (ORDERED_PARAMS,), np.float64)
    pal = as_points("palette", palette, channels=6 if space == 4 else 3)
    h, w = pixels.shape[:2]
    index = np.empty((h, w), np.int32)
    _cpu._kernels.dither_ordered(
        pixels,
        h,
        w,
        np.ascontiguousarray(rgb_table),
        np.ascontiguousarray(lin_table),
        int(space),
        np.ascontiguousarray(params),
        pal,
        pal.shape[0],
        pal.shape[1],
        index,
        threads(),
    )
    return index
