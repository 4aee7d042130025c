"""colorquant.nn.PaletteQuantize: forward values, gradients, lazy fit, dtypes, devices, compile."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import colorquant as cq
from colorquant import InputError
from colorquant.color import COLOR_SPACES, encode_colors
from conftest import NEEDS_TORCH, make_photo_like

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

from colorquant.nn import PaletteQuantize, palette_quantize

PALETTE8 = torch.tensor(
    [[0, 0, 0], [255, 255, 255], [200, 30, 40], [20, 90, 200], [120, 160, 60], [90, 90, 90]],
    dtype=torch.uint8,
)
# The same colors given as float64: a float tensor keeps its dtype, so a float64 forward gives
# the 8-bit colors exactly (an integer palette becomes the default float32).
PALETTE64 = PALETTE8.double() / 255.0


def images(batch: int = 2, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``(batch, 3, 24, 32)`` photo-like images in [0, 1]."""
    photos = [make_photo_like(24, 32, seed + i) for i in range(batch)]
    return torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).to(dtype) / 255.0


def brute_force_map(x: torch.Tensor, palette8: torch.Tensor, space: str) -> torch.Tensor:
    """Every pixel's nearest palette color by float64 brute force on the encoded 8-bit colors."""
    rgb8 = (x.movedim(-3, -1) * 255).round().to(torch.uint8).reshape(-1, 3)
    pts = encode_colors(rgb8, space, torch.float64)  # type: ignore[arg-type]
    pal = encode_colors(palette8, space, torch.float64)  # type: ignore[arg-type]
    index = ((pts[:, None, :] - pal[None]) ** 2).sum(-1).argmin(1)
    out = palette8[index].to(torch.float64) / 255.0
    return out.reshape(*x.movedim(-3, -1).shape).movedim(-1, -3)


@pytest.mark.parametrize("space", COLOR_SPACES)
def test_ste_forward_is_the_exact_nearest_color(space: str) -> None:
    # Pixels on the 8-bit grid, so the layer (float input) and the brute force (8-bit) agree.
    x = images()
    layer = PaletteQuantize(palette=PALETTE64, color_space=space)  # type: ignore[arg-type]
    torch.testing.assert_close(layer(x), brute_force_map(x, PALETTE8, space), rtol=0, atol=1e-12)


