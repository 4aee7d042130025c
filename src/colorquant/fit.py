"""The fit: a color histogram -> a palette, as pure functions.

    histogram -> [coarse cells -> seed (k-means++, restarts) -> Lloyd] -> Lloyd on the exact
    histogram -> (RGBA: a Lloyd that keeps pixels on entries of their kind) -> 8-bit palette

Nothing here holds state: every function takes the histogram, the palette size, the
:class:`~colorquant.options.FitOptions` and the device, and returns a :class:`Fit` (or its
parts). :class:`colorquant.Quantizer` keeps the last one; :mod:`colorquant.remap` maps pixels
with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._array import Array, is_tensor, to_numpy
from ._checks import InputError
from .alpha import (
    bin_rgba,
    decode_rgba,
    encode_rgba,
    kind_of,
    nearest_of_kind,
    pack_rgba,
    refine_kinds,
    transparent_points,
    with_alpha,
)
from .color import ColorSpace, decode_colors, encode_colors
from .histogram import ColorHistogram, bin_colors, cell_means, pack_rgb
from .init import initial_centroids
from .kmeans import KMeansResult, fit_adam, inherit_bounds, weighted_kmeans_warm
from .nearest import nearest
from .options import ADAM_STEPS, FitOptions, restarts

METHOD_TORCH = ("kmeans", "k-means++")
"""The method and seeding the batched torch fit runs (the others run the stage dispatchers)."""

__all__ = [
    "Fit",
    "best_seeded_run",
    "decode_points",
    "encode_points",
    "fit_colors",
    "fit_groups_apart",
    "fit_histogram",
    "fit_shared",
    "nearest_rows",
    "on_device",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fit:
    """A fitted (or given) palette and the record of its fit.

    Attributes:
        palette: ``(K, 3)`` uint8: NumPy on the CPU, a tensor on other devices; ``(K, 4)``
            NumPy RGBA.
        history: the objective after each iteration (empty for a given palette).
        n_iter: iterations run.
        converged: whether the fit met its tolerance.
        method: ``"kmeans"``, ``"adam"`` or ``"palette"`` (a given palette).
        n_fixed: the first ``n_fixed`` rows are fixed colors, kept in every result palette.
        pinned: a given or shared palette: every result lists all its rows, in its order
            (index space).
    """

    palette: Any
    history: tuple[float, ...] = ()
    n_iter: int = 0
    converged: bool = True
    method: str = "palette"
    n_fixed: int = 0
    pinned: bool = False


def on_device(array: np.ndarray, device: str) -> Array:
    """``array`` itself on the CPU, else a tensor of it on ``device``."""
    if device == "cpu":
        return array
    import torch

    return torch.from_numpy(array).to(device)


def _place(colors: np.ndarray, device: str) -> Any:
    """Palette colors where the fit keeps them: RGBA on the host, RGB on the device."""
    return colors if colors.shape[1] == 4 else on_device(colors, device)


def encode_points(colors: Any, space: ColorSpace) -> Any:
    """Clustering coordinates of ``(M, 3)`` uint8 colors (NumPy or tensor), or of ``(M, 4)``
    RGBA (premultiplied: :func:`colorquant.alpha.encode_rgba`, NumPy)."""
    if colors.shape[1] == 4:
        return encode_rgba(to_numpy(colors), space)
    return encode_colors(colors, space)


def decode_points(points: Any, rgba: bool, options: FitOptions) -> Any:
    """8-bit colors of clustering coordinates: ``(K, 3)``, or ``(K, 4)`` RGBA with ``rgba``."""
    if rgba:
        return decode_rgba(to_numpy(points), options.color_space, options.keep_transparent_rgb)
    return decode_colors(points, options.color_space)


def nearest_rows(colors: Any, points: Any, palette: Any, palette_points: Any) -> np.ndarray:
    """The palette row each histogram color maps to: ``(M,)`` int64 on the host.

    With an RGBA palette, each color among the rows of its kind (:func:`alpha.kind_of`: opaque
    colors on opaque rows, fully transparent ones on transparent rows); else the nearest row.
    ``points`` and ``palette_points`` are ``colors`` and ``palette`` encoded.
    """
    if palette.shape[1] == 4:
        kinds = kind_of(to_numpy(colors)[:, 3])
        rows = kind_of(to_numpy(palette)[:, 3])
        return nearest_of_kind(to_numpy(points), kinds, to_numpy(palette_points), rows)[0]
    return to_numpy(nearest(points, palette_points)[0])


def _as_dtype(x: Any, like: Any) -> Any:
    return x.astype(like.dtype) if isinstance(x, np.ndarray) else x.to(like.dtype)


def _rows_in(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: which ``(N, C)`` uint8 rows occur in the ``(M, C)`` uint8 ``table``."""
    if len(table) == 0:
        return np.zeros(len(rows), dtype=bool)
    pack = pack_rgba if rows.shape[1] == 4 else pack_rgb
    return np.isin(pack(rows), pack(table))


