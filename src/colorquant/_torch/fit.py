"""Histograms -> palettes for a whole batch at once: the coarse-to-fine fit, in torch.

The same stages, with the same meaning of ``speed``, as the CPU fit of
:class:`colorquant.Quantizer`: the seeding and the first Lloyd runs work on the weighted means
of coarse RGB cells (``settings.levels``), each finer level starts from the centroids of the one
before, the exact histogram comes last (at most ``settings.max_iter`` iterations). Each image
follows its own plan (which levels it has enough cells for, where it seeds), decided on the
host from its cell counts, and stops on its own objective; k-means++ runs ``n_init`` times per
image (the restarts ride in the batch) and each image keeps its best. Images with at most K
colors (fixed ones included) keep them.

One image is a batch of one: an image gives the same palette alone and inside any batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .histogram import FixedPoint, Histograms, cell_histograms
from .init import draws, kmeans_plusplus_batch
from .kmeans import lloyd_batch

__all__ = ["Stages", "fit_palettes"]


class Stages(Protocol):
    """What one ``speed`` sets (``colorquant.quantize.FitSettings`` is one)."""

    @property
    def levels(self) -> tuple[int, ...]: ...
    @property
    def seed_ratio(self) -> int: ...
    @property
    def coarse_iter(self) -> int: ...
    @property
    def coarse_tol(self) -> float: ...
    @property
    def max_iter(self) -> int: ...
    @property
    def tol(self) -> float: ...


@dataclass(frozen=True)
class Fitted:
    """Fitted centroids of a batch.

    Attributes:
        centers: ``(B, K, C)`` float32 centroids in the clustering space; an image with fewer
            colors repeats its last one past ``n_colors``.
        n_colors: ``(B,)`` int64 rows each image has (``min(K, distinct colors + F)``).
        kept: ``(B,)`` bool, images whose palette is their own colors (no fit).
        n_iter: ``(B,)`` int64 Lloyd iterations each image ran, all levels.
        objective: ``(B,)`` int64 the last assignment's objective on the exact histogram, in
            fixed point (``unit.dist`` per squared distance per pixel; 0 when kept).
    """

    centers: torch.Tensor
    n_colors: torch.Tensor
    kept: torch.Tensor
    n_iter: torch.Tensor
    objective: torch.Tensor


def _plans(
    hist: Histograms, k: int, stages: Stages, fitted: list[int]
) -> list[tuple[int, list[int], list[int]]]:
    """For each coarse level: ``(bits, images seeding there, images refining there)``.

    The rules of the CPU fit, image by image: a level with hardly fewer cells than colors ends
    the coarse stages; one with fewer than ``4 K`` cells is skipped; the seeding waits for a
    level with ``seed_ratio * K`` cells, unless it is the last coarse one.
    """
    if not stages.levels or not fitted:
        return []
    device = hist.colors.device
    rows = torch.tensor(fitted, device=device)
    colors, real = hist.colors[rows], hist.counts[rows] > 0
    cells = []
    for bits in stages.levels:
        keys = (colors >> (8 - bits)).to(torch.int64)
        keys = (keys[..., 0] << 16 | keys[..., 1] << 8 | keys[..., 2]).masked_fill(~real, -1)
        ordered = keys.sort(1).values
        fresh = (ordered[:, 1:] != ordered[:, :-1]) & (ordered[:, 1:] >= 0)
        cells.append(fresh.sum(1) + (ordered[:, 0] >= 0).to(torch.int64))
    counts = torch.stack(cells, 1).tolist()  # one host sync for every level
    distinct = hist.distinct[rows].tolist()
    seeds: list[list[int]] = [[] for _ in stages.levels]
    refines: list[list[int]] = [[] for _ in stages.levels]
    for row, image in enumerate(fitted):
        seeded = False
        for level, bits in enumerate(stages.levels):
            n_cells = counts[row][level]
            if n_cells * 2 > distinct[row]:
                break
            if n_cells < 4 * k:
                continue
            if not seeded and n_cells < stages.seed_ratio * k and bits != stages.levels[-1]:
                continue
            (refines if seeded else seeds)[level].append(image)
            seeded = True
    plans = zip(stages.levels, seeds, refines, strict=True)
    return [p for p in plans if p[1] or p[2]]


def _run_level(
    points: torch.Tensor,
    counts: torch.Tensor,
    starts: torch.Tensor,
    n_seed: int,
    k: int,
    n_init: int,
    u: torch.Tensor,
    unit: FixedPoint,
    stages: Stages,
    fixed: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One level: the first ``n_seed`` rows seed ``n_init`` times and keep their best run, the
    others refine ``starts``; ``(centers, n_iter)`` of every row, coarse iterations."""
    n_fixed = 0 if fixed is None else fixed.shape[0]
    rows = points.shape[0]
    if n_seed:
        seed_pts = points[:n_seed].repeat(n_init, 1, 1)  # replica r: rows r * n_seed ...
        seed_cnt = counts[:n_seed].repeat(n_init, 1)
        seeds = kmeans_plusplus_batch(seed_pts, seed_cnt, k, u, unit, fixed)
        points = torch.cat([seed_pts, points[n_seed:]])
        counts = torch.cat([seed_cnt, counts[n_seed:]])
        starts = torch.cat([seeds, starts])
    centers, objective, n_iter = lloyd_batch(
        points, counts, starts, unit, max_iter=stages.coarse_iter, tol=stages.coarse_tol,
        n_fixed=n_fixed,
    )  # fmt: skip
    if not n_seed:
        return centers, n_iter
    tail = centers[n_seed * n_init :], n_iter[n_seed * n_init :]
    objective = objective[: n_seed * n_init].reshape(n_init, n_seed)
    best = objective.argmin(0)  # the first restart on ties
    pick = best * n_seed + torch.arange(n_seed, device=points.device)
    centers = torch.cat([centers[pick], tail[0]])
    n_iter = torch.cat([n_iter[pick], tail[1]])
    assert centers.shape[0] == rows
    return centers, n_iter