def test_ste_matches_quantize_with_the_same_palette() -> None:
    x = images(1)
    rgb8 = (x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    expected = cq.quantize(rgb8, palette=PALETTE8.numpy()).to_numpy()
    out = PaletteQuantize(palette=PALETTE8)(x)[0].permute(1, 2, 0)
    np.testing.assert_array_equal((out * 255).round().to(torch.uint8).numpy(), expected)


def test_ste_gradient_is_identity_for_the_input_and_flows_into_the_palette() -> None:
    x = images().requires_grad_(True)
    layer = PaletteQuantize(palette=PALETTE8, learnable=True)
    upstream = torch.randn_like(x)
    (layer(x) * upstream).sum().backward()
    assert x.grad is not None and torch.equal(x.grad, upstream)
    grad = layer.palette.grad
    assert grad is not None
    # Each palette color's gradient is the sum of the upstream gradients of its pixels.
    with torch.no_grad():
        out = layer(x).movedim(-3, -1).reshape(-1, 3)
        index = (out[:, None, :] - layer.palette[None].to(out.dtype)).abs().sum(-1).argmin(1)
    expected = torch.zeros(6, 3, dtype=torch.float64).index_add_(
        0, index, upstream.movedim(-3, -1).reshape(-1, 3)
    )
    torch.testing.assert_close(grad.to(torch.float64), expected)


@pytest.mark.parametrize("space", ["rgb", "hybrid", "lab"])
def test_soft_mode_gradcheck(space: str) -> None:
    torch.manual_seed(0)
    palette = torch.rand(4, 3, dtype=torch.float64)
    layer = PaletteQuantize(
        palette=palette, learnable=True, mode="soft", temperature=200.0, color_space=space
    )  # type: ignore[arg-type]
    x = torch.rand(1, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(
        lambda p: palette_quantize(
            x.detach(), p, mode="soft", temperature=200.0, color_space=space
        ),  # type: ignore[arg-type]
        (palette.clone().requires_grad_(True),),
        eps=1e-6,
        atol=1e-5,
    )


def test_soft_mode_approaches_hard_as_temperature_falls() -> None:
    x = images(1)
    hard = PaletteQuantize(palette=PALETTE8, color_space="rgb")(x)
    errors = []
    for t in (1000.0, 100.0, 1e-3):
        soft = PaletteQuantize(palette=PALETTE8, mode="soft", temperature=t, color_space="rgb")
        errors.append(float((soft(x) - hard).abs().max()))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-6


def test_lazy_fit_equals_quantizer_fit_on_the_first_batch() -> None:
    x = images(2, dtype=torch.float32)
    layer = PaletteQuantize(12, seed=3)
    assert layer.has_uninitialized_params()
    y = layer(x)
    assert not layer.has_uninitialized_params() and layer.palette.shape == (12, 3)
    q = cq.Quantizer(12, seed=3).fit([img for img in x])
    np.testing.assert_array_equal((layer.palette * 255).round().to(torch.uint8).numpy(), q.palette)
    assert y.dtype == torch.float32 and y.shape == x.shape
    # The palette stays put on later batches.
    before = layer.palette.clone()
    layer(images(2, seed=7, dtype=torch.float32))
    assert torch.equal(layer.palette, before)


def test_learnable_palette_trains_with_an_optimizer() -> None:
    # The README's example: a palette fitted to a batch by gradient descent on the MSE, here
    # from a poor start (grays), which Adam must move toward the image's colors.
    x = images(2, dtype=torch.float32)
    start_palette = torch.linspace(0.2, 0.8, 8)[:, None].repeat(1, 3)
    layer = PaletteQuantize(palette=start_palette, learnable=True, color_space="rgb")
    assert isinstance(layer.palette, torch.nn.Parameter)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(layer(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]
    assert not torch.equal(layer.palette.detach().to(torch.float64), start_palette.double())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_shape_and_leading_dims_kept(dtype: torch.dtype) -> None:
    layer = PaletteQuantize(palette=PALETTE8)
    x = images(2, dtype=dtype)
    video = x.reshape(1, 2, 3, 24, 32)  # (B, T, 3, H, W)
    for inp in (x, x[0], video):
        y = layer(inp)
        assert y.shape == inp.shape and y.dtype == dtype
    torch.testing.assert_close(layer(video)[0], layer(x))


def test_inputs_not_modified() -> None:
    x = images()
    copy = x.clone()
    PaletteQuantize(palette=PALETTE8, mode="soft", temperature=10.0)(x)
    assert torch.equal(x, copy)


def test_under_torch_compile() -> None:
    layer = PaletteQuantize(palette=PALETTE8)
    compiled = torch.compile(layer, backend="aot_eager")
    x = images(2, dtype=torch.float32)
    torch.testing.assert_close(compiled(x), layer(x))


def test_under_torch_compile_with_an_annealed_temperature() -> None:
    # fullgraph: the input and temperature checks stay out of the graph (a changing
    # temperature is a symbolic float there); the property checks each value set.
    layer = PaletteQuantize(palette=PALETTE8, mode="soft", temperature=50.0)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    x = images(2, dtype=torch.float32)
    for temperature in (50.0, 20.0, 5.0):
        layer.temperature = temperature
        torch.testing.assert_close(compiled(x), layer(x))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "give n_colors"),
        ({"n_colors": 4, "palette": PALETTE8}, "give n_colors"),
        ({"n_colors": 0}, "n_colors must be"),
        ({"n_colors": 4, "mode": "hard"}, "mode must be one of 'ste', 'soft'"),
        ({"n_colors": 4, "temperature": 0.0}, "temperature"),
        ({"palette": torch.zeros(4, 2)}, r"palette must have shape \(K, 3\)"),
        ({"palette": torch.full((2, 3), 1.5)}, r"lie in \[0, 1\]"),
        ({"palette": torch.full((2, 3), 300)}, "0..255"),
    ],
)
def test_bad_options_raise(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        PaletteQuantize(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "x", [torch.zeros(3, 4), torch.zeros(1, 4, 4, 4), torch.zeros(1, 3, 4, 4, dtype=torch.uint8)]
)
def test_bad_input_raises(x: torch.Tensor) -> None:
    with pytest.raises(InputError, match=r"float tensor of shape \(\*, 3, H, W\)"):
        PaletteQuantize(palette=PALETTE8)(x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    layer = PaletteQuantize(palette=PALETTE8)
    x = images(2, dtype=torch.float32)
    torch.testing.assert_close(layer.to("cuda")(x.to("cuda")).cpu(), layer.to("cpu")(x))


def few_colors() -> torch.Tensor:
    """``(2, 3, 8, 8)`` images of exactly 3 distinct 8-bit colors."""
    colors = torch.tensor([[0, 0, 0], [255, 0, 0], [10, 200, 30]], dtype=torch.float32) / 255
    index = torch.arange(2 * 8 * 8).reshape(2, 8, 8) % 3
    return colors[index].permute(0, 3, 1, 2).contiguous()


def test_lazy_fit_on_fewer_colors_warns_and_stays_usable() -> None:
    x = few_colors()
    layer = PaletteQuantize(8)
    with pytest.warns(UserWarning, match=r"3 distinct colors, fewer than n_colors=8: .* 3 rows"):
        y = layer(x)
    assert layer.palette.shape == (3, 3)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-6)  # each color maps to itself
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(images(1, dtype=torch.float32))  # later batches: no fit, no warning
    # Its state loads into a fresh lazy layer of the same n_colors.
    fresh = PaletteQuantize(8)
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh.palette, layer.palette)


