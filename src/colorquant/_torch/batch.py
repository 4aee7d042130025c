"""Batched K-means over many images at once, in torch (for GPUs): one palette per image.

Every stage works on all the images together, with no Python loop over images:

1. **Histograms**: one ``torch.unique`` of ``image << 24 | rgb`` keys gives every image's
   distinct colors and counts; they are laid out padded, ``(B, M, C)`` points and ``(B, M)``
   weights (0 on padding), ``M`` the largest number of distinct colors.
2. **Seeding**: greedy weighted k-means++ on every image at once (``K`` steps, each a
   ``(B, trials, M)`` block of distances); the uniform draws come from NumPy with the seed, so a
   seed gives the same palettes on every device. ``n_init`` seedings per image run together as
   a larger batch, ten Lloyd steps each, and every image goes on from its best.
3. **Lloyd**: assignments by batched matrix products in chunks of points (no block above
   ``MEMORY_BUDGET`` bytes), weighted means by ``scatter_add``, empty clusters refilled with
   their image's worst-fitting colors, until every image's objective improves by less than
   ``tol`` (relative) or ``max_iter``.
4. **Mapping**: every distinct color's nearest centroid, near ties re-decided in float64.

Images with at most K distinct colors keep their colors (lossless). The CPU path of
``colorquant.quantize_batch`` does not come here: per image, the compiled kernels are faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .histogram import unpack_rgb

__all__ = ["MEMORY_BUDGET", "BatchFit", "fit_batch"]

MEMORY_BUDGET = 64 * 2**20
"""Bytes of one ``(B, chunk, K)`` float32 distance block."""

_AMBIGUITY = 1e-6  # float32 error of the expanded distance, relative to |x|^2 + |c|^2


@dataclass(frozen=True)
class BatchFit:
    """Palettes and the label of every distinct color.

    Attributes:
        palettes: ``(B, K, C)`` float centroids in the clustering space (rows past an image's
            colors repeat its last one).
        n_colors: ``(B,)`` int64 centroids each image has (``min(K, distinct colors)``).
        labels: ``(U,)`` int64 centroid of every distinct (image, color) entry.
        inverse: ``(B * H * W,)`` int64 entry of every pixel.
        colors: ``(U, 3)`` uint8 the distinct colors; ``image_of``: ``(U,)`` their image.
        counts: ``(U,)`` int64 pixels of each entry.
    """

    palettes: torch.Tensor
    n_colors: torch.Tensor
    labels: torch.Tensor
    inverse: torch.Tensor
    colors: torch.Tensor
    image_of: torch.Tensor
    counts: torch.Tensor


def _chunk(batch: int, k: int) -> int:
    return max(256, MEMORY_BUDGET // (4 * batch * max(k, 1)))


def _sqdist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``(B, n, K)`` float32 squared distances, expanded form, clamped at 0."""
    x32, c32 = x.to(torch.float32), c.to(torch.float32)
    cross = torch.baddbmm(
        (c32 * c32).sum(-1)[:, None, :], x32, c32.transpose(1, 2), beta=1.0, alpha=-2.0
    )
    return (cross + (x32 * x32).sum(-1)[:, :, None]).clamp_min_(0.0)


