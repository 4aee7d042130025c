"""Transparency: RGBA clustering (premultiplied), palette PNGs with tRNS, the CLI's alpha cases."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import colorquant as cq
from colorquant.alpha import (
    ALMOST_OPAQUE,
    ALPHA_SCALE,
    OPAQUE,
    SEPARATION,
    binary_alpha,
    decode_rgba,
    eligible_rows,
    encode_rgba,
    kind_of,
    mse_rgba,
    nearest_of_kind,
    pack_rgba,
    refine_kinds,
    transparent_points,
    unpack_rgba,
)
from colorquant.cli import main
from colorquant.color import COLOR_SPACES
from colorquant.io import result_bytes
from conftest import NEEDS_TORCH, fs_reference

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

H, W = 24, 32


def photo(seed: int = 0) -> np.ndarray:
    """A smooth color image with some noise: many distinct colors."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    rng = np.random.default_rng(seed)
    rgb = np.stack([x / W * 255, y / H * 255, (x + y) / (H + W) * 255], axis=2)
    return np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)


def sprite(seed: int = 0) -> np.ndarray:
    """A disc: opaque inside, an anti-aliased (translucent) rim, fully transparent outside,
    with random colors left under the transparent pixels (as editors leave them)."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    r = np.hypot(y - H / 2, x - W / 2)
    alpha = np.clip((10.0 - r) / 3.0, 0.0, 1.0)
    rgba = np.dstack([photo(seed), np.rint(alpha * 255).astype(np.uint8)])
    return rgba


def roundtrip(result: cq.QuantizeResult) -> np.ndarray:
    """The PNG that would be written, read back to RGBA by Pillow."""
    with Image.open(io.BytesIO(result_bytes(result))) as image:
        assert image.mode == "P"
        return np.asarray(image.convert("RGBA"))


# -- the coordinates --------------------------------------------------------------------------


def test_pack_roundtrip() -> None:
    colors = np.random.default_rng(0).integers(0, 256, (500, 4), dtype=np.uint8)
    np.testing.assert_array_equal(unpack_rgba(pack_rgba(colors)), colors)
    assert pack_rgba(np.array([[1, 2, 3, 4]], np.uint8))[0] == 0x01020304


@pytest.mark.parametrize("space", COLOR_SPACES)
def test_encode_decode_roundtrip(space: str) -> None:
    rng = np.random.default_rng(1)
    colors = rng.integers(0, 256, (300, 4), dtype=np.uint8)
    colors[:, 3] = np.clip(colors[:, 3], 64, 252)  # exact where alpha is not tiny nor snapped
    colors[:20, 3] = 0
    colors[:20, :3] = 0
    back = decode_rgba(encode_rgba(colors, space), space)  # type: ignore[arg-type]
    assert np.abs(back.astype(int) - colors).max() <= 1


def test_premultiplied_coordinates() -> None:
    colors = np.array([[200, 100, 50, 255], [200, 100, 50, 51], [9, 9, 9, 0]], np.uint8)
    points = encode_rgba(colors, "rgb")
    scale = ALPHA_SCALE["rgb"]
    assert scale == pytest.approx(255 * 3**0.5)
    np.testing.assert_allclose(points[0], [200, 100, 50, scale])
    np.testing.assert_allclose(points[1], [40, 20, 10, 0.2 * scale])  # a = 0.2
    # Transparent: RGB not premultiplied (it is kept or zeroed before), far away in alpha.
    np.testing.assert_allclose(points[2], [9, 9, 9, -SEPARATION * scale])


def test_almost_opaque_centroids_become_opaque() -> None:
    colors = np.array([[10, 20, 30, a] for a in (1, 200, 252, 253, 254, 255)], np.uint8)
    back = decode_rgba(encode_rgba(colors, "rgb"), "rgb")
    assert back[:, 3].tolist() == [1, 200, 252, 255, 255, 255]
    assert ALMOST_OPAQUE == 253


def test_mse_rgba_is_premultiplied() -> None:
    a = np.array([[255, 0, 0, 255], [100, 100, 100, 0]], np.uint8)
    b = np.array([[255, 0, 0, 255], [0, 0, 0, 0]], np.uint8)
    assert mse_rgba(a, b) == 0.0  # the color under alpha 0 does not count
    c = np.array([[255, 0, 0, 251], [0, 0, 0, 0]], np.uint8)
    # Pixel 0: red 255 -> 251 premultiplied, alpha 255 -> 251: (16 + 16) / (2 pixels * 4).
    assert mse_rgba(a, c) == pytest.approx((4.0**2 + 4.0**2) / 8.0)


def test_binary_alpha() -> None:
    rgba = np.zeros((1, 4, 4), np.uint8)
    rgba[0, :, 3] = [0, 127, 128, 255]
    np.testing.assert_array_equal(binary_alpha(rgba)[0, :, 3], [0, 0, 255, 255])
    rgba[0, :, 3] = 200
    assert binary_alpha(rgba).shape == (1, 4, 3)  # nothing transparent left: RGB


# -- quantize ---------------------------------------------------------------------------------


@pytest.mark.parametrize("space", ["rgb", "hybrid", "oklab"])
def test_transparency_is_kept_exactly(space: str) -> None:
    rgba = sprite()
    res = cq.quantize(rgba, 16, color_space=space)  # type: ignore[arg-type]
    assert res.has_alpha and res.palette.shape[1] == 4
    out = res.to_numpy()
    assert out.shape == (H, W, 4)
    # No fully transparent pixel becomes visible, and no visible one transparent.
    np.testing.assert_array_equal(out[..., 3] == 0, rgba[..., 3] == 0)
    # All fully transparent pixels share one entry, (0, 0, 0, 0).
    clear = res.palette[:, 3] == 0
    assert clear.sum() == 1
    assert res.palette[clear].tolist() == [[0, 0, 0, 0]]
    # Opaque pixels stay exactly opaque; the rim gets entries of its own.
    assert (out[rgba[..., 3] == 255][:, 3] == 255).all()
    assert ((res.palette[:, 3] > 0) & (res.palette[:, 3] < 255)).any()
    assert np.abs(out[..., 3].astype(int) - rgba[..., 3]).mean() < 2.5


def test_png_roundtrip_and_short_trns() -> None:
    rgba = sprite(2)
    res = cq.quantize(rgba, 64)
    back = roundtrip(res)
    np.testing.assert_array_equal(back, res.to_numpy())
    # The output round-trips to RGBA within 1 level of alpha on average.
    assert np.abs(back[..., 3].astype(int) - rgba[..., 3]).mean() <= 1.0
    # Translucent entries first: tRNS stops at the last one.
    alpha = res.palette[:, 3]
    n_translucent = int((alpha < 255).sum())
    assert (alpha[:n_translucent] < 255).all() and (alpha[n_translucent:] == 255).all()
    with Image.open(io.BytesIO(result_bytes(res))) as image:
        assert len(image.info["transparency"]) == n_translucent < res.n_colors


def test_all_transparent_is_one_entry() -> None:
    rgba = sprite()
    rgba[..., 3] = 0
    res = cq.quantize(rgba, 8)
    assert res.palette.tolist() == [[0, 0, 0, 0]]
    assert res.mse == 0.0 and res.delta_e == 0.0
    assert (roundtrip(res)[..., 3] == 0).all()


def test_one_opaque_pixel() -> None:
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[5, 7] = [10, 200, 30, 255]
    res = cq.quantize(rgba, 4)
    assert sorted(res.palette.tolist()) == [[0, 0, 0, 0], [10, 200, 30, 255]]
    np.testing.assert_array_equal(roundtrip(res), rgba)
    with pytest.raises(cq.InputError, match="n_colors must be at least 2"):
        cq.quantize(rgba, 1)


def test_semitransparent_gradient() -> None:
    # One color under every alpha level, then a 2-D color x alpha gradient.
    ramp = np.zeros((4, 256, 4), np.uint8)
    ramp[..., :3] = [40, 120, 220]
    ramp[..., 3] = np.arange(256, dtype=np.uint8)
    res = cq.quantize(ramp, 256)
    np.testing.assert_array_equal(res.to_numpy(), np.where(ramp[..., 3:] == 0, 0, ramp))
    y, x = np.mgrid[0:64, 0:64]
    grad = np.dstack([x * 4, 255 - x * 4, np.full_like(x, 128), y * 4 + 3]).astype(np.uint8)
    res = cq.quantize(grad, 256)  # 4096 colors: alpha and color share the error
    out = res.to_numpy()
    assert np.abs(out[..., 3].astype(int) - grad[..., 3]).mean() <= 2.5
    assert (out[..., 3] > 0).all()
    # The opaque row stays within two of the gradient's alpha steps (4 levels) of opaque.
    assert (out[-1, :, 3] >= 255 - 2 * 4).all()


def test_low_alpha_colors_cost_little() -> None:
    # Two groups of 4 colors each: one opaque, one at alpha 8. With 5 entries, premultiplied
    # clustering spends 4 on the opaque colors (where errors show) and 1 on the faint ones.
    rgba = np.zeros((8, 64, 4), np.uint8)
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
    for i in range(8):
        rgba[:, i * 8 : (i + 1) * 8, :3] = colors[i % 4]
        rgba[:, i * 8 : (i + 1) * 8, 3] = 255 if i < 4 else 8
    res = cq.quantize(rgba, 5, color_space="rgb")
    opaque = res.palette[res.palette[:, 3] == 255, :3]
    assert sorted(opaque.tolist()) == sorted(colors.tolist())


def test_keep_transparent_rgb() -> None:
    rgba = sprite(3)
    clear = rgba[..., 3] == 0
    plain = cq.quantize(rgba, 64)
    kept = cq.quantize(rgba, 64, keep_transparent_rgb=True)
    out = kept.to_numpy()
    np.testing.assert_array_equal(out[..., 3] == 0, clear)
    assert (kept.palette[:, 3] == 0).sum() > 1  # several transparent entries, with colors
    # The RGB under the transparent pixels is close to the input's (texture padding).
    err_kept = np.abs(out[clear][:, :3].astype(int) - rgba[clear][:, :3]).mean()
    err_plain = np.abs(plain.to_numpy()[clear][:, :3].astype(int) - rgba[clear][:, :3]).mean()
    assert err_kept < 12 < err_plain
    assert np.abs(roundtrip(kept)[clear][:, :3].astype(int) - rgba[clear][:, :3]).mean() < 12


def test_groups_apart_fallback() -> None:
    # A huge visible area and one transparent pixel: the joint seeding nearly never misses
    # the transparent group, but the fallback fits the groups apart when it does.
    rgba = np.dstack([photo(4), np.full((H, W), 255, np.uint8)])
    rgba[0, 0, 3] = 0
    hist_rgba = rgba.copy()
    hist_rgba[0, 0, :3] = 0
    colors, counts = np.unique(hist_rgba.reshape(-1, 4), axis=0, return_counts=True)
    from colorquant.fit import fit_groups_apart
    from colorquant.histogram import ColorHistogram
    from colorquant.options import FitOptions

    hist = ColorHistogram(colors, counts, None)
    opts = FitOptions(color_space="rgb")
    palette = fit_groups_apart(hist, encode_rgba(colors, "rgb"), 8, opts, "cpu").palette
    q = cq.Quantizer.from_palette(palette, color_space="rgb")
    assert palette.shape == (8, 4)
    assert palette[-1].tolist() == [0, 0, 0, 0] and (palette[:-1, 3] == 255).all()
    res = q.apply(rgba)
    np.testing.assert_array_equal(res.to_numpy()[..., 3] == 0, rgba[..., 3] == 0)


def test_fixed_colors_with_alpha() -> None:
    rgba = sprite()
    res = cq.quantize(rgba, 8, fixed_colors=[[255, 255, 255], [0, 0, 0]])
    rows = res.palette.tolist()
    assert [255, 255, 255, 255] in rows and [0, 0, 0, 255] in rows and [0, 0, 0, 0] in rows
    with pytest.raises(cq.InputError, match="none is left for the fully transparent"):
        cq.quantize(rgba, 2, fixed_colors=[[255, 255, 255], [0, 0, 0]])


def test_given_rgb_palette_gets_a_transparent_entry() -> None:
    rgba = sprite()
    q = cq.Quantizer.from_palette([[255, 0, 0], [0, 0, 255]])
    res = q.apply(rgba)
    assert res.has_alpha
    np.testing.assert_array_equal(res.to_numpy()[..., 3] == 0, rgba[..., 3] == 0)
    # The given rows first, in place (indices keep their meaning), the transparent one after.
    assert res.palette.tolist() == [[255, 0, 0, 255], [0, 0, 255, 255], [0, 0, 0, 0]]
    # An RGBA palette on an opaque image: the palette whole, its transparent row unused.
    q4 = cq.Quantizer.from_palette([[255, 0, 0, 255], [0, 0, 0, 0]])
    out = q4.apply(photo())
    assert out.palette.tolist() == [[255, 0, 0, 255], [0, 0, 0, 0]]
    assert out.counts.tolist() == [out.indices.size, 0]


def test_shared_palette_over_rgb_and_rgba() -> None:
    q = cq.Quantizer(8).fit([photo(5), sprite(6)])
    assert q.palette.shape[1] == 4 and (q.palette[:, 3] == 0).sum() == 1
    # The same one image at a time (a dataset, the command's --shared-palette): equal.
    for first, second in ((photo(5), sprite(6)), (sprite(6), photo(5))):
        streamed = cq.Quantizer(8).partial_fit(first).partial_fit(second)
        # The same rows in the same order (one order over the fitted set: index space).
        np.testing.assert_array_equal(streamed.palette, q.palette)
    opaque = q.apply(photo(5))
    np.testing.assert_array_equal(opaque.palette, q.palette)  # listed whole
    assert (opaque.to_numpy()[..., 3] == 255).all()


@pytest.mark.parametrize("dither", ["ordered", "fs"])
def test_dither_keeps_transparency(dither: str) -> None:
    rgba = sprite(7)
    res = cq.quantize(rgba, 8, dither=dither)  # type: ignore[arg-type]
    np.testing.assert_array_equal(res.to_numpy()[..., 3] == 0, rgba[..., 3] == 0)
    plain = cq.quantize(rgba, 8)
    assert not np.array_equal(res.indices, plain.indices)  # the dither did something
    out = res.to_numpy()
    assert (out[rgba[..., 3] == 255][:, 3] == 255).all()  # opaque stays exactly opaque


def soft_disc(n: int = 96) -> np.ndarray:
    """A radial soft-alpha image: a few hundred opaque pixels in the middle, a long soft
    falloff, fully transparent corners (where sharing clusters made every opaque pixel 252)."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    r = np.hypot(x - n / 2, y - n / 2) / (n / 2)
    alpha = np.rint(np.clip((1.0 - r) * 1.3, 0.0, 1.0) * 255).astype(np.uint8)
    rgb = np.stack([x * 255 / n, y * 255 / n, (x + y) * 127 / n], axis=2).astype(np.uint8)
    return np.dstack([rgb, alpha])


