"""Lost hues: a palette entry for the small region whose hue a fitted palette lost.

A K-means palette minimises the squared error summed over pixels, so a small region of a rare
hue (a cat's green eye in brown fur, at K = 16) is merged into the large areas around it and
comes back in their hue: a small error to the sum, the first thing a viewer notices.
``quantize(..., keep_hues=True)`` (the command's ``--keep-hues``) looks for such colors after the
fit and, when they cover enough of the image, fits again with one palette entry kept for them:

1. every distinct color whose nearest palette color differs from it in hue by more than
   :data:`HUE_GAP` (CIELAB ΔH*, chroma above :data:`MIN_CHROMA`; a lightness or chroma
   difference alone is what the fit trades everywhere) is a lost color;
2. the lost colors are grouped in CIELAB (weighted K-means, :data:`GROUPS` groups, every color
   weighted by its pixels times its ΔH); the group of the largest weight, with every lost color
   within :data:`REGION_RADIUS` of its centre, is the region, its pixel mean color the entry to
   keep, if the region covers at least :data:`MIN_SHARE` of the
   pixels and :data:`ENTRY_SHARE` of an average entry's (``1 / K``): a palette of few colors
   spends one only on a large region;
3. the palette is fitted again with that color as a fixed color (the rest fitted around it).

Below :data:`MIN_COLORS` colors no entry is spent: each then holds a large part of the image, and
one taken from it costs more than the hue gives back (at K = 4: up to 1 dB of PSNR and a quarter
more ΔE00 on the test photos).

It costs a second fit and some of the summed error (PSNR) for hues that come back where they
were lost: at K = 16 the green of the cat's eye in scikit-image's ``chelsea``; over whole photo
sets a wash, better on the photos with such a region (BENCHMARKS.md, "Hues where people look").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._array import to_numpy
from .color import rgb_to_lab
from .fit import Fit, encode_points, fit_histogram, nearest_rows
from .histogram import ColorHistogram
from .init import kmeans_plusplus
from .kmeans import weighted_kmeans
from .options import FitOptions

__all__ = [
    "ENTRY_SHARE",
    "GROUPS",
    "HUE_GAP",
    "MIN_CHROMA",
    "MIN_COLORS",
    "MIN_SHARE",
    "REGION_RADIUS",
    "keep_lost_hue",
    "lost_hue",
]

HUE_GAP = 10.0
"""CIELAB hue difference ΔH* above which a color's hue counts as lost."""
MIN_CHROMA = 12.0
"""CIELAB chroma a color needs for its hue to count (greys have no hue to lose)."""
MIN_SHARE = 0.002
"""Share of the pixels a lost region must cover before an entry is spent on it."""
ENTRY_SHARE = 0.1
"""Share of an average entry's pixels (``1 / K`` of the image) a lost region must cover."""
MIN_COLORS = 8
"""The fewest colors a palette must have for an entry to be spent on a lost hue."""
GROUPS = 3
"""Groups the lost colors are split into; the heaviest gets the entry."""
REGION_RADIUS = 12.0
"""CIELAB distance from the heaviest group's centre within which lost colors join its region."""


def lost_hue(
    colors: np.ndarray, counts: np.ndarray, mapped: np.ndarray, k: int, seed: int = 0
) -> np.ndarray | None:
    """The color of the heaviest region whose hue the mapping lost, or None.

    Args:
        colors: ``(M, 3)`` uint8 distinct sRGB colors of an image.
        counts: ``(M,)`` pixels of each color, integers ``>= 0``.
        mapped: ``(M, 3)`` uint8, the palette color each color is mapped to.
        k: the palette's size K (the region must cover ``ENTRY_SHARE / K`` of the pixels).
        seed: the seed of the grouping (k-means++).

    Returns:
        ``(3,)`` uint8, the pixel mean of the region's colors; None when K is below
        :data:`MIN_COLORS` or the region covers less than ``max(MIN_SHARE, ENTRY_SHARE / K)``
        of the pixels.
    """
    lab = rgb_to_lab(colors / 255.0)
    lab_mapped = rgb_to_lab(mapped / 255.0)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    chroma_mapped = np.hypot(lab_mapped[:, 1], lab_mapped[:, 2])
    ab_gap = np.square(lab[:, 1:] - lab_mapped[:, 1:]).sum(axis=1)
    hue_gap = np.sqrt(np.maximum(ab_gap - np.square(chroma - chroma_mapped), 0.0))
    lost = (hue_gap > HUE_GAP) & (chroma > MIN_CHROMA)
    pixels = np.asarray(counts, np.float64)
    least = max(MIN_SHARE, ENTRY_SHARE / k) * pixels.sum()
    if k < MIN_COLORS or not lost.any() or pixels[lost].sum() < least:
        return None
    points = np.ascontiguousarray(lab[lost])
    weight = pixels[lost] * hue_gap[lost]
    groups = min(GROUPS, len(points))
    start = kmeans_plusplus(points, weight, groups, seed=seed)
    fit = weighted_kmeans(points, weight, start, max_iter=30)
    gaps = np.square(points[:, None, :] - fit.centroids[None]).sum(axis=2)
    group = gaps.argmin(axis=1)
    heaviest = np.bincount(group, weights=weight, minlength=groups).argmax()
    # The region: every lost color near the heaviest group's centre (one region of few colors
    # may have been split between groups).
    chosen = (group == heaviest) | (gaps[:, heaviest] <= REGION_RADIUS**2)
    region = pixels[lost][chosen]
    if region.sum() < least:
        return None
    mean = (colors[lost][chosen] * region[:, None]).sum(axis=0) / region.sum()
    return np.asarray(np.clip(np.round(mean), 0, 255), np.uint8)


def keep_lost_hue(
    fit: Fit,
    hist: ColorHistogram,
    k: int,
    options: FitOptions,
    device: Any,
    points: Any,
) -> Fit:
    """``fit``, or the palette fitted again with the lost region's color kept (see the module).

    Args:
        fit: the palette fitted to ``hist`` with ``options``.
        hist: the image's histogram (opaque: ``(M, 3)`` colors).
        k: the palette size.
        options: the fit's settings; the kept color joins their fixed colors.
        device: where the fit runs.
        points: ``hist.colors`` encoded in the fit's color space.
    """
    if k < MIN_COLORS or k - len(options.fixed) < 2:
        return fit  # too few entries to spend one
    palette = fit.palette
    palette_points = encode_points(palette, options.color_space)
    index = to_numpy(nearest_rows(hist.colors, points, palette, palette_points))
    colors = to_numpy(hist.colors)
    color = lost_hue(colors, to_numpy(hist.counts), to_numpy(palette)[index], k, options.seed)
    if color is None:
        return fit
    kept = tuple(int(v) for v in color)
    if kept in options.fixed_colors:
        return fit
    again = options.replace(fixed_colors=(*options.fixed_colors, kept))
    return fit_histogram(hist, k, again, device, points)