def _assign(x: torch.Tensor, c: torch.Tensor, exact: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every point, ``(B, M)`` labels and squared distances (x's dtype).

    With ``exact``, points whose two best float32 distances are closer than their rounding error
    are re-decided with direct float64 differences, lowest index on ties.
    """
    batch, m, _ = x.shape
    k = c.shape[1]
    step = _chunk(batch, k)
    labels = torch.empty(batch, m, dtype=torch.int64, device=x.device)
    for start in range(0, m, step):
        xs = x[:, start : start + step]
        d = _sqdist(xs, c)
        if exact and k > 1:
            two = d.topk(2, dim=2, largest=False)
            idx = two.indices[..., 0]
            gap = two.values[..., 1] - two.values[..., 0]
            bound = _AMBIGUITY * ((xs * xs).sum(-1) + (c * c).sum(-1).amax(1, keepdim=True))
            hard = torch.nonzero(gap <= bound + 1e-30)
            if hard.numel():
                b, j = hard[:, 0], hard[:, 1]
                direct = (xs[b, j].double()[:, None, :] - c[b].double()).pow(2).sum(-1)
                idx[b, j] = direct.argmin(1)
        else:
            idx = d.argmin(2)
        labels[:, start : start + step] = idx
    own = (x - torch.gather(c, 1, labels[..., None].expand(-1, -1, x.shape[2]))).pow(2).sum(-1)
    return labels, own


def _draws(
    rng: np.random.Generator, replicas: int, batch: int, k: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means++ draws ``(replicas * batch, 1)`` and ``(replicas * batch, k - 1, trials)``.

    Each replica (restart) has its own draws; within one, every image gets the same ones, as
    :func:`colorquant.quantize` makes with the same seed: identical images (frames of a still
    scene) get identical palettes.
    """
    trials = 2 + int(np.log(k))
    u_first = torch.from_numpy(rng.random((replicas, 1, 1)))
    u = torch.from_numpy(rng.random((replicas, 1, max(k - 1, 0), trials)))
    u_first = u_first.expand(replicas, batch, 1).reshape(replicas * batch, 1)
    u = u.expand(replicas, batch, -1, -1).reshape(replicas * batch, max(k - 1, 0), trials)
    return u_first.to(device), u.to(device)


def _seed(
    x: torch.Tensor,
    w: torch.Tensor,
    k: int,
    u_first: torch.Tensor,
    u: torch.Tensor,
    fixed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy weighted k-means++ on every image at once: ``(B, k, C)`` starting centroids.

    ``fixed`` (``(F, C)``, F < k) are the first centroids of every image, already chosen.
    """
    batch, m, c = x.shape
    rows = torch.arange(batch, device=x.device)
    w64 = w.double()
    centers = torch.empty(batch, k, c, dtype=x.dtype, device=x.device)
    if fixed is not None and fixed.shape[0]:
        n_fixed = fixed.shape[0]
        centers[:, :n_fixed] = fixed.to(x.dtype)
        closest = _sqdist(x, centers[:, :n_fixed]).amin(2).to(x.dtype)
    else:
        n_fixed = 1
        cum = w64.cumsum(1)
        first = torch.searchsorted(cum, u_first * cum[:, -1:], side="right").clamp_(max=m - 1)
        centers[:, 0] = x[rows, first[:, 0]]
        closest = (x - centers[:, :1]).pow(2).sum(-1)
    for i in range(n_fixed, k):
        cum = (w64 * closest.double()).cumsum(1)
        target = (u[:, i - 1] * cum[:, -1:]).contiguous()
        cand = torch.searchsorted(cum, target, side="right").clamp_(max=m - 1)
        points = torch.gather(x, 1, cand[..., None].expand(-1, -1, c))  # (B, T, C)
        d = torch.minimum(_sqdist(points, x).to(x.dtype), closest[:, None, :])  # (B, T, M)
        best = (d * w[:, None, :]).sum(-1).argmin(1)
        centers[:, i] = points[rows, best]
        closest = d[rows, best]
    return centers


def _refill(
    centers: torch.Tensor, weight: torch.Tensor, x: torch.Tensor, cost: torch.Tensor
) -> None:
    """Move each image's empty clusters onto its worst-fitting colors, distinct ones (in place)."""
    empty = weight <= 0
    if not bool(empty.any()):
        return
    k = centers.shape[1]
    worst = cost.topk(min(k, cost.shape[1]), dim=1).indices  # (B, k) worst first
    rank = (empty.cumsum(1) - 1).clamp_(min=0, max=worst.shape[1] - 1)
    source = torch.gather(worst, 1, rank)  # (B, K) the rank-th worst color of the image
    replacement = torch.gather(x, 1, source[..., None].expand(-1, -1, x.shape[2]))
    centers[empty] = replacement[empty].to(centers.dtype)


def _lloyd(
    x: torch.Tensor,
    w: torch.Tensor,
    centers: torch.Tensor,
    max_iter: int,
    tol: float,
    n_fixed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd iterations on every image: ``(centroids, objective of the last assignment)``.

    The first ``n_fixed`` centroids of every image never move and are never refilled.
    """
    batch, _, c = x.shape
    k = centers.shape[1]
    total = w.sum(1)
    prev = torch.full((batch,), float("inf"), dtype=torch.float64, device=x.device)
    offsets = (torch.arange(batch, device=x.device) * k)[:, None]
    for it in range(max_iter):
        labels, own = _assign(x, centers, exact=False)
        objective = ((w * own).sum(1) / total).double()
        flat = (labels + offsets).reshape(-1)
        sums = torch.zeros(batch * k, c, dtype=x.dtype, device=x.device)
        sums.index_add_(0, flat, (x * w[..., None]).reshape(-1, c))
        weight = torch.zeros(batch * k, dtype=x.dtype, device=x.device)
        weight.index_add_(0, flat, w.reshape(-1))
        weight = weight.reshape(batch, k)
        means = sums.reshape(batch, k, c) / weight.clamp_min(1e-30)[..., None]
        if n_fixed:
            means[:, :n_fixed] = centers[:, :n_fixed]
            weight[:, :n_fixed] = torch.inf
        centers = torch.where((weight > 0)[..., None], means, centers)
        _refill(centers, weight, x, w * own)
        if it > 0 and bool((prev - objective <= tol * prev).all()):
            break
        prev = objective
    return centers, prev


@dataclass(frozen=True)
class _Histograms:
    """Every image's distinct colors, padded: ``x`` ``(B, M, C)``, ``w`` ``(B, M)`` (0 on
    padding), and for each of the ``U`` (image, color) entries its image, position, color and
    count; ``inverse`` maps pixels to entries."""

    x: torch.Tensor
    w: torch.Tensor
    image_of: torch.Tensor
    pos: torch.Tensor
    colors: torch.Tensor
    counts: torch.Tensor
    inverse: torch.Tensor
    distinct: torch.Tensor


def _histograms(images: torch.Tensor, embed_colors: object) -> _Histograms:
    """One ``torch.unique`` over ``image << 24 | rgb`` keys: all the histograms at once."""
    batch = images.shape[0]
    device = images.device
    pixels = images.permute(0, 2, 3, 1).reshape(batch, -1, 3)
    keys = (pixels[..., 0].long() << 16) | (pixels[..., 1].long() << 8) | pixels[..., 2].long()
    keys = keys | (torch.arange(batch, device=device)[:, None] << 24)
    unique, inverse, counts = torch.unique(
        keys.reshape(-1), sorted=True, return_inverse=True, return_counts=True
    )
    image_of = unique >> 24
    colors = unpack_rgb(unique & 0xFFFFFF)
    distinct = torch.bincount(image_of, minlength=batch)
    start = distinct.cumsum(0) - distinct
    pos = torch.arange(unique.shape[0], device=device) - start[image_of]
    m = int(distinct.max())
    coords = embed_colors(colors)  # type: ignore[operator]
    x = torch.zeros(batch, m, coords.shape[1], dtype=coords.dtype, device=device)
    w = torch.zeros(batch, m, dtype=coords.dtype, device=device)
    x[image_of, pos] = coords
    w[image_of, pos] = counts.to(coords.dtype)
    return _Histograms(x, w, image_of, pos, colors, counts, inverse.reshape(-1), distinct)


def fit_batch(
    images: torch.Tensor,
    k: int,
    embed_colors: object,
    *,
    seed: int = 0,
    max_iter: int = 40,
    tol: float = 1e-5,
    n_init: int = 1,
    fixed: torch.Tensor | None = None,
    given: torch.Tensor | None = None,
) -> BatchFit:
    """Fit a K-color palette to every image of a ``(B, 3, H, W)`` uint8 batch at once.

    Args:
        images: ``(B, 3, H, W)`` uint8 on any device.
        k: palette size, ``>= 1``.
        embed_colors: ``(N, 3)`` uint8 colors -> ``(N, C)`` float coordinates (the space).
        seed: seed of the k-means++ draws.
        max_iter: Lloyd iterations at most.
        tol: relative decrease of every image's objective under which the fit stops.
        n_init: seedings per image, run together as a larger batch (a few Lloyd steps each);
            each image continues from its best.
        fixed: ``(F, C)`` coordinates of colors every palette keeps as its first ``F`` rows
            (K-means never moves them).
        given: ``(B, K, C)`` coordinates of given palettes: no fit, only the mapping.

    Returns:
        A :class:`BatchFit`.
    """
    batch = images.shape[0]
    device = images.device
    h = _histograms(images, embed_colors)
    x, w = h.x, h.w
    m, c = x.shape[1], x.shape[2]
    if given is not None:
        centers = given.to(x.dtype)
        n_colors = torch.full((batch,), centers.shape[1], device=device)
    else:
        n_fixed = 0 if fixed is None else fixed.shape[0]
        # Images with at most K colors (beside the fixed ones) keep them.
        small = h.distinct + n_fixed <= k
        n_colors = torch.where(small, h.distinct + n_fixed, torch.full_like(h.distinct, k))
        centers = torch.zeros(batch, k, c, dtype=x.dtype, device=device)
        if fixed is not None and n_fixed:
            centers[:, :n_fixed] = fixed.to(x.dtype)
        fit_rows = torch.nonzero(~small).squeeze(1)
        if fit_rows.numel() and n_fixed == k:
            pass  # every color fixed: nothing to fit
        elif fit_rows.numel():
            xs, ws = x[fit_rows], w[fit_rows]
            n_fit = xs.shape[0]
            u_first, u = _draws(np.random.default_rng(seed), n_init, n_fit, k, device)
            xr, wr = xs.repeat(n_init, 1, 1), ws.repeat(n_init, 1)  # replica r: rows r*n..
            first_iter = 10 if n_init > 1 else max_iter
            seeds = _seed(xr, wr, k, u_first, u, fixed)
            starts, objective = _lloyd(xr, wr, seeds, first_iter, tol, n_fixed)
            best = objective.reshape(n_init, n_fit).argmin(0)  # the first on ties
            start = starts.reshape(n_init, n_fit, k, c)[best, torch.arange(n_fit, device=device)]
            if n_init > 1:
                start = _lloyd(xs, ws, start, max_iter, tol, n_fixed)[0]
            centers[fit_rows] = start
        keep = torch.nonzero(small).squeeze(1)
        room = min(m, k - n_fixed)
        if keep.numel() and room > 0:
            centers[keep, n_fixed : n_fixed + room] = x[keep, :room]
    # Rows past an image's colors repeat its last one (no garbage, no NaN).
    width = centers.shape[1]
    last = (n_colors - 1).clamp(min=0)
    tail = torch.arange(width, device=device)[None, :] >= n_colors[:, None]
    fill = centers[torch.arange(batch, device=device), last][:, None, :].expand_as(centers)
    centers = torch.where(tail[..., None], fill, centers)
    labels, _ = _assign(x, centers, exact=True)
    return BatchFit(
        palettes=centers,
        n_colors=n_colors,
        labels=labels[h.image_of, h.pos],
        inverse=h.inverse,
        colors=h.colors,
        image_of=h.image_of,
        counts=h.counts,
    )


def _spread(palettes: torch.Tensor, n_colors: torch.Tensor) -> torch.Tensor:
    """``(B,)`` median distance (8-bit RGB) from each palette color to its nearest other one."""
    p = palettes.double()
    k = p.shape[1]
    d = torch.cdist(p, p)
    valid = torch.arange(k, device=p.device)[None, :] < n_colors[:, None]  # (B, K)
    d = d.masked_fill(~(valid[:, None, :] & valid[:, :, None]), float("inf"))
    d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    nearest = d.min(2).values.masked_fill(~valid, float("nan"))
    return nearest.nanmedian(1).values.nan_to_num_(0.0, posinf=0.0)


def quantize_images(
    images: torch.Tensor,
    k: int,
    embed_colors: object,
    decode: object,
    embed_rgb: object,
    *,
    seed: int,
    max_iter: int,
    tol: float,
    n_init: int,
    dither_strength: float | None,
    fixed8: torch.Tensor | None = None,
    given8: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit and map a ``(B, 3, H, W)`` uint8 batch: ``(palettes, indices, n_colors)``.

    ``palettes`` is ``(B, K', 3)`` uint8 with each image's used colors first, most used first,
    then its unused fixed colors (rows past them repeat its last one), ``indices``
    ``(B, H, W)`` int64 rows into it, ``n_colors`` ``(B,)`` the colors listed; with
    ``given8``, ``palettes`` is ``given8`` itself (all K rows, in order, used or not) and
    ``n_colors`` is K for every image.
    ``dither_strength`` (or None) adds an ordered dither; ``fixed8`` ``(F, 3)`` uint8 colors
    every fitted palette keeps; ``given8`` ``(B, K, 3)`` uint8 palettes to map to (no fit).
    """
    from ..dither import ordered_amplitude, ordered_offsets

    batch, _, height, width = images.shape
    n_fixed = 0 if fixed8 is None else fixed8.shape[0]
    fit = fit_batch(
        images,
        k,
        embed_colors,
        seed=seed,
        max_iter=max_iter,
        tol=tol,
        n_init=n_init,
        fixed=None if fixed8 is None else embed_colors(fixed8),  # type: ignore[operator]
        given=None
        if given8 is None
        else embed_colors(given8.reshape(-1, 3)).reshape(  # type: ignore[operator]
            batch, given8.shape[1], -1
        ),
    )
    pal8: torch.Tensor = given8 if given8 is not None else decode(fit.palettes)  # type: ignore[operator]
    if fixed8 is not None and given8 is None:
        pal8[:, :n_fixed] = fixed8  # exact, whatever the space
    if dither_strength is None:
        labels = fit.labels[fit.inverse].reshape(batch, -1)
    else:
        amplitude = ordered_amplitude(_spread(pal8, fit.n_colors), dither_strength)  # (B,)
        offsets = ordered_offsets(torch.empty(0, device=images.device), height, width, 1.0)
        pixels = images.permute(0, 2, 3, 1).double()
        shifted = pixels + amplitude[:, None, None, None] * offsets[None, :, :, None].double()
        coords = embed_rgb(shifted.clamp(0.0, 255.0).reshape(batch, -1, 3) / 255.0)  # type: ignore[operator]
        labels, _ = _assign(coords.to(fit.palettes.dtype), fit.palettes, exact=True)
    if given8 is not None:
        # A given palette is shared in index space: listed whole, in its order.
        n_given = torch.full((batch,), given8.shape[1], dtype=torch.int64, device=images.device)
        return given8, labels.reshape(batch, height, width), n_given
    k_fit = pal8.shape[1]
    counts = torch.zeros(batch, k_fit, dtype=torch.int64, device=images.device)
    counts.scatter_add_(1, labels, torch.ones_like(labels))
    listed = (counts > 0) | (torch.arange(k_fit, device=images.device)[None, :] < n_fixed)
    # Used colors by count, then unused fixed colors, then the rest (stable: index order).
    order = torch.sort(torch.where(listed, -counts, 1), dim=1, stable=True).indices
    n_used = listed.sum(1)
    remap = torch.empty_like(order)
    remap.scatter_(
        1, order, torch.arange(k_fit, device=images.device).expand(batch, -1).contiguous()
    )
    palettes = torch.gather(pal8, 1, order[..., None].expand(-1, -1, 3))
    width_used = int(n_used.max())
    palettes = palettes[:, :width_used]
    tail = torch.arange(width_used, device=images.device)[None, :] >= n_used[:, None]
    last = palettes[torch.arange(batch, device=images.device), n_used - 1][:, None, :]
    palettes = torch.where(tail[..., None], last.expand_as(palettes), palettes)
    indices = torch.gather(remap, 1, labels).reshape(batch, height, width)
    return palettes, indices, n_used