@pytest.mark.parametrize("space", ["rgb", "hybrid", "oklab"])
@pytest.mark.parametrize("dither", ["none", "fs", "ordered"])
def test_opaque_stays_255_and_clear_stays_0(space: str, dither: str) -> None:
    rgba = soft_disc()
    opaque, clear = rgba[..., 3] == 255, rgba[..., 3] == 0
    assert 200 < opaque.sum() < 1000 and clear.sum() > 1000  # the case of the report
    res = cq.quantize(rgba, 16, color_space=space, dither=dither)  # type: ignore[arg-type]
    out = res.to_numpy()
    assert (out[opaque][:, 3] == 255).all()
    assert (out[clear][:, 3] == 0).all()
    assert (out[~clear][:, 3] > 0).all()
    assert ((res.palette[:, 3] > 0) & (res.palette[:, 3] < 255)).any()  # translucent kept
    # The PNG written says the same.
    back = roundtrip(res)
    assert (back[opaque][:, 3] == 255).all() and (back[clear][:, 3] == 0).all()


def test_opaque_kept_with_a_given_palette_and_shared_fit() -> None:
    rgba = soft_disc(48)
    opaque = rgba[..., 3] == 255
    # A given palette whose nearest entry for many opaque pixels is translucent.
    palette = np.array([[0, 0, 0, 0], [90, 90, 60, 250], [200, 120, 90, 240], [20, 20, 20, 255]])
    for dither in ("none", "fs", "ordered"):
        out = cq.Quantizer.from_palette(palette).apply(rgba, dither=dither).to_numpy()  # type: ignore[arg-type]
        assert (out[opaque][:, 3] == 255).all(), dither
    # A palette without an opaque entry: opaque pixels take visible ones (nothing else exists).
    out = cq.Quantizer.from_palette(palette[:3]).apply(rgba).to_numpy()
    assert (out[opaque][:, 3] > 0).all() and (out[rgba[..., 3] == 0][:, 3] == 0).all()
    q = cq.Quantizer(12).fit([rgba, soft_disc(40)])
    assert (q.apply(rgba, dither="fs").to_numpy()[opaque][:, 3] == 255).all()


