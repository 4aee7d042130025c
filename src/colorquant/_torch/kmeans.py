"""Weighted K-means in torch (any device): Lloyd with Hamerly bounds, and Adam.

The same algorithm as the compiled CPU kernel (``colorquant._cpu.lloyd``); see
:func:`colorquant.kmeans.weighted_kmeans` for the contract. Distances in the assignment come from
the expanded form in float32 (a matrix product, what a GPU does fastest), with bounds lowered by
their rounding error.
"""

from __future__ import annotations

import torch

from .histogram import FixedPoint, segment_means
from .nearest import assign, nearest, two_nearest

__all__ = ["CHECK_EVERY", "fit_adam", "lloyd", "lloyd_batch", "refill_batch", "refill_empty"]

CHECK_EVERY = 4
"""Iterations of :func:`lloyd_batch` between two looks from the host at whether every image
has stopped (the only host syncs of the loop)."""

LloydOut = tuple[torch.Tensor, torch.Tensor, float, int, bool, tuple[float, ...], torch.Tensor]


def refill_empty(
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


def lloyd(
    points: torch.Tensor,
    weights: torch.Tensor,
    init: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
    warm: tuple[torch.Tensor, torch.Tensor] | None = None,
    n_fixed: int = 0,
) -> LloydOut:
    """Lloyd iterations: ``(centroids, labels, inertia, n_iter, converged, history, lower)``.

    The first ``n_fixed`` centroids never move and are never refilled.
    """
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
        if n_fixed:
            means[:n_fixed] = centroids[:n_fixed]
            cluster_weight[:n_fixed] = torch.inf  # never empty: never refilled
        # J(labels, means) = J(labels, centroids) - sum_k W_k |c_k - mean_k|^2 / W; a refilled
        # centroid holds no label, so it leaves this J unchanged.
        shift = (cluster_weight[n_fixed:] * (centroids - means)[n_fixed:].pow(2).sum(1)).sum()
        inertia = max(objective - float(shift) / total, 0.0)
        new_centroids = torch.where((cluster_weight > 0)[:, None], means, centroids)
        refill_empty(new_centroids, cluster_weight, points, w * own)
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
    return centroids, labels, inertia, len(history), converged, tuple(history), lower


def fit_adam(
    points: torch.Tensor,
    weights: torch.Tensor,
    init: torch.Tensor,
    *,
    max_iter: int = 300,
    tol: float = 1e-5,
    lr: float | None = None,
) -> LloydOut:
    """Fit centroids by Adam on ``J`` (``colorquant.kmeans.fit_adam`` documents the method).

    Returns:
        ``(centroids, labels, J, n_iter, converged, history, lower)``; ``history`` is ``J`` at
        every step and ``lower`` is empty.
    """
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
                refill_empty(centroids, cluster_weight, points, w * d2.detach())
            if len(history) > window:
                before = min(history[:-window])
                if before - best_j <= tol * before:
                    converged = True
                    break
    lower = torch.zeros(0, dtype=points.dtype, device=points.device)
    return best, best_labels, best_j, len(history), converged, tuple(history), lower


# -- every image of a batch at once -------------------------------------------------------------


def refill_batch(
    centers: torch.Tensor, empty: torch.Tensor, points: torch.Tensor, cost: torch.Tensor
) -> torch.Tensor:
    """Each image's empty clusters moved onto its worst-fitting points, distinct ones.

    Args:
        centers: ``(B, K, C)`` float32; ``empty``: ``(B, K)`` bool, the clusters to move.
        points: ``(B, M, C)`` float32; ``cost``: ``(B, M)`` int64 ``count * D^2`` (fixed point).

    The ``r``-th empty cluster of an image takes its ``r``-th worst point; ties go to the lower
    row, so the choice does not depend on the padding (no host sync: computed every time).
    """
    _batch, k, c = centers.shape
    m = points.shape[1]
    # One unique int64 key per point: the cost's order, then the lower row first. float32 bits
    # of a non-negative number order as the number does.
    coarse = cost.to(torch.float32).view(torch.int32).to(torch.int64)
    keys = (coarse << 24) | (2**24 - 1 - torch.arange(m, device=points.device))
    worst = keys.topk(min(k, m), dim=1).indices  # (B, min(K, M)), worst first
    rank = (empty.cumsum(1) - 1).clamp_(min=0, max=worst.shape[1] - 1)
    source = torch.gather(worst, 1, rank)
    moved = torch.gather(points, 1, source[..., None].expand(-1, -1, c))
    return torch.where(empty[..., None], moved, centers)


def lloyd_batch(
    points: torch.Tensor,
    counts: torch.Tensor,
    centers: torch.Tensor,
    unit: FixedPoint,
    *,
    max_iter: int,
    tol: float,
    n_fixed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lloyd iterations on every image, each stopping on its own objective.

    Args:
        points: ``(B, M, C)`` float32; ``counts``: ``(B, M)`` int64 pixels (0 on padding).
        centers: ``(B, K, C)`` float32 starting centroids.
        unit: fixed-point units of the sums.
        max_iter: iterations at most.
        tol: an image stops once its objective falls by at most ``tol`` (relative) in one step.
        n_fixed: the first centroids of every image never move and are never refilled.

    Returns:
        ``(centers, objective, n_iter)``: ``(B, K, C)`` float32, the means of the last
        assignment (empty clusters refilled); ``(B,)`` int64 objective of that assignment in
        fixed point (``unit.dist`` per squared distance per pixel); ``(B,)`` int64 iterations.
        An image's result is the same alone and inside any batch (exact integer sums, a stop
        per image); the host looks every ``CHECK_EVERY`` iterations which have stopped, and
        those leave the batch (no work is spent on them after that).
    """
    batch, _, _ = points.shape
    k = centers.shape[1]
    device = points.device
    centers = centers.to(torch.float32)
    out = (centers.clone(), torch.zeros(batch, dtype=torch.int64, device=device))
    out_iter = torch.zeros(batch, dtype=torch.int64, device=device)
    live = torch.arange(batch, device=device)  # the rows still iterating
    active = torch.ones(batch, dtype=torch.bool, device=device)
    n_iter = torch.zeros(batch, dtype=torch.int64, device=device)
    labels, own = assign(points, centers)
    scaled = unit.scaled(counts)
    weighted = unit.weighted(points, counts, unit.coord)
    prev = torch.zeros(batch, dtype=torch.int64, device=device)
    objective = prev
    for it in range(max_iter):
        cost = unit.cost(own, scaled)
        objective = torch.where(active, cost.sum(1), objective)
        means, weight = segment_means(points, counts, labels, k, unit, weighted)
        empty = weight <= 0
        if n_fixed:
            means[:, :n_fixed] = centers[:, :n_fixed]
            empty[:, :n_fixed] = False
        moved = refill_batch(torch.where(empty[..., None], centers, means), empty, points, cost)
        centers = torch.where(active[:, None, None], moved, centers)
        n_iter += active.to(torch.int64)
        if it > 0:
            gain = (prev - objective).to(torch.float32)
            active = active & (gain > tol * prev.to(torch.float32))
        prev = objective
        if it == max_iter - 1:
            break
        if (it + 1) % CHECK_EVERY == 0:
            flags = active.tolist()  # the loop's one host sync, every CHECK_EVERY iterations
            if not all(flags):
                # Stopped images leave the batch: their results are final.
                out[0][live], out[1][live], out_iter[live] = centers, objective, n_iter
                if not any(flags):
                    return out[0], out[1], out_iter
                keep = torch.tensor([i for i, f in enumerate(flags) if f], device=device)
                live, points, counts, centers = (
                    live[keep],
                    points[keep],
                    counts[keep],
                    centers[keep],
                )
                scaled, weighted, labels, own = (
                    scaled[keep],
                    weighted[keep],
                    labels[keep],
                    own[keep],
                )
                active, n_iter, prev, objective = (
                    active[keep],
                    n_iter[keep],
                    prev[keep],
                    objective[keep],
                )
        new_labels, new_own = assign(points, centers)
        labels = torch.where(active[:, None], new_labels, labels)
        own = torch.where(active[:, None], new_own, own)
    out[0][live], out[1][live], out_iter[live] = centers, objective, n_iter
    return out[0], out[1], out_iter
