"""The fit's settings in one frozen value, :class:`FitOptions`, and what a ``speed`` sets.

Every entry point that fits a palette (:func:`colorquant.quantize`, :class:`colorquant.Quantizer`,
:func:`colorquant.quantize_batch`, the nn layer, the dataset jobs and the commands) takes its
settings from one ``FitOptions``, checked once when it is made. One knob, ``speed`` (1..10),
sets the stages and iterations (:func:`settings_for_speed`, libimagequant's ``set_speed``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import numpy as np

from ._checks import InputError, check_choice, check_fixed, check_int_range, check_positive
from .color import COLOR_SPACES, DEFAULT_COLOR_SPACE, ColorSpace
from .init import INITS, InitMethod

__all__ = [
    "ADAM_STEPS",
    "BACKENDS",
    "DATASET_SPEED",
    "DEFAULT_COLORS",
    "DEFAULT_SPEED",
    "MAX_COLORS",
    "METHODS",
    "Backend",
    "FitOptions",
    "FitSettings",
    "Method",
    "resolve_options",
    "restarts",
    "settings_for_speed",
]

Method = Literal["kmeans", "adam"]
METHODS: tuple[Method, ...] = ("kmeans", "adam")
Backend = Literal["auto", "torch"]
BACKENDS: tuple[Backend, ...] = ("auto", "torch")
"""Kernels of :func:`colorquant.quantize_batch`: ``"auto"`` (compiled on the CPU, torch elsewhere)
or ``"torch"`` (the torch stages on any device)."""
MAX_COLORS = 65536
"""The largest palette a fit makes (palette images hold at most 256)."""
DEFAULT_COLORS = 256
"""The default palette size K of the library and of the commands (``colorquant quantize``,
``colorquant dataset``): 256, as pngquant, ffmpeg's palettegen and GIF use, the most a PNG or
GIF palette holds; ``quality=`` / ``--quality`` then picks fewer where fewer reach its maximum."""
DEFAULT_SPEED = 4
"""The library's fit speed, chosen by ``benchmarks/compare.py`` (BENCHMARKS.md)."""
DATASET_SPEED = 7
"""The fit speed of dataset jobs (``--speed``): on the 24 Kodak photos at K = 256, one thread,
the fit takes 46-50 ms against 73 at the library's default (speed 4) for 0.21 dB less PSNR,
still 0.72 dB above ``pngquant 256 --nofs`` (BENCHMARKS.md, "Datasets"): at dataset scale
throughput comes first."""
ADAM_STEPS = 100
"""Optimiser steps of ``method="adam"`` unless ``max_iter`` says otherwise."""


@dataclass(frozen=True)
class FitSettings:
    """What one ``speed`` value sets (libimagequant's one-knob idea).

    Attributes:
        levels: bits per channel of the RGB cells of the coarse stages, coarsest first. The
            seeding and the first Lloyd runs work on the weighted means of the cells of the
            first level that has enough cells; each later level starts from the centroids of the
            one before; the exact histogram comes last.
        seed_ratio: the seeding level is the first of ``levels`` with at least
            ``seed_ratio * K`` cells (coarser levels are skipped): enough cells per centroid
            for k-means++ to see the image's structure, few enough to be cheap.
        n_init: seedings tried at K <= 64 (fewer above, down to 1 at K >= 256); the lowest
            objective is kept.
        coarse_iter: Lloyd iterations at most on each coarse level.
        coarse_tol: relative tolerance of the coarse levels.
        max_iter: Lloyd iterations at most on the exact histogram.
        tol: relative tolerance of the exact histogram.
    """

    levels: tuple[int, ...]
    seed_ratio: int
    n_init: int
    coarse_iter: int
    coarse_tol: float
    max_iter: int
    tol: float


_SPEED_TABLE = {
    1: FitSettings((), 0, 8, 300, 1e-6, 300, 1e-6),
    2: FitSettings((6,), 0, 4, 100, 1e-6, 50, 1e-6),
    3: FitSettings((5, 6), 32, 4, 60, 1e-5, 10, 1e-5),
    4: FitSettings((4, 5, 6), 16, 4, 40, 1e-4, 5, 1e-4),
    5: FitSettings((4, 5, 6), 32, 2, 30, 1e-4, 3, 1e-4),
    6: FitSettings((4, 5, 6), 16, 2, 30, 1e-4, 2, 1e-4),
    7: FitSettings((4, 5), 16, 1, 30, 1e-4, 2, 1e-3),
    8: FitSettings((4, 5), 8, 1, 20, 1e-3, 1, 1e-3),
    9: FitSettings((4, 5), 4, 1, 10, 1e-3, 1, 1e-3),
    10: FitSettings((4,), 4, 1, 10, 1e-3, 1, 1e-3),
}


def settings_for_speed(speed: int) -> FitSettings:
    """Fit settings for ``speed`` in 1 (slowest, best) .. 10 (fastest).

    The default, ``DEFAULT_SPEED``, was chosen by ``benchmarks/compare.py`` (BENCHMARKS.md).

    Example:
        >>> settings_for_speed(4).levels
        (4, 5, 6)
    """
    return _SPEED_TABLE[check_int_range("speed", speed, 1, 10)]


