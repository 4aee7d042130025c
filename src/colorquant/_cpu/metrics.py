"""The exact squared error of a palette map of 8-bit pixels (C: metrics.c)."""

from __future__ import annotations

import numpy as np

from colorquant import _cpu

from .common import MAX_CHANNELS, describe, threads

__all__ = ["squared_error"]

# The wrappers call the compiled core as ``_cpu._kernels``, looked up on the package at every call:
# a test may put another build there (COLORQUANT_TEST_KERNELS, tests/conftest.py).


def squared_error(pixels: np.ndarray, palette: np.ndarray, index: np.ndarray) -> int:
    """Sum over pixels and channels of ``(pixel - palette[index])^2``, exact (integers).

    Args:
        pixels: ``(N, C)`` uint8, ``1 <= C <= 8``.
        palette: ``(K, C)`` uint8, ``K >= 1``.
        index: ``(N,)`` integer palette rows, in ``0..K-1``.

    Returns:
        The sum, an ``int``: ``mse * N * C``.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    for name, a in (("pixels", pixels), ("palette", palette)):
        if (
            not isinstance(a, np.ndarray)
            or a.dtype != np.uint8
            or a.ndim != 2
            or not 1 <= a.shape[1] <= MAX_CHANNELS
        ):
            raise ValueError(
                f"{name} must be a uint8 array of shape (rows, C) with 1 <= C <= {MAX_CHANNELS}, "
                f"got {describe(a)}"
            )
    n, c = pixels.shape
    if palette.shape[1] != c or palette.shape[0] < 1:
        raise ValueError(
            f"palette must be a uint8 array of shape (K, {c}), got {describe(palette)}"
        )
    if not isinstance(index, np.ndarray) or index.shape != (n,) or index.dtype.kind not in "iu":
        raise ValueError(f"index must be an integer array of shape ({n},), got {describe(index)}")
    k = palette.shape[0]
    if n and (index.min() < 0 or index.max() >= k):
        raise ValueError(f"index must lie in 0..{k - 1}")
    return _cpu._kernels.squared_error(
        np.ascontiguousarray(pixels),
        np.ascontiguousarray(palette),
        np.ascontiguousarray(index, dtype=np.int32),
        n,
        c,
        k,
        threads(),
    )
