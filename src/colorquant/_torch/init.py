"""Greedy weighted k-means++ in torch (any device), from draws made on the CPU."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["kmeans_plusplus"]


def kmeans_plusplus(
    points: torch.Tensor, weights: torch.Tensor, u_first: float, u: np.ndarray
) -> torch.Tensor:
    """Row indices of the chosen centroids; the algorithm of ``colorquant.init.kmeans_plusplus``.

    Args:
        points: ``(N, C)`` float.
        weights: ``(N,)`` positive float.
        u_first: uniform draw that picks the first centroid.
        u: ``(k - 1, trials)`` float64 uniform draws that pick the candidates of each step.
    """
    w = weights.to(points.dtype)
    n = points.shape[0]
    k = u.shape[0] + 1
    chosen = torch.empty(k, dtype=torch.int64, device=points.device)
    cumulative = torch.cumsum(w.to(torch.float64), 0)
    first = torch.searchsorted(cumulative, u_first * cumulative[-1:], side="right")
    chosen[0] = first.clamp_(max=n - 1)[0]
    closest = (points - points[chosen[0]]).pow(2).sum(1)
    u_dev = torch.from_numpy(u).to(points.device)
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
    return chosen
