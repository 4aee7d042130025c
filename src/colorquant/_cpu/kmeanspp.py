"""Greedy weighted k-means++ seeding from given uniform draws (C: kmeanspp.c)."""

from __future__ import annotations

import numpy as np

from colorquant import _cpu

from .common import as_integer, as_points, as_weights, describe, threads

__all__ = ["kmeans_plusplus"]

# The wrappers call the compiled core as ``_cpu._kernels``, looked up on the package at every call:
# a test may put another build there (COLORQUANT_TEST_KERNELS, tests/conftest.py).


def kmeans_plusplus(
    points: np.ndarray, weights: np.ndarray, k: int, u_first: float, u: np.ndarray
) -> np.ndarray:
    """Greedy weighted k-means++ from given uniform draws: the rows it picks as centroids.

    The first row is drawn with probability proportional to its weight; each next one is the
    best of ``trials`` candidates drawn with probability proportional to ``weight * D(x)^2``
    (``D``: distance to the nearest chosen row), the one leaving the smallest potential
    ``sum(weight * min(D^2, d^2))`` (first on ties). A draw ``u`` takes the first point whose
    cumulative potential exceeds ``u * total``, as ``searchsorted(cumsum, u * total,
    side="right")`` does, up to rounding (the sums are taken in blocks of 128 points), and never
    a point of zero potential. The triangle inequality spares most distance evaluations; the
    choices are those of the plain algorithm (tested against it).

    Args:
        points: ``(N, C)`` float64.
        weights: ``(N,)`` float64, all > 0.
        k: rows to choose, ``1 <= k <= N``.
        u_first: uniform draw in ``[0, 1]`` for the first row.
        u: ``(k - 1, trials)`` float64 uniform draws in ``[0, 1]``, ``trials >= 1``.

    Returns:
        ``(k,)`` int64 row indices into ``points``.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    x = as_points("points", points)
    n, c = x.shape
    w = as_weights(weights, n)
    k = as_integer("k", k, 1)
    if k > n:
        raise ValueError(f"k must be in 1..{n} (the number of points), got {k}")
    if isinstance(u_first, bool) or not isinstance(u_first, (float, int, np.floating)):
        raise ValueError(f"u_first must be a float in [0, 1], got {u_first!r}")
    if not 0.0 <= float(u_first) <= 1.0:
        raise ValueError(f"u_first must be a float in [0, 1], got {u_first!r}")
    if (
        not isinstance(u, np.ndarray)
        or u.dtype != np.float64
        or u.ndim != 2
        or u.shape[0] != k - 1
        or (k > 1 and u.shape[1] < 1)
    ):
        raise ValueError(
            f"u must be a float64 array of shape ({k - 1}, trials) with trials >= 1, "
            f"got {describe(u)}"
        )
    if u.size and not ((u >= 0.0) & (u <= 1.0)).all():
        raise ValueError("u must hold uniform draws in [0, 1], got values outside")
    draws = np.ascontiguousarray(u)
    chosen = np.empty(k, np.int64)
    _cpu._kernels.kmeanspp(x, w, n, c, k, draws.shape[1], float(u_first), draws, chosen, threads())
    return chosen
