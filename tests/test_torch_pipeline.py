"""The torch stages on CPU tensors: what a GPU user relies on (issue 17, item 6).

``quantize_batch(backend="torch")`` runs the batched torch pipeline (:mod:`colorquant._torch`)
on any device; here on CPU tensors: exact under autocast, deterministic, an image alone equal to
the same image inside a batch, no float64 where MPS would run, few host syncs, and a quality
close to the compiled CPU path.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

import colorquant as cq
from conftest import NEEDS_TORCH
from test_guard_rails import photo

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

from torch.utils._python_dispatch import TorchDispatchMode

from colorquant.nn import PaletteQuantize

device_module = importlib.import_module("colorquant._torch.device")
nearest_module = importlib.import_module("colorquant._torch.nearest")
fit_module = importlib.import_module("colorquant._torch.fit")
histogram_module = importlib.import_module("colorquant._torch.histogram")
pipeline_module = importlib.import_module("colorquant._torch.pipeline")
remap_module = importlib.import_module("colorquant._torch.remap")


def photos(*seeds: int, size: int = 64) -> torch.Tensor:
    """``(B, 3, size, size)`` uint8 photo-like images."""
    return torch.from_numpy(np.stack([photo(s, size) for s in seeds])).permute(0, 3, 1, 2)


def assert_same_result(a: Any, b: Any) -> None:
    """Palettes, indices and the colors each image lists, all exactly equal."""
    assert torch.equal(a.palettes, b.palettes)
    assert torch.equal(a.indices, b.indices)
    assert torch.equal(a.n_colors, b.n_colors)


# -- exact whatever autocast says ---------------------------------------------------------------


@pytest.mark.parametrize("space", ["hybrid", "oklab"])
def test_quantize_batch_identical_under_autocast(space: str) -> None:
    x = photos(1, 2)
    plain = cq.quantize_batch(x, 16, color_space=space, backend="torch", dither="ordered")  # type: ignore[arg-type]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")  # the products would run in bfloat16 here
        cast = cq.quantize_batch(x, 16, color_space=space, backend="torch", dither="ordered")  # type: ignore[arg-type]
    assert_same_result(plain, cast)


@pytest.mark.parametrize("mode", ["ste", "soft"])
def test_layer_identical_under_autocast(mode: str) -> None:
    x = photos(3).float() / 255.0
    palette = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (32, 3)))
    layer = PaletteQuantize(palette=palette, mode=mode, temperature=30.0)  # type: ignore[arg-type]
    plain = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = layer(x)
    assert cast.dtype == plain.dtype
    assert torch.equal(plain, cast)


def test_bfloat16_product_would_move_colors() -> None:
    # What the test above guards against: the expanded form under autocast picks other colors.
    x = photos(3).float().permute(0, 2, 3, 1).reshape(-1, 3)
    palette = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (32, 3))).float()
    exact = nearest_module.nearest(x, palette)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = torch.addmm((palette * palette).sum(1), x, -2.0 * palette.T)
    assert (d.argmin(1) != exact).float().mean() > 0.05


# -- deterministic, and one image is a batch of one ---------------------------------------------


@pytest.mark.parametrize(("k", "space"), [(8, "rgb"), (16, "hybrid"), (64, "oklab")])
def test_alone_equals_inside_a_batch(k: int, space: str) -> None:
    x = torch.cat([photos(4, size=48), photos(5, 6, size=48)])
    x[2, :, :24] = x[1, :, :24]  # images of very different numbers of colors
    batch = cq.quantize_batch(x, k, color_space=space, backend="torch")  # type: ignore[arg-type]
    for b in range(3):
        alone = cq.quantize_batch(x[b : b + 1], k, color_space=space, backend="torch")  # type: ignore[arg-type]
        n = int(alone.n_colors[0])
        assert n == int(batch.n_colors[b])
        assert torch.equal(alone.palettes[0, :n], batch.palettes[b, :n])
        assert torch.equal(alone.indices[0], batch.indices[b])
        assert float(alone.mse[0]) == float(batch.mse[b])


def test_same_seed_same_result_other_seed_other_palette() -> None:
    x = photos(7, 8)
    a = cq.quantize_batch(x, 16, seed=3, backend="torch")
    assert_same_result(a, cq.quantize_batch(x, 16, seed=3, backend="torch"))
    assert not torch.equal(a.palettes, cq.quantize_batch(x, 16, seed=4, backend="torch").palettes)


def test_fit_is_the_same_whatever_the_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    x = photos(9)
    ref = cq.quantize_batch(x, 16, backend="torch")
    monkeypatch.setattr(nearest_module, "MEMORY_BUDGET", 1)  # 256-row chunks everywhere
    assert nearest_module.block_rows(1, 16, torch.device("cpu")) == 256
    distinct = len(torch.unique(x[0].reshape(3, -1), dim=1).T)
    assert distinct > 4 * 256  # so every stage over the colors runs in several chunks
    assert_same_result(ref, cq.quantize_batch(x, 16, backend="torch"))


# -- no float64 where MPS runs ------------------------------------------------------------------


class DtypeLog(TorchDispatchMode):
    """Records the dtype of every tensor an operation returns."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.dtypes.add(t.dtype)
        return out


