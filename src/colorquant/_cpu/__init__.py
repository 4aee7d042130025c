"""The compiled CPU core: histogram, k-means++, Lloyd, nearest-color search and dithering in C +
OpenMP.

Every kernel works in float64 with direct distances (the sum over channels ``0..C-1`` of
``(x - c)^2``), so each nearest-centroid decision equals a float64 brute force, the lowest
index winning ties. Partial sums are taken over fixed blocks of points and added in block
order, so results do not depend on the number of threads either.

This module validates every input and allocates every output with NumPy; the C side
(``_kernels``, built from ``kernels.c``) only checks byte sizes. It imports NumPy alone (no
torch), so the command-line path can use it cheaply.

Point arrays are ``(N, C)`` float64 with ``1 <= C <= 8``; non-contiguous arrays are copied.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _kernels

__all__ = [
    "HISTOGRAM_DENSE_FROM",
    "LloydOutput",
    "bin_colors",
    "cell_means",
    "dither_fs",
    "dither_fs_groups",
    "dither_ordered",
    "get_num_threads",
    "histogram",
    "kmeans_plusplus",
    "lloyd",
    "nearest",
    "set_num_threads",
    "shared_threads",
    "squared_error",
]

MAX_CHANNELS = 8

HISTOGRAM_DENSE_FROM = 1_500_000
"""Pixels from which :func:`histogram` counts into a dense 2^24 table instead of sorting.

Below it an LSD radix sort of the 24-bit keys (16 bytes of scratch a pixel) is faster than
touching the 64 MiB table; above it the table is faster and needs less memory.
"""

_TABLE_BLOCKS = 256  # blocks of the 2^24 table counted separately (kernels.c: TABLE_BLOCKS)


def _default_threads() -> int:
    for name in ("COLORQUANT_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


_threads = _default_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads every kernel of this module uses.

    Args:
        n: threads, ``>= 1``. Results are identical for any number of threads.

    Raises:
        ValueError: ``n`` is not an integer >= 1.
    """
    global _threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    _threads = int(n)


def get_num_threads() -> int:
    """Threads the kernels use: set by :func:`set_num_threads`, else from the environment.

    The default is ``COLORQUANT_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the number of CPUs
    this process may run on.
    """
    return _threads


