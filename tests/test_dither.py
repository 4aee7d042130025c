"""colorquant.dither: the Bayer matrix, the spread, and ordered dithering through quantize_batch."""

from __future__ import annotations

import numpy as np
import pytest

import colorquant as cq
from colorquant.dither import bayer_matrix, dither_spread, ordered_offsets
from conftest import NEEDS_TORCH, fs_reference

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)


@pytest.mark.parametrize("size", [1, 2, 4, 8, 16])
def test_bayer_matrix_holds_every_level_once(size: int) -> None:
    m = bayer_matrix(size)
    assert m.shape == (size, size)
    levels = np.sort((m * size * size - 0.5).round().ravel())
    np.testing.assert_array_equal(levels, np.arange(size * size))
    assert m.mean() == pytest.approx(0.5)


def test_bayer_matrix_by_hand() -> None:
    expected = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]
    np.testing.assert_array_equal((bayer_matrix(4) * 16 - 0.5).round(), expected)
    # Each quarter holds one residue class mod 4, in the pattern of the 2x2: the recursion.
    levels = (bayer_matrix(4) * 16 - 0.5).round().astype(int)
    quarters = levels.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4) % 4
    assert (quarters == quarters[..., :1]).all()
    np.testing.assert_array_equal(quarters[..., 0], (bayer_matrix(2) * 4 - 0.5).round())