def test_nearest_of_kind_against_brute_force() -> None:
    rng = np.random.default_rng(11)
    points, palette = rng.normal(size=(400, 4)), rng.normal(size=(9, 4))
    kind = rng.integers(0, 3, 400).astype(np.int8)
    for row_kind in (
        np.array([0, 1, 2, 2, 1, 0, 1, 2, 1], np.int8),
        np.array([0, 1, 1, 1, 1, 1, 1, 1, 1], np.int8),  # no opaque row: visible ones
    ):
        index, dist2 = nearest_of_kind(points, kind, palette, row_kind)
        allowed = eligible_rows(row_kind)
        d2 = ((points[:, None, :] - palette[None]) ** 2).sum(2)
        for i in range(len(points)):
            rows = np.flatnonzero(allowed[int(kind[i])])
            assert index[i] == rows[np.argmin(d2[i, rows])]
            assert dist2[i] == pytest.approx(d2[i, index[i]])
    assert not eligible_rows(np.array([0, 1, 1], np.int8))[OPAQUE][0]


def test_refine_kinds_pins_opaque_and_never_increases() -> None:
    rgba = soft_disc(40).reshape(-1, 4)
    colors, counts, _ = cq.alpha.rgba_histogram(rgba)
    points = encode_rgba(colors, "rgb")
    kind = kind_of(colors[:, 3])
    rng = np.random.default_rng(0)
    start = points[rng.choice(len(points), 10, replace=False)]

    def objective(c: np.ndarray, opaque: np.ndarray) -> float:
        rows = np.where(transparent_points(c, "rgb"), 0, np.where(opaque, 2, 1)).astype(np.int8)
        return float(counts @ nearest_of_kind(points, kind, c, rows)[1])

    one, opaque_one = refine_kinds(points, counts, kind, start, "rgb", max_iter=1, tol=0.0)
    many, opaque = refine_kinds(points, counts, kind, start, "rgb", max_iter=30, tol=0.0)
    np.testing.assert_array_equal(opaque, opaque_one)
    assert opaque.any() and (many[opaque, -1] == ALPHA_SCALE["rgb"]).all()
    assert objective(many, opaque) <= objective(one, opaque) + 1e-9
    decoded = decode_rgba(many, "rgb")
    assert (decoded[opaque, 3] == 255).all()