def test_load_state_dict_with_another_k_is_an_error() -> None:
    sixteen = PaletteQuantize(palette=torch.rand(16, 3))
    eight = PaletteQuantize(palette=torch.rand(8, 3))
    with pytest.raises(InputError, match=r"palette must have shape \(8, 3\) .* got \(16, 3\)"):
        eight.load_state_dict(sixteen.state_dict())
    with pytest.raises(InputError, match=r"K in 1\.\.8 .* got \(16, 3\)"):
        PaletteQuantize(8).load_state_dict(sixteen.state_dict())
    with pytest.raises(InputError, match=r"K in 1\.\.8 .* got \(8, 2\)"):
        PaletteQuantize(8).load_state_dict({"palette": torch.rand(8, 2)})
    # The same K loads, given or lazy, and the layers then agree.
    for target in (PaletteQuantize(palette=torch.zeros(8, 3)), PaletteQuantize(8)):
        target.load_state_dict(eight.state_dict())
        x = images(1, dtype=torch.float32)
        torch.testing.assert_close(target(x), eight(x))


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf"), "warm"])
def test_temperature_is_a_validated_property(bad: object) -> None:
    layer = PaletteQuantize(palette=PALETTE8, mode="soft", temperature=10.0)
    with pytest.raises(InputError, match="temperature must be a finite number > 0"):
        layer.temperature = bad  # type: ignore[assignment]
    assert layer.temperature == 10.0
    with pytest.raises(InputError, match="temperature must be a finite number > 0"):
        PaletteQuantize(4, temperature=bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="temperature must be a finite number > 0"):
        palette_quantize(images(1), PALETTE64, mode="soft", temperature=bad)  # type: ignore[arg-type]
    layer.temperature = 1e-3  # annealed: now nearly the hard choice, and no NaN
    x = images(1, dtype=torch.float32)
    assert torch.isfinite(layer(x)).all()
    hard = PaletteQuantize(palette=PALETTE8)(x)
    assert float((layer(x) - hard).abs().max()) < 1e-3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "NaN or infinite"),
        (float("inf"), "NaN or infinite"),
        (1.5, r"must lie in \[0, 1\], got values in \[0, 1\.5\]"),
        (-0.25, r"must lie in \[0, 1\], got values in \[-0\.25, "),
    ],
)
def test_given_and_lazy_palettes_check_the_input_alike(value: float, message: str) -> None:
    x = images(1, dtype=torch.float32)
    x[0, 1, 3, 4] = value
    for layer in (PaletteQuantize(palette=PALETTE8), PaletteQuantize(4)):
        with pytest.raises(InputError, match=message):
            layer(x)
    with pytest.raises(InputError, match=message):
        palette_quantize(x, PALETTE64.float())


