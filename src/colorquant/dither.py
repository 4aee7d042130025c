"""Dithering: ordered (Bayer) offsets and error diffusion, a dispatcher like every stage.

The kinds a caller picks are :data:`DITHERS`: ``"none"``, ``"ordered"``, ``"fs"``
(Floyd-Steinberg). :func:`ordered_map`, :func:`error_diffusion` and
:func:`error_diffusion_groups` run each on the kernel for their input: the compiled core for
NumPy arrays; a torch kernel for tensors is the place marked in :func:`error_diffusion`.

An ordered dither adds to every pixel a fixed offset that depends only on its position (a Bayer
threshold matrix tiled over the image), then maps it to its nearest palette color. Areas between
two palette colors become a fine, regular mix of both whose local average is close to the
original; the pattern is the same on every frame of a video (no shimmer), and every pixel is
computed independently (batched, on any device). On the CPU, :func:`ordered_map` runs it in the
compiled core (:func:`colorquant._cpu.dither_ordered`): a channel shifted by an offset takes
only 64 x 256 values, tabulated here (sRGB and linear light), and the rest of the conversion
into the color space and the exact nearest-color search run per pixel in C, on all threads.

The offsets are scaled to the palette: ``strength`` times the median distance from each palette
color to its nearest other one (in 8-bit RGB), divided by sqrt(3) since the same offset moves
all three channels, so that a mix spans neighbouring colors and no more.

Error diffusion (Floyd-Steinberg, serpentine) is sequential: it runs in the compiled core
(:func:`colorquant._cpu.dither_fs`), in 8-bit RGB whatever the color space. Here is what it is
given: :func:`diffusion_strength`, less error passed on at edges and in noise (where dithering
only adds noise) and all of it in flat and smoothly shaded areas (where banding shows), and the
palette's spread, which caps the error a pixel carries so that it never runs away.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from . import _cpu
from ._array import ArrayT, constant, is_tensor, to_numpy
from .color import (
    COLOR_SPACES,
    DIN99_CONSTANTS,
    HYBRID_DIN99_WEIGHT,
    LMS_FROM_RGB,
    OKLAB_FROM_LMS,
    WHITE_D65,
    XYZ_FROM_RGB,
    ColorSpace,
    encode_colors,
    srgb_to_linear,
)

__all__ = [
    "DITHERS",
    "EDGE_SCALE",
    "Dither",
    "bayer_matrix",
    "diffusion_strength",
    "dither_spread",
    "error_diffusion",
    "error_diffusion_groups",
    "ordered_amplitude",
    "ordered_map",
    "ordered_offsets",
    "ordered_params",
    "ordered_tables",
]

Dither = Literal["none", "ordered", "fs"]
DITHERS: tuple[Dither, ...] = ("none", "ordered", "fs")
"""The dithers: none (every pixel its nearest color), ordered (Bayer), fs (Floyd-Steinberg)."""

BAYER_SIZE = 8
"""Side of the Bayer matrix: 64 threshold levels."""

EDGE_SCALE = 24.0
"""Luma step (8-bit units) to a neighbour at which error diffusion passes on half its error."""


def bayer_matrix(size: int = BAYER_SIZE) -> np.ndarray:
    """The ``size x size`` Bayer threshold matrix, values ``(0.5 .. size^2 - 0.5) / size^2``.

    Built by the recursion ``M_2n = [[4 M, 4 M + 2], [4 M + 3, 4 M + 1]]`` from ``M_1 = [0]``;
    every value appears once, and each level spreads thresholds as evenly as possible.

    Args:
        size: a power of two, 1..64.

    Returns:
        ``(size, size)`` float64 in (0, 1), mean 0.5.

    Example:
        >>> (bayer_matrix(2) * 4 - 0.5).tolist()
        [[0.0, 2.0], [3.0, 1.0]]
    """
    if size < 1 or size > 64 or size & (size - 1):
        raise ValueError(f"size must be a power of two in 1..64, got {size}")
    m = np.zeros((1, 1), dtype=np.int64)
    while m.shape[0] < size:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return (m + 0.5) / (size * size)


def dither_spread(palette_rgb8: Any) -> float:
    """Median distance (8-bit RGB) from each palette color to its nearest other one; 0 for one.

    Args:
        palette_rgb8: ``(K, 3)`` colors, NumPy or tensor, values 0..255.
    """
    pal = np.asarray(palette_rgb8.cpu() if is_tensor(palette_rgb8) else palette_rgb8, np.float64)
    if pal.shape[0] < 2:
        return 0.0
    d2 = ((pal[:, None, :] - pal[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    return float(np.median(np.sqrt(d2.min(1))))


def ordered_amplitude(spread: Any, strength: float) -> Any:
    """Peak-to-peak size of the ordered offsets for a palette of ``spread`` (a number, or an
    array of them): the same offset moves a pixel's three channels, so sqrt(3) times as far in
    RGB; dividing by sqrt(3) makes the offsets span one palette step at ``strength`` 1."""
    return strength * spread / 3.0**0.5


def ordered_offsets(like: ArrayT, height: int, width: int, amplitude: float) -> ArrayT:
    """The ``(height, width)`` offsets of an ordered dither, ``amplitude * (bayer - 0.5)``.

    Args:
        like: an array or tensor whose kind, float dtype and device the result takes.
        height: image rows.
        width: image columns.
        amplitude: peak-to-peak size of the offsets (8-bit units for RGB pixels).

    Returns:
        ``(height, width)`` offsets in ``[-amplitude / 2, amplitude / 2]``, mean 0 over a tile.
    """
    tile = bayer_matrix()
    reps = (-(-height // BAYER_SIZE), -(-width // BAYER_SIZE))
    full = np.tile(tile, reps)[:height, :width]
    offsets: ArrayT = constant(amplitude * (full - 0.5), like)
    return offsets


def ordered_tables(amplitude: float) -> tuple[np.ndarray, np.ndarray]:
    """Every channel value shifted by the offset of every level of the Bayer tile, clipped.

    Level ``8 * (y % 8) + x % 8`` is the pixel ``(y, x)``'s place in the tile; its offset is that
    of :func:`ordered_offsets`. The values are those the NumPy path computes per pixel: ``s =
    clip(v + offset, 0, 255)``, then ``embed(s / 255, "rgb")`` and ``srgb_to_linear(s / 255)``.

    Args:
        amplitude: peak-to-peak size of the offsets (8-bit units).

    Returns:
        ``(rgb, linear)``: two ``(64, 256)`` float64 tables, indexed by level and channel value,
        on the 0..255 scale and in linear light.
    """
    offsets = amplitude * (bayer_matrix() - 0.5)
    shifted = np.clip(np.arange(256.0)[None, :] + offsets.reshape(-1, 1), 0.0, 255.0) / 255.0
    linear = srgb_to_linear(np.repeat(shifted[..., None], 3, axis=-1))[..., 0]
    return np.ascontiguousarray(shifted * 255.0), np.ascontiguousarray(linear)


def ordered_params(space: ColorSpace) -> np.ndarray:
    """The constants of ``space`` that :func:`colorquant._cpu.dither_ordered` takes (from
    :mod:`colorquant.color`): ``(ORDERED_PARAMS,)`` float64."""
    params = np.zeros(_cpu.ORDERED_PARAMS)
    if space == "oklab":
        params[0:9] = LMS_FROM_RGB.ravel()
        params[9:18] = OKLAB_FROM_LMS.ravel()
    else:
        params[0:9] = XYZ_FROM_RGB.ravel()
    params[18:21] = WHITE_D65
    c1, c2, angle, squeeze, c5, c6 = DIN99_CONSTANTS
    theta = math.radians(angle)
    params[21:28] = (c1, c2, math.cos(theta), math.sin(theta), squeeze, c5, c6)
    params[28] = HYBRID_DIN99_WEIGHT
    return params


def ordered_map(
    rgb8: np.ndarray, palette: np.ndarray, space: ColorSpace, amplitude: float
) -> np.ndarray:
    """Ordered dithering on the CPU: every pixel, shifted by its Bayer offset, to its nearest
    palette color in ``space`` (exactly, for the point as computed in float64).

    Args:
        rgb8: ``(H, W, 3)`` uint8 image.
        palette: ``(K, 3)`` uint8 palette.
        space: the color space of the search.
        amplitude: peak-to-peak size of the offsets (:func:`ordered_amplitude`).

    Returns:
        ``(H, W)`` int32 palette rows.
    """
    rgb_table, lin_table = ordered_tables(amplitude)
    return _cpu.dither_ordered(
        rgb8,
        rgb_table,
        lin_table,
        COLOR_SPACES.index(space),
        ordered_params(space),
        encode_colors(palette, space),
    )


def diffusion_strength(rgb8: np.ndarray, strength: float) -> np.ndarray:
    """Per-pixel share of its error that error diffusion passes on: ``(H, W)`` float32.

    ``strength / (1 + (g / EDGE_SCALE)^2)``, ``g`` the largest luma difference (Rec. 601
    weights, 8-bit units) to a 4-neighbour: ``strength`` in flat and smooth areas, a quarter of
    it across a step of ``2 * EDGE_SCALE``.

    Args:
        rgb8: ``(H, W, 3)`` uint8 image.
        strength: 0..1, the share in flat areas.
    """
    luma = rgb8.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    g = np.zeros_like(luma)
    dx = np.abs(np.diff(luma, axis=1))
    dy = np.abs(np.diff(luma, axis=0))
    g[:, 1:] = np.maximum(g[:, 1:], dx)
    g[:, :-1] = np.maximum(g[:, :-1], dx)
    g[1:] = np.maximum(g[1:], dy)
    g[:-1] = np.maximum(g[:-1], dy)
    out: np.ndarray = (strength / (1.0 + (g / EDGE_SCALE) ** 2)).astype(np.float32)
    return out


def error_diffusion(rgb8: Any, palette: Any, strength: Any, spread: float) -> Any:
    """Floyd-Steinberg (serpentine) of an RGB image: every pixel's palette row.

    Each pixel passes on :func:`diffusion_strength` of its error (``strength`` in flat areas,
    less at edges), each channel's carried error capped at ``spread``
    (:func:`dither_spread`); the search is exact (float64 squared distance, lowest row on
    ties), in 8-bit RGB whatever the color space. Even rows run left to right, odd rows right
    to left; the error goes 7/16 ahead, 3/16, 5/16 and 1/16 below.

    Args:
        rgb8: ``(H, W, 3)`` uint8 image (NumPy; a tensor runs on the host for now).
        palette: ``(K, 3)`` colors on the 0..255 scale (uint8, or float).
        strength: 0..1, the share of the error passed on in flat areas; or an ``(H, W)``
            float32 map of each pixel's share, used as it is.
        spread: the largest error a channel carries (8-bit units).

    Returns:
        ``(H, W)`` int32 palette rows (a tensor on ``rgb8``'s device for a tensor).

    Example:
        >>> img = np.full((2, 4, 3), 128, np.uint8)
        >>> error_diffusion(img, np.array([[0, 0, 0], [255, 255, 255]], np.uint8), 1.0, 64.0)
        array([[1, 0, 1, 0],
               [0, 1, 0, 1]], dtype=int32)
    """
    if is_tensor(rgb8):
        # The torch branch goes here (a kernel on the tensor's device, issue 17 item 1); until
        # it lands, a tensor takes the compiled core on the host and comes back.
        import torch

        rows = error_diffusion(to_numpy(rgb8), to_numpy(palette), strength, spread)
        return torch.from_numpy(rows).to(rgb8.device)
    pal = np.asarray(palette).astype(np.float64)
    if np.ndim(strength) == 0:
        strength = diffusion_strength(rgb8, float(strength))
    return _cpu.dither_fs(rgb8, pal, np.asarray(strength, np.float32), spread)


def error_diffusion_groups(
    pixels: np.ndarray,
    palette: np.ndarray,
    weight: np.ndarray,
    pixel_group: np.ndarray,
    entry_group: np.ndarray,
    fixed: np.ndarray,
    strength: np.ndarray,
    spread: float,
) -> np.ndarray:
    """Floyd-Steinberg where each pixel searches only the palette rows of its group (images
    with alpha, :mod:`colorquant.alpha`), on the compiled core.

    Args:
        pixels: ``(H, W, C)`` float64 on the 0..255 scale (premultiplied RGBA: C = 4).
        palette: ``(K, C)`` float64 rows.
        weight: ``(C,)`` float64 channel weights of the distance.
        pixel_group: ``(H, W)`` int8 group of every pixel, -1 for none (takes ``fixed``).
        entry_group: ``(K,)`` int8 bit mask of the groups each row serves.
        fixed: ``(H, W)`` int32 rows of the pixels of group -1.
        strength: ``(H, W)`` float32 share of its error each pixel passes on.
        spread: the largest error a channel carries.

    Returns:
        ``(H, W)`` int32 palette rows.
    """
    # The torch branch, when one is written, dispatches here as in error_diffusion.
    return _cpu.dither_fs_groups(
        pixels, palette, weight, pixel_group, entry_group, fixed, strength, spread
    )
