"""The remap: a palette + an image -> indices (with or without a dither) and the result.

Without a dither every distinct color of the histogram takes its nearest palette row, exactly,
and the pixels gather their color's row. A dither makes positions matter: every pixel goes
through :mod:`colorquant.dither` (ordered offsets or error diffusion). Either way the result
lists the rows a :class:`~colorquant.fit.Fit` asks for: all of a given or shared palette, in
its order, or the used ones of a palette fitted to this image, most used first.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np

from . import _cpu
from ._array import to_numpy
from ._checks import InputError
from .alpha import (
    OPAQUE,
    TRANSLUCENT,
    eligible_rows,
    encode_rgba,
    kind_of,
    mse_rgba,
    nearest_of_kind,
    pack_rgba,
    premultiplied,
    premultiply,
    with_alpha,
)
from .color import ColorSpace, embed
from .dither import (
    diffusion_strength,
    dither_spread,
    error_diffusion,
    error_diffusion_groups,
    ordered_amplitude,
    ordered_map,
    ordered_offsets,
)
from .fit import Fit, encode_points, nearest_rows
from .histogram import ColorHistogram, pack_rgb
from .metrics import mse, psnr_from_mse
from .nearest import nearest
from .result import QuantizeResult

__all__ = [
    "apply_histogram",
    "apply_pixels",
    "listed_rows",
    "map_pixels",
    "palette_for",
    "used_colors",
    "with_clear_entry",
]


def used_colors(
    counts: np.ndarray, keep: int = 0, palette: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The used palette rows, most used first (ties: lower row first), and old row -> new row.

    The first ``keep`` rows (fixed colors) are kept even when unused, after the used ones. An
    RGBA ``palette`` puts its translucent rows first (for a short ``tRNS`` chunk).

    Args:
        counts: ``(K,)`` pixels per row.
        keep: rows kept even when unused.
        palette: ``(K, 3)`` or ``(K, 4)`` uint8, for the order of an RGBA one.

    Returns:
        ``(used,)`` int64 rows in their new order, and ``(K,)`` int64 new row of each (-1:
        dropped).
    """
    if palette is not None and palette.shape[1] == 4:
        opaque = palette[:, 3] == 255
        order = np.lexsort((np.arange(counts.size), -counts, opaque))
    else:
        order = np.argsort(-counts, kind="stable")
    used = order[(counts[order] > 0) | (order < keep)]
    remap = np.full(counts.shape[0], -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    return used, remap


def listed_rows(fit: Fit, counts: np.ndarray, full: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``full`` a result lists, in its order, and row -> listed row: every row in
    place for a given or shared (``pinned``) palette, else :func:`used_colors`."""
    if fit.pinned:
        rows = np.arange(counts.shape[0])
        return rows, rows
    return used_colors(counts, keep=fit.n_fixed, palette=full)


def with_clear_entry(palette: np.ndarray) -> np.ndarray:
    """An RGBA ``(K, 4)`` palette with a fully transparent entry: itself if it has one, else
    with ``(0, 0, 0, 0)`` after its rows (as :meth:`colorquant.Quantizer.apply` adds it)."""
    if (palette[:, 3] == 0).any():
        return palette
    return np.concatenate([palette, np.zeros((1, 4), np.uint8)])


def palette_for(palette: Any, colors: Any) -> Any:
    """A fitted palette in the layout of an image's ``colors``: RGB, or RGBA.

    An RGB palette meets an RGBA image as opaque colors, plus ``(0, 0, 0, 0)`` when the
    image has fully transparent pixels and the palette no entry for them.

    Args:
        palette: ``(K, 3)`` or ``(K, 4)`` uint8 (NumPy, or an RGB tensor).
        colors: ``(M, 3)`` or ``(M, 4)`` uint8 colors of the image.
    """
    if colors.shape[1] == palette.shape[1] == 3:
        return palette
    rgba = with_alpha(to_numpy(palette))
    clear = to_numpy(colors)[:, 3] == 0
    if clear.any():
        rgba = with_clear_entry(rgba)
    if not clear.all() and (rgba[:, 3] == 0).all():
        raise InputError("palette has only fully transparent colors: none for visible pixels")
    return rgba


def _result(
    fit: Fit,
    space: ColorSpace,
    palette: np.ndarray,
    indices: np.ndarray,
    counts: np.ndarray,
    error: float,
    seconds: float,
    mapping: Any,
) -> QuantizeResult:
    return QuantizeResult(
        palette=palette,
        indices=indices,
        counts=counts,
        mse=error,
        psnr=psnr_from_mse(error),
        history=fit.history,
        n_iter=fit.n_iter,
        converged=fit.converged,
        color_space=space,
        method=fit.method,
        seconds=seconds,
        _mapping=mapping,
    )


def apply_histogram(
    fit: Fit,
    hist: ColorHistogram,
    shape: tuple[int, int],
    space: ColorSpace,
    start: float,
    points: Any = None,
) -> QuantizeResult:
    """Map the image of ``hist`` to ``fit``'s palette, every distinct color to its nearest row.

    Args:
        fit: the palette and its record.
        hist: the image's histogram, with ``inverse`` (pixel -> distinct color).
        shape: the image's ``(H, W)``.
        space: where nearest colors are measured.
        start: :func:`time.perf_counter` when the work began (the result's ``seconds``).
        points: ``hist.colors`` encoded (:func:`colorquant.fit.encode_points`), when known.
    """
    assert hist.inverse is not None
    full = palette_for(fit.palette, hist.colors)
    palette_points = encode_points(full, space)
    if points is None:
        points = encode_points(hist.colors, space)
    # The search runs where the histogram is; the small bookkeeping after it on the host.
    index = nearest_rows(hist.colors, points, full, palette_points)
    hist_counts = to_numpy(hist.counts)
    k = full.shape[0]
    counts = np.bincount(index, weights=hist_counts, minlength=k).astype(np.int64)
    full = to_numpy(full)
    used, remap = listed_rows(fit, counts, full)
    color_index = remap[index]
    palette = full[used]
    small = np.uint8 if used.size <= 256 else np.uint16
    # Gather in the small dtype: one byte a pixel, not eight, for a 24 MP image.
    indices = color_index.astype(small)[to_numpy(hist.inverse)].reshape(shape)
    seconds = time.perf_counter() - start
    colors = to_numpy(hist.colors)
    measure = mse_rgba if colors.shape[1] == 4 else mse
    error = measure(colors, palette[color_index], weights=hist_counts)
    mapping = (colors, color_index, hist_counts.astype(np.float64))
    return _result(fit, space, palette, indices, counts[used], error, seconds, mapping)


def apply_pixels(
    fit: Fit,
    pixels: np.ndarray,
    space: ColorSpace,
    start: float,
    dither: Literal["ordered", "fs"],
    strength: float,
) -> QuantizeResult:
    """Map every pixel through a dither (positions matter: no histogram shortcut).

    Args:
        fit: the palette and its record.
        pixels: ``(H, W, 3)`` uint8, or ``(H, W, 4)`` RGBA prepared as the histogram is.
        space: where nearest colors are measured.
        start: :func:`time.perf_counter` when the work began.
        dither: ``"ordered"`` or ``"fs"``; ``strength``: 0..1.
    """
    channels = pixels.shape[2]
    flat = pixels.reshape(-1, channels)
    full = to_numpy(palette_for(fit.palette, flat))
    index = map_pixels(pixels, full, space, dither, strength)
    counts = np.bincount(index.ravel(), minlength=full.shape[0]).astype(np.int64)
    used, remap = listed_rows(fit, counts, full)
    palette = full[used]
    color_index = remap[index]
    small = np.uint8 if used.size <= 256 else np.uint16
    seconds = time.perf_counter() - start
    if channels == 4:
        error = mse_rgba(flat, palette[color_index].reshape(-1, 4))
    else:  # the mse, exactly (integers), without a float copy of the image
        error = _cpu.squared_error(flat, full, index.ravel()) / (3.0 * index.size)

    def pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # The distinct (color, palette row) pairs with their pixel counts, for ΔE00.
        pack = pack_rgba if channels == 4 else pack_rgb
        keys = pack(flat).astype(np.int64) * used.size
        found, weights = np.unique(keys + color_index.ravel(), return_counts=True)
        shifts = np.array([24, 16, 8, 0] if channels == 4 else [16, 8, 0])
        colors = (found // used.size)[:, None] >> shifts & 255
        return colors.astype(np.uint8), found % used.size, weights.astype(np.float64)

    indices = color_index.astype(small)
    return _result(fit, space, palette, indices, counts[used], error, seconds, pairs)


def map_pixels(
    rgb8: np.ndarray,
    palette: np.ndarray,
    space: ColorSpace,
    dither: Literal["ordered", "fs"],
    strength: float,
) -> np.ndarray:
    """Every pixel's palette row through a dither (``"ordered"`` or ``"fs"``): ``(H, W)``.

    Args:
        rgb8: ``(H, W, 3)`` uint8, or ``(H, W, 4)`` RGBA with a ``(K, 4)`` palette.
        palette: ``(K, 3)`` or ``(K, 4)`` uint8.
        space: where nearest colors are measured.
        dither: ``"ordered"`` or ``"fs"``; ``strength``: 0..1.
    """
    if rgb8.shape[2] == 4:
        return _map_rgba_pixels(rgb8, palette, space, dither, strength)
    spread = dither_spread(palette)
    if dither == "fs":
        rows: np.ndarray = error_diffusion(rgb8, palette, strength, spread)
        return rows
    return ordered_map(rgb8, palette, space, ordered_amplitude(spread, strength))


def _map_rgba_pixels(
    rgba8: np.ndarray,
    palette: np.ndarray,
    space: ColorSpace,
    dither: Literal["ordered", "fs"],
    strength: float,
) -> np.ndarray:
    """:func:`map_pixels` of an RGBA image: the dither moves the colors of visible pixels;
    each pixel then takes its nearest palette entry of its own group (visible, transparent)."""
    height, width = rgba8.shape[:2]
    visible_rows = palette[:, 3] > 0
    spread = dither_spread(palette[visible_rows, :3]) if visible_rows.any() else 0.0
    if dither == "fs":
        return _diffuse_rgba(rgba8, palette, space, strength, spread)
    rgb = rgba8[..., :3].astype(np.float64)
    visible = rgba8[..., 3] > 0
    offsets = ordered_offsets(np.empty(0), height, width, ordered_amplitude(spread, strength))
    shifted = np.where(visible[..., None], np.clip(rgb + offsets[..., None], 0.0, 255.0), rgb)
    alpha8 = rgba8[..., 3].reshape(-1)
    points = premultiply(embed(shifted.reshape(-1, 3) / 255.0, space), alpha8 / 255.0, space)
    rows = kind_of(palette[:, 3])
    index = nearest_of_kind(points, kind_of(alpha8), encode_rgba(palette, space), rows)[0]
    return index.reshape(height, width)


def _diffuse_rgba(
    rgba8: np.ndarray,
    palette: np.ndarray,
    space: ColorSpace,
    strength: float,
    spread: float,
) -> np.ndarray:
    """Floyd-Steinberg of an RGBA image in premultiplied 8-bit RGBA (alpha weighing as three
    channels, as in :mod:`colorquant.alpha`): visible pixels search the visible rows (opaque
    ones take no alpha error), fully transparent pixels keep their own nearest row and take and
    pass no error."""
    height, width = rgba8.shape[:2]
    flat = rgba8.reshape(-1, 4)
    # The fully transparent pixels' rows: their nearest (transparent) ones, not dithered.
    clear = flat[:, 3] == 0
    fixed = np.zeros(flat.shape[0], np.int32)
    if clear.any():
        near = nearest(encode_rgba(flat[clear], space), encode_rgba(palette, space))[0]
        fixed[clear] = to_numpy(near)
    # Groups are the kinds of alpha.kind_of: translucent pixels (1) take any visible row,
    # opaque ones (2) only opaque rows, and no alpha error: the dither keeps them opaque.
    eligible = eligible_rows(kind_of(palette[:, 3]))
    entry_group = (eligible[TRANSLUCENT] << TRANSLUCENT | eligible[OPAQUE] << OPAQUE).astype(
        np.int8
    )
    pixel_group = np.where(clear, -1, kind_of(flat[:, 3])).astype(np.int8)
    pixels = premultiplied(flat).reshape(height, width, 4)
    shown = np.rint(pixels[..., :3]).astype(np.uint8)
    index = error_diffusion_groups(
        pixels,
        premultiplied(palette),
        np.array([1.0, 1.0, 1.0, 3.0]),
        pixel_group.reshape(height, width),
        entry_group,
        fixed.reshape(height, width),
        diffusion_strength(shown, strength),
        spread,
    )
    return index.astype(np.int64)
