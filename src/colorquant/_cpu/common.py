"""What the wrappers of the compiled core share: the checks of their inputs and the thread count
they pass to the C code.

Every wrapper validates its arrays here (dtype, shape, finite values) and allocates every output
with NumPy; the C side only checks byte sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from colorquant.threads import get_num_threads

__all__ = [
    "MAX_CHANNELS",
    "as_integer",
    "as_points",
    "as_weights",
    "check_array",
    "check_max_error",
    "describe",
    "threads",
]

MAX_CHANNELS = 8
"""Channels of a point the kernels take at most (``MAX_DIMS`` in common.h)."""


def threads() -> int:
    """The threads of a kernel called now from this thread (:mod:`colorquant.threads`)."""
    return get_num_threads()


def describe(a: Any) -> str:
    """What came, for an error message: an array's dtype and shape, else the type's name."""
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


def check_array(name: str, a: Any, shape: tuple[int, ...], dtype: type[np.generic]) -> None:
    """Raise unless ``a`` is an ndarray of exactly ``shape`` and ``dtype`` (one line naming it)."""
    if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
        raise ValueError(
            f"{name} must be a {np.dtype(dtype).name} array of shape {shape}, got {describe(a)}"
        )


def check_max_error(max_error: float) -> None:
    """Raise unless the diffusion's error cap is a finite number ``>= 0``."""
    if not (np.isfinite(max_error) and max_error >= 0):
        raise ValueError(f"max_error must be a finite number >= 0, got {max_error!r}")


def as_points(name: str, a: Any, channels: int | None = None) -> np.ndarray:
    """``a`` as a C-contiguous ``(N, C)`` float64 array of finite values, ``N >= 1``."""
    want_c = "C" if channels is None else str(channels)
    expected = f"a finite float64 array of shape (N, {want_c}) with N >= 1 and 1 <= C <= 8"
    if (
        not isinstance(a, np.ndarray)
        or a.dtype != np.float64
        or a.ndim != 2
        or a.shape[0] < 1
        or not 1 <= a.shape[1] <= MAX_CHANNELS
        or (channels is not None and a.shape[1] != channels)
    ):
        raise ValueError(f"{name} must be {expected}, got {describe(a)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be {expected}, got NaN or infinite values")
    return np.ascontiguousarray(a)


def as_image8(a: Any, channels: int | None = None) -> np.ndarray:
    """``a`` (named ``pixels``) as a C-contiguous non-empty ``(H, W, C)`` uint8 image, with
    ``C == channels`` or, without ``channels``, ``1 <= C <= MAX_CHANNELS``."""
    if (
        not isinstance(a, np.ndarray)
        or a.dtype != np.uint8
        or a.ndim != 3
        or min(a.shape) < 1
        or a.shape[2] > MAX_CHANNELS
        or (channels is not None and a.shape[2] != channels)
    ):
        shape = f"(H, W, {channels})" if channels else f"(H, W, C) with 1 <= C <= {MAX_CHANNELS}"
        raise ValueError(f"pixels must be a uint8 array of shape {shape}, got {describe(a)}")
    return np.ascontiguousarray(a)


def as_weights(a: Any, n: int) -> np.ndarray:
    """``a`` as a C-contiguous ``(n,)`` float64 array of finite positive values."""
    expected = f"a float64 array of shape ({n},) of finite values > 0"
    if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != (n,):
        raise ValueError(f"weights must be {expected}, got {describe(a)}")
    if not (np.isfinite(a) & (a > 0)).all():
        raise ValueError(f"weights must be {expected}, got values in [{a.min()}, {a.max()}]")
    return np.ascontiguousarray(a)


def as_integer(name: str, value: Any, low: int) -> int:
    """``value`` as an int if it is an integer (not a bool) ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)