def fit_palettes(
    hist: Histograms,
    k: int,
    stages: Stages,
    *,
    n_init: int,
    seed: int,
    unit: FixedPoint,
    fixed: torch.Tensor | None = None,
) -> Fitted:
    """Fit up to ``k`` centroids to every image's histogram.

    Args:
        hist: the batch's histograms (:func:`colorquant._torch.histogram.batch_histograms`).
        k: palette size, ``>= 1``.
        stages: the speed's settings (levels, seed_ratio, coarse_iter, coarse_tol, max_iter,
            tol).
        n_init: seedings per image (the CPU fit's restarts for this K).
        seed: seed of the draws (NumPy, on the host: the same numbers on every device).
        unit: fixed-point units of the sums.
        fixed: ``(F, C)`` coordinates every palette keeps as its first ``F`` rows, ``F <= k``.

    Returns:
        A :class:`Fitted`.
    """
    points, counts = hist.points, hist.counts
    batch, width, c = points.shape
    device = points.device
    n_fixed = 0 if fixed is None else fixed.shape[0]
    centers = torch.zeros(batch, k, c, dtype=torch.float32, device=device)
    if fixed is not None and n_fixed:
        centers[:, :n_fixed] = fixed.to(torch.float32)
    # Colors that are not fixed ones: an image with at most K of them (beside the fixed) keeps
    # them, in its histogram's order, after the fixed colors.
    extra = counts > 0
    if fixed is not None and n_fixed:
        same = (points[:, :, None, :] == fixed.to(torch.float32)[None, None]).all(-1).any(-1)
        extra = extra & ~same
    n_extra = extra.sum(1)
    kept = n_extra + n_fixed <= k
    n_colors = torch.where(kept, n_extra + n_fixed, torch.full_like(n_extra, k))
    n_iter = torch.zeros(batch, dtype=torch.int64, device=device)
    objective = torch.zeros(batch, dtype=torch.int64, device=device)
    kept_list = kept.tolist()
    fitted = [b for b in range(batch) if not kept_list[b] and n_fixed < k]
    if any(kept_list):
        order = torch.sort((~extra).to(torch.int8), dim=1, stable=True).indices
        room = min(width, k - n_fixed)
        firsts = torch.gather(points, 1, order[:, :room, None].expand(-1, -1, c))
        sel = torch.tensor([b for b in range(batch) if kept_list[b]], device=device)
        centers[sel, n_fixed : n_fixed + room] = firsts[sel]
    if fitted:
        rng = np.random.default_rng(seed)
        u_all = torch.from_numpy(draws(rng, n_init, k - n_fixed).astype(np.float32)).to(device)
        started: set[int] = set()
        for bits, seeding, refining in _plans(hist, k, stages, fitted):
            rows = torch.tensor(seeding + refining, device=device)
            cell_points, cell_counts = cell_histograms(hist, rows, bits, unit)
            u = u_all.repeat_interleave(len(seeding), 0)
            out, iters = _run_level(
                cell_points, cell_counts, centers[rows[len(seeding) :]], len(seeding), k,
                n_init, u, unit, stages, fixed,
            )  # fmt: skip
            centers[rows] = out
            n_iter[rows] += iters
            started.update(seeding)
        fresh = [b for b in fitted if b not in started]
        if fresh:  # no coarse level suited them: seed on the exact histogram
            rows = torch.tensor(fresh, device=device)
            u = u_all.repeat_interleave(len(fresh), 0)
            out, iters = _run_level(
                points[rows], counts[rows], centers[rows[:0]], len(fresh), k, n_init, u,
                unit, stages, fixed,
            )  # fmt: skip
            centers[rows] = out
            n_iter[rows] += iters
        rows = torch.tensor(fitted, device=device)
        out, final, iters = lloyd_batch(
            points[rows], counts[rows], centers[rows], unit, max_iter=stages.max_iter,
            tol=stages.tol, n_fixed=n_fixed,
        )  # fmt: skip
        centers[rows] = out
        n_iter[rows] += iters
        objective[rows] = final
    # Rows past an image's colors repeat its last one (no garbage, no NaN).
    last = (n_colors - 1).clamp(min=0)
    tail = torch.arange(k, device=device)[None, :] >= n_colors[:, None]
    fill = torch.gather(centers, 1, last[:, None, None].expand(-1, 1, c)).expand_as(centers)
    centers = torch.where(tail[..., None], fill, centers)
    return Fitted(centers, n_colors, kept, n_iter, objective)