def _concat_rows(first: Any, second: Any) -> Any:
    if isinstance(first, np.ndarray):
        return np.concatenate([first, second])
    import torch

    return torch.cat([first, second])


def _arange(n: int, like: Array) -> Array:
    if isinstance(like, np.ndarray):
        return np.arange(n)
    import torch

    return torch.arange(n, device=like.device)


def _groups_kept(points: np.ndarray, run: KMeansResult[Any], space: ColorSpace) -> bool:
    """Whether every point's centroid lies in the point's group (transparent or visible)."""
    mine = transparent_points(points, space)
    theirs = transparent_points(to_numpy(run.centroids), space)[to_numpy(run.labels)]
    return bool(np.array_equal(mine, theirs))


def fit_histogram(
    hist: ColorHistogram,
    n_colors: int,
    options: FitOptions,
    device: str,
    points: Any = None,
) -> Fit:
    """Fit ``n_colors`` colors to a histogram, then posterize them if ``options`` says so.

    Args:
        hist: distinct ``(M, 3)`` uint8 colors (NumPy, or a tensor on ``device``) or ``(M, 4)``
            NumPy RGBA, with ``(M,)`` pixel counts.
        n_colors: palette size K, 1..65536.
        options: the fit's settings.
        device: ``"cpu"``, or the torch device the RGB fit runs on.
        points: ``hist.colors`` encoded (:func:`encode_points`), when already known.

    Returns:
        The :class:`Fit`: ``(K', 3)`` uint8 palette (``K' <= K``; ``(K', 4)`` with alpha).
    """
    fit = fit_colors(hist, points, n_colors, options, device)
    if options.posterize is None:
        return fit
    palette = to_numpy(fit.palette).copy()
    free = palette[fit.n_fixed :, :3]  # alpha is kept
    levels = (1 << options.posterize) - 1
    free[:] = np.rint(np.rint(free * (levels / 255.0)) * (255.0 / levels)).astype(np.uint8)
    return replace(fit, palette=_place(palette, device))


def fit_shared(hist: ColorHistogram, n_colors: int, options: FitOptions, device: str) -> Fit:
    """The palette a set of images shares (fitted on their merged histogram), its rows in one
    order, ``pinned``.

    The order is decided on the fitted colors: the fixed colors first, as given; then the
    others by the pixels of ``hist`` they take, most first, the lower row first on ties (with an
    alpha channel, the translucent rows before the opaque ones: a short ``tRNS`` chunk). Every
    result then lists them all, in this order.
    """
    space = options.color_space
    points = encode_points(hist.colors, space)  # once, for the fit and the count
    fit = fit_histogram(hist, n_colors, options, device, points)
    index = nearest_rows(hist.colors, points, fit.palette, encode_points(fit.palette, space))
    palette = to_numpy(fit.palette)
    counts = np.bincount(index, weights=to_numpy(hist.counts), minlength=len(palette))
    rank = np.arange(len(palette))
    first = rank < fit.n_fixed  # fixed colors keep their place, at the front
    keys: tuple[np.ndarray, ...] = (rank, np.where(first, 0.0, -counts))
    if palette.shape[1] == 4:
        keys = (*keys, palette[:, 3] == 255)
    order = np.lexsort((*keys, ~first))
    return replace(fit, palette=_place(palette[order], device), pinned=True)