def fit_and_map_dtypes(x: torch.Tensor) -> set[torch.dtype]:
    """dtypes made by the fit, the exact mapping and the ordered dither of ``x`` (rgb)."""
    encode = pipeline_module.encoder("rgb")
    hist = histogram_module.batch_histograms(x, encode)
    settings = importlib.import_module("colorquant.quantize").settings_for_speed(4)
    unit = pipeline_module.units_of("rgb")
    fixed = encode(torch.tensor([[0, 0, 0], [255, 255, 255]], dtype=torch.uint8))
    with DtypeLog() as log:
        fitted = fit_module.fit_palettes(
            hist, 12, settings, n_init=2, seed=0, unit=unit, fixed=fixed
        )
        # Duplicate rows: every point is a tie, which the exact rule re-decides.
        centers = torch.cat([fitted.centers, fitted.centers], 1)
        pal8 = centers.round().clamp(0, 255).to(torch.uint8)
        remap_module.map_histograms(hist, centers, pal8)
        offsets = torch.rand(x.shape[2], x.shape[3])
        amplitude = torch.full((x.shape[0],), 8.0)
        remap_module.ordered_dither_batch(x, centers, offsets, amplitude, lambda rgb: rgb * 255.0)
    return log.dtypes


def test_no_float64_when_the_device_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    x = photos(10, 11, size=48)
    # On a device with float64 the near ties are re-decided in it (the log sees it) ...
    assert torch.float64 in fit_and_map_dtypes(x)
    # ... on one without (MPS), nothing makes a float64 tensor.
    monkeypatch.setattr(device_module, "exact_dtype", lambda device: torch.float32)
    dtypes = fit_and_map_dtypes(x)
    assert torch.float32 in dtypes and torch.float64 not in dtypes


# -- host syncs ---------------------------------------------------------------------------------


