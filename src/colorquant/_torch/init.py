"""Greedy weighted k-means++ in torch (any device), from draws made on the CPU.

:func:`kmeans_plusplus_batch` seeds every image of a batch at once, without a host sync: the
potentials ``count * D(x)^2`` are summed as int64 in fixed point (exact: the same draws pick the
same points for an image alone and inside a batch, on any device).
"""

from __future__ import annotations

import numpy as np
import torch

from . import device as dev
from .histogram import FixedPoint
from .nearest import block_rows, sqdist

__all__ = ["draws", "kmeans_plusplus", "kmeans_plusplus_batch"]


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
    chosen[:1] = first.clamp_(max=n - 1)
    # Indices stay 1-element tensors: indexing with a 0-d tensor would sync with the host.
    closest = (points - points.index_select(0, chosen[:1])).pow(2).sum(1)
    u_dev = torch.from_numpy(u).to(points.device)
    for i in range(1, k):
        cumulative = torch.cumsum((w * closest).to(torch.float64), 0)
        # side="right" never lands on a point of zero potential (an already chosen centroid).
        candidates = torch.searchsorted(cumulative, u_dev[i - 1] * cumulative[-1], side="right")
        candidates.clamp_(max=n - 1)
        dist = (points[candidates][:, None, :] - points[None, :, :]).pow(2).sum(-1)
        dist = torch.minimum(dist, closest)
        best = torch.argmin((dist * w).sum(1)).view(1)
        chosen[i : i + 1] = candidates.index_select(0, best)
        closest = dist.index_select(0, best)[0]
    return chosen


def draws(rng: np.random.Generator, replicas: int, k_free: int) -> np.ndarray:
    """``(replicas, k_free, trials)`` uniform draws of ``replicas`` seedings, one after another.

    Every image of a batch takes the same draws, as :func:`colorquant.quantize` with the same
    seed does: identical images (frames of a still scene) get identical palettes. ``trials`` is
    ``2 + floor(ln k_free)``; without fixed colors ``[:, 0, 0]`` picks the first centroid.
    """
    trials = 2 + int(np.log(max(k_free, 1)))
    return np.stack([rng.random((k_free, trials)) for _ in range(replicas)])


def kmeans_plusplus_batch(
    points: torch.Tensor,
    counts: torch.Tensor,
    k: int,
    u: torch.Tensor,
    unit: FixedPoint,
    fixed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy weighted k-means++ on every image at once: ``(B, k, C)`` starting centroids.

    Args:
        points: ``(B, M, C)`` float32; ``counts``: ``(B, M)`` int64 (0 on padding).
        k: centroids per image, fixed ones included.
        u: ``(B, k - F, trials)`` float32 draws in [0, 1) (``F`` fixed colors).
        unit: fixed-point units of the potentials.
        fixed: ``(F, C)`` coordinates every image keeps as its first rows, ``F < k``.

    Each step samples ``trials`` candidates with probability ``count * D(x)^2`` (a point of
    zero potential, an already chosen one, is never drawn) and keeps the one that lowers the
    potential most, the first on ties.
    """
    batch, m, c = points.shape
    device = points.device
    n_fixed = 0 if fixed is None else fixed.shape[0]
    centers = torch.empty(batch, k, c, dtype=torch.float32, device=device)
    # A (B, rows, T) float32 block and its int64 cost: three blocks' worth under the budget.
    step = block_rows(batch, 3 * max(u.shape[2], 1), device)
    scaled = unit.scaled(counts)
    with dev.exact_math(device):
        if fixed is not None and n_fixed:
            centers[:, :n_fixed] = fixed.to(torch.float32)
            closest = _nearest_of(points, centers[:, :n_fixed], step)
            first_step = 0
        else:
            cum = counts.cumsum(1)
            first = _sample(cum, u[:, 0, :1])
            centers[:, :1] = torch.gather(points, 1, first[..., None].expand(-1, -1, c))
            closest = sqdist(points, centers[:, :1])[..., 0]
            first_step = 1
        for i in range(first_step, k - n_fixed):
            cum = unit.cost(closest, scaled).cumsum(1)
            cand = torch.gather(points, 1, _sample(cum, u[:, i])[..., None].expand(-1, -1, c))
            total = torch.zeros(batch, cand.shape[1], dtype=torch.int64, device=device)
            for start in range(0, m, step):
                d = sqdist(points[:, start : start + step], cand)  # (B, rows, T)
                torch.minimum(d, closest[:, start : start + step, None], out=d)
                total += unit.cost(d, scaled[:, start : start + step, None]).sum(1)
            best = total.argmin(1)  # (B,) the first on ties
            chosen = torch.gather(cand, 1, best[:, None, None].expand(-1, 1, c))
            centers[:, n_fixed + i : n_fixed + i + 1] = chosen
            closest = torch.minimum(closest, sqdist(points, chosen)[..., 0])
    return centers


def _sample(cum: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` rows drawn from the int64 cumulative potentials ``cum`` by draws ``u``."""
    total = cum[:, -1:]
    target = torch.minimum((u * total.to(torch.float32)).to(torch.int64), total - 1)
    # side="right": the first row whose cumulative potential exceeds the target, so a row of
    # zero potential is never drawn while any other has some.
    return torch.searchsorted(cum, target, side="right").clamp_(max=cum.shape[1] - 1)


def _nearest_of(points: torch.Tensor, centers: torch.Tensor, step: int) -> torch.Tensor:
    """``(B, M)`` float32 squared distance of every point to its nearest of ``centers``."""
    out = torch.empty(points.shape[:2], dtype=torch.float32, device=points.device)
    for start in range(0, points.shape[1], step):
        out[:, start : start + step] = sqdist(points[:, start : start + step], centers).amin(2)
    return out