def fit_colors(
    hist: ColorHistogram, points: Any, n_colors: int, options: FitOptions, device: str
) -> Fit:
    """:func:`fit_histogram` without the posterizing: seeding, coarse-to-fine Lloyd, exact Lloyd
    (or Adam), fixed colors kept."""
    k = n_colors
    rgba = hist.colors.shape[1] == 4
    fixed = with_alpha(options.fixed) if rgba else options.fixed
    n_fixed = len(fixed)
    if len(hist) <= k:
        # At most K distinct colors: the palette is the colors themselves, lossless (the
        # fixed colors first, when they fit beside them).
        colors = to_numpy(hist.colors)
        extra = colors[~_rows_in(colors, fixed)]
        if n_fixed + len(extra) <= k:
            both = np.concatenate([fixed, extra])
            palette = _place(both, device) if n_fixed or rgba else hist.colors[:]
            return Fit(palette, (0.0,), 0, True, options.method, n_fixed)
    if rgba:
        clear = to_numpy(hist.colors)[:, 3] == 0
        if clear.any() and not clear.all() and k < 2:
            raise InputError(
                "n_colors must be at least 2 for an image with both fully transparent and "
                "visible pixels (one entry each), got 1"
            )
        if clear.any() and n_fixed >= k:
            raise InputError(
                f"fixed_colors take all {k} palette entries: none is left for the fully "
                "transparent pixels (use fewer fixed colors or a larger n_colors)"
            )
    s = options.settings
    space = options.color_space
    if is_tensor(hist.colors) and not rgba and (options.method, options.init) == METHOD_TORCH:
        # A tensor on a device: the batched torch fit, a batch of one (the same stages).
        from ._torch.pipeline import fit_histogram as fit_on_torch

        stages = replace(s, max_iter=options.max_iter or s.max_iter, tol=options.tol or s.tol)
        palette, n_iter, objective = fit_on_torch(
            hist.colors,
            hist.counts,
            k,
            space,
            stages,
            n_init=restarts(s, k),
            seed=options.seed,
            fixed8=_place(fixed, device) if n_fixed else None,
        )
        return Fit(palette, (objective,), n_iter, True, options.method, n_fixed)
    if points is None:
        points = encode_points(hist.colors, space)
    weights = _as_dtype(hist.counts, points)
    fixed8: Any = _place(fixed, device)
    fixed_points = _as_dtype(encode_points(fixed8, space), points)
    generator = np.random.default_rng(options.seed)
    if options.method == "adam":
        # Adam from the seeds alone, no Lloyd step anywhere: the two fits compare cleanly.
        start = initial_centroids(options.init, points, weights, k, seed=generator)
        steps = options.max_iter if options.max_iter is not None else ADAM_STEPS
        adam = fit_adam(points, weights, start, max_iter=steps, tol=options.tol or 1e-5)
        palette = decode_points(adam.centroids, rgba, options)
        return Fit(palette, adam.history, adam.n_iter, adam.converged, options.method)
    history: list[float] = []
    n_iter = 0
    # Coarse-to-fine: Lloyd on the means of ever finer RGB cells, each level starting from
    # the centroids, labels and bounds of the one before; a level with too few cells for K
    # (or hardly fewer than the exact histogram) is skipped.
    parent: tuple[Any, Any, Any, Any] | None = None
    run: KMeansResult[Any] | None = None
    for bits in s.levels:
        cell, n_cells = bin_rgba(hist.colors, bits) if rgba else bin_colors(hist.colors, bits)
        if n_cells * 2 > len(hist):
            break  # hardly fewer points than the exact histogram: go straight there
        if n_cells < 4 * k:
            continue  # too few cells to place K centroids in
        if run is None and n_cells < s.seed_ratio * k and bits != s.levels[-1]:
            continue  # seed on a finer level, unless this is the last coarse one
        cell_points, cell_weight, scatter = cell_means(points, weights, cell, n_cells)
        if parent is None or run is None:
            run, lower = best_seeded_run(
                cell_points, cell_weight, fixed_points, k, options, generator
            )
        else:
            run, lower = weighted_kmeans_warm(
                cell_points,
                cell_weight,
                run.centroids,
                max_iter=s.coarse_iter,
                tol=s.coarse_tol,
                warm=inherit_bounds(parent, cell, n_cells, cell_points),
                n_fixed=n_fixed,
            )
        parent = (cell, cell_points, run.labels, lower)
        # A cell's colors share one label at this level, so the objective on the exact
        # histogram is the cell-mean objective plus the constant scatter inside the cells:
        # adding it keeps the history in one unit, non-increasing into the next level.
        history.extend(j + scatter for j in run.history)
        n_iter += run.n_iter
    max_iter = options.max_iter if options.max_iter is not None else s.max_iter
    tol = options.tol if options.tol is not None else s.tol
    if run is None:
        run, _ = best_seeded_run(points, weights, fixed_points, k, options, generator)
        history.extend(run.history)
        n_iter += run.n_iter
        parent = None
    everything = _arange(len(hist), points)
    warm = None if parent is None else inherit_bounds(parent, everything, len(hist), points)
    result, _ = weighted_kmeans_warm(
        points, weights, run.centroids, max_iter=max_iter, tol=tol, warm=warm, n_fixed=n_fixed
    )
    history.extend(result.history)
    n_iter += result.n_iter
    if rgba and not _groups_kept(points, result, space):
        return fit_groups_apart(hist, points, n_colors, options, device)
    centroids = result.centroids
    if rgba:  # opaque pixels only on opaque entries: a constrained Lloyd from the fit
        centroids, _ = refine_kinds(
            points,
            to_numpy(weights),
            kind_of(to_numpy(hist.colors)[:, 3]),
            to_numpy(centroids),
            space,
            max_iter=max_iter + 1,
            tol=tol,
        )
    palette = decode_points(centroids, rgba, options)
    if n_fixed:
        palette[:n_fixed] = _place(fixed, device)  # exact, whatever the space
    log.info("fit: %d distinct colors, %d iterations, J=%.6g", len(hist), n_iter, history[-1])
    return Fit(palette, tuple(history), n_iter, result.converged, options.method, n_fixed)