def test_palette_follows_the_module_dtype() -> None:
    # Integer colors, NumPy arrays and lists become the default float dtype, never float64.
    for given in (PALETTE8, PALETTE8.numpy(), PALETTE64.numpy(), PALETTE64.tolist()):
        assert PaletteQuantize(palette=given).palette.dtype == torch.float32
    assert PaletteQuantize(palette=PALETTE64).palette.dtype == torch.float64  # a float tensor
    assert PaletteQuantize(palette=PALETTE8.to(torch.int64)).palette.dtype == torch.float32
    layer = PaletteQuantize(palette=PALETTE8)
    torch.testing.assert_close(layer.palette, PALETTE64.float(), rtol=0, atol=0)
    assert layer.half().palette.dtype == torch.float16
    assert layer.to(torch.float64).palette.dtype == torch.float64
    learnable = PaletteQuantize(palette=PALETTE8, learnable=True).to(torch.bfloat16)
    assert learnable.palette.dtype == torch.bfloat16
    # A lazy palette is made in the module's dtype, whatever the input's.
    lazy = PaletteQuantize(6).double()
    lazy(images(1, dtype=torch.float32))
    assert lazy.palette.dtype == torch.float64
    lazy16 = PaletteQuantize(6).half()
    assert lazy16(images(1, dtype=torch.float32)).dtype == torch.float32
    assert lazy16.palette.dtype == torch.float16


@pytest.mark.parametrize("mode", ["ste", "soft"])
def test_bfloat16_input_through_the_layer(mode: str) -> None:
    x = images(2, dtype=torch.float32).to(torch.bfloat16)
    layer = PaletteQuantize(palette=PALETTE8, mode=mode, temperature=20.0)  # type: ignore[arg-type]
    y = layer(x)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    # The same as the float32 forward of the same values, rounded to bfloat16 at the end.
    torch.testing.assert_close(y, layer(x.float()).to(torch.bfloat16), rtol=0, atol=0)
    leaf = x.clone().requires_grad_(True)
    layer(leaf).float().sum().backward()
    assert leaf.grad is not None and leaf.grad.dtype == torch.bfloat16
    if mode == "ste":
        assert torch.equal(leaf.grad, torch.ones_like(leaf))
    lazy = PaletteQuantize(5)
    assert lazy(x).dtype == torch.bfloat16 and lazy.palette.shape == (5, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision_layer(dtype: torch.dtype) -> None:
    layer = PaletteQuantize(palette=PALETTE8).to("cuda", dtype)
    assert layer.palette.dtype == dtype and layer.palette.device.type == "cuda"
    x = images(2, dtype=torch.float32)
    y = layer(x.to("cuda", dtype))
    assert y.dtype == dtype
    expected = PaletteQuantize(palette=layer.palette.float().cpu())(x.to(dtype).float())
    torch.testing.assert_close(y.float().cpu(), expected, rtol=0, atol=1e-2)
