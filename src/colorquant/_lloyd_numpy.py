"""Lloyd's algorithm with Hamerly bounds and neighbour lists, as a NumPy kernel for the CPU.

The same algorithm as the torch loop in :mod:`colorquant.kmeans` (which serves cuda and mps);
on a CPU NumPy's kernels for these small gathers, bincounts and skinny matrix products measured
2-3x faster than torch's (BENCHMARKS.md). Points keep their float dtype; sums and centroids
are float64.

State kept per point: its label, the squared distance to its centroid, and a lower bound on the
distance to every other centroid. After centroids move, a point is searched again only if the
bounds cannot prove its centroid is still the nearest; the search looks first at the ``L``
nearest neighbours of its centroid, which is exact when the ``L``-th lies beyond twice the
point's distance (triangle inequality), and over all centroids otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .nearest import MEMORY_BUDGET, two_nearest_expanded

__all__ = ["LloydOutput", "lloyd", "two_nearest"]

NEIGHBORS = 16
_SLACK = 1e-5  # float32 rounding of the expanded distance, relative to |x|^2 + |c|^2


@dataclass
class LloydOutput:
    centroids: np.ndarray  # (K, C) float64
    labels: np.ndarray  # (N,) int64
    lower: np.ndarray  # (N,) lower bound on the distance to any other centroid
    inertia: float
    history: list[float]
    converged: bool


def two_nearest(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest index, squared distance to it (direct) and a lower bound on the second distance.

    Args:
        x: ``(N, C)`` float32 or float64.
        centroids: ``(K, C)``, K >= 2.
    """
    c32 = centroids.astype(x.dtype)
    chunk = max(256, MEMORY_BUDGET // (4 * c32.shape[0]))
    index, _, second = two_nearest_expanded(x, c32, chunk)
    # The expanded form rounds: lower the bound by its float32 error so it stays a bound.
    slack = _SLACK * (np.square(x).sum(1) + np.square(c32).sum(1).max())
    lower = np.sqrt(np.maximum(second - slack, 0.0)).astype(x.dtype)
    own = np.square(x - c32[index]).sum(1)
    return index, own, lower


def _own(xt: np.ndarray, c32: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Squared distance of every point to its centroid, channel by channel (no (N, C) temp)."""
    d: np.ndarray = np.square(xt[0] - c32[labels, 0])
    for ch in range(1, xt.shape[0]):
        d += np.square(xt[ch] - c32[labels, ch])
    return d


def _reassign(
    x: np.ndarray,
    xt: np.ndarray,
    centroids: np.ndarray,
    gaps: np.ndarray,
    labels: np.ndarray,
    own: np.ndarray,
    lower: np.ndarray,
    unsure: np.ndarray,
) -> bool:
    """Nearest centroid for the ``unsure`` points, in place; returns whether a label changed."""
    k = centroids.shape[0]
    c32 = centroids.astype(x.dtype)
    n_nb = min(NEIGHBORS, k - 1)
    changed = False
    far = unsure
    if n_nb < k - 1:
        nb = np.argpartition(gaps, n_nb - 1, axis=1)[:, :n_nb]  # (K, L), unordered
        reach = np.take_along_axis(gaps, nb, axis=1).max(axis=1).astype(x.dtype)
        a = labels[unsure]
        radius = np.sqrt(own[unsure])
        local = reach[a] >= 2.0 * radius
        near = unsure[local]
        far = unsure[~local]
        if near.size:
            a_near = a[local]
            cand = np.concatenate((a_near[:, None], nb[a_near]), axis=1)  # (S, L + 1)
            d = np.square(xt[0, near][:, None] - c32[cand, 0])
            for ch in range(1, xt.shape[0]):
                d += np.square(xt[ch, near][:, None] - c32[cand, ch])
            rows = np.arange(near.size)
            best = d.argmin(axis=1)
            index = cand[rows, best]
            first = d[rows, best].copy()
            d[rows, best] = np.inf
            second = np.sqrt(d.min(axis=1))
            changed = bool((index != a_near).any())
            labels[near] = index
            own[near] = first
            lower[near] = np.minimum(second, reach[a_near] - radius[local])
    if far.size:
        index, first, second = two_nearest(x[far], centroids)
        changed = changed or bool((index != labels[far]).any())
        labels[far] = index
        own[far] = first
        lower[far] = second
    return changed


def lloyd(
    x: np.ndarray,
    weights: np.ndarray,
    init: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    labels: np.ndarray | None = None,
    lower: np.ndarray | None = None,
) -> LloydOutput:
    """Weighted Lloyd iterations; see :func:`colorquant.kmeans.weighted_kmeans` for the contract.

    Args:
        x: ``(N, C)`` float32 or float64 points.
        weights: ``(N,)`` positive weights.
        init: ``(K, C)`` starting centroids.
        max_iter: assignment steps at most.
        tol: relative decrease of the objective under which to stop.
        labels: optional warm start: each point's nearest centroid of ``init``.
        lower: with ``labels``, a lower bound on each point's distance to the other centroids.
    """
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    x = np.ascontiguousarray(x)
    xt = np.ascontiguousarray(x.T)
    w = np.asarray(weights, dtype=np.float64)
    wx = w * xt  # (C, N) weighted coordinates, summed per cluster every iteration
    total = float(w.sum())
    k, dims = init.shape
    centroids = np.array(init, dtype=np.float64)
    if k == 1:
        labels = np.zeros(x.shape[0], dtype=np.int64)
        lower = np.full(x.shape[0], np.inf, dtype=x.dtype)
        own = _own(xt, centroids.astype(x.dtype), labels)
    elif labels is None or lower is None:
        labels, own, lower = two_nearest(x, centroids)
    else:
        labels = labels.copy()
        lower = lower.astype(x.dtype, copy=True)
        own = _own(xt, centroids.astype(x.dtype), labels)
        # Warm start: the labels are nearest for the inherited bounds, except where they fail.
        unsure = np.flatnonzero(own > np.square(lower))
        if unsure.size:
            gaps = _gaps(centroids)
            _reassign(x, xt, centroids, gaps, labels, own, lower, unsure)
    history: list[float] = []
    inertia = float("inf")
    converged = False
    changed = True
    for it in range(max_iter):
        objective = float(w @ own) / total
        history.append(objective)
        cluster_weight = np.bincount(labels, weights=w, minlength=k)
        sums = np.stack(
            [np.bincount(labels, weights=wx[ch], minlength=k) for ch in range(dims)], axis=1
        )
        filled = cluster_weight > 0
        means = np.where(
            filled[:, None], sums / np.maximum(cluster_weight, 1e-300)[:, None], centroids
        )
        shift = float(cluster_weight @ np.square(centroids - means).sum(1))
        inertia = max(objective - shift / total, 0.0)
        if not filled.all():
            empty = np.flatnonzero(~filled)
            worst = np.argsort(-(w * own), kind="stable")[: empty.size]
            means[empty[: worst.size]] = x[worst]
        stop = not changed or (len(history) > 1 and history[-2] - objective <= tol * history[-2])
        if stop or it == max_iter - 1 or k == 1:
            centroids = means
            converged = stop or k == 1
            break
        delta = np.sqrt(np.square(means - centroids).sum(1))
        centroids = means
        c32 = centroids.astype(x.dtype)
        top2 = np.argsort(delta)[-2:]
        biggest, runner_up = delta[top2[1]], delta[top2[0]]
        lower -= np.where(labels == top2[1], runner_up, biggest).astype(x.dtype)
        own = _own(xt, c32, labels)
        gaps = _gaps(centroids)
        half_gap = (0.5 * gaps.min(axis=1)).astype(x.dtype)
        bound = np.maximum(half_gap[labels], lower)
        unsure = np.flatnonzero(own > np.square(bound) * (1.0 + 1e-6))
        changed = False
        if unsure.size:
            changed = _reassign(x, xt, centroids, gaps, labels, own, lower, unsure)
    return LloydOutput(centroids, labels, lower, inertia, history, converged)


def _gaps(centroids: np.ndarray) -> np.ndarray:
    """``(K, K)`` distances between centroids, ``inf`` on the diagonal."""
    cn = np.square(centroids).sum(1)
    sq = cn[:, None] + cn[None, :] - 2.0 * (centroids @ centroids.T)
    np.fill_diagonal(sq, np.inf)
    out: np.ndarray = np.sqrt(np.maximum(sq, 0.0))
    return out