def fit_groups_apart(
    hist: ColorHistogram, points: np.ndarray, n_colors: int, options: FitOptions, device: str
) -> Fit:
    """Fit the visible colors with ``n_colors - 1`` centroids, the transparent ones with one.

    The joint fit keeps the two groups apart whenever its seeding gave each a centroid
    (they lie so far apart that it nearly always does); this is the fallback.

    Args:
        hist: ``(M, 4)`` RGBA colors and counts, fully transparent ones among them.
        points: ``(M, 5)`` ``hist.colors`` encoded (:func:`encode_points`).
        n_colors, options, device: as for :func:`fit_histogram` (not posterized here).
    """
    peel = transparent_points(points, options.color_space)
    colors, counts = to_numpy(hist.colors), to_numpy(hist.counts)
    visible = ColorHistogram(colors[~peel], counts[~peel], None)
    fit = fit_colors(visible, None, n_colors - 1, options, device)
    w = counts[peel].astype(np.float64)
    mean = (w @ points[peel] / w.sum())[None, :]
    palette = np.concatenate([to_numpy(fit.palette), decode_points(mean, True, options)])
    return replace(fit, palette=palette)


def best_seeded_run(
    points: Any,
    weights: Any,
    fixed_points: Any,
    n_colors: int,
    options: FitOptions,
    generator: np.random.Generator,
) -> tuple[KMeansResult[Any], Any]:
    """Seed several times (``n_init`` at K <= 64, fewer above), keep the lowest objective.

    The fixed colors' points (``(F, C)``) come first in every start; the seeding places the
    others. Returns the best run and its lower bounds.
    """
    s = options.settings
    n_fixed = len(fixed_points)
    best: tuple[KMeansResult[Any], Any] | None = None
    for _ in range(restarts(s, n_colors)):
        seed = fixed_points
        if n_colors > n_fixed:
            free = initial_centroids(
                options.init, points, weights, n_colors - n_fixed, seed=generator
            )
            seed = _concat_rows(fixed_points, free)
        run = weighted_kmeans_warm(
            points, weights, seed, max_iter=s.coarse_iter, tol=s.coarse_tol, n_fixed=n_fixed
        )
        if best is None or run[0].inertia < best[0].inertia:
            best = run
    assert best is not None
    return best
