"""colorquant.quantize_batch: the same numbers as quantize, per image; layouts, palettes, errors."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import colorquant as cq
from conftest import NEEDS_TORCH, make_photo_like

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)


def batch(n: int = 3, height: int = 24, width: int = 32) -> torch.Tensor:
    """``(n, 3, H, W)`` uint8 photo-like images, each different."""
    photos = [make_photo_like(height, width, seed) for seed in range(n)]
    return torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).contiguous()


def hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("space", ["hybrid", "rgb"])
def test_each_image_equals_quantize(space: str) -> None:
    x = batch()
    out = cq.quantize_batch(x, 10, color_space=space, seed=4)  # type: ignore[arg-type]
    assert out.image.shape == x.shape and out.image.dtype == torch.uint8
    assert out.palettes.shape == (3, 10, 3) and out.indices.shape == (3, 24, 32)
    for b in range(3):
        ref = cq.quantize(hwc(x[b]), 10, color_space=space, seed=4)  # type: ignore[arg-type]
        k = int(out.n_colors[b])
        np.testing.assert_array_equal(out.palettes[b, :k].numpy(), ref.palette)
        np.testing.assert_array_equal(out.indices[b].numpy(), ref.indices)
        np.testing.assert_array_equal(hwc(out.image[b]), ref.to_numpy())
        assert float(out.mse[b]) == pytest.approx(ref.mse, rel=1e-12)
        assert float(out.psnr[b]) == pytest.approx(ref.psnr, rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_input_keeps_dtype_and_range(dtype: torch.dtype) -> None:
    x = batch(2).to(dtype) / 255.0
    out = cq.quantize_batch(x, 6)
    assert out.image.dtype == dtype and out.image.shape == x.shape
    assert float(out.image.min()) >= 0.0 and float(out.image.max()) <= 1.0
    np.testing.assert_array_equal(
        (out.image * 255).round().to(torch.uint8).numpy(),
        cq.quantize_batch((x * 255).round().to(torch.uint8), 6).image.numpy(),
    )


def test_list_of_different_sizes() -> None:
    a, b = batch(1, 16, 20)[0], batch(2, 24, 12)[1]
    out = cq.quantize_batch([a, b], 5, color_space="rgb")
    assert isinstance(out.image, list) and [t.shape for t in out.image] == [a.shape, b.shape]
    assert [t.shape for t in out.indices] == [(16, 20), (24, 12)]
    assert out.palettes.shape[0] == 2 and out.mse.shape == (2,)


def test_fewer_colors_than_k_come_back_exactly_no_padding_nan() -> None:
    x = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    x[0, :, :4] = 200
    x[1, 0] = 90  # one color
    out = cq.quantize_batch(x, 16)
    assert torch.equal(out.image, x)
    assert out.n_colors.tolist() == [2, 1]
    assert out.psnr.isinf().all() and out.mse.tolist() == [0.0, 0.0]
    # Rows past an image's colors repeat its last color: no garbage, no NaN.
    assert out.palettes.shape == (2, 2, 3)
    assert torch.equal(out.palettes[1, 1], out.palettes[1, 0])


def test_shared_palette_equals_quantizer_fit() -> None:
    x = batch(3)
    out = cq.quantize_batch(x, 8, shared=True, seed=2)
    q = cq.Quantizer(8, seed=2).fit([hwc(t) for t in x])
    for b in range(3):
        np.testing.assert_array_equal(hwc(out.image[b]), q.apply(hwc(x[b])).to_numpy())
    used = {tuple(c) for c in out.palettes.reshape(-1, 3).tolist()}
    assert used <= {tuple(c) for c in q.palette.tolist()}


def test_given_palettes_one_or_per_image() -> None:
    x = batch(2)
    one = torch.tensor([[0, 0, 0], [255, 255, 255], [200, 30, 40]], dtype=torch.uint8)
    out = cq.quantize_batch(x, palette=one)
    assert {tuple(c) for c in out.image.permute(0, 2, 3, 1).reshape(-1, 3).tolist()} <= {
        tuple(c) for c in one.tolist()
    }
    per_image = torch.stack([one, one.flip(0)])
    out2 = cq.quantize_batch(x, palette=per_image)
    assert torch.equal(out2.image, out.image)  # the same colors, in another order
    # A palette from partial_fit over a stream maps any batch.
    q = cq.Quantizer(6).partial_fit(x)
    out3 = cq.quantize_batch(x, palette=q.palette)
    np.testing.assert_array_equal(hwc(out3.image[0]), q.apply(hwc(x[0])).to_numpy())


def test_inputs_not_modified() -> None:
    x = batch(2).float() / 255
    copy = x.clone()
    cq.quantize_batch(x, 4, dither="ordered")
    assert torch.equal(x, copy)


@pytest.mark.parametrize(
    ("x", "kwargs", "match"),
    [
        (torch.zeros(3, 8, 8), {}, r"x must be a \(B, 3 or 4, H, W\) tensor"),
        (torch.zeros(0, 3, 8, 8), {}, r"x must be a \(B, 3 or 4, H, W\) tensor"),
        (torch.zeros(2, 5, 8, 8), {}, r"got a tensor of shape \(2, 5, 8, 8\)"),
        ([], {}, "x must be"),
        ([torch.zeros(3, 4, 4), torch.zeros(4, 4)], {}, r"a list holding shape \(4, 4\)"),
        (np.zeros((2, 3, 4, 4)), {}, "got ndarray"),
        (torch.full((1, 3, 4, 4), 1.5), {}, r"x\[0\]"),
        (torch.full((1, 3, 4, 4), float("nan")), {}, r"x\[0\]"),
        (torch.zeros(1, 3, 4, 4), {"n_colors": 0}, "n_colors must be"),
        (torch.zeros(1, 3, 4, 4), {"palette": torch.zeros(4, 2)}, r"palette must be \(K, C\)"),
        (torch.zeros(2, 3, 4, 4), {"palette": torch.zeros(3, 4, 3)}, r"or \(2, K, C\)"),
        (torch.zeros(1, 3, 4, 4), {"palette": torch.full((2, 3), 300)}, "0..255"),
    ],
)
def test_bad_input_raises(x: object, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(cq.InputError, match=match):
        cq.quantize_batch(x, **kwargs)  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_batch_matches_cpu() -> None:
    x = batch(2)
    gpu = cq.quantize_batch(x.cuda(), 8, color_space="rgb")
    cpu = cq.quantize_batch(x, 8, color_space="rgb")
    assert gpu.image.device.type == "cuda"
    assert (gpu.psnr.cpu() - cpu.psnr).abs().max() < 0.05


@pytest.mark.parametrize("dither", ["none", "ordered"])
def test_fixed_colors_in_every_image_palette(dither: str) -> None:
    x = batch(3)
    fixed = torch.tensor([[0, 0, 0], [255, 255, 255]], dtype=torch.uint8)
    out = cq.quantize_batch(x, 8, fixed_colors=fixed, dither=dither)  # type: ignore[arg-type]
    for b in range(3):
        rows = {tuple(c) for c in out.palettes[b, : int(out.n_colors[b])].tolist()}
        assert {(0, 0, 0), (255, 255, 255)} <= rows
    with pytest.raises(cq.InputError, match="not both"):
        cq.quantize_batch(x, palette=fixed, fixed_colors=fixed)


# -- the batched GPU path (run here on CPU tensors) ----------------------------------------------


def on_device(  # type: ignore[no-untyped-def]
    x: torch.Tensor,
    k: int,
    space: str = "hybrid",
    dither: float | None = None,
    fixed: np.ndarray | None = None,
    given: np.ndarray | None = None,
):
    """The batched torch stages, through the public entry point (``backend="torch"``)."""
    return cq.quantize_batch(
        x,
        k,
        color_space=space,  # type: ignore[arg-type]
        dither="none" if dither is None else "ordered",
        dither_strength=1.0 if dither is None else dither,
        fixed_colors=fixed,
        palette=given,
        backend="torch",
    )


@pytest.mark.parametrize("space", ["rgb", "hybrid"])
def test_batched_path_close_to_quantize(space: str) -> None:
    x = batch(4, 40, 48)
    out = on_device(x, 12, space)
    ref = cq.quantize_batch(x, 12, color_space=space)  # type: ignore[arg-type]
    assert out.image.shape == x.shape and out.image.dtype == torch.uint8
    assert float((out.psnr - ref.psnr).mean()) > -0.15
    for b in range(4):
        k = int(out.n_colors[b])
        assert 1 <= k <= 12
        # The image is its palette gathered by its indices, and uses every listed color.
        pal = out.palettes[b, :k]
        np.testing.assert_array_equal(hwc(out.image[b]), pal[out.indices[b]].numpy())
        assert set(out.indices[b].unique().tolist()) == set(range(k))
    mse = ((out.image.double() - x.double()) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(out.mse, mse)


def test_batched_path_exact_for_few_colors_and_float_input() -> None:
    x = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    x[0, :, :4] = 200
    x[1, 1] = 50
    out = on_device(x, 16)
    assert torch.equal(out.image, x) and out.n_colors.tolist() == [2, 1]
    assert torch.isinf(out.psnr).all()
    photos = batch(2)
    as_float = on_device(photos.double() / 255.0, 6)
    assert as_float.image.dtype == torch.float64
    torch.testing.assert_close(
        (as_float.image * 255).round().to(torch.uint8), on_device(photos, 6).image
    )
    with pytest.raises(cq.InputError, match=r"must lie in \[0, 1\], got values in \[2, 2\]"):
        on_device(torch.full((1, 3, 4, 4), 2.0), 4)


def test_batched_path_is_deterministic_and_dithers_every_frame_alike() -> None:
    x = batch(3)
    a, b = on_device(x, 8), on_device(x, 8)
    assert torch.equal(a.image, b.image) and torch.equal(a.palettes, b.palettes)
    frames = x[:1].repeat(3, 1, 1, 1)
    dithered = on_device(frames, 6, "rgb", 1.0)
    assert torch.equal(dithered.image[0], dithered.image[2])
    assert not torch.equal(dithered.image, on_device(frames, 6, "rgb").image)


def test_batched_path_fixed_colors_and_given_palettes() -> None:
    x = batch(3)
    fixed = np.array([[0, 255, 0], [255, 255, 255]], np.uint8)  # green: unused by the photos
    out = on_device(x, 8, "rgb", fixed=fixed)
    for b in range(3):
        k = int(out.n_colors[b])
        rows = out.palettes[b, :k].tolist()
        assert [0, 255, 0] in rows and [255, 255, 255] in rows and k <= 8
        assert not (out.indices[b] == rows.index([0, 255, 0])).any()  # listed, unused
    # All K fixed: the batched path maps to them, as quantize_batch does on the CPU.
    palette = np.array([[0, 0, 0], [255, 255, 255], [200, 30, 40], [20, 90, 200]], np.uint8)
    given = on_device(x, 4, "rgb", given=np.stack([palette] * 3))
    ref = cq.quantize_batch(x, palette=palette, color_space="rgb")
    torch.testing.assert_close(given.image, ref.image, rtol=0, atol=0)
    all_fixed = on_device(x, 4, "rgb", fixed=palette)
    torch.testing.assert_close(all_fixed.image, ref.image, rtol=0, atol=0)


def test_rgb_images_stay_rgb_with_an_rgba_palette() -> None:
    # A palette fitted on images with transparency (RGBA rows) given to RGB images: the images
    # keep 3 channels, opaque pixels take opaque rows, the palettes tensor is the given one.
    palette = np.array([[0, 0, 0, 0], [250, 20, 20, 255], [20, 250, 20, 255], [9, 9, 250, 128]])
    x = torch.rand(2, 3, 12, 12, dtype=torch.bfloat16)
    out = cq.quantize_batch(x, palette=palette)
    assert out.image.shape == (2, 3, 12, 12) and out.image.dtype == torch.bfloat16
    assert out.palettes.shape == (2, 4, 4)
    assert set(out.indices.unique().tolist()) <= {1, 2}  # the opaque rows only
    mixed = [torch.rand(3, 16, 16), torch.rand(4, 20, 12)]
    shared = cq.quantize_batch(mixed, 8, shared=True)
    assert [tuple(img.shape) for img in shared.image] == [(3, 16, 16), (4, 20, 12)]


def test_rgba_palette_takes_the_cpu_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a GPU an RGBA palette (alpha rules, kind by kind) runs the CPU pipeline, as RGBA
    # images do: the batched torch stages know RGB only.
    module = importlib.import_module("colorquant.quantize")

    def no_device_path(*args: object, **kwargs: object) -> None:
        raise AssertionError("the batched device path was taken")

    def as_if_cuda(device: str, like: object = None) -> str:
        return "cuda" if like is not None else "cpu"

    monkeypatch.setattr(module, "_batch_on_device", no_device_path)
    monkeypatch.setattr(module, "resolve_device", as_if_cuda)
    palette = np.array([[250, 20, 20, 255], [20, 250, 20, 255], [9, 9, 250, 128]])
    out = cq.quantize_batch(torch.rand(2, 3, 8, 8), palette=palette)
    assert out.image.shape == (2, 3, 8, 8)
    with pytest.raises(AssertionError, match="device path"):  # RGB palettes still go there
        cq.quantize_batch(torch.rand(2, 3, 8, 8), palette=palette[:, :3])


def test_palette_and_shared_together_is_an_error() -> None:
    with pytest.raises(cq.InputError, match="shared=True"):
        cq.quantize_batch(torch.rand(2, 3, 8, 8), 8, shared=True, palette=[[0, 0, 0]])


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_each_image_result(backend: str) -> None:
    x = batch(3)
    out = cq.quantize_batch(x, 8, color_space="rgb", backend=backend)  # type: ignore[arg-type]
    results = out.results()
    assert len(results) == len(out) == 3
    for b, res in enumerate(results):
        assert isinstance(res, cq.QuantizeResult) and res.color_space == "rgb"
        assert res.n_colors == int(out.n_colors[b]) and res.indices.dtype == np.uint8
        np.testing.assert_array_equal(res.to_numpy(), hwc(out.image[b]))
        assert res.counts.sum() == x.shape[2] * x.shape[3] and (res.counts > 0).all()
        assert res.psnr == float(out.psnr[b]) and res.mse == pytest.approx(
            cq.mse(hwc(x[b]), res.to_numpy())
        )
        # delta_e from the input's colors: the same number as quantize's on its own result.
        alone = cq.quantize(hwc(x[b]), palette=res.palette, color_space="rgb")
        assert res.delta_e == pytest.approx(alone.delta_e, rel=1e-9)
    assert out[-1].psnr == results[-1].psnr
    with pytest.raises(IndexError, match="out of range"):
        out[3]


def test_each_image_result_keeps_its_fit_record() -> None:
    # On the CPU pipeline, result[b] is what quantize gives the image: its fit record too.
    x = batch(2)
    out = cq.quantize_batch(x, 8, color_space="rgb", seed=2)
    for b in range(2):
        ref = cq.quantize(hwc(x[b]), 8, color_space="rgb", seed=2)
        res = out[b]
        assert res.n_iter == ref.n_iter > 0 and res.history == ref.history
        assert res.converged == ref.converged
        np.testing.assert_array_equal(res.indices, ref.indices)
    # The batched torch stages keep no per-image record, and do not claim convergence.
    torch_out = cq.quantize_batch(x, 8, color_space="rgb", backend="torch")
    assert torch_out[0].n_iter == 0 and torch_out[0].converged is False


def test_batch_result_index_must_be_an_integer() -> None:
    out = cq.quantize_batch(batch(3), 8)
    with pytest.raises(TypeError, match=r"indexed by an image number, got slice.*results\(\)"):
        out[1:3]  # type: ignore[index]
    assert out[np.int64(1)].psnr == out[1].psnr


def test_torch_backend_checks_like_the_cpu_pipeline() -> None:
    x = batch(2).float() / 255
    # A tensor that requires grad is read without a warning (no gradient flows through indices).
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = cq.quantize_batch(x.clone().requires_grad_(), 8, backend="torch")
    assert not out.image.requires_grad
    for backend in ("auto", "torch"):
        with pytest.raises(
            cq.InputError,
            match=r"floating point, so it must lie in \[0, 1\], got values in \[[\d.e-]+, 1\.\d+\]",
        ):
            cq.quantize_batch(x * 1.5, 8, backend=backend)  # type: ignore[arg-type]
        with pytest.raises(cq.InputError, match="NaN or infinite"):
            cq.quantize_batch(x.clone().fill_(float("nan")), 8, backend=backend)  # type: ignore[arg-type]


def test_backend_choices() -> None:
    x = batch(2)
    with pytest.raises(cq.InputError, match="backend"):
        cq.quantize_batch(x, 8, backend="gpu")  # type: ignore[arg-type]
    # RGBA images take the CPU pipeline whatever the backend: the torch stages know RGB only.
    rgba = torch.cat([x, torch.full_like(x[:, :1], 255)], 1)
    torch.testing.assert_close(
        cq.quantize_batch(rgba, 8, backend="torch").image, cq.quantize_batch(rgba, 8).image
    )
