"""Weighted K-means on ``(N, C)`` points: Lloyd iterations, and a gradient-descent alternative.

Both minimise the weighted mean squared distance of the points to their nearest centroid,
``J = sum_i w_i |x_i - c_{a(i)}|^2 / sum_i w_i``. Empty clusters are refilled with the points that
fit worst (largest ``w_i d_i^2``), so a result never holds an empty or NaN centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._checks import Backend, use_numpy
from ._lloyd_numpy import lloyd
from .nearest import nearest, two_nearest

__all__ = ["Backend", "KMeansResult", "fit_adam", "weighted_kmeans"]


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


def _bounded_sqrt(d2: torch.Tensor, points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``sqrt`` of an expanded-form squared distance, lowered by its float32 rounding bound."""
    slack = 1e-5 * (points.pow(2).sum(1) + centroids.pow(2).sum(1).max())
    return (d2.to(points.dtype) - slack).clamp_min(0).sqrt()


_NEIGHBORS = 16
"""Centroids searched first for an unsettled point: its centroid's nearest neighbours."""


def _reassign(
    points: torch.Tensor,
    centroids: torch.Tensor,
    gaps: torch.Tensor,
    labels: torch.Tensor,
    lower: torch.Tensor,
    own: torch.Tensor,
    unsure: torch.Tensor,
) -> bool:
    """Give each ``unsure`` point its nearest centroid; update the state in place.

    A centroid nearer to ``x`` than its own centroid ``a`` lies within ``2 |x - c_a|`` of ``c_a``
    (triangle inequality). So when ``c_a``'s ``L``-th nearest neighbour is farther than that,
    ``a`` and its ``L`` neighbours are the only candidates, an exact and ``K / L`` times smaller
    search; the other points get the full search. Returns whether any label changed.
    """
    k = centroids.shape[0]
    n_nb = min(_NEIGHBORS, k - 1)
    nb = torch.topk(gaps, n_nb, dim=1, largest=False)
    reach = nb.values[:, -1]  # (K,) distance to the L-th neighbour
    a = labels[unsure]
    radius = own[unsure].sqrt()
    local = reach[a] >= 2.0 * radius
    changed = False
    near = unsure[local]
    if near.numel() > 0 and n_nb < k - 1:
        a_near = a[local]
        candidates = torch.cat((a_near[:, None], nb.indices[a_near]), dim=1)  # (S, L + 1)
        x = points[near]
        d2 = (x[:, None, :] - centroids[candidates]).pow(2).sum(-1)
        two = torch.topk(d2, 2, dim=1, largest=False)
        index = candidates.gather(1, two.indices[:, :1]).squeeze(1)
        changed = bool((index != a_near).any())
        labels[near] = index
        outside = reach[a_near] - radius[local]  # any centroid off the list is at least this far
        lower[near] = torch.minimum(two.values[:, 1].clamp_min(0).sqrt(), outside)
        own[near] = two.values[:, 0]
        far = unsure[~local]
    else:
        far = unsure
    if far.numel() > 0:
        sub = points[far]
        index, _, second = two_nearest(sub, centroids)
        changed = changed or bool((index != labels[far]).any())
        labels[far] = index
        lower[far] = _bounded_sqrt(second, sub, centroids)
        own[far] = (sub - centroids[index]).pow(2).sum(1)
    return changed


def weighted_kmeans(
    points: torch.Tensor,
    weights: torch.Tensor,
    init: torch.Tensor,
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
    backend: Backend = "auto",
) -> KMeansResult:
    """Lloyd's algorithm on weighted points, with Hamerly's bounds to skip settled points.

    Every step gives each point its nearest centroid, as plain Lloyd does; a point is only
    searched again when the triangle inequality cannot prove its centroid is still the nearest
    (its distance to its centroid exceeds both a lower bound on the distance to any other and
    half the gap to the nearest other centroid). Late iterations, where centroids barely move,
    then cost about one pass over the points instead of a search over ``N x K`` distances.

    Stops when ``(J_prev - J) <= tol * J_prev``, when no label changes (a fixed point), or after
    ``max_iter`` assignment steps. The returned centroids are the means of the last assignment,
    whose objective is computed exactly from the one before (parallel-axis theorem).

    Args:
        points: ``(N, C)`` float.
        weights: ``(N,)`` positive float, same dtype.
        init: ``(K, C)`` starting centroids; not modified.
        max_iter: at most this many assignment steps (>= 1).
        tol: relative decrease of ``J`` under which the fit counts as converged.
        backend: ``"numpy"`` (the CPU kernel in :mod:`colorquant._lloyd_numpy`), ``"torch"``
            (any device), or ``"auto"``: numpy for CPU tensors, torch otherwise. Both give the
            same assignments.

    Returns:
        A :class:`KMeansResult`.

    References:
        G. Hamerly, "Making k-means even faster", SIAM SDM 2010.

    Example:
        >>> pts = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
        >>> r = weighted_kmeans(pts, torch.ones(4), torch.tensor([[0.0], [1.0]]))
        >>> r.centroids.flatten().tolist(), r.inertia, r.converged
        ([0.5, 10.5], 0.25, True)
    """
    return _weighted_kmeans(points, weights, init, max_iter=max_iter, tol=tol, backend=backend)[0]


