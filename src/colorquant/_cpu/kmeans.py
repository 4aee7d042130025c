"""Weighted Lloyd iterations with exact assignments, pruned by Hamerly's bounds (C: lloyd.c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from colorquant import _cpu

from .common import as_integer, as_points, as_weights, describe, threads

__all__ = ["LloydOutput", "lloyd"]

# The wrappers call the compiled core as ``_cpu._kernels``, looked up on the package at every call:
# a test may put another build there (COLORQUANT_TEST_KERNELS, tests/conftest.py).


@dataclass(frozen=True)
class LloydOutput:
    """Result of :func:`lloyd`.

    Attributes:
        centroids: ``(K, C)`` float64, the means of the last assignment (an empty cluster's
            centroid is refilled with a worst-fitting point).
        labels: ``(N,)`` int32, the last assignment: each point's nearest centroid of the
            centroids before the last update (lowest index on ties).
        lower: ``(N,)`` float64, a lower bound on each point's distance to every returned
            centroid other than its label (``inf`` for K = 1); with ``labels``, a warm start
            for another :func:`lloyd` from ``centroids``.
        inertia: objective ``J`` of ``labels`` with ``centroids`` (weighted mean squared
            distance), from the parallel-axis theorem.
        history: ``J`` before each update, one entry per assignment step.
        converged: stopped by ``tol`` or by a fixed point (no label changed), or K = 1.
    """

    centroids: np.ndarray
    labels: np.ndarray
    lower: np.ndarray
    inertia: float
    history: list[float]
    converged: bool


def lloyd(
    points: np.ndarray,
    weights: np.ndarray,
    init: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    labels: np.ndarray | None = None,
    lower: np.ndarray | None = None,
    n_fixed: int = 0,
) -> LloydOutput:
    """Weighted Lloyd iterations with exact float64 assignments, pruned by Hamerly's bounds.

    Each step: ``J = sum(w * own) / sum(w)`` is recorded (``own``: squared distance of each
    point to its centroid), centroids become the weighted means of their points (an empty
    cluster takes the point of largest ``w * own``, ties to the lowest index, a distinct point
    for each empty cluster), then every point gets its exact nearest centroid, lowest index on
    ties: each step's labels equal a plain float64 brute-force Lloyd's from the same ``init``.
    Stops when no label changed, when ``J_prev - J <= tol * J_prev``, or after ``max_iter``
    steps; the returned centroids are the means of the last assignment.

    A point is searched again only when its distance to its centroid is not below
    ``max(lower bound, half the gap to the centroid's nearest other centroid)``; the search
    walks the centroid's nearest other centroids in order and stops by the triangle inequality.

    Args:
        points: ``(N, C)`` float64.
        weights: ``(N,)`` float64, all > 0.
        init: ``(K, C)`` float64 starting centroids, ``K >= 1``; not modified.
        max_iter: assignment steps at most (``>= 0``; 0 returns ``init`` and the first labels).
        tol: relative decrease of ``J`` under which the fit has converged, ``>= 0``.
        labels: optional warm start, ``(N,)`` integer labels in ``0..K-1``, given with ``lower``:
            a label is kept where its distance is below ``lower`` (or half the gap).
        lower: ``(N,)`` float, a lower bound on each point's distance to every centroid of
            ``init`` other than its label.
        n_fixed: the first ``n_fixed`` rows of ``init`` never move and are never refilled
            (colors a palette must keep); ``0 <= n_fixed <= K``.

    Returns:
        A :class:`LloydOutput`.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    x = as_points("points", points)
    n, c = x.shape
    w = as_weights(weights, n)
    if (
        not isinstance(init, np.ndarray)
        or init.dtype != np.float64
        or init.ndim != 2
        or init.shape[0] < 1
        or init.shape[1] != c
    ):
        raise ValueError(
            f"init must be a float64 array of shape (K, {c}) with K >= 1, got {describe(init)}"
        )
    if not np.isfinite(init).all():
        raise ValueError("init must be finite, got NaN or infinite values")
    k = init.shape[0]
    max_iter = as_integer("max_iter", max_iter, 0)
    n_fixed = as_integer("n_fixed", n_fixed, 0)
    if n_fixed > k:
        raise ValueError(f"n_fixed must be in 0..{k} (the centroids), got {n_fixed}")
    if isinstance(tol, bool) or not isinstance(tol, (float, int, np.floating, np.integer)):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if (labels is None) != (lower is None):
        raise ValueError("labels and lower must be given together (a warm start), or neither")
    warm = labels is not None and lower is not None
    if labels is not None and lower is not None:
        if (
            not isinstance(labels, np.ndarray)
            or labels.shape != (n,)
            or not np.issubdtype(labels.dtype, np.integer)
        ):
            raise ValueError(
                f"labels must be an integer array of shape ({n},), got {describe(labels)}"
            )
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(
                f"labels must lie in 0..{k - 1}, got values in [{labels.min()}, {labels.max()}]"
            )
        if (
            not isinstance(lower, np.ndarray)
            or lower.shape != (n,)
            or not np.issubdtype(lower.dtype, np.floating)
        ):
            raise ValueError(f"lower must be a float array of shape ({n},), got {describe(lower)}")
        if np.isnan(lower).any():
            raise ValueError("lower must not hold NaN")
        out_labels = labels.astype(np.int32, copy=True)
        out_lower = lower.astype(np.float64, copy=True)
    else:
        out_labels = np.empty(n, np.int32)
        out_lower = np.empty(n, np.float64)
    centroids = np.array(init, dtype=np.float64, order="C", copy=True)
    history = np.empty(max_iter, np.float64)
    iters, inertia, converged = _cpu._kernels.lloyd(
        x,
        w,
        n,
        c,
        k,
        centroids,
        out_labels,
        out_lower,
        int(warm),
        max_iter,
        float(tol),
        history,
        threads(),
        n_fixed,
    )
    return LloydOutput(
        centroids, out_labels, out_lower, inertia, history[:iters].tolist(), converged
    )
