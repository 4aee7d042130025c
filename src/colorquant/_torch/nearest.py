"""Nearest palette color of every point, in torch (any device), batched over a leading dim.

Distances are direct differences ``sum_c (x_c - p_c)^2`` in float32 (at most 6 coordinates:
cheap), so autocast and TF32 cannot touch them: no matrix product. They
are computed in chunks of points so that one ``(B, rows, K)`` block (with its one temporary)
stays within the budget (``MEMORY_BUDGET``, or the device's free memory on CUDA), and the argmin
of each chunk is taken before the next one is computed. With ``exact=True`` every point whose
best and second-best float32 distances are closer than their rounding bound is re-decided in
:func:`colorquant._torch.device.exact_dtype` (float64; on MPS float32, the same rule as the
chunk's argmin), so the result equals a float64 brute force, ties included (the lowest index
wins).
"""

from __future__ import annotations

import torch

from . import device as dev

__all__ = [
    "MEMORY_BUDGET",
    "assign",
    "block_rows",
    "direct_sqdist",
    "nearest",
    "sqdist",
    "two_nearest",
]

MEMORY_BUDGET = 16 * 2**20
"""Bytes of the one ``(B, rows, K)`` float32 distance block (with its one temporary) alive at a
time, where the device does not tell its free memory (CPU, MPS). On CUDA the budget is an eighth
of the free memory, between 1 MiB and 8 times this. The compiled CPU core needs no such block
(it searches point by point)."""

# float32 error of a distance, relative to |x|^2 + |c|^2: a few ulps, taken wide.
_AMBIGUITY = 4e-6


def budget_bytes(device: torch.device) -> int:
    """Bytes one distance block may take on ``device`` (see ``MEMORY_BUDGET``)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(max(2**20, min(free // 8, 8 * MEMORY_BUDGET)))
    return int(MEMORY_BUDGET)


def block_rows(batch: int, k: int, device: torch.device) -> int:
    """Rows of points per chunk: ``(batch, rows, k)`` float32 and a temporary fit the budget."""
    return max(256, budget_bytes(device) // (8 * max(batch * k, 1)))


def sqdist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``(B, n, K)`` float32 squared distances, direct differences in one fused kernel.

    Args:
        x: ``(B, n, C)`` float32 points.
        c: ``(B, K, C)`` float32 centroids.

    ``torch.cdist`` without its matrix-product path (no autocast, no TF32: it sums the
    squared differences of each pair) then squared: within about 4e-7 relative of the exact
    value, and every element computed by the same operations whatever the shapes, so a point's
    distances do not depend on its batch. MPS takes :func:`direct_sqdist`.
    """
    if x.device.type == "mps":
        return direct_sqdist(x, c)
    return torch.cdist(x, c, compute_mode="donot_use_mm_for_euclid_dist").square_()


def direct_sqdist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """:func:`sqdist` one coordinate at a time: ``sum_c (x_c - p_c)^2``, each step rounded
    (exact for 8-bit colors); one temporary block besides the result."""
    d = x[..., 0, None] - c[:, None, :, 0]
    d.square_()
    tmp = torch.empty_like(d)
    for j in range(1, x.shape[-1]):
        torch.sub(x[..., j, None], c[:, None, :, j], out=tmp)
        d.add_(tmp.square_())
    return d


def _redecide(x: torch.Tensor, c: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Nearest centroid of the points ``rows`` (``(H, 2)`` image, point) in float64."""
    dtype = dev.exact_dtype(x.device)
    out = torch.empty(rows.shape[0], dtype=torch.int64, device=x.device)
    step = max(1, 2**22 // max(c.shape[1] * c.shape[2], 1))
    for start in range(0, rows.shape[0], step):
        b, j = rows[start : start + step, 0], rows[start : start + step, 1]
        direct = (x[b, j].to(dtype)[:, None, :] - c[b].to(dtype)).pow(2).sum(-1)
        out[start : start + step] = direct.argmin(1)
    return out


def assign(
    x: torch.Tensor, c: torch.Tensor, *, exact: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every point of every image: ``(labels, dist2)``.

    Args:
        x: ``(B, M, C)`` float points (padding rows are fine: they get some label).
        c: ``(B, K, C)`` float centroids, ``K >= 1``.
        exact: re-decide near ties in the exact dtype (one host sync per chunk, for the final
            mapping; the K-means iterations pass ``False`` and never sync).

    Returns:
        ``(B, M)`` int64 labels and ``(B, M)`` float32 squared distances to them (the float32
        direct ones; for a re-decided point, to the float32 best).
    """
    batch, m, _ = x.shape
    k = c.shape[1]
    labels = torch.empty(batch, m, dtype=torch.int64, device=x.device)
    dist2 = torch.empty(batch, m, dtype=torch.float32, device=x.device)
    step = block_rows(batch, k, x.device)
    redecide = exact and k > 1 and dev.exact_dtype(x.device) == torch.float64
    with dev.exact_math(x.device):
        x32, c32 = x.detach().to(torch.float32), c.detach().to(torch.float32)
        cn = (c32 * c32).sum(-1).amax(1)  # (B,)
        for start in range(0, m, step):
            xs = x32[:, start : start + step]
            d = sqdist(xs, c32)
            best, idx = d.min(2)
            if redecide:
                two = d.topk(2, dim=2, largest=False).values
                bound = _AMBIGUITY * ((xs * xs).sum(-1) + cn[:, None]) + 1e-30
                hard = torch.nonzero(two[..., 1] - two[..., 0] <= bound)
                if hard.numel():
                    rows = torch.stack((hard[:, 0], hard[:, 1] + start), 1)
                    idx[hard[:, 0], hard[:, 1]] = _redecide(x.detach(), c.detach(), rows)
            labels[:, start : start + step] = idx
            dist2[:, start : start + step] = best
    return labels, dist2


def nearest(
    points: torch.Tensor, palette: torch.Tensor, *, exact: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index, dist2)`` of the nearest palette row of every point; see ``colorquant.nearest``.

    One image is a batch of one: :func:`assign` with ``B = 1``. ``dist2`` is computed from the
    differences in the dtype of ``points`` (differentiable in both inputs).
    """
    index = assign(points[None], palette[None], exact=exact)[0][0]
    with dev.exact_math(points.device):
        dist2 = (points - palette.to(points.dtype)[index]).pow(2).sum(1)
    return index, dist2


def two_nearest(
    points: torch.Tensor, palette: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest palette index with the squared distances to the nearest and second nearest.

    The distances are float32 direct differences (what Hamerly's bounds need; not re-decided).

    Args:
        points: ``(N, C)`` float tensor.
        palette: ``(K, C)`` float tensor, ``K >= 2``.

    Returns:
        ``(index, first, second)``: ``(N,)`` int64, and two ``(N,)`` float32 squared distances.
    """
    if palette.shape[0] < 2:
        raise ValueError("two_nearest needs a palette of at least 2 colors")
    k = palette.shape[0]
    step = block_rows(1, k, points.device)
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    with dev.exact_math(points.device):
        x = points.detach().to(torch.float32)[None]
        c = palette.detach().to(torch.float32)[None]
        for start in range(0, x.shape[1], step):
            two = sqdist(x[:, start : start + step], c)[0].topk(2, dim=1, largest=False)
            parts.append((two.indices[:, 0], two.values))
    if not parts:
        empty = torch.empty(0, dtype=torch.float32, device=points.device)
        return torch.empty(0, dtype=torch.int64, device=points.device), empty, empty
    index = torch.cat([p[0] for p in parts])
    vals = torch.cat([p[1] for p in parts])
    return index, vals[:, 0], vals[:, 1]
