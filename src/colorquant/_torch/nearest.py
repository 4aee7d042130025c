"""Nearest palette color of every point, in torch (any device).

Distances come from ``|x|^2 - 2 x.c + |c|^2`` (one matrix product) in float32, in chunks so that
no ``chunk x K`` block exceeds ``MEMORY_BUDGET`` bytes; with ``exact=True`` every point whose
best and second-best distances are closer than the float32 rounding bound is re-decided in
float64 with the direct ``sum((x - c)^2)``, so the result equals a float64 brute force, ties
included (the lowest index wins).
"""

from __future__ import annotations

import torch

__all__ = ["MEMORY_BUDGET", "nearest", "two_nearest"]

MEMORY_BUDGET = 16 * 2**20
"""Bytes of one ``chunk x K`` float32 distance block."""

# float32 error of the expanded distance, relative to |x|^2 + |c|^2: ~16 ulps, taken wide.
_AMBIGUITY = 1e-6


def _brute_force(x: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Index of the nearest palette row, direct float64 differences, lowest index on ties."""
    d = (x.to(torch.float64)[:, None, :] - palette.to(torch.float64)[None, :, :]).pow(2).sum(-1)
    return d.argmin(dim=1)


def _search(
    x: torch.Tensor, palette: torch.Tensor, chunk: int, exact: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    m2 = -2.0 * palette.T
    cn = (palette * palette).sum(1)
    parts: list[torch.Tensor] = []
    ambiguous: list[torch.Tensor] = []
    for start in range(0, x.shape[0], chunk):
        xc = x[start : start + chunk]
        d = torch.addmm(cn, xc, m2)
        if exact and palette.shape[0] > 1:
            two = d.topk(2, dim=1, largest=False)
            idx = two.indices[:, 0]
            gap = two.values[:, 1] - two.values[:, 0]
            bound = _AMBIGUITY * ((xc * xc).sum(1) + cn.max()) + 1e-30
            ambiguous.append(torch.nonzero(gap <= bound).squeeze(1) + start)
        else:
            idx = d.argmin(dim=1)
        parts.append(idx)
    index = torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64, device=x.device)
    return index, (torch.cat(ambiguous) if ambiguous else None)


def nearest(
    points: torch.Tensor, palette: torch.Tensor, *, exact: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index, dist2)`` of the nearest palette row of every point; see ``colorquant.nearest``."""
    k = palette.shape[0]
    chunk = max(256, MEMORY_BUDGET // (4 * k))
    x = points.detach()
    c = palette.detach().to(x.dtype)
    index, ambiguous = _search(x.to(torch.float32), c.to(torch.float32), chunk, exact)
    if ambiguous is not None and ambiguous.numel() > 0:
        for start in range(0, ambiguous.numel(), chunk):
            rows = ambiguous[start : start + chunk]
            index[rows] = _brute_force(x[rows], c)
    dist2 = (points - palette[index]).pow(2).sum(1)
    return index, dist2


def two_nearest(
    points: torch.Tensor, palette: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest palette index with the squared distances to the nearest and second nearest.

    The distances come from the expanded form (float32 rounding, clamped at 0): good for the
    bounds of the pruned K-means, not for exact decisions.

    Args:
        points: ``(N, C)`` float tensor.
        palette: ``(K, C)`` float tensor, ``K >= 2``.

    Returns:
        ``(index, first, second)``: ``(N,)`` int64, and two ``(N,)`` float32 squared distances.
    """
    if palette.shape[0] < 2:
        raise ValueError("two_nearest needs a palette of at least 2 colors")
    k = palette.shape[0]
    chunk = max(256, MEMORY_BUDGET // (4 * k))
    x = points.detach().to(torch.float32)
    c = palette.detach().to(torch.float32)
    cn = (c * c).sum(1)
    parts = []
    for start in range(0, x.shape[0], chunk):
        xc = x[start : start + chunk]
        d = torch.addmm(cn, xc, -2.0 * c.T)
        two = d.topk(2, dim=1, largest=False)
        xn = (xc * xc).sum(1, keepdim=True)
        parts.append((two.indices[:, 0], two.values + xn))
    index = torch.cat([p[0] for p in parts])
    vals = torch.cat([p[1] for p in parts])
    return index, vals[:, 0].clamp_min(0), vals[:, 1].clamp_min(0)
