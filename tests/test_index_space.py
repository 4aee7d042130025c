"""A given or shared palette is shared in index space (README, "Palettes and indices").

With ``palette=P`` every result's palette is ``P`` itself (all K rows, P's order, unused rows
too) and the indices point into it; a palette fitted on a set (``Quantizer.fit`` /
``partial_fit``, ``quantize_batch(shared=True)``, ``--shared-palette``) has one order over the
set, and every output lists all of it, in files too (the PNG ``PLTE``).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import colorquant as cq
from colorquant.cli import main
from colorquant.color import COLOR_SPACES, encode_colors
from colorquant.io import result_bytes
from conftest import NEEDS_OPTIMIZE, NEEDS_TORCH, make_photo_like, png_chunks

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

GRAYS = np.array([[i * 16] * 3 for i in range(16)], np.uint8)


def plte(data: bytes) -> np.ndarray:
    """A PNG's ``PLTE`` as ``(K, 3)`` uint8."""
    return np.frombuffer(png_chunks(data)[b"PLTE"], np.uint8).reshape(-1, 3)


def bit_depth(data: bytes) -> int:
    return png_chunks(data)[b"IHDR"][8]


def ramp_batch() -> torch.Tensor:
    """The issue's repro batch: four noisy images over one horizontal ramp."""
    gen = torch.Generator().manual_seed(0)
    return torch.rand(4, 3, 64, 64, generator=gen) * 0.5 + torch.linspace(0, 0.5, 64).view(
        1, 1, 1, 64
    )


# -- a given palette ------------------------------------------------------------------------------


def test_given_palette_is_the_result_palette_whole() -> None:
    dark = (make_photo_like(seed=1).astype(np.float64) * 0.3).astype(np.uint8)  # uses few grays
    res = cq.Quantizer.from_palette(GRAYS, color_space="rgb").apply(dark)
    np.testing.assert_array_equal(res.palette, GRAYS)  # all 16 rows, in P's order
    assert res.counts.shape == (16,) and res.counts.sum() == dark.shape[0] * dark.shape[1]
    assert (res.counts == 0).any()  # unused rows stay, with count 0
    np.testing.assert_array_equal(res.counts, np.bincount(res.indices.ravel(), minlength=16))
    # The indices point into P: the gray nearest to each pixel's RGB, row for row.
    d2 = ((dark[..., None, :].astype(np.int64) - GRAYS.astype(np.int64)) ** 2).sum(-1)
    np.testing.assert_array_equal(res.indices, d2.argmin(-1))
    via_quantize = cq.quantize(dark, palette=GRAYS, color_space="rgb")
    np.testing.assert_array_equal(via_quantize.palette, GRAYS)
    np.testing.assert_array_equal(via_quantize.indices, res.indices)


@pytest.mark.parametrize("dither", ["ordered", "fs"])
def test_given_palette_whole_when_dithered(dither: str) -> None:
    img = make_photo_like(seed=2)
    res = cq.quantize(img, palette=GRAYS, dither=dither)  # type: ignore[arg-type]
    np.testing.assert_array_equal(res.palette, GRAYS)
    np.testing.assert_array_equal(res.counts, np.bincount(res.indices.ravel(), minlength=16))


def test_given_palette_with_repeated_rows_keeps_them() -> None:
    palette = np.array([[0, 0, 0], [255, 255, 255], [0, 0, 0], [128, 0, 0]], np.uint8)
    img = make_photo_like(seed=3)
    res = cq.quantize(img, palette=palette, color_space="rgb")
    np.testing.assert_array_equal(res.palette, palette)
    assert res.counts[2] == 0  # a repeat: the first of equal rows wins


