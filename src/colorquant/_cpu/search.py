"""The exact nearest palette row of every point (C: search.c, nearest.c)."""

from __future__ import annotations

import numpy as np

from colorquant import _cpu

from .common import as_points, threads

__all__ = ["nearest"]

# The wrappers call the compiled core as ``_cpu._kernels``, looked up on the package at every call:
# a test may put another build there (COLORQUANT_TEST_KERNELS, tests/conftest.py).


def nearest(points: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest palette row of every point, and the squared distance to it.

    Equal to the float64 brute force ``argmin(((x[:, None] - c[None]) ** 2).sum(-1), axis=1)``
    (lowest index on ties). Each point starts from the previous point's answer (points sorted
    by color are alike) and searches the palette's nearest-neighbour lists (K <= 1024), else a
    sweep over the palette sorted by one channel.

    Args:
        points: ``(N, C)`` float64.
        palette: ``(K, C)`` float64, ``K >= 1``.

    Returns:
        ``(index, dist2)``: ``(N,)`` int32 and ``(N,)`` float64.

    Raises:
        ValueError: a shape or dtype is wrong or a value is not finite.
    """
    x = as_points("points", points)
    n, c = x.shape
    pal = as_points("palette", palette, channels=c)
    index = np.empty(n, np.int32)
    dist2 = np.empty(n, np.float64)
    _cpu._kernels.nearest(x, pal, n, c, pal.shape[0], index, dist2, threads())
    return index, dist2
