"""The fit's settings in one frozen value: :class:`FitOptions`.

Every entry point that fits a palette (:func:`colorquant.quantize`, :class:`colorquant.Quantizer`,
:func:`colorquant.quantize_batch`, the nn layer, the dataset jobs and the commands) takes its
settings from one ``FitOptions``, checked once when it is made.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from ._checks import InputError, check_choice, check_int_range, check_positive
from .color import COLOR_SPACES, DEFAULT_COLOR_SPACE, ColorSpace
from .init import INITS, InitMethod

__all__ = ["DEFAULT_SPEED", "METHODS", "FitOptions", "Method"]

Method = Literal["kmeans", "adam"]
METHODS: tuple[Method, ...] = ("kmeans", "adam")
DEFAULT_SPEED = 4


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
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
        raise InputError("fixed_colors must be integers in 0..255")
    if len(np.unique(arr, axis=0)) != len(arr):
        raise InputError("fixed_colors must be distinct colors")
    if method != "kmeans":
        raise InputError(f"fixed_colors work with method='kmeans', got method={method!r}")
    return tuple((int(r), int(g), int(b)) for r, g, b in arr)