@contextmanager
def shared_threads(jobs: int) -> Iterator[int]:
    """Split the kernels' threads among up to ``jobs`` jobs that run at once (one per thread).

    Yields the number of jobs to run at once, ``min(jobs, threads)``; while the block runs, each
    kernel call uses ``threads // that`` threads, so that the jobs together never use more
    threads than one call would (no oversubscription). The thread count is restored after.

    Example:
        >>> with shared_threads(1) as workers:
        ...     workers
        1
    """
    budget = _threads
    workers = max(1, min(int(jobs), budget))
    try:
        set_num_threads(max(1, budget // workers))
        yield workers
    finally:
        set_num_threads(budget)


# ---------------------------------------------------------------------------------------------
# Validation


def _describe(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


def _points(name: str, a: Any, channels: int | None = None) -> np.ndarray:
    """``a`` as a C-contiguous ``(N, C)`` float64 array of finite values, ``N >= 1``."""
    want_c = "C" if channels is None else str(channels)
    expected = f"a finite float64 array of shape (N, {want_c}) with N >= 1 and 1 <= C <= 8"
    if (
        not isinstance(a, np.ndarray)
        or a.dtype != np.float64
        or a.ndim != 2
        or a.shape[0] < 1
        or not 1 <= a.shape[1] <= MAX_CHANNELS
        or (channels is not None and a.shape[1] != channels)
    ):
        raise ValueError(f"{name} must be {expected}, got {_describe(a)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be {expected}, got NaN or infinite values")
    return np.ascontiguousarray(a)


def _weights(a: Any, n: int) -> np.ndarray:
    """``a`` as a C-contiguous ``(n,)`` float64 array of finite positive values."""
    expected = f"a float64 array of shape ({n},) of finite values > 0"
    if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != (n,):
        raise ValueError(f"weights must be {expected}, got {_describe(a)}")
    if not (np.isfinite(a) & (a > 0)).all():
        raise ValueError(f"weights must be {expected}, got values in [{a.min()}, {a.max()}]")
    return np.ascontiguousarray(a)


def _integer(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Kernels


def histogram(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact color histogram of ``pixels`` with each pixel's row in it.

    Below :data:`HISTOGRAM_DENSE_FROM` pixels the 24-bit keys ``r << 16 | g << 8 | b`` are radix
    sorted (two passes of 12 bits, carrying pixel ids); from it they are counted into a dense
    2^24 table. Both give the same result.

    Args:
        pixels: ``(N, 3)`` uint8 RGB, ``1 <= N < 2^31``.

    Returns:
        ``(colors, counts, inverse)``: ``(M, 3)`` uint8 distinct colors ascending by key,
        ``(M,)`` int64 pixels of each color, and ``(N,)`` int32 row of every pixel in
        ``colors`` (so ``colors[inverse]`` equals ``pixels``).

    Raises:
        ValueError: ``pixels`` is not a non-empty ``(N, 3)`` uint8 array.
    """
    if (
        not isinstance(pixels, np.ndarray)
        or pixels.dtype != np.uint8
        or pixels.ndim != 2
        or pixels.shape[1] != 3
        or not 1 <= pixels.shape[0] < 2**31
    ):
        raise ValueError(
            "pixels must be a uint8 array of shape (N, 3) with 1 <= N < 2^31, "
            f"got {_describe(pixels)}"
        )
    px = np.ascontiguousarray(pixels)
    n = px.shape[0]
    nt = _threads
    if n < HISTOGRAM_DENSE_FROM:
        keys, ids = np.empty(n, np.uint32), np.empty(n, np.uint32)
        m = _kernels.hist_sort(px, keys, ids, np.empty(n, np.uint32), np.empty(n, np.uint32), nt)
        colors = np.empty((m, 3), np.uint8)
        counts = np.empty(m, np.int64)
        inverse = np.empty(n, np.int32)
        _kernels.hist_sort_finish(keys, ids, colors, counts, inverse, nt)
        return colors, counts, inverse
    table = np.zeros(1 << 24, np.uint32)
    inverse = np.empty(n, np.int32)
    blocks = np.empty(_TABLE_BLOCKS, np.int64)
    m = _kernels.hist_dense_count(px, table, inverse, blocks, nt)
    colors = np.empty((m, 3), np.uint8)
    counts = np.empty(m, np.int64)
    _kernels.hist_dense_finish(table, inverse, blocks, colors, counts, nt)
    return colors, counts, inverse


def bin_colors(colors: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """The occupied cells of the ``2**bits``-per-channel RGB grid, and each color's cell.

    Args:
        colors: ``(M, 3)`` uint8 sRGB, ``M < 2^31``.
        bits: bits kept per channel, 1..8.

    Returns:
        ``(cell, n_cells)``: ``(M,)`` int32 cell of every color in ``0..n_cells-1``, cells
        numbered in the order of their packed key ``r << 2b | g << b | b``.

    Raises:
        ValueError: ``colors`` is not an ``(M, 3)`` uint8 array, or ``bits`` is out of range.
    """
    if (
        not isinstance(colors, np.ndarray)
        or colors.dtype != np.uint8
        or colors.ndim != 2
        or colors.shape[1] != 3
        or colors.shape[0] >= 2**31
    ):
        raise ValueError(
            f"colors must be a uint8 array of shape (M, 3) with M < 2^31, got {_describe(colors)}"
        )
    bits = _integer("bits", bits, 1)
    if bits > 8:
        raise ValueError(f"bits must be an integer in 1..8, got {bits}")
    c = np.ascontiguousarray(colors)
    cell = np.empty(c.shape[0], np.int32)
    n_cells = _kernels.bin_cells(c, c.shape[0], bits, np.empty(1 << (3 * bits), np.int32), cell)
    return cell, n_cells


def cell_means(
    points: np.ndarray, weights: np.ndarray, cell: np.ndarray, n_cells: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted mean and weight of every cell, and the weighted scatter inside the cells.

    Args:
        points: ``(M, C)`` float64.
        weights: ``(M,)`` float64, all > 0.
        cell: ``(M,)`` integer cell of every point, in ``0..n_cells-1``, every cell occupied.
        n_cells: number of cells, ``>= 1``.

    Returns:
        ``(means, cell_weight, scatter)``: ``(n_cells, C)`` float64 weighted means (sums in
        index order), ``(n_cells,)`` float64 weights, and
        ``sum_i w_i |x_i - mean_cell(i)|^2 / sum_i w_i``.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    x = _points("points", points)
    m, c = x.shape
    w = _weights(weights, m)
    n_cells = _integer("n_cells", n_cells, 1)
    if not isinstance(cell, np.ndarray) or cell.shape != (m,) or cell.dtype.kind not in "iu":
        raise ValueError(f"cell must be an integer array of shape ({m},), got {_describe(cell)}")
    means = np.empty((n_cells, c), np.float64)
    cell_weight = np.empty(n_cells, np.float64)
    scatter = _kernels.cell_means(
        x, w, np.ascontiguousarray(cell, dtype=np.int32), m, c, n_cells, means, cell_weight
    )
    if not (cell_weight > 0).all():
        raise ValueError("cell must leave no cell in 0..n_cells-1 empty")
    return means, cell_weight, scatter


def kmeans_plusplus(
    points: np.ndarray, weights: np.ndarray, k: int, u_first: float, u: np.ndarray
) -> np.ndarray:
    """Greedy weighted k-means++ from given uniform draws: the rows it picks as centroids.

    The first row is drawn with probability proportional to its weight; each next one is the
    best of ``trials`` candidates drawn with probability proportional to ``weight * D(x)^2``
    (``D``: distance to the nearest chosen row), the one leaving the smallest potential
    ``sum(weight * min(D^2, d^2))`` (first on ties). A draw ``u`` takes the first point whose
    cumulative potential exceeds ``u * total``, as ``searchsorted(cumsum, u * total,
    side="right")`` does, up to rounding (the sums are taken in blocks of 128 points), and never
    a point of zero potential. The triangle inequality spares most distance evaluations; the
    choices are those of the plain algorithm (tested against it).

    Args:
        points: ``(N, C)`` float64.
        weights: ``(N,)`` float64, all > 0.
        k: rows to choose, ``1 <= k <= N``.
        u_first: uniform draw in ``[0, 1]`` for the first row.
        u: ``(k - 1, trials)`` float64 uniform draws in ``[0, 1]``, ``trials >= 1``.

    Returns:
        ``(k,)`` int64 row indices into ``points``.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    x = _points("points", points)
    n, c = x.shape
    w = _weights(weights, n)
    k = _integer("k", k, 1)
    if k > n:
        raise ValueError(f"k must be in 1..{n} (the number of points), got {k}")
    if isinstance(u_first, bool) or not isinstance(u_first, (float, int, np.floating)):
        raise ValueError(f"u_first must be a float in [0, 1], got {u_first!r}")
    if not 0.0 <= float(u_first) <= 1.0:
        raise ValueError(f"u_first must be a float in [0, 1], got {u_first!r}")
    if (
        not isinstance(u, np.ndarray)
        or u.dtype != np.float64
        or u.ndim != 2
        or u.shape[0] != k - 1
        or (k > 1 and u.shape[1] < 1)
    ):
        raise ValueError(
            f"u must be a float64 array of shape ({k - 1}, trials) with trials >= 1, "
            f"got {_describe(u)}"
        )
    if u.size and not ((u >= 0.0) & (u <= 1.0)).all():
        raise ValueError("u must hold uniform draws in [0, 1], got values outside")
    draws = np.ascontiguousarray(u)
    chosen = np.empty(k, np.int64)
    _kernels.kmeanspp(x, w, n, c, k, draws.shape[1], float(u_first), draws, chosen, _threads)
    return chosen


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
    x = _points("points", points)
    n, c = x.shape
    w = _weights(weights, n)
    if (
        not isinstance(init, np.ndarray)
        or init.dtype != np.float64
        or init.ndim != 2
        or init.shape[0] < 1
        or init.shape[1] != c
    ):
        raise ValueError(
            f"init must be a float64 array of shape (K, {c}) with K >= 1, got {_describe(init)}"
        )
    if not np.isfinite(init).all():
        raise ValueError("init must be finite, got NaN or infinite values")
    k = init.shape[0]
    max_iter = _integer("max_iter", max_iter, 0)
    n_fixed = _integer("n_fixed", n_fixed, 0)
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
                f"labels must be an integer array of shape ({n},), got {_describe(labels)}"
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
            raise ValueError(f"lower must be a float array of shape ({n},), got {_describe(lower)}")
        if np.isnan(lower).any():
            raise ValueError("lower must not hold NaN")
        out_labels = labels.astype(np.int32, copy=True)
        out_lower = lower.astype(np.float64, copy=True)
    else:
        out_labels = np.empty(n, np.int32)
        out_lower = np.empty(n, np.float64)
    centroids = np.array(init, dtype=np.float64, order="C", copy=True)
    history = np.empty(max_iter, np.float64)
    iters, inertia, converged = _kernels.lloyd(
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
        _threads,
        n_fixed,
    )
    return LloydOutput(
        centroids, out_labels, out_lower, inertia, history[:iters].tolist(), converged
    )


def dither_fs(
    pixels: np.ndarray,
    palette: np.ndarray,
    strength: np.ndarray,
    max_error: float,
    band: int | None = None,
    warm: int = 0,
) -> np.ndarray:
    """Serpentine Floyd-Steinberg error diffusion on 8-bit channels: every pixel's palette row.

    Each pixel plus the error diffused into it (each channel clamped to ``+-max_error``, then
    to 0..255) takes its exactly nearest palette color (float64 squared distance, lowest index
    on ties); ``strength`` scales, pixel by pixel, the error it passes on (7/16 ahead, 3/16,
    5/16, 1/16 below). Even rows run left to right, odd rows right to left.

    The nearest colors come from a grid of cells over the channels, each holding the colors
    that can be nearest somewhere in it (built as pixels reach it): a few exact distances a
    pixel instead of K. With ``band``, the rows are cut into bands, each diffused on its own
    from ``warm`` rows above it (started there with no error, those rows' results dropped) and
    the bands spread over the threads; the result depends on ``band`` and ``warm`` only, not on
    the number of threads. Without, the image is one band: the plain sequential diffusion.

    Args:
        pixels: ``(H, W, C)`` uint8 image, ``1 <= C <= 8`` (8-bit RGB: C = 3).
        palette: ``(K, C)`` float64 colors on the 0..255 scale, ``K >= 1``.
        strength: ``(H, W)`` float32 in [0, 1].
        max_error: largest error a channel carries, ``>= 0``.
        band: rows of a band, ``>= 1`` (default: the whole image).
        warm: rows a band runs before its first, ``>= 0``.

    Returns:
        ``(H, W)`` int32 palette rows.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    if (
        not isinstance(pixels, np.ndarray)
        or pixels.dtype != np.uint8
        or pixels.ndim != 3
        or min(pixels.shape) < 1
        or pixels.shape[2] > MAX_CHANNELS
    ):
        raise ValueError(
            f"pixels must be a uint8 array of shape (H, W, C) with 1 <= C <= {MAX_CHANNELS}, "
            f"got {_describe(pixels)}"
        )
    h, w, c = pixels.shape
    pal = _points("palette", palette, channels=c)
    if (
        not isinstance(strength, np.ndarray)
        or strength.shape != (h, w)
        or strength.dtype != np.float32
    ):
        raise ValueError(
            f"strength must be a float32 array of shape ({h}, {w}), got {_describe(strength)}"
        )
    if not (np.isfinite(max_error) and max_error >= 0):
        raise ValueError(f"max_error must be a finite number >= 0, got {max_error!r}")
    index = np.empty((h, w), np.int32)
    _kernels.dither_fs(
        np.ascontiguousarray(pixels),
        h,
        w,
        c,
        pal,
        pal.shape[0],
        np.ascontiguousarray(strength),
        float(max_error),
        index,
        h if band is None else _integer("band", band, 1),
        _integer("warm", warm, 0),
        _threads,
    )
    return index


ORDERED_PARAMS = 29
"""Constants :func:`dither_ordered` takes: two row-major 3x3 matrices (sRGB linear -> XYZ or LMS,
then LMS' -> OKLab), the white point, DIN99b's ``c1, c2, cos, sin, squeeze, c5, c6`` and the
hybrid weight (``colorquant.dither.ordered_params`` fills them from ``colorquant.color``)."""


def dither_ordered(
    pixels: np.ndarray,
    rgb_table: np.ndarray,
    lin_table: np.ndarray,
    space: int,
    params: np.ndarray,
    palette: np.ndarray,
) -> np.ndarray:
    """Ordered dithering: every pixel, shifted by its offset, to its nearest palette point.

    A pixel at ``(y, x)`` has level ``8 * (y % 8) + x % 8``; ``rgb_table[level, v]`` and
    ``lin_table[level, v]`` are a channel value ``v`` shifted by that level's offset, on the
    0..255 scale of the ``rgb`` space and in linear light. From them the pixel's point in the
    color space is computed (the formulas of :func:`colorquant.color.embed`, in float64) and
    given its exactly nearest palette point (lowest index on ties); in ``rgb`` the point is the
    table's. Rows are split among the threads; the result does not depend on their number.

    Args:
        pixels: ``(H, W, 3)`` uint8 image.
        rgb_table: ``(64, 256)`` float64.
        lin_table: ``(64, 256)`` float64.
        space: index of the space in ``colorquant.color.COLOR_SPACES``.
        params: ``(ORDERED_PARAMS,)`` float64 constants of the spaces.
        palette: ``(K, C)`` float64 palette points in the space (C = 6 for hybrid, else 3).

    Returns:
        ``(H, W)`` int32 palette rows.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    if (
        not isinstance(pixels, np.ndarray)
        or pixels.dtype != np.uint8
        or pixels.ndim != 3
        or pixels.shape[2] != 3
        or min(pixels.shape) < 1
    ):
        raise ValueError(
            f"pixels must be a uint8 array of shape (H, W, 3), got {_describe(pixels)}"
        )
    for name, table in (("rgb_table", rgb_table), ("lin_table", lin_table)):
        if (
            not isinstance(table, np.ndarray)
            or table.dtype != np.float64
            or table.shape != (64, 256)
        ):
            raise ValueError(
                f"{name} must be a float64 array of shape (64, 256), got {_describe(table)}"
            )
    if isinstance(space, bool) or not isinstance(space, (int, np.integer)) or not 0 <= space < 5:
        raise ValueError(f"space must be an integer in 0..4, got {space!r}")
    if (
        not isinstance(params, np.ndarray)
        or params.dtype != np.float64
        or params.shape != (ORDERED_PARAMS,)
    ):
        raise ValueError(
            f"params must be a float64 array of shape ({ORDERED_PARAMS},), got {_describe(params)}"
        )
    pal = _points("palette", palette, channels=6 if space == 4 else 3)
    h, w = pixels.shape[:2]
    index = np.empty((h, w), np.int32)
    _kernels.dither_ordered(
        np.ascontiguousarray(pixels),
        h,
        w,
        np.ascontiguousarray(rgb_table),
        np.ascontiguousarray(lin_table),
        int(space),
        np.ascontiguousarray(params),
        pal,
        pal.shape[0],
        pal.shape[1],
        index,
        _threads,
    )
    return index


def squared_error(pixels: np.ndarray, palette: np.ndarray, index: np.ndarray) -> int:
    """Sum over pixels and channels of ``(pixel - palette[index])^2``, exact (integers).

    Args:
        pixels: ``(N, C)`` uint8, ``1 <= C <= 8``.
        palette: ``(K, C)`` uint8, ``K >= 1``.
        index: ``(N,)`` integer palette rows, in ``0..K-1``.

    Returns:
        The sum, an ``int``: ``mse * N * C``.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    for name, a in (("pixels", pixels), ("palette", palette)):
        if (
            not isinstance(a, np.ndarray)
            or a.dtype != np.uint8
            or a.ndim != 2
            or not 1 <= a.shape[1] <= MAX_CHANNELS
        ):
            raise ValueError(
                f"{name} must be a uint8 array of shape (rows, C) with 1 <= C <= {MAX_CHANNELS}, "
                f"got {_describe(a)}"
            )
    n, c = pixels.shape
    if palette.shape[1] != c or palette.shape[0] < 1:
        raise ValueError(
            f"palette must be a uint8 array of shape (K, {c}), got {_describe(palette)}"
        )
    if not isinstance(index, np.ndarray) or index.shape != (n,) or index.dtype.kind not in "iu":
        raise ValueError(f"index must be an integer array of shape ({n},), got {_describe(index)}")
    k = palette.shape[0]
    if n and (index.min() < 0 or index.max() >= k):
        raise ValueError(f"index must lie in 0..{k - 1}")
    return _kernels.squared_error(
        np.ascontiguousarray(pixels),
        np.ascontiguousarray(palette),
        np.ascontiguousarray(index, dtype=np.int32),
        n,
        c,
        k,
        _threads,
    )


def nearest(points: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest palette row of every point, and the squared distance to it.

    Equal to the float64 brute force ``argmin(((x[:, None] - c[None]) ** 2).sum(-1), axis=1)``
    (lowest index on ties). Each point starts from the previous point's answer (points sorted
    by color are alike) and searches the palette's nearest-neighbour lists (K <= 1024), else a
    sweep over the palette sorted by one channel.

    Args:
        points: ``(N, C)`` float64.
        palette: ``(K, C)`` float64, ``K >= 1``.

    Returns:
        ``(index, dist2)``: ``(N,)`` int32 and ``(N,)`` float64.

    Raises:
        ValueError: a shape or dtype is wrong or a value is not finite.
    """
    x = _points("points", points)
    n, c = x.shape
    pal = _points("palette", palette, channels=c)
    index = np.empty(n, np.int32)
    dist2 = np.empty(n, np.float64)
    _kernels.nearest(x, pal, n, c, pal.shape[0], index, dist2, _threads)
    return index, dist2


def dither_fs_groups(
    pixels: np.ndarray,
    palette: np.ndarray,
    weight: np.ndarray,
    pixel_group: np.ndarray,
    entry_group: np.ndarray,
    fixed: np.ndarray,
    strength: np.ndarray,
    max_error: float,
) -> np.ndarray:
    """Serpentine Floyd-Steinberg where each pixel searches only the palette rows of its group.

    For images with alpha: ``pixels`` are premultiplied RGBA on the 0..255 scale. Each pixel
    plus the error diffused into it (each channel clamped to ``+-max_error``, then to 0..255)
    takes, of the palette rows its group may take, the nearest by ``sum(weight * diff**2)``
    (lowest row on ties), and passes on ``strength`` of its error (7/16 ahead, 3/16, 5/16, 1/16
    below). A pixel of group ``g`` (0..6) may take the rows whose ``entry_group`` has bit ``g``
    set; a pixel of group 2 takes no error in its last channel (an opaque pixel keeps its
    alpha). A pixel of group -1 (or of a group without rows) takes ``fixed`` and passes no
    error.

    Args:
        pixels: ``(H, W, C)`` float64, 1 <= C <= 16.
        palette: ``(K, C)`` float64 rows, ``K >= 1``.
        weight: ``(C,)`` float64 channel weights.
        pixel_group: ``(H, W)`` int8 group of every pixel, -1 for no search.
        entry_group: ``(K,)`` int8 bit mask of the groups that may take every row.
        fixed: ``(H, W)`` int32 row of the pixels that are not searched.
        strength: ``(H, W)`` float32 in [0, 1].
        max_error: largest error a channel carries, ``>= 0``.

    Returns:
        ``(H, W)`` int32 palette rows.

    Raises:
        ValueError: a shape, dtype or value is out of range (the message names the argument).
    """
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.float64 or pixels.ndim != 3:
        raise ValueError(f"pixels must be a float64 array (H, W, C), got {_describe(pixels)}")
    h, w, c = pixels.shape
    pal = np.ascontiguousarray(palette, dtype=np.float64)
    if pal.ndim != 2 or pal.shape[1] != c or pal.shape[0] < 1:
        raise ValueError(f"palette must be (K, {c}) with K >= 1, got {_describe(palette)}")
    k = pal.shape[0]
    checks = (
        ("weight", weight, (c,), np.float64),
        ("pixel_group", pixel_group, (h, w), np.int8),
        ("entry_group", entry_group, (k,), np.int8),
        ("fixed", fixed, (h, w), np.int32),
        ("strength", strength, (h, w), np.float32),
    )
    for name, a, shape, dtype in checks:
        if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
            raise ValueError(
                f"{name} must be a {np.dtype(dtype).name} array of shape {shape}, "
                f"got {_describe(a)}"
            )
    if not (np.isfinite(max_error) and max_error >= 0):
        raise ValueError(f"max_error must be a finite number >= 0, got {max_error!r}")
    index = np.empty((h, w), np.int32)
    _kernels.dither_fs_groups(
        np.ascontiguousarray(pixels),
        h,
        w,
        c,
        pal,
        k,
        np.ascontiguousarray(weight),
        np.ascontiguousarray(pixel_group),
        np.ascontiguousarray(entry_group),
        np.ascontiguousarray(fixed),
        np.ascontiguousarray(strength),
        float(max_error),
        index,
    )
    return index