def test_fs_rgba_flat_area_keeps_its_mean() -> None:
    # A flat translucent color between two palette entries: the dither mixes them so that the
    # mean (premultiplied) color is kept.
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[...] = [100, 100, 100, 200]
    rgba[0, 0] = [0, 0, 0, 0]
    palette = np.array([[0, 0, 0, 0], [60, 60, 60, 200], [140, 140, 140, 200]], np.uint8)
    res = cq.Quantizer.from_palette(palette, color_space="rgb").apply(rgba, dither="fs")
    out = res.to_numpy()[1:].reshape(-1, 4).astype(float)
    assert abs(out[:, 0].mean() - 100) < 2 and (out[:, 3] == 200).all()
    assert res.to_numpy()[0, 0, 3] == 0


def test_fs_groups_kernel_against_python() -> None:
    from colorquant.dither import error_diffusion_groups

    rng = np.random.default_rng(3)
    h, w, k = 6, 7, 5
    pixels = rng.uniform(0, 255, (h, w, 4))
    palette = rng.uniform(0, 255, (k, 4))
    weight = np.array([1.0, 1.0, 1.0, 3.0])
    pgroup = rng.integers(-1, 3, (h, w)).astype(np.int8)
    egroup = np.array([0b110, 0b010, 0b011, 0b100, 0], np.int8)  # bit g: group g may take it
    fixed = rng.integers(0, k, (h, w)).astype(np.int32)
    strength = rng.uniform(0, 1, (h, w)).astype(np.float32)
    got = error_diffusion_groups(pixels, palette, weight, pgroup, egroup, fixed, strength, 30.0)
    want = fs_reference(
        pixels,
        palette,
        strength,
        30.0,
        weight=weight,
        pixel_group=pgroup,
        entry_group=egroup,
        fixed=fixed,
    )
    np.testing.assert_array_equal(got, want)


