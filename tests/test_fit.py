"""colorquant.fit: the fit as pure functions (histogram -> palette), what quantize runs."""

from __future__ import annotations

import time

import numpy as np
import pytest

import colorquant as cq
from colorquant.fit import Fit, encode_points, fit_histogram, fit_shared, nearest_rows
from colorquant.histogram import color_histogram
from colorquant.options import FitOptions
from colorquant.remap import apply_histogram
from conftest import make_photo_like

RGB = FitOptions(color_space="rgb", seed=1)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return make_photo_like(40, 56, 3)


def test_pure_same_input_same_fit_input_untouched(photo: np.ndarray) -> None:
    hist = color_histogram(photo.reshape(-1, 3))
    colors, counts = hist.colors.copy(), hist.counts.copy()
    first = fit_histogram(hist, 12, RGB, "cpu")
    second = fit_histogram(hist, 12, RGB, "cpu")
    assert isinstance(first, Fit) and first.method == "kmeans" and not first.pinned
    np.testing.assert_array_equal(first.palette, second.palette)
    assert first.history == second.history and len(first.history) == first.n_iter
    np.testing.assert_array_equal(hist.colors, colors)
    np.testing.assert_array_equal(hist.counts, counts)
    assert first.palette.shape == (12, 3) and first.palette.dtype == np.uint8
    # The objective never increases along the coarse-to-fine run.
    history = np.array(first.history)
    assert (history[1:] <= history[:-1] * (1 + 1e-9)).all()


def test_quantize_is_fit_then_apply(photo: np.ndarray) -> None:
    hist = color_histogram(photo.reshape(-1, 3))
    fit = fit_histogram(hist, 9, RGB, "cpu")
    res = apply_histogram(fit, hist, photo.shape[:2], "rgb", time.perf_counter())
    want = cq.quantize(photo, 9, color_space="rgb", seed=1)
    np.testing.assert_array_equal(res.palette, want.palette)
    np.testing.assert_array_equal(res.indices, want.indices)
    assert res.mse == want.mse


def test_few_colors_come_back_as_they_are() -> None:
    img = np.zeros((4, 6, 3), np.uint8)
    img[:, 3:] = [10, 200, 30]
    hist = color_histogram(img.reshape(-1, 3))
    fit = fit_histogram(hist, 5, RGB, "cpu")
    assert sorted(map(tuple, fit.palette.tolist())) == [(0, 0, 0), (10, 200, 30)]
    assert fit.history == (0.0,) and fit.n_iter == 0 and fit.converged


def test_fixed_colors_first_and_posterized_rest(photo: np.ndarray) -> None:
    hist = color_histogram(photo.reshape(-1, 3))
    opts = RGB.replace(fixed_colors=[[255, 0, 255], [1, 2, 3]], posterize=3)
    fit = fit_histogram(hist, 10, opts, "cpu")
    assert fit.n_fixed == 2 and fit.palette[:2].tolist() == [[255, 0, 255], [1, 2, 3]]
    grid = {round(i * 255 / 7) for i in range(8)}  # 3 bits, replicated to 8
    assert set(fit.palette[2:].ravel().tolist()) <= grid


def test_shared_fit_orders_rows_by_pixels(photo: np.ndarray) -> None:
    hist = color_histogram(photo.reshape(-1, 3))
    fit = fit_shared(hist, 8, RGB, "cpu")
    assert fit.pinned
    points = encode_points(hist.colors, "rgb")
    rows = nearest_rows(hist.colors, points, fit.palette, encode_points(fit.palette, "rgb"))
    taken = np.bincount(rows, weights=hist.counts, minlength=8)
    assert (np.diff(taken) <= 0).all()  # most pixels first
    assert fit.palette.tolist() == cq.Quantizer(8, options=RGB).fit(photo).palette.tolist()
