"""quantize_batch in torch: histograms, the coarse-to-fine fit, the mapping, for a whole batch.

``quantize_images`` is what :func:`colorquant.quantize_batch` runs on a GPU (or with
``backend="torch"``): the stage functions of this package, each over the batch's leading dim.
One image is a batch of one, and gives the same result alone as inside any batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..color import ColorSpace, decode_colors, embed, encode_colors
from ..dither import ordered_amplitude, ordered_offsets
from . import device as dev
from .fit import Stages, fit_palettes
from .histogram import Coder, FixedPoint, Histograms, batch_histograms
from .remap import map_histograms, order_palettes, ordered_dither_batch, spread_batch

__all__ = ["BatchOut", "encoder", "fit_histogram", "quantize_images", "units_of"]


@dataclass(frozen=True)
class BatchOut:
    """A quantized batch, on the input's device.

    Attributes:
        palettes: ``(B, K', 3)`` uint8 each image's listed rows (see ``quantize_images``).
        indices: ``(B, H, W)`` int64 rows.
        n_colors: ``(B,)`` int64 rows each image lists.
        sq_error: ``(B,)`` int64 sum of squared 8-bit errors over pixels and channels.
        n_iter: ``(B,)`` int64 Lloyd iterations each image's fit ran (0 when not fitted).
    """

    palettes: torch.Tensor
    indices: torch.Tensor
    n_colors: torch.Tensor
    sq_error: torch.Tensor
    n_iter: torch.Tensor


def encoder(space: ColorSpace) -> Coder:
    """``(N, 3)`` uint8 colors -> ``(N, C)`` float32 coordinates, converted in the exact dtype."""
    return lambda colors: dev.run_exact(lambda c: encode_colors(c, space, torch.float32), colors)


def units_of(space: ColorSpace) -> FixedPoint:
    """Fixed-point units for the space: from the reach of the RGB cube's corners in it."""
    corners = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)])
    coords = encode_colors(corners.astype(np.uint8), space)
    return FixedPoint.for_span(float(np.abs(coords).max()), coords.shape[1])


def quantize_images(
    images: torch.Tensor,
    k: int,
    space: ColorSpace,
    stages: Stages,
    *,
    n_init: int,
    seed: int,
    dither_strength: float | None = None,
    fixed8: torch.Tensor | None = None,
    given8: torch.Tensor | None = None,
) -> BatchOut:
    """Fit and map a ``(B, 3, H, W)`` uint8 batch.

    Args:
        images: ``(B, 3, H, W)`` uint8 on any device.
        k: palette size (ignored with ``given8``).
        space: the clustering space.
        stages: the speed's fit settings (``colorquant.quantize.settings_for_speed``).
        n_init: k-means++ seedings per image.
        seed: the only randomness.
        dither_strength: 0..1 of an ordered dither, or None.
        fixed8: ``(F, 3)`` uint8 colors every fitted palette keeps (listed, used or not).
        given8: ``(B, K, 3)`` uint8 palettes to map to instead of fitting.

    Returns:
        A :class:`BatchOut`. A fitted palette lists each image's used colors, most used first,
        then its unused fixed colors (rows past them repeat its last one); a given one is listed
        whole, in its order (``n_colors`` is K).
    """
    batch, _, height, width = images.shape
    device = images.device
    encode = encoder(space)
    hist = batch_histograms(images, encode)
    n_fixed = 0 if fixed8 is None else fixed8.shape[0]
    if given8 is not None:
        pal8 = given8
        n_colors = torch.full((batch,), given8.shape[1], dtype=torch.int64, device=device)
        n_iter = torch.zeros(batch, dtype=torch.int64, device=device)
    else:
        unit = units_of(space)
        fixed = None if fixed8 is None or not n_fixed else encode(fixed8)
        fitted = fit_palettes(hist, k, stages, n_init=n_init, seed=seed, unit=unit, fixed=fixed)
        pal8 = dev.run_exact(lambda p: decode_colors(p, space), fitted.centers)
        # An image that keeps its colors keeps them exactly; fixed colors too, whatever the
        # space.
        if fixed8 is not None and n_fixed:
            pal8[:, :n_fixed] = fixed8
        room = min(hist.width, k - n_fixed)
        if room > 0 and bool(fitted.kept.any()):
            extra = hist.counts > 0
            if fixed8 is not None and n_fixed:
                extra &= ~(hist.colors[:, :, None] == fixed8[None, None]).all(-1).any(-1)
            order = torch.sort((~extra).to(torch.int8), dim=1, stable=True).indices
            kept8 = pal8.clone()
            kept8[:, n_fixed : n_fixed + room] = torch.gather(
                hist.colors, 1, order[:, :room, None].expand(-1, -1, 3)
            )
            last = (fitted.n_colors - 1).clamp(min=0)[:, None, None].expand(-1, 1, 3)
            tail = torch.arange(k, device=device)[None, :] >= fitted.n_colors[:, None]
            kept8 = torch.where(tail[..., None], torch.gather(kept8, 1, last), kept8)
            pal8 = torch.where(fitted.kept[:, None, None], kept8, pal8)
        n_colors, n_iter = fitted.n_colors, fitted.n_iter
    palette_points = encode(pal8.reshape(-1, 3)).reshape(batch, pal8.shape[1], -1)
    if dither_strength is None:
        mapped = map_histograms(hist, palette_points, pal8)
        labels, counts, sq_error = mapped.labels, mapped.counts, mapped.sq_error
    else:
        offsets = ordered_offsets(torch.empty(0, device=device), height, width, 1.0)
        spread = spread_batch(pal8, n_colors)
        amplitude = ordered_amplitude(spread, dither_strength)
        labels = ordered_dither_batch(
            images, palette_points, offsets, amplitude, lambda rgb: embed(rgb, space)
        )
        counts = torch.zeros(batch, pal8.shape[1], dtype=torch.int64, device=device)
        counts.scatter_add_(1, labels, torch.ones_like(labels))
        pixels = images.permute(0, 2, 3, 1).reshape(batch, -1, 3).to(torch.int64)
        taken = torch.gather(pal8, 1, labels[..., None].expand(-1, -1, 3)).to(torch.int64)
        sq_error = (pixels - taken).square_().sum((1, 2))
    if given8 is not None:
        indices = labels.reshape(batch, height, width)
        return BatchOut(given8, indices, n_colors, sq_error, n_iter)
    palettes, rows, n_used = order_palettes(pal8, labels, counts, n_fixed)
    return BatchOut(palettes, rows.reshape(batch, height, width), n_used, sq_error, n_iter)