def _weighted_kmeans(
    points: torch.Tensor,
    weights: torch.Tensor,
    init: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
    backend: Backend = "auto",
    warm: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[KMeansResult, torch.Tensor]:
    """:func:`weighted_kmeans`, optionally warm-started, also returning the lower bounds.

    ``warm`` is ``(labels, lower)``: each point's nearest centroid of ``init`` (where the bound
    proves it) and a lower bound on its distance to every other centroid; the coarse-to-fine
    fit passes them from one level to the next so no level starts with a full search.
    """
    _check(points, weights, init)
    if use_numpy(backend, points):
        out = lloyd(
            points.detach().cpu().numpy(),
            weights.detach().cpu().numpy(),
            init.detach().cpu().to(torch.float64).numpy(),
            max_iter=max_iter,
            tol=tol,
            labels=None if warm is None else warm[0].cpu().numpy(),
            lower=None if warm is None else warm[1].cpu().numpy(),
        )
        device, dtype = points.device, points.dtype
        result = KMeansResult(
            torch.from_numpy(out.centroids).to(device, dtype),
            torch.from_numpy(out.labels).to(device),
            out.inertia,
            len(out.history),
            out.converged,
            tuple(out.history),
        )
        return result, torch.from_numpy(out.lower).to(device)
    k = init.shape[0]
    w = weights.to(points.dtype)
    total = float(w.sum())
    centroids = init.detach().to(points.dtype).clone()
    history: list[float] = []
    converged = False
    inertia = float("inf")
    if k == 1:
        labels = torch.zeros(points.shape[0], dtype=torch.int64, device=points.device)
        lower = torch.full_like(w, float("inf"))
    elif warm is None:
        labels, _, second = two_nearest(points, centroids)
        lower = _bounded_sqrt(second, points, centroids)
    else:
        labels, lower = warm[0].clone(), warm[1].to(points.dtype).clone()
    own = (points - centroids[labels]).pow(2).sum(1)
    if warm is not None and k > 1:
        unsure = torch.nonzero(own > lower.clamp_min(0).pow(2)).squeeze(1)
        if unsure.numel() > 0:
            gaps = torch.cdist(centroids, centroids)
            gaps.fill_diagonal_(float("inf"))
            _reassign(points, centroids, gaps, labels, lower, own, unsure)
    changed = True
    for it in range(max_iter):
        objective = float((w * own).sum()) / total
        history.append(objective)
        means, cluster_weight = _update(points, w, labels, k)
        # J(labels, means) = J(labels, centroids) - sum_k W_k |c_k - mean_k|^2 / W; a refilled
        # centroid holds no label, so it leaves this J unchanged.
        shift = (cluster_weight * (centroids - means).pow(2).sum(1)).sum()
        inertia = max(objective - float(shift) / total, 0.0)
        new_centroids = torch.where((cluster_weight > 0)[:, None], means, centroids)
        _refill_empty(new_centroids, cluster_weight, points, w * own)
        stop = not changed or (len(history) > 1 and history[-2] - objective <= tol * history[-2])
        if stop or it == max_iter - 1 or k == 1:
            centroids = new_centroids
            converged = stop or k == 1
            break
        # Bounds: own distance grows by at most its centroid's move, the lower bound on the
        # others shrinks by at most the largest move among the other centroids.
        delta = (new_centroids - centroids).pow(2).sum(1).sqrt()
        centroids = new_centroids
        top = torch.topk(delta, 2)
        lower = lower - torch.where(labels == top.indices[0], top.values[1], top.values[0])
        own = (points - centroids[labels]).pow(2).sum(1)
        gaps = torch.cdist(centroids, centroids)
        gaps.fill_diagonal_(float("inf"))
        half_gap = 0.5 * gaps.min(1).values
        unsure = torch.nonzero(own.sqrt() > torch.maximum(half_gap[labels], lower)).squeeze(1)
        changed = False
        if unsure.numel() > 0:
            changed = _reassign(points, centroids, gaps, labels, lower, own, unsure)
    result = KMeansResult(centroids, labels, inertia, len(history), converged, tuple(history))
    return result, lower


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
            objective = float(loss.detach())
            history.append(objective)
            if objective < best_j:
                best_j, best, best_labels = objective, centroids.detach().clone(), labels
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
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