@given(
    data=st.data(),
    k=st.integers(1, 24),
    space=st.sampled_from(COLOR_SPACES),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_given_palette_is_kept_and_nearest(
    data: st.DataObject, k: int, space: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    if data.draw(st.booleans(), label="distinct rows"):
        palette = np.unique(palette, axis=0)
        palette = palette[rng.permutation(len(palette))]
    img = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    res = cq.quantize(img, palette=palette, color_space=space)  # type: ignore[arg-type]
    np.testing.assert_array_equal(res.palette, palette)
    assert res.counts.shape == (len(palette),)
    # Float64 brute force in the chosen space: every pixel's row is a nearest one, and where
    # the nearest color is clear of the second by more than rounding, it is that color.
    pixels = encode_colors(img.reshape(-1, 3), space)  # type: ignore[arg-type]
    centers = encode_colors(palette, space)  # type: ignore[arg-type]
    d2 = ((pixels[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    chosen = d2[np.arange(len(d2)), res.indices.ravel()]
    best = d2.min(1)
    np.testing.assert_allclose(chosen, best, rtol=1e-9, atol=1e-12)
    want = palette[d2.argmin(1)]
    got = palette[res.indices.ravel()]
    # Equal colors wherever no other color of P lies (nearly) as close.
    other = (palette[None, :, :] != want[:, None, :]).any(-1)
    runner_up = np.where(other, d2, np.inf).min(1)
    clear = runner_up > best + 1e-9 * (1.0 + best)
    assert clear.mean() > 0.5  # the property is not vacuous
    np.testing.assert_array_equal(got[clear], want[clear])


def test_quantize_batch_given_palette_keeps_all_rows() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 32, 32, generator=gen) * 0.3  # uses 6 of the 16 grays
    out = cq.quantize_batch(x, palette=GRAYS.tolist())
    assert out.palettes.shape == (2, 16, 3)
    for b in range(2):
        np.testing.assert_array_equal(out.palettes[b].numpy(), GRAYS)
    assert out.n_colors.tolist() == [16, 16]
    image8 = (out.image * 255).round().to(torch.uint8)
    for b in range(2):
        np.testing.assert_array_equal(
            out.palettes[b][out.indices[b]].permute(2, 0, 1).numpy(), image8[b].numpy()
        )


def test_batched_torch_path_keeps_the_given_palette() -> None:
    # The GPU path (every stage batched in torch), run on CPU tensors.
    from colorquant.batch import batch_on_device

    gen = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, 16, 16, generator=gen) * 0.3
    given = np.broadcast_to(GRAYS, (3, 16, 3)).copy()
    out = batch_on_device(x, 16, "rgb", 0, 4, None, given=given)
    assert out.palettes.shape == (3, 16, 3) and out.n_colors.tolist() == [16, 16, 16]
    for b in range(3):
        np.testing.assert_array_equal(out.palettes[b].numpy(), GRAYS)
        cpu = cq.quantize(x[b], palette=GRAYS, color_space="rgb")
        np.testing.assert_array_equal(out.indices[b].numpy(), cpu.indices)


def test_batch_rgba_given_palette_is_one_palette() -> None:
    # A transparent entry for fully transparent pixels: every image of the batch gets it.
    x = torch.full((2, 4, 8, 8), 255, dtype=torch.uint8)
    x[:, :3] = torch.from_numpy(make_photo_like(8, 8, seed=4)).permute(2, 0, 1)
    x[0, 3, :2] = 0  # only the first image has fully transparent pixels
    out = cq.quantize_batch(x, palette=GRAYS[:4])
    assert out.palettes.shape == (2, 5, 4)
    assert torch.equal(out.palettes[0], out.palettes[1])
    np.testing.assert_array_equal(out.palettes[0, :4, :3].numpy(), GRAYS[:4])
    assert out.palettes[0, 4].tolist() == [0, 0, 0, 0]
    assert (out.indices[0, :2] == 4).all() and (out.indices[1] < 4).all()


# -- a shared palette -----------------------------------------------------------------------------


def test_quantize_batch_shared_is_one_palette_in_one_order() -> None:
    x = ramp_batch()
    out = cq.quantize_batch(x, 16, shared=True)
    for b in range(1, 4):
        assert torch.equal(out.palettes[0], out.palettes[b])
    q = cq.Quantizer(16).fit(list(x))
    np.testing.assert_array_equal(out.palettes[0].numpy(), q.palette)
    for b in range(4):
        np.testing.assert_array_equal(out.indices[b].numpy(), q.apply(x[b]).indices)


def test_fitted_palette_order_is_by_use_over_the_set() -> None:
    images = [make_photo_like(seed=s) for s in range(3)]
    q = cq.Quantizer(12, color_space="rgb").fit(images)
    results = [q.apply(img) for img in images]
    for res in results:
        np.testing.assert_array_equal(res.palette, q.palette)  # whole, one order
    total = sum(r.counts for r in results)
    assert (np.diff(total) <= 0).all()  # most used first over the fitted set
    streamed = cq.Quantizer(12, color_space="rgb")
    for img in images:
        streamed.partial_fit(img)
    np.testing.assert_array_equal(streamed.palette, q.palette)
    animation = cq.quantize_animation(np.stack(images), 12, color_space="rgb")
    for frame, res in zip(animation, results, strict=True):
        np.testing.assert_array_equal(frame.palette, q.palette)
        np.testing.assert_array_equal(frame.indices, res.indices)


def test_fitted_palette_keeps_fixed_colors_first() -> None:
    fixed = [[0, 255, 0], [255, 0, 255]]
    images = [make_photo_like(seed=s) for s in range(2)]
    q = cq.Quantizer(8, fixed_colors=fixed).fit(images)
    assert q.palette[:2].tolist() == fixed
    res = q.apply(images[0])
    np.testing.assert_array_equal(res.palette, q.palette)
    assert (np.diff(sum(q.apply(i).counts for i in images)[2:]) <= 0).all()


def test_png_of_a_given_palette_is_that_palette() -> None:
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, 4:] = 200  # 2 of the 16 rows used
    res = cq.quantize(img, palette=GRAYS)
    data = result_bytes(res, ".png")
    np.testing.assert_array_equal(plte(data), GRAYS)
    assert bit_depth(data) == 4  # holds all 16 rows, not just the 2 used
    with Image.open(io.BytesIO(data)) as back:
        np.testing.assert_array_equal(np.asarray(back), res.indices)


def test_optimized_png_keeps_the_given_palette() -> None:
    pytest.importorskip("oxipng", reason=NEEDS_OPTIMIZE)
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, 4:] = 200
    res = cq.quantize(img, palette=GRAYS)
    data = result_bytes(res, ".png", optimize=True)
    np.testing.assert_array_equal(plte(data), GRAYS)
    with Image.open(io.BytesIO(data)) as back:
        assert back.mode == "P"
        np.testing.assert_array_equal(np.asarray(back), res.indices)


def write_pngs(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(n):
        path = folder / f"img{s}.png"
        Image.fromarray(make_photo_like(24, 32, seed=10 + s)).save(path)
        paths.append(path)
    return paths


def same_plte(paths: list[Path]) -> np.ndarray:
    palettes = [plte(p.read_bytes()) for p in paths]
    for p in palettes[1:]:
        np.testing.assert_array_equal(p, palettes[0])
    return palettes[0]


@pytest.mark.parametrize("dither", ["none", "fs"])
def test_cli_shared_palette_writes_one_plte(tmp_path: Path, dither: str) -> None:
    inputs = write_pngs(tmp_path / "in", 3)
    out = tmp_path / "out"
    args = [*map(str, inputs), "-k", "16", "-d", str(out), "--shared-palette", "--dither", dither]
    result = CliRunner().invoke(main, ["quantize", *args])
    assert result.exit_code == 0, result.output
    written = [out / p.name for p in inputs]
    palette = same_plte(written)
    q = cq.Quantizer(16).fit([np.asarray(Image.open(p)) for p in inputs])
    np.testing.assert_array_equal(palette, q.palette)
    assert len(palette) == 16


def test_dataset_shared_palette_is_the_manifest_palette(tmp_path: Path) -> None:
    from colorquant.dataset import MANIFEST_NAME

    write_pngs(tmp_path / "src", 5)
    dst = tmp_path / "dst"
    args = [str(tmp_path / "src"), str(dst), "-k", "16", "--shared-palette", "--workers", "1"]
    result = CliRunner().invoke(main, ["dataset", *args])
    assert result.exit_code == 0, result.output
    header = json.loads((dst / MANIFEST_NAME).read_text().splitlines()[0])
    palette = same_plte(sorted(dst.glob("img*.png")))
    np.testing.assert_array_equal(palette, np.array(header["palette"], np.uint8))


# -- float dtypes ---------------------------------------------------------------------------------

FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def dtype_image(dtype: torch.dtype, batch: int = 0) -> torch.Tensor:
    """Values exactly representable in ``dtype`` (and in float32): the same numbers each way."""
    gen = torch.Generator().manual_seed(5)
    shape = (batch, 3, 20, 24) if batch else (3, 20, 24)
    return torch.rand(shape, generator=gen).to(dtype)


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_every_float_dtype_is_accepted(dtype: torch.dtype) -> None:
    x = dtype_image(dtype)
    as32 = x.to(torch.float32)
    want = cq.quantize(as32, 8)
    got = cq.quantize(x, 8)
    np.testing.assert_array_equal(got.palette, want.palette)
    np.testing.assert_array_equal(got.indices, want.indices)
    out = cq.transforms.Quantize(8)(x)
    assert out.dtype == dtype and out.shape == x.shape
    frames = cq.quantize_animation(torch.stack([x, x.flip(2)]), 8)
    assert len(frames) == 2 and frames[0].palette.shape[0] <= 8
    q = cq.Quantizer(8).partial_fit(x)
    np.testing.assert_array_equal(q.palette, cq.Quantizer(8).fit(as32).palette)
    np.testing.assert_array_equal(q.apply(x).indices, q.apply(as32).indices)


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_quantize_batch_float_dtypes_equal_float32(dtype: torch.dtype) -> None:
    x = dtype_image(dtype, batch=3)
    want = cq.quantize_batch(x.to(torch.float32), 8)
    got = cq.quantize_batch(x, 8)
    assert got.image.dtype == dtype
    assert torch.equal(got.palettes, want.palettes) and torch.equal(got.indices, want.indices)
    eight = (got.image.double() * 255).round()
    assert torch.equal(eight, (want.image.double() * 255).round())
    if dtype != torch.float64:  # float32 quotients, rounded once more to the narrower dtype
        assert torch.equal(got.image, want.image.to(dtype))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_batched_torch_path_scales_16_bit_floats_exactly(dtype: torch.dtype) -> None:
    # 255 x rounded in the 16-bit dtype itself is off by one for about 8% of values.
    from colorquant.batch import batch_on_device

    x = dtype_image(dtype, batch=2)
    got = batch_on_device(x, 8, "rgb", 0, 4, None)
    want = batch_on_device(x.to(torch.float32), 8, "rgb", 0, 4, None)
    assert got.image.dtype == dtype
    assert torch.equal(got.palettes, want.palettes) and torch.equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.mse.numpy(), want.mse.numpy())


def test_numpy_float16_is_accepted() -> None:
    img = make_photo_like(seed=6)
    half = (img / 255.0).astype(np.float16)
    res = cq.quantize(half, 8)
    want = cq.quantize(np.rint(half.astype(np.float64) * 255).astype(np.uint8), 8)
    np.testing.assert_array_equal(res.palette, want.palette)


def test_bfloat16_out_of_range_is_a_clear_error() -> None:
    x = dtype_image(torch.bfloat16) * 2
    with pytest.raises(cq.InputError, match=r"must lie in \[0, 1\]"):
        cq.quantize(x, 8)


def test_threads_applying_one_lazily_fitted_quantizer_share_one_palette(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The command maps its files in threads with one quantizer fitted by partial_fit: the lazy
    # fit happens once, and every thread maps to the one palette (its rows ordered).
    import importlib
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from colorquant.fit import Fit

    # The fit stage the quantizer calls, made slow: every thread arrives while it runs.
    module = importlib.import_module("colorquant.quantize")
    real = module.fit_shared
    calls: list[int] = []

    def slow_fit(*args: Any, **kwargs: Any) -> Fit:
        calls.append(1)
        time.sleep(0.3)
        fit: Fit = real(*args, **kwargs)
        return fit

    monkeypatch.setattr(module, "fit_shared", slow_fit)
    images = [make_photo_like(24, 32, seed=40 + s) for s in range(4)]
    q = cq.Quantizer(16, color_space="rgb")
    for image in images:
        q.partial_fit(image)
    with ThreadPoolExecutor(2) as pool:
        pending = [pool.submit(q.apply, image) for image in images[:2]]
        wait(pending, return_when=FIRST_COMPLETED)
        time.sleep(0.25)  # inside a second fit's unordered window, if one runs
        late = q.apply(images[2])
        results = [f.result() for f in pending]
    assert len(calls) == 1  # fitted once
    for res in [*results, late]:
        np.testing.assert_array_equal(res.palette, q.palette)