def restarts(settings: FitSettings, k: int) -> int:
    """Seedings tried: ``settings.n_init`` up to K = 64, fewer above, one from K = 256 on."""
    return max(1, min(settings.n_init, settings.n_init * 64 // k))


@dataclass(frozen=True)
class FitOptions:
    """How a palette is fitted (everything but the number of colors and the device).

    Attributes:
        color_space: where distances are measured (``"hybrid"``, ``"rgb"``, ``"lab"``,
            ``"oklab"``, ``"din99"``).
        method: ``"kmeans"`` (Lloyd) or ``"adam"``.
        init: ``"k-means++"`` or ``"random"``.
        speed: 1 (slowest, best) .. 10 (fastest): the stages and iterations it sets.
        max_iter: the exact stage's iteration cap instead of the speed's (Adam: its steps).
        tol: the exact stage's relative tolerance instead of the speed's.
        seed: the only source of randomness.
        fixed_colors: ``(F, 3)`` distinct 8-bit colors every fitted palette keeps, as a tuple
            of ``(r, g, b)`` tuples (any ``(F, 3)`` integer array is accepted and converted).
        posterize: bits per channel, 1..8, of the fitted colors, or None.
        keep_transparent_rgb: cluster the RGB under fully transparent pixels too.

    Example:
        >>> opts = FitOptions(color_space="rgb", seed=3)
        >>> opts.replace(speed=7).speed
        7
    """

    color_space: ColorSpace = DEFAULT_COLOR_SPACE
    method: Method = "kmeans"
    init: InitMethod = "k-means++"
    speed: int = DEFAULT_SPEED
    max_iter: int | None = None
    tol: float | None = None
    seed: int = 0
    fixed_colors: tuple[tuple[int, int, int], ...] = ()
    posterize: int | None = None
    keep_transparent_rgb: bool = False

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: the checked values replace the given ones
        put(self, "color_space", check_choice("color_space", self.color_space, COLOR_SPACES))
        put(self, "method", check_choice("method", self.method, METHODS))
        put(self, "init", check_choice("init", self.init, INITS))
        put(self, "speed", check_int_range("speed", self.speed, 1, 10))
        if self.max_iter is not None:
            put(self, "max_iter", check_int_range("max_iter", self.max_iter, 1))
        if self.tol is not None:
            put(self, "tol", check_positive("tol", self.tol))
        put(self, "seed", check_int_range("seed", self.seed, 0))
        if self.posterize is not None:
            put(self, "posterize", check_int_range("posterize", self.posterize, 1, 8))
        put(self, "keep_transparent_rgb", bool(self.keep_transparent_rgb))
        put(self, "fixed_colors", _fixed_tuple(self.fixed_colors, self.method))

    @property
    def settings(self) -> FitSettings:
        """The stages and iterations ``speed`` sets (:func:`settings_for_speed`)."""
        return settings_for_speed(self.speed)

    @property
    def fixed(self) -> np.ndarray:
        """``fixed_colors`` as an ``(F, 3)`` uint8 array (``F = 0`` when there are none)."""
        return np.array(self.fixed_colors, np.uint8).reshape(-1, 3)

    def replace(self, **changes: Any) -> FitOptions:
        """A copy with ``changes`` (checked again)."""
        return replace(self, **changes)


def _fixed_tuple(value: Any, method: str) -> tuple[tuple[int, int, int], ...]:
    if value is None:
        return ()
    if isinstance(value, tuple) and all(
        isinstance(row, tuple) and len(row) == 3 and all(type(v) is int for v in row)
        for row in value
    ):
        arr = np.array(value, np.int64).reshape(-1, 3)
    else:
        from ._array import to_numpy

        arr = np.asarray(to_numpy(value))
    if arr.size == 0:
        return ()
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"fixed_colors must be (F, 3), got {arr.shape}")
    # Whether F fits n_colors is checked where n_colors is known (Quantizer, quantize, ...).
    checked = check_fixed(arr, len(arr), method)
    return tuple((int(r), int(g), int(b)) for r, g, b in checked)


_NOT_GIVEN: dict[str, Any] = {f.name: f.default for f in fields(FitOptions)}
"""The fit keywords' defaults: a keyword left at its default gives way to ``options``."""


def resolve_options(
    options: FitOptions | None, n_colors: int, fixed_colors: Any, **given: Any
) -> FitOptions:
    """The fit's settings of an entry point that takes both ``options`` and the fit keywords.

    Args:
        options: the settings in one value, or None: then the keywords ``given`` make them.
        n_colors: the palette size K the fixed colors must fit in.
        fixed_colors: ``(F, 3)`` colors, or None (checked by :func:`check_fixed`).
        given: the fit keywords (``color_space=``, ``seed=``, ...) as the caller got them.

    Returns:
        ``options``, or the keywords' settings.

    Raises:
        InputError: a bad setting; or a keyword beside ``options`` that is neither left at its
            default nor what ``options`` says (one line naming it).
    """
    if options is None:
        opts = FitOptions(**given)
        fixed = check_fixed(fixed_colors, n_colors, opts.method)
        return opts.replace(fixed_colors=fixed) if len(fixed) else opts
    if not isinstance(options, FitOptions):
        raise InputError(f"options must be a FitOptions or None, got {type(options).__name__}")
    for name, value in given.items():
        mine = getattr(options, name)
        if value != _NOT_GIVEN[name] and value != mine:
            raise InputError(
                f"give options or {name}, not both: options.{name} is {mine!r}, {name}={value!r}"
            )
    if fixed_colors is not None:
        fixed = check_fixed(fixed_colors, n_colors, options.method)
        if not np.array_equal(fixed, options.fixed):
            raise InputError("give options or fixed_colors, not both: they differ")
    check_fixed(options.fixed if len(options.fixed) else None, n_colors, options.method)
    return options