@pytest.mark.parametrize("size", [0, 3, 128])
def test_bayer_matrix_bad_size(size: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        bayer_matrix(size)


def test_spread_is_median_nearest_neighbour_distance() -> None:
    palette = np.array([[0, 0, 0], [10, 0, 0], [0, 30, 0], [100, 100, 100]])
    # nearest distances: 10, 10, 30, ~147.3 -> median 20
    assert dither_spread(palette) == pytest.approx(20.0)
    assert dither_spread(palette[:1]) == 0.0


def test_offsets_tile_and_range() -> None:
    off = ordered_offsets(np.empty(0), 20, 13, 10.0)
    assert off.shape == (20, 13) and off.dtype == np.float64
    assert off.min() > -5.0 and off.max() < 5.0
    np.testing.assert_array_equal(off[8:16, :8], off[:8, :8])  # an 8x8 tile, repeated
    t = ordered_offsets(torch.empty(0, dtype=torch.float32), 8, 8, 10.0)
    assert t.dtype == torch.float32 and abs(float(t.mean())) < 1e-6


def gradient(height: int = 32, width: int = 96) -> torch.Tensor:
    """A horizontal gray ramp, (1, 3, H, W) float in [0, 1]."""
    ramp = torch.linspace(0.0, 1.0, width, dtype=torch.float64)
    return ramp.expand(1, 3, height, width).clone()


def box_blur(x: torch.Tensor, size: int = 8) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(x, size)


def test_ordered_dither_keeps_local_averages_closer() -> None:
    # The purpose of dithering: with a few colors, a smooth ramp's local averages are kept.
    x = gradient()
    plain = cq.quantize_batch(x, 4, color_space="rgb", seed=0)
    dithered = cq.quantize_batch(x, 4, color_space="rgb", seed=0, dither="ordered")
    # The same fit, only the map differs (palettes list used colors, most used first).
    assert sorted(dithered.palettes[0].tolist()) == sorted(plain.palettes[0].tolist())
    err_plain = (box_blur(plain.image) - box_blur(x)).abs().mean()
    err_dither = (box_blur(dithered.image) - box_blur(x)).abs().mean()
    assert err_dither < 0.5 * err_plain
    # Still a palette image: every pixel is one of the image's palette colors.
    colors = dithered.image[0].permute(1, 2, 0).reshape(-1, 3) * 255
    pal = dithered.palettes[0, : int(dithered.n_colors[0])].double()
    assert (torch.cdist(colors, pal).min(1).values < 1e-9).all()


def test_ordered_dither_is_the_same_on_every_frame_and_strength_zero_is_plain() -> None:
    x = gradient().repeat(3, 1, 1, 1)  # three identical frames
    out = cq.quantize_batch(x, 6, color_space="rgb", palette=None, shared=True, dither="ordered")
    assert torch.equal(out.image[0], out.image[1]) and torch.equal(out.image[1], out.image[2])
    zero = cq.quantize_batch(
        x, 6, color_space="rgb", shared=True, dither="ordered", dither_strength=0.0
    )
    plain = cq.quantize_batch(x, 6, color_space="rgb", shared=True)
    torch.testing.assert_close(zero.image, plain.image, rtol=0, atol=0)


def test_bad_dither_options() -> None:
    x = gradient()
    with pytest.raises(cq.InputError, match="dither must be one of 'none', 'ordered'"):
        cq.quantize_batch(x, 4, dither="floyd")  # type: ignore[arg-type]
    with pytest.raises(cq.InputError, match=r"dither_strength must be in \[0, 1\]"):
        cq.quantize_batch(x, 4, dither="ordered", dither_strength=1.5)


# -- Floyd-Steinberg --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [7, 80])
@pytest.mark.parametrize("max_error", [1000.0, 12.0])
def test_fs_kernel_equals_plain_reference(max_error: float, k: int) -> None:
    from colorquant.dither import error_diffusion

    rng = np.random.default_rng(3)
    rgb8 = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    palette = rng.integers(0, 256, (k, 3)).astype(np.float64)
    strength = rng.uniform(0, 1, (9, 13)).astype(np.float32)
    expected = fs_reference(rgb8, palette, strength, max_error)
    np.testing.assert_array_equal(error_diffusion(rgb8, palette, strength, max_error), expected)


def test_error_diffusion_dispatches_on_its_input() -> None:
    from colorquant.dither import diffusion_strength, error_diffusion

    rng = np.random.default_rng(5)
    rgb8 = rng.integers(0, 256, (12, 17, 3), dtype=np.uint8)
    palette = rng.integers(0, 256, (9, 3), dtype=np.uint8)
    # A scalar strength is the flat-area share: the per-pixel map comes from the image.
    scalar = error_diffusion(rgb8, palette, 0.8, 40.0)
    mapped = error_diffusion(rgb8, palette, diffusion_strength(rgb8, 0.8), 40.0)
    np.testing.assert_array_equal(scalar, mapped)
    want = fs_reference(rgb8, palette.astype(np.float64), diffusion_strength(rgb8, 0.8), 40.0)
    np.testing.assert_array_equal(scalar, want)
    # A tensor gives a tensor on its device with the same rows.
    rows = error_diffusion(torch.from_numpy(rgb8), torch.from_numpy(palette), 0.8, 40.0)
    assert isinstance(rows, torch.Tensor) and rows.device.type == "cpu"
    np.testing.assert_array_equal(rows.numpy(), scalar)
    # And quantize's "fs" is this dither with the palette's spread.
    res = cq.Quantizer.from_palette(palette, color_space="rgb").apply(rgb8, dither="fs")
    full = error_diffusion(rgb8, palette, 1.0, dither_spread(palette))
    np.testing.assert_array_equal(res.palette[res.indices], palette[full])


def test_fs_keeps_the_mean_of_a_flat_area() -> None:
    # A flat gray between two palette colors becomes a mix of both with the same mean.
    flat = np.full((40, 40, 3), 100, np.uint8)
    q = cq.Quantizer.from_palette([[0, 0, 0], [255, 255, 255]], color_space="rgb")
    plain = q.apply(flat)
    fs = q.apply(flat, dither="fs")
    assert (plain.counts > 0).sum() == 1  # without dithering the whole area is one color...
    assert (fs.counts > 0).sum() == 2  # ...with it, never silently skipped
    assert abs(fs.to_numpy().mean() - 100.0) < 2.0
    assert fs.mse == pytest.approx(((fs.to_numpy().astype(float) - flat) ** 2).mean())


def test_fs_strength_zero_is_the_plain_map_in_rgb() -> None:
    from conftest import make_photo_like

    img = make_photo_like(24, 32, 1)
    q = cq.Quantizer(6, color_space="rgb").fit(img)
    np.testing.assert_array_equal(
        q.apply(img, dither="fs", dither_strength=0.0).to_numpy(), q.apply(img).to_numpy()
    )


def test_fs_on_a_ramp_keeps_local_averages_and_metrics_are_per_pixel() -> None:
    ramp = np.tile(np.linspace(0, 255, 96)[None, :, None], (32, 1, 3)).astype(np.uint8)
    plain = cq.quantize(ramp, 4, color_space="rgb")
    fs = cq.quantize(ramp, 4, color_space="rgb", dither="fs")
    blur = lambda a: a.reshape(4, 8, 12, 8, 3).mean(axis=(1, 3))  # noqa: E731
    err_plain = np.abs(blur(plain.to_numpy().astype(float)) - blur(ramp.astype(float))).mean()
    err_fs = np.abs(blur(fs.to_numpy().astype(float)) - blur(ramp.astype(float))).mean()
    assert err_fs < 0.5 * err_plain
    assert fs.delta_e == pytest.approx(cq.mean_delta_e(ramp, fs.to_numpy()), rel=1e-9)
    assert fs.counts.sum() == ramp.shape[0] * ramp.shape[1]


def test_diffusion_strength_is_lower_at_edges() -> None:
    from colorquant.dither import EDGE_SCALE, diffusion_strength

    img = np.zeros((6, 10, 3), np.uint8)
    img[:, 5:] = 200
    s = diffusion_strength(img, 0.8)
    assert s.dtype == np.float32 and s.shape == (6, 10)
    assert np.allclose(s[:, :3], 0.8) and np.allclose(s[:, 7:], 0.8)  # flat on both sides
    step = 200 * (0.299 + 0.587 + 0.114)
    assert s[0, 4] == pytest.approx(0.8 / (1 + (step / EDGE_SCALE) ** 2), rel=1e-5)


def test_fs_in_batches() -> None:
    x = gradient().repeat(2, 1, 1, 1)
    out = cq.quantize_batch(x, 4, color_space="rgb", dither="fs")
    ref = cq.quantize(
        (x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy(), 4, color_space="rgb",
        dither="fs",
    )  # fmt: skip
    np.testing.assert_array_equal(
        (out.image[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy(), ref.to_numpy()
    )
