"""First palettes for K-means: weighted k-means++ (greedy, as scikit-learn does) and random.

Randomness comes only from the ``generator`` argument; random numbers are drawn on the CPU and
moved, so a seed gives the same palette on every device.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

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

    Returns:
        ``(k, C)`` centroids, all distinct points of ``points``.
    """
    _check(points, weights, k)
    trials = n_local_trials if n_local_trials is not None else 2 + int(math.log(k))
    device, dtype = points.device, points.dtype
    w = weights.to(dtype)
    n = points.shape[0]
    chosen = torch.empty(k, dtype=torch.int64, device=device)
    first = torch.multinomial(w.detach().to("cpu", torch.float64), 1, generator=generator)
    chosen[0] = first.to(device)[0]
    closest = (points - points[chosen[0]]).pow(2).sum(1)
    for i in range(1, k):
        wd = w * closest
        cumulative = torch.cumsum(wd, 0)
        total = cumulative[-1]
        u = torch.rand(trials, generator=generator, dtype=torch.float64).to(device, dtype)
        # side="right" never lands on a point of zero potential (an already chosen centroid).
        candidates = torch.searchsorted(cumulative, u * total, side="right").clamp_(max=n - 1)
        dist = (points[candidates][:, None, :] - points[None, :, :]).pow(2).sum(-1)
        dist = torch.minimum(dist, closest)
        best = torch.argmin((dist * w).sum(1))
        chosen[i] = candidates[best]
        closest = dist[best]
    return points[chosen].clone()


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
