"""First palettes for K-means: weighted k-means++ (greedy, as scikit-learn does) and random.

Randomness comes only from the ``generator`` argument; random numbers are drawn on the CPU and
moved, so a seed gives the same palette on every device.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from ._checks import Backend, use_numpy

__all__ = ["INITS", "InitMethod", "initial_centroids", "kmeans_plusplus", "random_init"]

InitMethod = Literal["k-means++", "random"]
INITS: tuple[InitMethod, ...] = ("k-means++", "random")


def _check(points: torch.Tensor, weights: torch.Tensor, k: int) -> None:
    if points.ndim != 2 or weights.shape != (points.shape[0],):
        raise ValueError(
            f"points must be (N, C) and weights (N,), got {tuple(points.shape)} and "
            f"{tuple(weights.shape)}"
        )
    if not 1 <= k <= points.shape[0]:
        raise ValueError(f"k must be in 1..{points.shape[0]} (the number of points), got {k}")


def random_init(
    points: torch.Tensor, weights: torch.Tensor, k: int, *, generator: torch.Generator
) -> torch.Tensor:
    """``k`` distinct points drawn with probability proportional to their weight.

    Args:
        points: ``(N, C)`` float.
        weights: ``(N,)`` positive float (pixel counts).
        k: number of centroids, ``1 <= k <= N``.
        generator: CPU generator, the only source of randomness.

    Returns:
        ``(k, C)`` centroids, a copy (the input is never written).
    """
    _check(points, weights, k)
    chosen = torch.multinomial(
        weights.detach().to("cpu", torch.float64), k, replacement=False, generator=generator
    )
    return points[chosen.to(points.device)].clone()


def kmeans_plusplus(
    points: torch.Tensor,
    weights: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator,
    n_local_trials: int | None = None,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Greedy weighted k-means++ seeding (Arthur & Vassilvitskii 2007; scikit-learn's variant).

    Each new centroid is the best of ``n_local_trials`` candidates sampled with probability
    proportional to ``weight * D(x)^2``: the one that lowers the potential most.

    Args:
        points: ``(N, C)`` float.
        weights: ``(N,)`` positive float.
        k: number of centroids, ``1 <= k <= N``.
        generator: CPU generator, the only source of randomness.
        n_local_trials: candidates per step; default ``2 + floor(ln k)``.
        backend: ``"numpy"`` (CPU only), ``"torch"`` or ``"auto"``; both draw the same numbers
            and choose the same points.

    Returns:
        ``(k, C)`` centroids, all distinct points of ``points``.
    """
    _check(points, weights, k)
    trials = n_local_trials if n_local_trials is not None else 2 + int(math.log(k))
    # All random numbers up front, from the CPU generator: the same seeds on every device.
    u_first = torch.rand(1, generator=generator, dtype=torch.float64)
    u = torch.rand(max(k - 1, 0), trials, generator=generator, dtype=torch.float64)
    if use_numpy(backend, points):
        # NumPy's small-array kernels: this K-step loop measured ~3x faster than torch's on CPU.
        chosen_np = _kmeanspp_numpy(
            points.detach().numpy(), weights.detach().to(points.dtype).numpy(), u_first, u
        )
        return points[torch.from_numpy(chosen_np)].clone()
    w = weights.to(points.dtype)
    n = points.shape[0]
    chosen = torch.empty(k, dtype=torch.int64, device=points.device)
    cumulative = torch.cumsum(w.to(torch.float64), 0)
    first = torch.searchsorted(cumulative, u_first.to(points.device) * cumulative[-1], side="right")
    chosen[0] = first.clamp_(max=n - 1)[0]
    closest = (points - points[chosen[0]]).pow(2).sum(1)
    u_dev = u.to(points.device)
    for i in range(1, k):
        cumulative = torch.cumsum((w * closest).to(torch.float64), 0)
        # side="right" never lands on a point of zero potential (an already chosen centroid).
        candidates = torch.searchsorted(cumulative, u_dev[i - 1] * cumulative[-1], side="right")
        candidates.clamp_(max=n - 1)
        dist = (points[candidates][:, None, :] - points[None, :, :]).pow(2).sum(-1)
        dist = torch.minimum(dist, closest)
        best = torch.argmin((dist * w).sum(1))
        chosen[i] = candidates[best]
        closest = dist[best]
    return points[chosen].clone()


def _kmeanspp_numpy(
    points: np.ndarray, weights: np.ndarray, u_first: torch.Tensor, u: torch.Tensor
) -> np.ndarray:
    """The loop of :func:`kmeans_plusplus` in NumPy; returns the chosen row indices."""
    n = points.shape[0]
    k = u.shape[0] + 1
    pt = np.ascontiguousarray(points.T)
    chosen = np.empty(k, dtype=np.int64)
    cumulative = np.cumsum(weights, dtype=np.float64)
    chosen[0] = min(
        int(np.searchsorted(cumulative, u_first.item() * cumulative[-1], "right")), n - 1
    )
    closest = np.square(pt - pt[:, chosen[0] : chosen[0] + 1]).sum(0)
    draws = u.numpy()
    for i in range(1, k):
        cumulative = np.cumsum(weights * closest, dtype=np.float64)
        candidates = np.searchsorted(cumulative, draws[i - 1] * cumulative[-1], "right")
        np.minimum(candidates, n - 1, out=candidates)
        dist = np.square(pt[0][None, :] - pt[0][candidates][:, None])
        for ch in range(1, pt.shape[0]):
            dist += np.square(pt[ch][None, :] - pt[ch][candidates][:, None])
        np.minimum(dist, closest, out=dist)
        best = int(np.argmin(dist @ weights))
        chosen[i] = candidates[best]
        closest = dist[best]
    return chosen


def initial_centroids(
    method: InitMethod,
    points: torch.Tensor,
    weights: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator,
) -> torch.Tensor:
    """Dispatch to :func:`kmeans_plusplus` or :func:`random_init` by name."""
    if method == "k-means++":
        return kmeans_plusplus(points, weights, k, generator=generator)
    if method == "random":
        return random_init(points, weights, k, generator=generator)
    raise ValueError(f"init must be one of {', '.join(INITS)}, got {method!r}")
