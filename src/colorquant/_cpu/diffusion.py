"""Serpentine Floyd-Steinberg error diffusion: 8-bit images to their nearest palette rows, and
images with alpha whose pixels search the rows of their group (C: dither_fs.c)."""

from __future__ import annotations

import numpy as np

from colorquant import _cpu

from .common import (
    as_image8,
    as_integer,
    as_points,
    check_array,
    check_max_error,
    describe,
    threads,
)

__all__ = ["dither_fs", "dither_fs_groups"]

# The wrappers call the compiled core as ``_cpu._kernels``, looked up on the package at every call:
# a test may put another build there (COLORQUANT_TEST_KERNELS, tests/conftest.py).


def dither_fs(
    pixels: np.ndarray,
    palette: np.ndarray,
    strength: np.ndarray,
    max_error: float,
    band: int | None = None,
    warm: int = 0,
) -> np.ndarray:
    """Serpentine Floyd-Steinberg error diffusion on 8-bit channels: every pixel's palette row.

    Each pixel plus the error diffused into it (each channel clamped to ``+-max_error``, then
    to 0..255) takes its exactly nearest palette color (float64 squared distance, lowest index
    on ties); ``strength`` scales, pixel by pixel, the error it passes on (7/16 ahead, 3/16,
    5/16, 1/16 below). Even rows run left to right, odd rows right to left.

    The nearest colors come from a grid of cells over the channels, each holding the colors
    that can be nearest somewhere in it (built as pixels reach it): a few exact distances a
    pixel instead of K. With ``band``, the rows are cut into bands, each diffused on its own
    from ``warm`` rows above it (started there with no error, those rows' results dropped) and
    the bands spread over the threads; the result depends on ``band`` and ``warm`` only, not on
    the number of threads. Without, the image is one band: the plain sequential diffusion.

    Args:
        pixels: ``(H, W, C)`` uint8 image, ``1 <= C <= 8`` (8-bit RGB: C = 3).
        palette: ``(K, C)`` float64 colors on the 0..255 scale, ``K >= 1``.
        strength: ``(H, W)`` float32 in [0, 1].
        max_error: largest error a channel carries, ``>= 0``.
        band: rows of a band, ``>= 1`` (default: the whole image).
        warm: rows a band runs before its first, ``>= 0``.

    Returns:
        ``(H, W)`` int32 palette rows.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    pixels = as_image8(pixels)
    h, w, c = pixels.shape
    pal = as_points("palette", palette, channels=c)
    check_array("strength", strength, (h, w), np.float32)
    check_max_error(max_error)
    index = np.empty((h, w), np.int32)
    _cpu._kernels.dither_fs(
        pixels,
        h,
        w,
        c,
        pal,
        pal.shape[0],
        np.ascontiguousarray(strength),
        float(max_error),
        index,
        h if band is None else as_integer("band", band, 1),
        as_integer("warm", warm, 0),
        threads(),
    )
    return index


def dither_fs_groups(
    pixels: np.ndarray,
    palette: np.ndarray,
    weight: np.ndarray,
    pixel_group: np.ndarray,
    entry_group: np.ndarray,
    fixed: np.ndarray,
    strength: np.ndarray,
    max_error: float,
) -> np.ndarray:
    """Serpentine Floyd-Steinberg where each pixel searches only the palette rows of its group.

    For images with alpha: ``pixels`` are premultiplied RGBA on the 0..255 scale. Each pixel
    plus the error diffused into it (each channel clamped to ``+-max_error``, then to 0..255)
    takes, of the palette rows its group may take, the nearest by ``sum(weight * diff**2)``
    (lowest row on ties), and passes on ``strength`` of its error (7/16 ahead, 3/16, 5/16, 1/16
    below). A pixel of group ``g`` (0..6) may take the rows whose ``entry_group`` has bit ``g``
    set; a pixel of group 2 takes no error in its last channel (an opaque pixel keeps its
    alpha). A pixel of group -1 (or of a group without rows) takes ``fixed`` and passes no
    error.

    Args:
        pixels: ``(H, W, C)`` float64, 1 <= C <= 16.
        palette: ``(K, C)`` float64 rows, ``K >= 1``.
        weight: ``(C,)`` float64 channel weights.
        pixel_group: ``(H, W)`` int8 group of every pixel, -1 for no search.
        entry_group: ``(K,)`` int8 bit mask of the groups that may take every row.
        fixed: ``(H, W)`` int32 row of the pixels that are not searched.
        strength: ``(H, W)`` float32 in [0, 1].
        max_error: largest error a channel carries, ``>= 0``.

    Returns:
        ``(H, W)`` int32 palette rows.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.float64 or pixels.ndim != 3:
        raise ValueError(f"pixels must be a float64 array (H, W, C), got {describe(pixels)}")
    h, w, c = pixels.shape
    pal = np.ascontiguousarray(palette, dtype=np.float64)
    if pal.ndim != 2 or pal.shape[1] != c or pal.shape[0] < 1:
        raise ValueError(f"palette must be (K, {c}) with K >= 1, got {describe(palette)}")
    k = pal.shape[0]
    check_array("weight", weight, (c,), np.float64)
    check_array("pixel_group", pixel_group, (h, w), np.int8)
    check_array("entry_group", entry_group, (k,), np.int8)
    check_array("fixed", fixed, (h, w), np.int32)
    check_array("strength", strength, (h, w), np.float32)
    check_max_error(max_error)
    index = np.empty((h, w), np.int32)
    _cpu._kernels.dither_fs_groups(
        np.ascontiguousarray(pixels),
        h,
        w,
        c,
        pal,
        k,
        np.ascontiguousarray(weight),
        np.ascontiguousarray(pixel_group),
        np.ascontiguousarray(entry_group),
        np.ascontiguousarray(fixed),
        np.ascontiguousarray(strength),
        float(max_error),
        index,
    )
    return index
