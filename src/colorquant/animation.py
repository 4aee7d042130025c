"""Animations: one palette for every frame.

A palette fitted on every frame at once (their merged color histogram) maps each frame: colors
do not flicker from frame to frame as they do with a palette per frame, and ordered dithering
(the same pattern on every frame) does not crawl. ``shared=False`` fits a palette per frame
(GIF only: APNG frames share the file's one palette).

The files (animated GIF, APNG and ``.npz`` in and out, durations and loop count kept) are
:mod:`colorquant.io.animation`'s; their functions are importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._array import is_tensor
from ._checks import InputError, as_pixels
from .alpha import with_alpha
from .io.animation import (
    ANIMATION_SUFFIXES,
    DEFAULT_DURATION_MS,
    MAX_GIF_DURATION_MS,
    Animation,
    animation_bytes,
    is_animated,
    load_animation,
    load_animation_bytes,
    save_animation,
)
from .quantize import Dither, Quantizer, QuantizeResult, quantize

__all__ = [
    "ANIMATION_SUFFIXES",
    "DEFAULT_DURATION_MS",
    "MAX_GIF_DURATION_MS",
    "Animation",
    "animation_bytes",
    "as_frames",
    "is_animated",
    "load_animation",
    "load_animation_bytes",
    "quantize_animation",
    "save_animation",
]


def as_frames(frames: Any) -> list[np.ndarray]:
    """A ``(T, C, H, W)`` tensor, a ``(T, H, W, C)`` array or a sequence of images as a list of
    ``(H, W, 3)`` or (all) ``(H, W, 4)`` uint8 frames of one size."""
    if is_tensor(frames):
        if frames.ndim != 4 or frames.shape[1] not in (3, 4):
            raise InputError(
                f"frames tensor must be (T, 3, H, W) or (T, 4, H, W), got {tuple(frames.shape)}"
            )
        items: Sequence[Any] = list(frames.unbind(0))
    elif isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[3] not in (3, 4):
            raise InputError(
                f"frames array must be (T, H, W, 3) or (T, H, W, 4), got {frames.shape}"
            )
        items = list(frames)
    elif isinstance(frames, (list, tuple)):
        items = frames
    else:
        raise InputError(
            f"frames must be a tensor, an array or a list of images, got {type(frames).__name__}"
        )
    if not items:
        raise InputError("frames is empty: an animation needs at least one frame")
    out = [as_pixels(f, f"frames[{t}]") for t, f in enumerate(items)]
    sizes = {f.shape[:2] for f in out}
    if len(sizes) > 1:
        raise InputError(f"frames must all have one size, got {sorted(sizes)}")
    if any(f.shape[2] == 4 for f in out):
        out = [with_alpha(f) for f in out]
    return out


def quantize_animation(
    frames: Any,
    n_colors: int = 256,
    *,
    shared: bool = True,
    dither: Dither = "none",
    dither_strength: float = 1.0,
    **options: Any,
) -> list[QuantizeResult]:
    """Quantize the frames of an animation: one palette for all (default) or one per frame.

    Args:
        frames: ``(T, 3, H, W)`` or ``(T, 4, H, W)`` tensor, ``(T, H, W, 3|4)`` array, or a
            list of images of one size (anything :func:`colorquant.quantize` takes).
        n_colors: palette size K.
        shared: one palette fitted on every frame's colors, applied to each; else a palette
            per frame.
        dither: ``"none"``, ``"ordered"`` (the same pattern on every frame: no crawling) or
            ``"fs"``.
        dither_strength: 0..1.
        options: other :class:`colorquant.Quantizer` options (``color_space``, ``seed``,
            ``speed``, ``fixed_colors``, ``keep_transparent_rgb``, ...).

    Returns:
        One :class:`colorquant.QuantizeResult` per frame; with ``shared``, every frame's
        palette is the one fitted palette, all its rows in one order (README, "Palettes and
        indices").
    """
    pixels = as_frames(frames)
    if not shared:
        return [
            quantize(f, n_colors, dither=dither, dither_strength=dither_strength, **options)
            for f in pixels
        ]
    quantizer = Quantizer(n_colors, **options).fit(pixels)
    return [quantizer.apply(f, dither=dither, dither_strength=dither_strength) for f in pixels]
