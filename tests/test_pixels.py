"""colorquant.pixels: an image as the pipeline takes it, and its (merged) histogram."""

from __future__ import annotations

import numpy as np
import pytest

import colorquant as cq
from colorquant.pixels import image_histogram, merged_histogram, pipeline_pixels


def test_rgb_stays_rgb_and_rgba_is_prepared() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(pipeline_pixels(rgb), rgb)
    forced = pipeline_pixels(rgb, rgba=True)  # as RGBA: opaque
    assert forced.shape == (2, 3, 4) and (forced[..., 3] == 255).all()
    rgba = np.dstack([rgb, np.full((2, 3), 255, np.uint8)])
    rgba[0, 0, 3] = 0  # one fully transparent pixel: its RGB is dropped, unless kept
    assert pipeline_pixels(rgba)[0, 0].tolist() == [0, 0, 0, 0]
    assert pipeline_pixels(rgba, keep_rgb=True)[0, 0].tolist() == [*rgb[0, 0].tolist(), 0]
    rgba[0, 0, 3] = 255  # an opaque alpha channel is no alpha
    assert pipeline_pixels(rgba).shape == (2, 3, 3)


def test_histogram_counts_pixels_and_maps_them_back() -> None:
    img = np.zeros((4, 5, 3), np.uint8)
    img[1:, 2:] = [9, 8, 7]
    hist, shape = image_histogram(img, "cpu")
    assert shape == (4, 5) and len(hist) == 2 and hist.n_pixels == 20
    np.testing.assert_array_equal(hist.colors[hist.inverse].reshape(4, 5, 3), img)


def test_merged_histogram_pools_images() -> None:
    a = np.zeros((2, 2, 3), np.uint8)
    b = np.full((3, 1, 3), 200, np.uint8)
    merged = merged_histogram([a, b, a], "fit", False, "cpu")
    assert merged.colors.tolist() == [[0, 0, 0], [200, 200, 200]]
    assert merged.counts.tolist() == [8, 3]
    with pytest.raises(cq.InputError, match="fit needs at least one image"):
        merged_histogram([], "fit", False, "cpu")
