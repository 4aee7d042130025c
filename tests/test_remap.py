"""colorquant.remap: a palette + an image -> indices; which rows a result lists."""

from __future__ import annotations

import time

import numpy as np
import pytest

import colorquant as cq
from colorquant.fit import Fit
from colorquant.histogram import color_histogram
from colorquant.remap import (
    apply_histogram,
    apply_pixels,
    listed_rows,
    palette_for,
    used_colors,
    with_clear_entry,
)
from conftest import make_photo_like

GRAYS = np.repeat(np.arange(0, 256, 32, dtype=np.uint8)[:, None], 3, axis=1)  # 8 rows


def test_used_colors_most_used_first_keeping_fixed() -> None:
    counts = np.array([0, 5, 9, 5, 0])
    used, new = used_colors(counts)
    assert used.tolist() == [2, 1, 3] and new.tolist() == [-1, 1, 0, 2, -1]
    used, new = used_colors(counts, keep=1)  # row 0 is fixed: kept, after the used ones
    assert used.tolist() == [2, 1, 3, 0] and new[0] == 3
    rgba = np.array([[0, 0, 0, 255], [9, 9, 9, 100], [5, 5, 5, 255]], np.uint8)
    used, _ = used_colors(np.array([9, 1, 5]), palette=rgba)  # translucent rows first
    assert used.tolist() == [1, 0, 2]


def test_listed_rows_pinned_or_used() -> None:
    counts = np.array([0, 3, 7])
    rows, new = listed_rows(Fit(GRAYS[:3], pinned=True), counts, GRAYS[:3])
    assert rows.tolist() == [0, 1, 2] and new.tolist() == [0, 1, 2]
    rows, _ = listed_rows(Fit(GRAYS[:3]), counts, GRAYS[:3])
    assert rows.tolist() == [2, 1]


def test_palette_for_rgba_images() -> None:
    colors = np.array([[1, 2, 3, 255], [0, 0, 0, 0]], np.uint8)
    full = palette_for(GRAYS[:2], colors)
    assert full.shape == (3, 4) and full[:2, 3].tolist() == [255, 255]
    assert full[2].tolist() == [0, 0, 0, 0]  # the entry for the fully transparent pixels
    assert with_clear_entry(full) is full
    with pytest.raises(cq.InputError, match="only fully transparent colors"):
        palette_for(np.zeros((1, 4), np.uint8), colors)


def test_every_pixel_its_nearest_row() -> None:
    img = make_photo_like(20, 28, 4)
    hist = color_histogram(img.reshape(-1, 3))
    start = time.perf_counter()
    res = apply_histogram(Fit(GRAYS, pinned=True), hist, img.shape[:2], "rgb", start)
    d = ((img[:, :, None, :].astype(int) - GRAYS.astype(int)) ** 2).sum(-1)
    np.testing.assert_array_equal(res.indices, d.argmin(-1))
    assert res.palette.tolist() == GRAYS.tolist() and res.counts.sum() == img.shape[0] * 28
    assert res.method == "palette" and res.history == ()


def test_dithered_map_lists_the_same_rows() -> None:
    img = make_photo_like(20, 28, 5)
    res = apply_pixels(Fit(GRAYS, pinned=True), img, "rgb", time.perf_counter(), "fs", 1.0)
    assert res.palette.tolist() == GRAYS.tolist() and res.indices.shape == (20, 28)
    want = cq.quantize(img, palette=GRAYS, color_space="rgb", dither="fs")
    np.testing.assert_array_equal(res.indices, want.indices)
