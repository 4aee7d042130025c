"""First palettes for K-means: weighted k-means++ (greedy, as scikit-learn does) and random.

Randomness comes only from the ``seed`` argument (an int or a NumPy ``Generator``); every
random number is drawn on the CPU from it, so a seed gives the same palette on every device and
with either kernel (NumPy arrays: the compiled CPU kernel; tensors: torch on their device).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from . import _cpu
from ._array import ArrayT, to_numpy

__all__ = ["INITS", "InitMethod", "initial_centroids", "kmeans_plusplus", "random_init"]

InitMethod = Literal["k-means++", "random"]
INITS: tuple[InitMethod, ...] = ("k-means++", "random")

Seed = int | np.random.Generator
"""An int seed or a NumPy generator: the only source of randomness."""


def _rng(seed: Seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _check(points: ArrayT, weights: ArrayT, k: int) -> None:
    if points.ndim != 2 or tuple(weights.shape) != (points.shape[0],):
        raise ValueError(
            f"points must be (N, C) and weights (N,), got {tuple(points.shape)} and "
            f"{tuple(weights.shape)}"
        )
    if not 1 <= k <= points.shape[0]:
        raise ValueError(f"k must be in 1..{points.shape[0]} (the number of points), got {k}")


def _take(points: ArrayT, rows: np.ndarray) -> ArrayT:
    if isinstance(points, np.ndarray):
        return points[rows].copy()
    import torch

    return points[torch.from_numpy(rows).to(points.device)].clone()


def random_init(points: ArrayT, weights: ArrayT, k: int, *, seed: Seed = 0) -> ArrayT:
    """``k`` distinct points drawn with probability proportional to their weight.

    Args:
        points: ``(N, C)`` float array or tensor.
        weights: ``(N,)`` positive float (pixel counts).
        k: number of centroids, ``1 <= k <= N``.
        seed: int or NumPy generator, the only source of randomness.

    Returns:
        ``(k, C)`` centroids of the input's kind, a copy (the input is never written).
    """
    _check(points, weights, k)
    w = to_numpy(weights).astype(np.float64)
    chosen = _rng(seed).choice(w.size, size=k, replace=False, p=w / w.sum())
    return _take(points, chosen)


def kmeans_plusplus(
    points: ArrayT,
    weights: ArrayT,
    k: int,
    *,
    seed: Seed = 0,
    n_local_trials: int | None = None,
) -> ArrayT:
    """Greedy weighted k-means++ seeding (Arthur & Vassilvitskii 2007; scikit-learn's variant).

    Each new centroid is the best of ``n_local_trials`` candidates sampled with probability
    proportional to ``weight * D(x)^2``: the one that lowers the potential most.

    Args:
        points: ``(N, C)`` float array (the compiled kernel) or tensor (torch, its device).
        weights: ``(N,)`` positive float.
        k: number of centroids, ``1 <= k <= N``.
        seed: int or NumPy generator, the only source of randomness; both kinds of input draw
            the same numbers and choose the same points.
        n_local_trials: candidates per step; default ``2 + floor(ln k)``.

    Returns:
        ``(k, C)`` centroids of the input's kind, all distinct points of ``points``.

    Example:
        >>> pts = np.array([[0.0], [0.1], [10.0], [10.1]])
        >>> sorted(kmeans_plusplus(pts, np.ones(4), 2, seed=0).ravel().round().tolist())
        [0.0, 10.0]
    """
    _check(points, weights, k)
    trials = n_local_trials if n_local_trials is not None else 2 + int(math.log(k))
    rng = _rng(seed)
    u_first = float(rng.random())
    u = rng.random((max(k - 1, 0), trials))
    if isinstance(points, np.ndarray):
        x = np.ascontiguousarray(points, dtype=np.float64)
        w = np.ascontiguousarray(weights, dtype=np.float64)
        return _take(points, _cpu.kmeans_plusplus(x, w, k, u_first, u))
    from ._torch.init import kmeans_plusplus as torch_kmeanspp

    return points[torch_kmeanspp(points, weights, u_first, u)].clone()


def initial_centroids(
    method: InitMethod, points: ArrayT, weights: ArrayT, k: int, *, seed: Seed = 0
) -> ArrayT:
    """Dispatch to :func:`kmeans_plusplus` or :func:`random_init` by name."""
    if method == "k-means++":
        return kmeans_plusplus(points, weights, k, seed=seed)
    if method == "random":
        return random_init(points, weights, k, seed=seed)
    raise ValueError(f"init must be one of {', '.join(INITS)}, got {method!r}")