def count_syncs(monkeypatch: pytest.MonkeyPatch, x: torch.Tensor, **kwargs: Any) -> int:
    """Calls that read a tensor's value on the host during one quantize_batch(backend=torch)."""
    calls = [0]
    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *a: Any, _f: Any = original, **kw: Any) -> Any:
            calls[0] += 1
            return _f(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    cq.quantize_batch(x, backend="torch", **kwargs)
    monkeypatch.undo()
    return calls[0]


@pytest.mark.parametrize("speed", [4, 8])
def test_host_syncs_do_not_grow_with_pixels_or_iterations(
    monkeypatch: pytest.MonkeyPatch, speed: int
) -> None:
    # One image of 32x32, then three of 128x128 (16 times the pixels each, 48 times in all):
    # a sync per pixel, per color or per iteration would show.
    small = count_syncs(monkeypatch, photos(12, size=32), n_colors=16, speed=speed)
    large = count_syncs(monkeypatch, photos(12, 13, 14, size=128), n_colors=16, speed=speed)
    assert small <= 20 and large <= 40, (small, large)


# -- memory: the soft layer in chunks -----------------------------------------------------------


def test_soft_layer_chunks_give_the_unchunked_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    x0 = torch.rand(2, 3, 20, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    palette = torch.rand(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def run() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        layer = PaletteQuantize(palette=palette, learnable=True, mode="soft", temperature=40.0)
        x = x0.clone().requires_grad_(True)
        y = layer(x)
        (y * torch.linspace(0, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()  # type: ignore[no-untyped-call]
        assert x.grad is not None and layer.palette.grad is not None
        return y.detach(), x.grad, layer.palette.grad

    whole = run()
    calls = [0]
    original = torch.utils.checkpoint.checkpoint

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(nearest_module, "MEMORY_BUDGET", 1)  # 256-pixel chunks: 4 of them
    monkeypatch.setattr(importlib.import_module("colorquant.nn"), "checkpoint", counted)
    chunked = run()
    assert calls[0] == 4
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# -- quality against the compiled CPU path ------------------------------------------------------


@pytest.mark.parametrize(("k", "space"), [(16, "hybrid"), (64, "hybrid"), (32, "rgb")])
def test_psnr_close_to_the_cpu_path(k: int, space: str) -> None:
    x = photos(1, 2, 3, size=96)
    torch_path = cq.quantize_batch(x, k, color_space=space, backend="torch")  # type: ignore[arg-type]
    cpu_path = cq.quantize_batch(x, k, color_space=space)  # type: ignore[arg-type]
    gap = float((torch_path.psnr - cpu_path.psnr).mean())
    assert abs(gap) < 0.1, gap
    mse = ((torch_path.image.double() - x.double()) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(torch_path.mse, mse)


# -- one image: Quantizer's torch route is the same fit, a batch of one -------------------------


@pytest.mark.parametrize("fixed", [None, [[0, 0, 0], [255, 255, 255]]])
def test_fit_histogram_is_quantize_batch_of_one(fixed: Any) -> None:
    x = photos(15)
    settings = importlib.import_module("colorquant.quantize").settings_for_speed(4)
    pixels = x[0].permute(1, 2, 0).reshape(-1, 3)
    keys, counts = torch.unique(
        pixels[:, 0].long() << 16 | pixels[:, 1].long() << 8 | pixels[:, 2].long(),
        return_counts=True,
    )
    colors = torch.stack([keys >> 16, keys >> 8 & 255, keys & 255], 1).to(torch.uint8)
    fixed8 = None if fixed is None else torch.tensor(fixed, dtype=torch.uint8)
    palette, n_iter, objective = pipeline_module.fit_histogram(
        colors, counts, 16, "hybrid", settings, n_init=4, seed=0, fixed8=fixed8
    )
    batch = cq.quantize_batch(x, 16, fixed_colors=fixed, backend="torch")
    n = int(batch.n_colors[0])
    listed = {tuple(c) for c in batch.palettes[0, :n].tolist()}
    assert listed <= {tuple(c) for c in palette.tolist()} and palette.shape == (16, 3)
    if fixed is not None:
        assert palette[:2].tolist() == fixed
    assert n_iter > 0 and objective > 0
    # A few colors: the palette is the colors themselves, the fixed ones first.
    few = torch.tensor([[9, 9, 9], [0, 0, 0], [200, 10, 10]], dtype=torch.uint8)
    kept, _, _ = pipeline_module.fit_histogram(
        few, torch.tensor([3, 1, 2]), 8, "hybrid", settings, n_init=1, seed=0, fixed8=fixed8
    )
    expected = [[9, 9, 9], [0, 0, 0], [200, 10, 10]] if fixed is None else [
        [0, 0, 0], [255, 255, 255], [9, 9, 9], [200, 10, 10]
    ]  # fmt: skip
    assert kept.tolist() == expected


def test_ordered_dither_alone_equals_inside_a_batch() -> None:
    x = photos(16, 17, size=40)
    batch = cq.quantize_batch(x, 8, dither="ordered", backend="torch")
    for b in range(2):
        alone = cq.quantize_batch(x[b : b + 1], 8, dither="ordered", backend="torch")
        assert torch.equal(alone.indices[0], batch.indices[b])
        assert torch.equal(alone.palettes[0], batch.palettes[b, : alone.palettes.shape[1]])
    plain = cq.quantize_batch(x, 8, backend="torch")
    assert not torch.equal(plain.indices, batch.indices)  # the dither moved some pixels


def test_fused_distances_match_the_direct_ones() -> None:
    # sqdist (cdist's direct kernel, squared) against the coordinate-by-coordinate differences
    # MPS takes: within the rounding bound the exact mapping re-decides under, and exact on
    # 8-bit colors compared in RGB units.
    gen = torch.Generator().manual_seed(2)
    x, c = torch.rand(3, 500, 6, generator=gen) * 200, torch.rand(3, 40, 6, generator=gen) * 200
    fused, direct = nearest_module.sqdist(x, c), nearest_module.direct_sqdist(x, c)
    assert ((fused - direct).abs() <= 1e-6 * direct + 1e-3).all()
    x8 = torch.randint(0, 256, (2, 300, 3), generator=gen).float()
    c8 = torch.randint(0, 256, (2, 17, 3), generator=gen).float()
    exact = ((x8[:, :, None] - c8[:, None]).double() ** 2).sum(-1)
    assert torch.equal(nearest_module.direct_sqdist(x8, c8).double(), exact)
    assert torch.equal(nearest_module.sqdist(x8, c8).argmin(2), exact.argmin(2))
