"""Palettes + pixels -> indices for a whole batch: the mapping, the ordered dither, the order.

Without a dither every image's distinct colors are mapped once (exactly: near ties re-decided)
and the pixels take their color's row; counts and the squared error come from the histogram as
int64 sums. The ordered dither (:func:`ordered_dither_batch`) maps every pixel, in chunks.
"""

from __future__ import annotations

import torch

from . import device as dev
from .histogram import Coder, Histograms
from .nearest import assign, block_rows, direct_sqdist

__all__ = ["Mapped", "map_histograms", "order_palettes", "ordered_dither_batch", "spread_batch"]


class Mapped:
    """Each image's row of every pixel, the pixels per row and the squared error.

    Attributes:
        labels: ``(B, P)`` int64 row of every pixel (``P = H * W``) in its image's palette.
        counts: ``(B, K)`` int64 pixels per row.
        sq_error: ``(B,)`` int64 sum over pixels and channels of the squared 8-bit error.
    """

    def __init__(self, labels: torch.Tensor, counts: torch.Tensor, sq_error: torch.Tensor):
        self.labels, self.counts, self.sq_error = labels, counts, sq_error


def _row_counts(labels: torch.Tensor, weights: torch.Tensor, k: int) -> torch.Tensor:
    out = torch.zeros(labels.shape[0], k, dtype=torch.int64, device=labels.device)
    return out.scatter_add_(1, labels, weights)  # int64: exact in any order


def map_histograms(hist: Histograms, palette_points: torch.Tensor, pal8: torch.Tensor) -> Mapped:
    """Map every image's distinct colors to its palette (exact), pixels through ``inverse``.

    Args:
        hist: the batch's histograms.
        palette_points: ``(B, K, C)`` the palettes' 8-bit colors encoded in the space.
        pal8: ``(B, K, 3)`` uint8 the palettes.
    """
    labels, _ = assign(hist.points, palette_points, exact=True)
    counts = _row_counts(labels, hist.counts, pal8.shape[1])
    taken = torch.gather(pal8, 1, labels[..., None].expand(-1, -1, 3)).to(torch.int64)
    diff = (hist.colors.to(torch.int64) - taken).square_().sum(-1)
    return Mapped(torch.gather(labels, 1, hist.inverse), counts, (diff * hist.counts).sum(1))


def spread_batch(pal8: torch.Tensor, n_colors: torch.Tensor) -> torch.Tensor:
    """``(B,)`` float32 median distance (8-bit RGB) from each palette color to its nearest
    other one, over each image's first ``n_colors`` rows; 0 with one color.

    ``colorquant.dither.dither_spread`` per image (there in float64; the distances between
    8-bit colors are integers, exact in float32 too).
    """
    p = pal8.to(torch.float32)
    k = p.shape[1]
    d = direct_sqdist(p, p)
    valid = torch.arange(k, device=p.device)[None, :] < n_colors[:, None]
    d = d.masked_fill(~(valid[:, None, :] & valid[:, :, None]), float("inf"))
    d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    nearest = d.amin(2).sqrt().masked_fill(~valid, float("nan"))
    # The median of an even count is the mean of the two middle values, as NumPy's.
    ordered = nearest.nan_to_num(float("inf")).sort(1).values
    n = n_colors.clamp(min=1)
    lo = torch.gather(ordered, 1, ((n - 1) // 2)[:, None])[:, 0]
    hi = torch.gather(ordered, 1, (n // 2)[:, None])[:, 0]
    return torch.where(n_colors > 1, 0.5 * (lo + hi), torch.zeros_like(lo))


def ordered_dither_batch(
    images: torch.Tensor,
    palette_points: torch.Tensor,
    offsets: torch.Tensor,
    amplitude: torch.Tensor,
    embed: Coder,
) -> torch.Tensor:
    """Ordered dither of a batch: ``(B, H * W)`` int64 row of every shifted pixel.

    Args:
        images: ``(B, 3, H, W)`` uint8.
        palette_points: ``(B, K, C)`` float32 the palettes' colors in the space.
        offsets: ``(H, W)`` float32 Bayer offsets for amplitude 1
            (``colorquant.dither.ordered_offsets``).
        amplitude: ``(B,)`` float32 amplitude of each image
            (``colorquant.dither.ordered_amplitude`` of its palette's spread).
        embed: ``(N, 3)`` sRGB floats in [0, 1] -> ``(N, C)`` coordinates, run in the exact
            dtype (``colorquant.color.embed`` with the space).

    Each pixel moves by ``amplitude * offset`` on its three channels, clipped to 0..255, and
    takes its nearest palette row (exact). Pixels go in chunks under the memory budget.
    """
    batch = images.shape[0]
    pixels = images.permute(0, 2, 3, 1).reshape(batch, -1, 3)
    n = pixels.shape[1]
    dtype = dev.exact_dtype(images.device)
    shift = offsets.reshape(1, -1, 1).to(dtype)
    amp = amplitude.to(dtype)[:, None, None]
    step = block_rows(batch, max(palette_points.shape[1], 8), images.device)
    labels = torch.empty(batch, n, dtype=torch.int64, device=images.device)
    with dev.exact_math(images.device):
        for start in range(0, n, step):
            part = pixels[:, start : start + step].to(dtype)
            moved = (part + amp * shift[:, start : start + step]).clamp_(0.0, 255.0) / 255.0
            coords = embed(moved).to(torch.float32)
            labels[:, start : start + step] = assign(coords, palette_points, exact=True)[0]
    return labels


def order_palettes(
    pal8: torch.Tensor, labels: torch.Tensor, counts: torch.Tensor, n_fixed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each image's used rows by pixels, most first, then its unused fixed rows.

    Args:
        pal8: ``(B, K, 3)`` uint8 palettes; ``labels``: ``(B, P)`` int64 rows of the pixels;
            ``counts``: ``(B, K)`` int64 pixels per row; ``n_fixed``: fixed rows at the front.

    Returns:
        ``(palettes, labels, n_used)``: ``(B, K', 3)`` uint8 the listed rows (rows past an
        image's ``n_used`` repeat its last one), ``(B, P)`` int64 rows into them, ``(B,)``.
        Ties keep the lower row first (a stable sort).
    """
    batch, k, _ = pal8.shape
    device = pal8.device
    rank = torch.arange(k, device=device)[None, :]
    listed = (counts > 0) | (rank < n_fixed)
    order = torch.sort(torch.where(listed, -counts, 1), dim=1, stable=True).indices
    n_used = listed.sum(1)
    remap = torch.empty_like(order).scatter_(1, order, rank.expand(batch, -1).contiguous())
    palettes = torch.gather(pal8, 1, order[..., None].expand(-1, -1, 3))
    width = int(n_used.max())
    palettes = palettes[:, :width]
    tail = torch.arange(width, device=device)[None, :] >= n_used[:, None]
    last = torch.gather(palettes, 1, (n_used - 1)[:, None, None].expand(-1, 1, 3))
    palettes = torch.where(tail[..., None], last.expand_as(palettes), palettes)
    return palettes, torch.gather(remap, 1, labels), n_used
