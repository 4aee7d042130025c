"""Weighted K-means on ``(N, C)`` points: Lloyd iterations, and a gradient-descent alternative.

Both minimise the weighted mean squared distance of the points to their nearest centroid,
``J = sum_i w_i |x_i - c_{a(i)}|^2 / sum_i w_i``. Empty clusters are refilled with the points that
fit worst (largest ``w_i d_i^2``), so a result never holds an empty or NaN centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .nearest import nearest

__all__ = ["KMeansResult", "fit_adam", "weighted_kmeans"]


@dataclass(frozen=True)
class KMeansResult:
    """Outcome of a K-means fit.

    Attributes:
        centroids: ``(K, C)`` float centroids.
        labels: ``(N,)`` int64 centroid index of every point (the assignment the centroids were
            computed from).
        inertia: objective ``J`` of ``labels`` and ``centroids`` (weighted mean squared distance).
        n_iter: assignment steps run.
        converged: whether the relative decrease of ``J`` fell under ``tol`` before ``max_iter``.
        history: ``J`` after each assignment step; never increases for Lloyd.
    """

    centroids: torch.Tensor
    labels: torch.Tensor
    inertia: float
    n_iter: int
    converged: bool
    history: tuple[float, ...]


def _refill_empty(
    centroids: torch.Tensor,
    cluster_weight: torch.Tensor,
    points: torch.Tensor,
    cost: torch.Tensor,
) -> None:
    """Move every centroid with no weight onto a distinct worst-fitting point (in place)."""
    empty = torch.nonzero(cluster_weight <= 0).squeeze(1)
    if empty.numel() == 0:
        return
    n = min(empty.numel(), points.shape[0])
    worst = torch.topk(cost, n).indices
    centroids[empty[:n]] = points[worst].to(centroids.dtype)


def _update(
    points: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted means of the clusters: ``(sums / weight, weight)``; empty clusters give 0/0."""
    sums = torch.zeros(k, points.shape[1], dtype=points.dtype, device=points.device)
    sums.index_add_(0, labels, points * weights[:, None])
    cluster_weight = torch.zeros(k, dtype=points.dtype, device=points.device)
    cluster_weight.index_add_(0, labels, weights)
    return sums / cluster_weight.clamp_min(1e-30)[:, None], cluster_weight


def _check(points: torch.Tensor, weights: torch.Tensor, init: torch.Tensor) -> None:
    if points.ndim != 2 or init.ndim != 2 or points.shape[1] != init.shape[1]:
        raise ValueError(
            f"points (N, C) and init (K, C) must agree in C, got {tuple(points.shape)} and "
            f"{tuple(init.shape)}"
        )
    if weights.shape != (points.shape[0],):
        raise ValueError(f"weights must be ({points.shape[0]},), got {tuple(weights.shape)}")


def weighted_kmeans(
    points: torch.Tensor,
    weights: torch.Tensor,
    init: torch.Tensor,
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> KMeansResult:
    """Lloyd's algorithm on weighted points.

    Stops when ``(J_prev - J) <= tol * J_prev``, when no label changes (a fixed point), or after
    ``max_iter`` assignment steps. The returned centroids are the means of the last assignment,
    whose objective is computed exactly from the one before (parallel-axis theorem).

    Args:
        points: ``(N, C)`` float.
        weights: ``(N,)`` positive float, same dtype.
        init: ``(K, C)`` starting centroids; not modified.
        max_iter: at most this many assignment steps (>= 1).
        tol: relative decrease of ``J`` under which the fit counts as converged.

    Returns:
        A :class:`KMeansResult`.

    Example:
        >>> pts = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
        >>> r = weighted_kmeans(pts, torch.ones(4), torch.tensor([[0.0], [1.0]]))
        >>> r.centroids.flatten().tolist(), r.inertia, r.converged
        ([0.5, 10.5], 0.25, True)
    """
    _check(points, weights, init)
    k = init.shape[0]
    w = weights.to(points.dtype)
    total = float(w.sum())
    centroids = init.detach().to(points.dtype).clone()
    history: list[float] = []
    labels = torch.zeros(points.shape[0], dtype=torch.int64, device=points.device)
    converged = False
    inertia = float("inf")
    for it in range(max_iter):
        new_labels, d2 = nearest(points, centroids)
        objective = float((w * d2).sum()) / total
        history.append(objective)
        same = it > 0 and torch.equal(new_labels, labels)
        labels = new_labels
        means, cluster_weight = _update(points, w, labels, k)
        # J(labels, means) = J(labels, centroids) - sum_k W_k |c_k - mean_k|^2 / W; a refilled
        # centroid holds no label, so it leaves this J unchanged.
        shift = (cluster_weight * (centroids - means).pow(2).sum(1)).sum()
        inertia = max(objective - float(shift) / total, 0.0)
        filled = cluster_weight > 0
        centroids = torch.where(filled[:, None], means, centroids)
        _refill_empty(centroids, cluster_weight, points, w * d2)
        if same or (len(history) > 1 and history[-2] - objective <= tol * history[-2]):
            converged = True
            break
    return KMeansResult(centroids, labels, inertia, len(history), converged, tuple(history))


def fit_adam(
    points: torch.Tensor,
    weights: torch.Tensor,
    init: torch.Tensor,
    *,
    max_iter: int = 300,
    tol: float = 1e-5,
    lr: float | None = None,
) -> KMeansResult:
    """Fit centroids by Adam on ``J``: the palette as a learnable tensor.

    Every step assigns each point to its nearest centroid (a hard, non-differentiable choice) and
    lets the gradient of ``J`` flow straight through that choice into the chosen centroids. Stops
    when the best ``J`` improved by less than ``tol`` (relative) over the last 20 steps. Returns
    the best centroids seen. Empty clusters are refilled every step, as in Lloyd.

    Args:
        points: ``(N, C)`` float.
        weights: ``(N,)`` positive float.
        init: ``(K, C)`` starting centroids; not modified.
        max_iter: at most this many optimiser steps.
        tol: relative improvement over 20 steps under which the fit counts as converged.
        lr: Adam learning rate; default 1% of the points' spread (scale-free across spaces).

    Returns:
        A :class:`KMeansResult` whose ``history`` is ``J`` at every step.
    """
    _check(points, weights, init)
    k = init.shape[0]
    w = weights.to(points.dtype)
    total = w.sum()
    if lr is None:
        lr = 0.01 * float(points.std(dim=0).mean().clamp_min(1e-12))
    centroids = init.detach().to(points.dtype).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([centroids], lr=lr)
    history: list[float] = []
    best = centroids.detach().clone()
    best_j = float("inf")
    best_labels = torch.zeros(points.shape[0], dtype=torch.int64, device=points.device)
    converged = False
    window = 20
    with torch.enable_grad():
        for _ in range(max_iter):
            labels, d2 = nearest(points, centroids)
            loss = (w * d2).sum() / total
            objective = float(loss)
            history.append(objective)
            if objective < best_j:
                best_j, best, best_labels = objective, centroids.detach().clone(), labels
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                cluster_weight = torch.zeros(k, dtype=w.dtype, device=w.device)
                cluster_weight.index_add_(0, labels, w)
                _refill_empty(centroids, cluster_weight, points, w * d2.detach())
            if len(history) > window:
                before = min(history[:-window])
                if before - best_j <= tol * before:
                    converged = True
                    break
    return KMeansResult(best, best_labels, best_j, len(history), converged, tuple(history))