def test_posterize_keeps_alpha() -> None:
    res = cq.quantize(sprite(), 16, posterize=2)
    rgb = res.palette[:, :3]
    assert set(np.unique(rgb).tolist()) <= {0, 85, 170, 255}
    assert len(set(res.palette[:, 3].tolist()) - {0, 85, 170, 255}) > 0  # alpha not rounded


def test_batch_rgba_tensor() -> None:
    x = torch.from_numpy(np.stack([sprite(8), sprite(9)])).permute(0, 3, 1, 2).contiguous()
    out = cq.quantize_batch(x, 8)
    assert out.image.shape == x.shape and out.palettes.shape[2] == 4
    for b in range(2):
        alone = cq.quantize(x[b], 8)
        np.testing.assert_array_equal(out.image[b].permute(1, 2, 0).numpy(), alone.to_numpy())
        assert float(out.mse[b]) == pytest.approx(alone.mse)
    back = out.image.float()
    assert torch.equal(back[:, 3] == 0, x[:, 3] == 0)


def test_rgba_tensor_result() -> None:
    t = torch.from_numpy(sprite()).permute(2, 0, 1).float() / 255.0
    res = cq.quantize(t, 8)
    assert res.to_tensor().shape == (4, H, W)


# -- the command line -------------------------------------------------------------------------


