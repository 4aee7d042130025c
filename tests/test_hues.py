"""keep_hues: a palette entry for a small region whose hue the fit lost (colorquant.hues)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import colorquant as cq
from colorquant.cli import main
from colorquant.color import rgb_to_lab
from colorquant.hues import HUE_GAP, MIN_SHARE, lost_hue

GREEN = np.array([70, 150, 60], np.uint8)


def fur_with_an_eye(size: int = 96, eye: int = 10, seed: int = 0) -> np.ndarray:
    """Brown-orange noise (fur) over ``size`` x ``size`` with a green ``eye`` x ``eye`` square:
    about 1% of the pixels."""
    rng = np.random.default_rng(seed)
    base = np.array([150.0, 100.0, 60.0])
    light = rng.normal(0.0, 30.0, (size, size, 1))
    img = np.clip(base + light * np.array([1.0, 0.8, 0.6]), 0, 255).astype(np.uint8)
    top = size // 2 - eye // 2
    noise = rng.integers(-6, 7, (eye, eye, 3))
    img[top : top + eye, top : top + eye] = np.clip(GREEN.astype(int) + noise, 0, 255)
    return img


def hue_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIELAB ΔH* between two arrays of uint8 colors."""
    la, lb = rgb_to_lab(a / 255.0), rgb_to_lab(b / 255.0)
    ca, cb = np.hypot(la[..., 1], la[..., 2]), np.hypot(lb[..., 1], lb[..., 2])
    ab = np.square(la[..., 1:] - lb[..., 1:]).sum(axis=-1)
    return np.asarray(np.sqrt(np.maximum(ab - np.square(ca - cb), 0.0)))


def eye_colors(result: cq.QuantizeResult, size: int = 96, eye: int = 10) -> np.ndarray:
    top = size // 2 - eye // 2
    return result.to_numpy()[top : top + eye, top : top + eye].reshape(-1, 3)


def test_the_fit_alone_loses_the_green_and_keep_hues_brings_it_back() -> None:
    img = fur_with_an_eye()
    plain = cq.quantize(img, 4, color_space="rgb")
    kept = cq.quantize(img, 4, color_space="rgb", keep_hues=True)
    # Without: every eye pixel comes back in a fur hue, far from green.
    assert hue_gap(eye_colors(plain), GREEN).min() > 2 * HUE_GAP
    # With: the eye is one palette entry within a few units of hue of the green it was.
    assert hue_gap(eye_colors(kept), GREEN).max() < HUE_GAP / 2
    assert kept.n_colors == 4
    # It costs summed error elsewhere, a little.
    assert plain.mse < kept.mse < 1.5 * plain.mse


def test_an_image_without_lost_hues_is_fitted_once_and_unchanged() -> None:
    ramp = np.linspace(0, 255, 64).astype(np.uint8)
    grey = np.repeat(np.tile(ramp[None, :, None], (32, 1, 1)), 3, axis=2)
    plain, kept = cq.quantize(grey, 8), cq.quantize(grey, 8, keep_hues=True)
    np.testing.assert_array_equal(plain.palette, kept.palette)
    np.testing.assert_array_equal(plain.indices, kept.indices)


def test_lost_hue_needs_the_minimum_share() -> None:
    colors = np.array([[150, 100, 60], [70, 150, 60]], np.uint8)
    mapped = np.array([[150, 100, 60], [150, 100, 60]], np.uint8)
    total = 100_000
    few = int(MIN_SHARE * total) - 1
    assert lost_hue(colors, np.array([total - few, few]), mapped) is None
    enough = lost_hue(colors, np.array([total - 10 * few, 10 * few]), mapped)
    assert enough is not None and enough.tolist() == [70, 150, 60]


def test_keep_hues_is_deterministic_and_respects_fixed_colors() -> None:
    img = fur_with_an_eye(seed=3)
    a = cq.quantize(img, 6, keep_hues=True, fixed_colors=[[255, 255, 255]], seed=5)
    b = cq.quantize(img, 6, keep_hues=True, fixed_colors=[[255, 255, 255]], seed=5)
    np.testing.assert_array_equal(a.palette, b.palette)
    assert [255, 255, 255] in a.palette.tolist()
    assert hue_gap(eye_colors(a), GREEN).max() < HUE_GAP / 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"palette": np.array([[0, 0, 0], [255, 255, 255]], np.uint8)}, "keep_hues fits"),
        ({"method": "adam"}, "keep_hues works with method='kmeans'"),
    ],
)
def test_keep_hues_refusals(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(cq.InputError, match=message):
        cq.quantize(fur_with_an_eye(), 4, keep_hues=True, **kwargs)  # type: ignore[arg-type]


def test_keep_hues_refuses_transparency() -> None:
    rgba = np.dstack([fur_with_an_eye(), np.full((96, 96), 255, np.uint8)])
    rgba[0, 0, 3] = 0
    with pytest.raises(cq.InputError, match="opaque images"):
        cq.quantize(rgba, 4, keep_hues=True)


def test_the_command_flag(tmp_path: Path) -> None:
    src, out = tmp_path / "cat.png", tmp_path / "out.png"
    Image.fromarray(fur_with_an_eye()).save(src)
    result = CliRunner().invoke(
        main, ["quantize", str(src), "-k", "4", "--nofs", "-o", str(out), "--keep-hues"]
    )
    assert result.exit_code == 0, result.output
    expected = cq.quantize(fur_with_an_eye(), 4, keep_hues=True)
    np.testing.assert_array_equal(np.asarray(Image.open(out).convert("RGB")), expected.to_numpy())
    refused = CliRunner().invoke(
        main,
        ["quantize", str(src), "--keep-hues", "--shared-palette", "-o", str(tmp_path / "x.png")],
    )
    assert refused.exit_code == 2
    assert "--keep-hues fits each image's palette" in refused.output
