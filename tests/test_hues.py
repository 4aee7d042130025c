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
from colorquant.hues import ENTRY_SHARE, HUE_GAP, MIN_COLORS, MIN_SHARE, lost_hue

GREEN = np.array([115, 125, 55], np.uint8)  # an olive green eye


def fur_with_an_eye(size: int = 96, eye: int = 12, seed: int = 0) -> np.ndarray:
    """Brown-orange noise (fur) over ``size`` x ``size`` with a green ``eye`` x ``eye`` square:
    about 1.6% of the pixels."""
    rng = np.random.default_rng(seed)
    base = np.array([150.0, 100.0, 60.0])
    light = rng.normal(0.0, 45.0, (size, size, 1))
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


def eye_colors(result: cq.QuantizeResult, size: int = 96, eye: int = 12) -> np.ndarray:
    top = size // 2 - eye // 2
    return result.to_numpy()[top : top + eye, top : top + eye].reshape(-1, 3)


def test_the_fit_alone_loses_the_green_and_keep_hues_brings_it_back() -> None:
    img = fur_with_an_eye()
    plain = cq.quantize(img, 8, color_space="rgb")
    kept = cq.quantize(img, 8, color_space="rgb", keep_hues=True)
    # Without: every eye pixel comes back in a fur hue, far from green.
    assert hue_gap(eye_colors(plain), GREEN).min() > 2 * HUE_GAP
    # With: the eye is one palette entry within a few units of hue of the green it was.
    assert hue_gap(eye_colors(kept), GREEN).max() < HUE_GAP / 2
    assert kept.n_colors == 8
    # It costs summed error elsewhere, a little.
    assert plain.mse < kept.mse < 1.5 * plain.mse


def test_an_image_without_lost_hues_is_fitted_once_and_unchanged() -> None:
    ramp = np.linspace(0, 255, 64).astype(np.uint8)
    grey = np.repeat(np.tile(ramp[None, :, None], (32, 1, 1)), 3, axis=2)
    plain, kept = cq.quantize(grey, 8), cq.quantize(grey, 8, keep_hues=True)
    np.testing.assert_array_equal(plain.palette, kept.palette)
    np.testing.assert_array_equal(plain.indices, kept.indices)


def test_lost_hue_needs_the_minimum_share_and_colors() -> None:
    colors = np.array([[150, 100, 60], [70, 150, 60]], np.uint8)
    mapped = np.array([[150, 100, 60], [150, 100, 60]], np.uint8)
    total = 100_000

    def kept(share: float, k: int) -> np.ndarray | None:
        lost = round(share * total)
        return lost_hue(colors, np.array([total - lost, lost]), mapped, k)

    # At K = 256 the floor is MIN_SHARE; at K = 16 a tenth of an average entry's share.
    assert kept(MIN_SHARE * 0.99, 256) is None
    found = kept(MIN_SHARE * 1.01, 256)
    assert found is not None and found.tolist() == [70, 150, 60]
    assert kept(ENTRY_SHARE / 16 * 0.99, 16) is None
    assert kept(ENTRY_SHARE / 16 * 1.01, 16) is not None
    # Below MIN_COLORS no entry is spent, whatever the share.
    assert kept(0.2, MIN_COLORS - 1) is None and kept(0.2, MIN_COLORS) is not None


def test_a_small_palette_spends_no_entry() -> None:
    img = fur_with_an_eye(eye=30)  # ~10% of the pixels: the share would be enough
    for k in (2, 4, MIN_COLORS - 1):
        plain, kept = cq.quantize(img, k), cq.quantize(img, k, keep_hues=True)
        np.testing.assert_array_equal(plain.palette, kept.palette)
        np.testing.assert_array_equal(plain.indices, kept.indices)


def test_keep_hues_is_deterministic_and_respects_fixed_colors() -> None:
    img = fur_with_an_eye(seed=3)
    a = cq.quantize(img, 8, keep_hues=True, fixed_colors=[[255, 255, 255]], seed=5)
    b = cq.quantize(img, 8, keep_hues=True, fixed_colors=[[255, 255, 255]], seed=5)
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
        main, ["quantize", str(src), "-k", "8", "--nofs", "-o", str(out), "--keep-hues"]
    )
    assert result.exit_code == 0, result.output
    expected = cq.quantize(fur_with_an_eye(), 8, keep_hues=True)
    np.testing.assert_array_equal(np.asarray(Image.open(out).convert("RGB")), expected.to_numpy())
    refused = CliRunner().invoke(
        main,
        ["quantize", str(src), "--keep-hues", "--shared-palette", "-o", str(tmp_path / "x.png")],
    )
    assert refused.exit_code == 2
    assert "--keep-hues fits each image's palette" in refused.output


def test_the_command_names_the_file_it_refuses(tmp_path: Path) -> None:
    cat, clear, clip = tmp_path / "cat.png", tmp_path / "clear.png", tmp_path / "clip.gif"
    Image.fromarray(fur_with_an_eye()).save(cat)
    rgba = np.dstack([fur_with_an_eye(), np.full((96, 96), 255, np.uint8)])
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(clear)
    frames = [Image.fromarray(fur_with_an_eye(seed=s)) for s in (1, 2)]
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=50)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["quantize", str(cat), str(clear), str(clip), "-k", "16", "--keep-hues", "-d", str(out)],
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [
        f"colorquant: error: {clear}: --keep-hues works on opaque images; this one has "
        "transparency",
        f"colorquant: error: {clip}: --keep-hues works on still images, not animations",
    ]
    assert (out / "cat.png").exists() and sorted(p.name for p in out.iterdir()) == ["cat.png"]


def test_keep_hues_must_be_a_bool() -> None:
    with pytest.raises(cq.InputError, match="keep_hues must be True or False, got 'no'"):
        cq.quantize(fur_with_an_eye(), 8, keep_hues="no")  # type: ignore[arg-type]