def run(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_rgba_png(tmp_path: Path) -> None:
    src = tmp_path / "sprite.png"
    Image.fromarray(sprite()).save(src)
    result = run("quantize", src, "-k", "16")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "warning" not in result.stderr  # type: ignore[attr-defined]
    with Image.open(tmp_path / "sprite-cq.png") as image:
        assert image.mode == "P" and "transparency" in image.info
        back = np.asarray(image.convert("RGBA"))
    np.testing.assert_array_equal(back[..., 3] == 0, sprite()[..., 3] == 0)


def test_cli_gif_cuts_alpha(tmp_path: Path) -> None:
    src = tmp_path / "sprite.png"
    rgba = soft_disc(64)
    Image.fromarray(rgba).save(src)
    out = tmp_path / "s.gif"
    result = run("quantize", src, "-k", "16", "-o", out, "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    with Image.open(out) as image:
        back = np.asarray(image.convert("RGBA"))
    np.testing.assert_array_equal(back[..., 3] == 0, rgba[..., 3] < 128)
    assert set(np.unique(back[..., 3]).tolist()) == {0, 255}
    # The metrics are against the input, not the cut image; one warning line says so.
    record = json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[attr-defined]
    want = 10 * np.log10(255.0**2 / mse_rgba(rgba, back))
    assert record["psnr"] == pytest.approx(want, abs=1e-6)
    png = run("quantize", src, "-k", "16", "-o", tmp_path / "s.png", "--json", "--nofs")
    png_psnr = json.loads(png.stdout.strip().splitlines()[-1])["psnr"]  # type: ignore[attr-defined]
    assert record["psnr"] < png_psnr  # cutting alpha loses, and the number shows it
    warnings = [ln for ln in result.stderr.splitlines() if "warning" in ln]  # type: ignore[attr-defined]
    assert len(warnings) == 1 and "sprite.png" in warnings[0] and "translucen" in warnings[0]
    assert "warning" not in png.stderr  # type: ignore[attr-defined]
    translucent = int(((rgba[..., 3] > 0) & (rgba[..., 3] < 255)).sum())
    assert record["alpha_cut"] == translucent and "alpha_cut" not in json.loads(png.stdout)  # type: ignore[attr-defined]


def test_cli_gif_of_binary_alpha_does_not_warn(tmp_path: Path) -> None:
    src = tmp_path / "hard.png"
    rgba = soft_disc(32)
    rgba[..., 3] = np.where(rgba[..., 3] < 128, 0, 255)
    Image.fromarray(rgba).save(src)
    result = run("quantize", src, "-k", "8", "-o", tmp_path / "h.gif")
    assert result.exit_code == 0 and "warning" not in result.stderr  # type: ignore[attr-defined]


def test_cli_keep_transparent_rgb(tmp_path: Path) -> None:
    src = tmp_path / "sprite.png"
    Image.fromarray(sprite(1)).save(src)
    out = tmp_path / "k.png"
    result = run("quantize", src, "-k", "64", "--keep-transparent-rgb", "-o", out)
    assert result.exit_code == 0  # type: ignore[attr-defined]
    with Image.open(out) as image:
        back = np.asarray(image.convert("RGBA"))
    clear = sprite(1)[..., 3] == 0
    assert np.abs(back[clear][:, :3].astype(int) - sprite(1)[clear][:, :3]).mean() < 12
    bad = run("quantize", src, "--keep-transparent-rgb", "-o", tmp_path / "k.gif")
    assert bad.exit_code == 2  # type: ignore[attr-defined]  # an option conflict: usage
    assert "needs PNG" in bad.stderr  # type: ignore[attr-defined]
    assert not (tmp_path / "k.gif").exists()


def _edge_case(name: str) -> np.ndarray:
    rgba = sprite(4)
    if name == "all transparent":
        rgba[..., 3] = 0
    elif name == "one opaque pixel":
        rgba[..., 3] = 0
        rgba[3, 5, 3] = 255
    elif name == "gradient":
        rgba[..., 3] = np.linspace(0, 255, W).round().astype(np.uint8)[None, :]
    return rgba


@pytest.mark.filterwarnings("error")  # e.g. Pillow's on palette images with transparency
@pytest.mark.parametrize("name", ["all transparent", "one opaque pixel", "gradient", "sprite"])
@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_cli_real_files_edge_cases(tmp_path: Path, name: str, mode: str) -> None:
    rgba = _edge_case(name)
    src = tmp_path / "in.png"
    if mode == "RGBA":
        Image.fromarray(rgba).save(src)
    elif mode == "LA":
        rgba[..., :3] = rgba[..., :1]  # gray
        Image.fromarray(rgba[..., [0, 3]]).save(src)
    else:  # a palette image with one transparent entry: alpha is 0 or 255
        rgba[..., 3] = np.where(rgba[..., 3] < 128, 0, 255)
        Image.fromarray(rgba).quantize(64).save(src)  # Pillow keeps the transparent entry
    with Image.open(src) as image:
        expected = np.asarray(image.convert("RGBA"))
    out = tmp_path / "out.png"
    result = run("quantize", src, "-k", "256", "-o", out)  # the command's default dither: fs
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert result.stderr == ""  # type: ignore[attr-defined]  # no warning leaks out
    with Image.open(out) as image:
        assert image.mode == "P"
        back = np.asarray(image.convert("RGBA"))
    np.testing.assert_array_equal(back[..., 3] == 0, expected[..., 3] == 0)
    assert np.abs(back[..., 3].astype(int) - expected[..., 3]).mean() <= 1.0


def test_cli_default_dither_keeps_opaque(tmp_path: Path) -> None:
    src = tmp_path / "disc.png"
    rgba = soft_disc()
    Image.fromarray(rgba).save(src)
    result = run("quantize", src, "-k", "16")  # the command dithers by default
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    with Image.open(tmp_path / "disc-cq.png") as image:
        back = np.asarray(image.convert("RGBA"))
    assert (back[rgba[..., 3] == 255][:, 3] == 255).all()
    assert (back[rgba[..., 3] == 0][:, 3] == 0).all()


def test_preview_with_alpha(tmp_path: Path) -> None:
    from colorquant.viz import CHECKER_GRAYS, over_checkerboard, preview_figure

    rgba = soft_disc(48)
    res = cq.quantize(rgba, 8)
    figure = preview_figure(rgba, res, path=tmp_path / "p.png")
    original, quantized, heat = (ax.get_images()[0].get_array() for ax in figure.axes[:3])
    clear = rgba[..., 3] == 0
    # Both images over a checkerboard: a clear corner shows the checker's grays.
    np.testing.assert_array_equal(original, over_checkerboard(rgba))
    assert set(np.unique(np.asarray(original)[clear]).tolist()) == set(CHECKER_GRAYS)
    assert set(np.unique(np.asarray(quantized)[clear]).tolist()) == set(CHECKER_GRAYS)
    # Invisible pixels are left out of the error map; visible ones are there.
    values = np.ma.filled(np.ma.masked_invalid(heat), np.nan)
    assert np.isnan(values[clear]).all() and np.isfinite(values[~clear]).all()
    # The transparent palette entry is marked.
    labels = [t.get_text() for t in figure.axes[3].get_yticklabels()]
    assert labels.count("transparent") == 1 and len(labels) == res.n_colors
    assert (tmp_path / "p.png").stat().st_size > 0


def test_cli_preview_with_alpha(tmp_path: Path) -> None:
    src = tmp_path / "disc.png"
    Image.fromarray(soft_disc(40)).save(src)
    result = run("quantize", src, "-k", "8", "--preview", tmp_path / "fig.png")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert (tmp_path / "fig.png").exists()


def test_cli_gif_quality_is_judged_against_the_input(tmp_path: Path) -> None:
    # --quality on a GIF of a translucent image: the quality reported (against the input) must
    # reach the minimum, or nothing is written (exit 99), as the PNG of the same run reaches it.
    src = tmp_path / "disc.png"
    Image.fromarray(soft_disc(64)).save(src)
    gif = run("quantize", src, "--quality", "65-80", "-o", tmp_path / "q.gif", "--json")
    assert gif.exit_code == 99, gif.output  # type: ignore[attr-defined]
    record = json.loads(gif.stdout)  # type: ignore[attr-defined]
    assert record["status"] == "quality-too-low" and "against the input" in record["reason"]
    assert record["quality"] < 65 and not (tmp_path / "q.gif").exists()
    png = run("quantize", src, "--quality", "65-80", "-o", tmp_path / "q.png", "--json")
    assert png.exit_code == 0 and json.loads(png.stdout)["status"] == "written"  # type: ignore[attr-defined]


def test_cli_preview_shows_the_reported_metrics(tmp_path: Path) -> None:
    # An SVG figure keeps its texts (as comments beside the glyphs): the title's PSNR is there.
    src = tmp_path / "disc.png"
    Image.fromarray(soft_disc(48)).save(src)
    for name in ("s.gif", "s.png"):
        figure = tmp_path / f"{name}.fig.svg"
        result = run("quantize", src, "-k", "8", "-o", tmp_path / name, "--json", "--preview",
                     figure)  # fmt: skip
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
        psnr = json.loads(result.stdout)["psnr"]  # type: ignore[attr-defined]
        title = re.search(r"<!-- (K = .*) -->", figure.read_text())
        assert title is not None and f"PSNR {psnr:.2f} dB" in title.group(1), (name, title)