def fit_histogram(
    colors8: torch.Tensor,
    counts: torch.Tensor,
    k: int,
    space: ColorSpace,
    stages: Stages,
    *,
    n_init: int,
    seed: int,
    fixed8: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int, float]:
    """The palette of one histogram by the batched fit, a batch of one (``Quantizer``'s torch
    route: the same function as :func:`quantize_images`).

    Args:
        colors8: ``(M, 3)`` uint8 distinct colors; ``counts``: ``(M,)`` integer pixels of each.
        k: palette size; ``space``, ``stages``, ``n_init``, ``seed`` as for
            :func:`quantize_images`.
        fixed8: ``(F, 3)`` uint8 colors the palette keeps as its first rows, exactly.

    Returns:
        ``(palette, n_iter, objective)``: ``(K', 3)`` uint8 on the device of ``colors8`` (its
        colors themselves, fixed first, when there are at most ``k``: ``K' = min(k, M + F)``),
        the Lloyd iterations, and the objective (weighted mean squared distance in the space)
        of the last assignment.
    """
    encode = encoder(space)
    points = encode(colors8)[None].to(torch.float32)
    hist = Histograms(
        points,
        counts.to(torch.int64)[None],
        colors8[None],
        torch.tensor([colors8.shape[0]], device=colors8.device),
        colors8.shape[0],
        torch.empty(1, 0, dtype=torch.int64, device=colors8.device),
    )
    unit = units_of(space)
    n_fixed = 0 if fixed8 is None else fixed8.shape[0]
    fixed = None if fixed8 is None or not n_fixed else encode(fixed8)
    fitted = fit_palettes(hist, k, stages, n_init=n_init, seed=seed, unit=unit, fixed=fixed)
    n_colors, kept, n_iter, objective = (
        fitted.n_colors.tolist()[0],
        bool(fitted.kept[0]),
        int(fitted.n_iter[0]),
        int(fitted.objective[0]),
    )
    if kept:
        extra = counts > 0
        if fixed8 is not None and n_fixed:
            extra &= ~(colors8[:, None] == fixed8[None]).all(-1).any(-1)
        rows = [colors8[extra]] if fixed8 is None else [fixed8, colors8[extra]]
        return torch.cat(rows)[:n_colors], 0, 0.0
    palette = dev.run_exact(lambda p: decode_colors(p, space), fitted.centers[0, :n_colors])
    if fixed8 is not None and n_fixed:
        palette[:n_fixed] = fixed8
    return palette, n_iter, objective / unit.dist / float(counts.sum())
