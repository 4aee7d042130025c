"""colorquant.viz: figure structure, the ΔE00 map, and files written atomically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import colorquant as cq
from colorquant.histogram import color_histogram
from colorquant.viz import (
    cloud_figure,
    delta_e_map,
    elbow_figure,
    figure_suffix,
    preview_figure,
    save_figure,
)
from conftest import NEEDS_TORCH

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

H, W = 24, 32


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:H, 0:W]
    base = np.stack([x * 7 + 10, y * 9 + 20, (x + y) * 3 + 30], 2).astype(np.float64)
    return np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def result(image: np.ndarray) -> cq.QuantizeResult:
    return cq.quantize(image, 6, device="cpu", seed=0)


def test_importing_viz_does_not_import_matplotlib() -> None:
    code = "import sys, colorquant.viz, colorquant.cli; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_delta_e_map(image: np.ndarray, result: cq.QuantizeResult) -> None:
    quantized = result.to_numpy()
    error = delta_e_map(image, quantized)
    assert error.shape == (H, W) and error.dtype == np.float32
    assert float(error.mean()) == pytest.approx(result.delta_e, rel=1e-5)
    assert not delta_e_map(image, image).any()
    with pytest.raises(cq.InputError, match="shapes differ"):
        delta_e_map(image, quantized[:-1])


def test_preview_figure(tmp_path: Path, image: np.ndarray, result: cq.QuantizeResult) -> None:
    path = tmp_path / "preview.png"
    figure = preview_figure(image, result, path=path)
    assert len(figure.axes) == 5  # original, quantized, error map, its colorbar, palette
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:2] == ["original", f"quantized: {result.n_colors} colors"]
    assert "CIEDE2000" in titles[2]
    assert titles[3].startswith(f"palette: {result.n_colors} colors")
    # One bar per palette color, drawn in it, longest (most used) first.
    bars = figure.axes[3].patches
    assert len(bars) == result.n_colors
    assert [b.get_width() for b in bars] == sorted(result.counts.tolist(), reverse=True)
    suptitle = figure.get_suptitle()
    assert f"K = {result.n_colors}" in suptitle and "PSNR" in suptitle
    with Image.open(path) as written:
        assert written.format == "PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["preview.png"]
    with pytest.raises(FileExistsError):
        preview_figure(image, result, path=path)
    with pytest.raises(cq.InputError, match=r"pixels, the result"):
        preview_figure(image[:, :-1], result)


def test_preview_many_colors_has_no_labels(image: np.ndarray) -> None:
    many = cq.quantize(image, 40, device="cpu", speed=10)
    figure = preview_figure(image, many)
    assert len(figure.axes[3].patches) == many.n_colors
    assert list(figure.axes[3].get_yticks()) == []


def test_elbow_figure(tmp_path: Path) -> None:
    ks = [2, 4, 8, 16]
    mses = [300.0, 120.0, 40.0, 0.0]  # the last lossless: PSNR infinite, not drawn
    figure = elbow_figure(ks, mses, path=tmp_path / "e.pdf")
    assert len(figure.axes) == 2
    ax, twin = figure.axes
    assert ax.get_xscale() == "log"
    assert "MSE" in ax.get_ylabel() and "PSNR" in twin.get_ylabel()
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), mses)
    psnr = np.asarray(twin.lines[0].get_ydata(), dtype=float)
    assert psnr[0] == pytest.approx(cq.metrics.psnr_from_mse(300.0)) and np.isnan(psnr[-1])
    assert (tmp_path / "e.pdf").read_bytes().startswith(b"%PDF")
    for bad_ks, bad_mses in [([], []), ([2, 4], [1.0]), ([0], [1.0]), ([2], [-1.0])]:
        with pytest.raises(cq.InputError):
            elbow_figure(bad_ks, bad_mses)


@pytest.mark.parametrize("space", ["rgb", "lab", "oklab"])
def test_cloud_figure(tmp_path: Path, image: np.ndarray, space: cq.ColorSpace) -> None:
    hist = color_histogram(torch.from_numpy(image.reshape(-1, 3)))
    colors, counts = hist.colors.numpy(), hist.counts.numpy()
    palette = cq.quantize(image, 5, color_space=space, device="cpu").palette
    figure = cloud_figure(colors, counts, palette, space, max_points=100, path=tmp_path / "c.png")
    (ax,) = figure.axes
    assert ax.name == "3d"
    cloud, centers = ax.collections
    assert len(cloud.get_offsets()) == 100  # sampled
    assert len(centers.get_offsets()) == palette.shape[0]
    assert ax.get_zlabel() == {"rgb": "B", "lab": "L*", "oklab": "L"}[space]
    assert (tmp_path / "c.png").stat().st_size > 0
    everything = cloud_figure(colors, counts, palette, space, max_points=10**6)
    assert len(everything.axes[0].collections[0].get_offsets()) == len(colors)


def test_cloud_sampling_follows_counts() -> None:
    colors = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)
    counts = np.array([0, 5, 0])  # only red has pixels
    figure = cloud_figure(colors, counts, colors[1:2], "rgb", max_points=1)
    offsets = figure.axes[0].collections[0].get_offsets()
    assert len(offsets) == 1


def test_cloud_bad_input() -> None:
    colors = np.zeros((3, 3), np.uint8)
    with pytest.raises(cq.InputError, match="color_space"):
        cloud_figure(colors, np.ones(3), colors, "hsv")  # type: ignore[arg-type]
    with pytest.raises(cq.InputError, match="counts"):
        cloud_figure(colors, np.ones(2), colors, "rgb")
    with pytest.raises(cq.InputError, match="uint8"):
        cloud_figure(colors.astype(float), np.ones(3), colors, "rgb")


def test_figure_formats(tmp_path: Path) -> None:
    figure = elbow_figure([2, 4], [10.0, 5.0])
    for suffix in (".png", ".pdf", ".svg"):
        assert save_figure(figure, tmp_path / f"f{suffix}") > 0
    with pytest.raises(cq.InputError, match=r"\.png, \.pdf, \.svg"):
        figure_suffix("f.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png", "f.svg"]
