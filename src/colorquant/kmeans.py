"""Weighted K-means on ``(N, C)`` points: Lloyd iterations, and a gradient-descent alternative.

Both minimise the weighted mean squared distance of the points to their nearest centroid,
``J = sum_i w_i |x_i - c_{a(i)}|^2 / sum_i w_i``. Empty clusters are refilled with the points that
fit worst (largest ``w_i d_i^2``), so a result never holds an empty or NaN centroid.

NumPy arrays run on the compiled CPU kernel (:func:`colorquant._cpu.lloyd`, float64), tensors on
torch on their device (:mod:`colorquant._torch.kmeans`); both prune with Hamerly's bounds and give
the same assignments as a plain Lloyd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic

import numpy as np

from . import _cpu
from ._array import Array, ArrayT, to_numpy
from ._extras import require

__all__ = ["KMeansResult", "fit_adam", "inherit_bounds", "weighted_kmeans", "weighted_kmeans_warm"]


@dataclass(frozen=True)
class KMeansResult(Generic[ArrayT]):
    """Outcome of a K-means fit (arrays of the input's kind).

    Attributes:
        centroids: ``(K, C)`` float centroids.
        labels: ``(N,)`` int64 centroid index of every point (the assignment the centroids were
            computed from).
        inertia: objective ``J`` of ``labels`` and ``centroids`` (weighted mean squared distance).
        n_iter: assignment steps run.
        converged: whether the relative decrease of ``J`` fell under ``tol`` before ``max_iter``.
        history: ``J`` after each assignment step; never increases for Lloyd.
    """

    centroids: ArrayT
    labels: ArrayT
    inertia: float
    n_iter: int
    converged: bool
    history: tuple[float, ...]


def _check(points: Array, weights: Array, init: Array) -> None:
    if points.ndim != 2 or init.ndim != 2 or points.shape[1] != init.shape[1]:
        raise ValueError(
            f"points (N, C) and init (K, C) must agree in C, got {tuple(points.shape)} and "
            f"{tuple(init.shape)}"
        )
    if tuple(weights.shape) != (points.shape[0],):
        raise ValueError(f"weights must be ({points.shape[0]},), got {tuple(weights.shape)}")
    if init.shape[0] < 1:
        raise ValueError("init must hold at least one centroid")


def weighted_kmeans(
    points: ArrayT,
    weights: ArrayT,
    init: ArrayT,
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
    n_fixed: int = 0,
) -> KMeansResult[ArrayT]:
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
        points: ``(N, C)`` float: a NumPy array (the compiled CPU kernel) or a tensor (torch).
        weights: ``(N,)`` positive float.
        init: ``(K, C)`` starting centroids; not modified.
        max_iter: at most this many assignment steps (>= 1).
        tol: relative decrease of ``J`` under which the fit counts as converged.
        n_fixed: the first ``n_fixed`` rows of ``init`` stay where they are (colors a palette
            must keep); the others are fitted around them.

    Returns:
        A :class:`KMeansResult` of the input's kind and dtype.

    References:
        G. Hamerly, "Making k-means even faster", SIAM SDM 2010.

    Example:
        >>> pts = np.array([[0.0], [1.0], [10.0], [11.0]])
        >>> r = weighted_kmeans(pts, np.ones(4), np.array([[0.0], [1.0]]))
        >>> r.centroids.ravel().tolist(), r.inertia, r.converged
        ([0.5, 10.5], 0.25, True)
    """
    return weighted_kmeans_warm(points, weights, init, max_iter=max_iter, tol=tol, n_fixed=n_fixed)[
        0
    ]


def weighted_kmeans_warm(
    points: ArrayT,
    weights: ArrayT,
    init: ArrayT,
    *,
    max_iter: int,
    tol: float,
    warm: tuple[ArrayT, ArrayT] | None = None,
    n_fixed: int = 0,
) -> tuple[KMeansResult[ArrayT], ArrayT]:
    """:func:`weighted_kmeans`, optionally warm-started, also returning the lower bounds.

    ``warm`` is ``(labels, lower)``: each point's nearest centroid of ``init`` (where the bound
    proves it) and a lower bound on its distance to every other centroid; the coarse-to-fine
    fit passes them from one level to the next so no level starts with a full search.
    """
    _check(points, weights, init)
    if isinstance(points, np.ndarray):
        out = _cpu.lloyd(
            np.ascontiguousarray(points, dtype=np.float64),
            np.ascontiguousarray(weights, dtype=np.float64),
            np.ascontiguousarray(init, dtype=np.float64),
            max_iter=max_iter,
            tol=tol,
            labels=None if warm is None else np.ascontiguousarray(warm[0], dtype=np.int32),
            lower=None if warm is None else np.ascontiguousarray(warm[1], dtype=np.float64),
            n_fixed=n_fixed,
        )
        result = KMeansResult(
            out.centroids.astype(points.dtype, copy=False),
            out.labels.astype(np.int64),
            out.inertia,
            len(out.history),
            out.converged,
            tuple(out.history),
        )
        return result, out.lower
    from ._torch.kmeans import lloyd

    centroids, labels, inertia, n_iter, converged, history, lower = lloyd(
        points, weights, init, max_iter=max_iter, tol=tol, warm=warm, n_fixed=n_fixed
    )
    return KMeansResult(centroids, labels, inertia, n_iter, converged, history), lower


def inherit_bounds(
    parent: tuple[ArrayT, ArrayT, ArrayT, ArrayT], cell: ArrayT, n_cells: int, cell_points: ArrayT
) -> tuple[ArrayT, ArrayT]:
    """Labels and lower bounds of a finer level of cells from the coarser one.

    A finer cell inherits its parent's label; its mean lies ``moved`` away from the parent's,
    so (triangle inequality) its distance to any other centroid is at least the parent's lower
    bound minus ``moved``.

    Args:
        parent: ``(color -> parent cell, parent points, parent labels, parent lower bounds)``.
        cell: ``(M,)`` color -> cell of the finer level (cells nest inside the parent's).
        n_cells: number of finer cells.
        cell_points: ``(n_cells, C)`` finer points.

    Returns:
        ``(labels, lower)`` of the finer points, a warm start for :func:`weighted_kmeans`.
    """
    parent_cell, parent_points, parent_labels, parent_lower = parent
    if isinstance(cell, np.ndarray):
        parent_of = np.empty(n_cells, dtype=np.int64)
        parent_of[cell] = parent_cell
        moved = np.sqrt(np.square(cell_points - parent_points[parent_of]).sum(1))
        return parent_labels[parent_of], parent_lower[parent_of] - moved
    import torch

    parent_of = torch.empty(n_cells, dtype=torch.int64, device=cell.device)
    parent_of[cell] = parent_cell
    moved = (cell_points - parent_points[parent_of]).pow(2).sum(1).sqrt()
    return parent_labels[parent_of], parent_lower[parent_of].to(moved.dtype) - moved


def fit_adam(
    points: ArrayT,
    weights: ArrayT,
    init: ArrayT,
    *,
    max_iter: int = 300,
    tol: float = 1e-5,
    lr: float | None = None,
) -> KMeansResult[ArrayT]:
    """Fit centroids by Adam on ``J``: the palette as a learnable tensor (imports torch).

    Every step assigns each point to its nearest centroid (a hard, non-differentiable choice) and
    lets the gradient of ``J`` flow straight through that choice into the chosen centroids. Stops
    when the best ``J`` improved by less than ``tol`` (relative) over the last 20 steps. Returns
    the best centroids seen. Empty clusters are refilled every step, as in Lloyd.

    Args:
        points: ``(N, C)`` float array or tensor (NumPy input runs on CPU tensors).
        weights: ``(N,)`` positive float.
        init: ``(K, C)`` starting centroids; not modified.
        max_iter: at most this many optimiser steps.
        tol: relative improvement over 20 steps under which the fit counts as converged.
        lr: Adam learning rate; default 1% of the points' spread (scale-free across spaces).

    Returns:
        A :class:`KMeansResult` of the input's kind whose ``history`` is ``J`` at every step.
    """
    _check(points, weights, init)
    require("torch", "method 'adam' (fit_adam)")
    import torch

    from ._torch.kmeans import fit_adam as torch_adam

    if isinstance(points, np.ndarray):
        out = torch_adam(
            torch.from_numpy(np.array(points)),
            torch.from_numpy(np.array(weights, dtype=points.dtype)),
            torch.from_numpy(np.array(init, dtype=points.dtype)),
            max_iter=max_iter,
            tol=tol,
            lr=lr,
        )
        return KMeansResult(to_numpy(out[0]), to_numpy(out[1]), *out[2:6])
    best, labels, inertia, n_iter, converged, history, _ = torch_adam(
        points, weights, init, max_iter=max_iter, tol=tol, lr=lr
    )
    return KMeansResult(best, labels, inertia, n_iter, converged, history)
