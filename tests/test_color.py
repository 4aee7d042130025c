"""colorquant.color: reference values from independent implementations, round trips, dtype,
device, batching, gradients, the 8-bit encode/decode pair, and bad input."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

from colorquant import InputError
from colorquant.color import (
    COLOR_SPACES,
    LMS_FROM_RGB,
    RGB_FROM_XYZ,
    WHITE_D65,
    XYZ_FROM_RGB,
    decode_colors,
    din99_to_lab,
    encode_colors,
    lab_to_din99,
    lab_to_rgb,
    lab_to_xyz,
    linear_to_srgb,
    oklab_to_rgb,
    rgb_to_lab,
    rgb_to_oklab,
    rgb_to_xyz,
    srgb_to_linear,
    xyz_to_lab,
    xyz_to_rgb,
)
from conftest import NEEDS_DEV, NEEDS_TORCH

colour = pytest.importorskip("colour", reason=NEEDS_DEV)
skc = pytest.importorskip("skimage.color", reason=NEEDS_DEV)
torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

Conversion = Callable[[torch.Tensor], torch.Tensor]

# Every reference tolerance of this module, absolute, in the units of the compared values.
TOLERANCE = {
    # scikit-image's rgb2lab uses the rounded CIE constants 0.008856 and 7.787 for the linear
    # segment of f(t), where the exact ones are (6/29)^3 = 0.0088564517 and 1/(3 (6/29)^2) =
    # 7.7870370: the two curves part by up to ~1.6e-4 in L*, a, b. Its XYZ matrix is ours.
    "skimage_lab": 2e-4,
    # Same matrix as scikit-image: float64 rounding only.
    "skimage_xyz": 1e-12,
    # colour-science's XYZ_to_Lab uses the exact CIE epsilon/kappa: float64 rounding only.
    "colour_lab": 1e-6,
    # colour-science goes sRGB -> XYZ (its matrix, derived from the primaries) -> Oklab (XYZ
    # form of Ottosson's M1), not Ottosson's direct linear-sRGB matrix: ~1e-4 apart.
    "colour_oklab": 2e-4,
    # sRGB primaries in OKLab as tabulated to 6 decimals (Ottosson's reference code output).
    "ottosson_primaries": 1e-6,
    # colour-science's Lab_to_DIN99(method="DIN99b") and its inverse: the same closed form.
    "colour_din99": 1e-9,
    # float64 round trips.
    "round_trip": 1e-6,
}

# float32 against float64 of the same function, relative to a value's scale (L* ~ 100).
DTYPE_RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}
DTYPE_ATOL = {torch.float32: 2e-4, torch.float64: 1e-10}

FORWARD: list[tuple[str, Conversion]] = [
    ("srgb_to_linear", srgb_to_linear),
    ("linear_to_srgb", linear_to_srgb),
    ("rgb_to_xyz", rgb_to_xyz),
    ("xyz_to_rgb", xyz_to_rgb),
    ("xyz_to_lab", xyz_to_lab),
    ("lab_to_xyz", lab_to_xyz),
    ("rgb_to_lab", rgb_to_lab),
    ("lab_to_rgb", lab_to_rgb),
    ("rgb_to_oklab", rgb_to_oklab),
    ("oklab_to_rgb", oklab_to_rgb),
    ("lab_to_din99", lab_to_din99),
    ("din99_to_lab", din99_to_lab),
]
FORWARD_IDS = [name for name, _ in FORWARD]


def valid_input(name: str, n: int, rng: np.random.Generator, low: float = 0.0) -> np.ndarray:
    """``(n, 3)`` float64 inputs in the natural domain of the conversion called ``name``: the
    images of random sRGB colors in ``[low, 1 - low]``."""
    rgb = low + (1.0 - 2.0 * low) * rng.random((n, 3))
    if name.startswith("xyz"):
        return rgb_to_xyz(torch.from_numpy(rgb)).numpy()
    if name.startswith("lab"):
        return rgb_to_lab(torch.from_numpy(rgb)).numpy()
    if name.startswith("oklab"):
        return rgb_to_oklab(torch.from_numpy(rgb)).numpy()
    if name.startswith("din99"):
        return lab_to_din99(rgb_to_lab(torch.from_numpy(rgb))).numpy()
    return rgb


def rgb_samples(rng: np.random.Generator, n: int = 2000) -> np.ndarray:
    """Random sRGB in [0, 1] plus the cube's corners, near-black and every branch point."""
    corners = np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T.astype(np.float64)
    dark = rng.random((200, 3)) * 0.03  # below and around the sRGB and CIELAB linear segments
    edges = np.array([[0.04045] * 3, [0.04044] * 3, [0.04046] * 3, [1e-6, 0.0, 0.5]])
    return np.concatenate([corners, dark, edges, rng.random((n, 3))])


# -- reference values ------------------------------------------------------------------------


def test_rgb_to_lab_matches_skimage(rng: np.random.Generator) -> None:
    rgb = rgb_samples(rng)
    ours = rgb_to_lab(torch.from_numpy(rgb)).numpy()
    np.testing.assert_allclose(ours, skc.rgb2lab(rgb), rtol=0, atol=TOLERANCE["skimage_lab"])


def test_rgb_to_xyz_matches_skimage(rng: np.random.Generator) -> None:
    rgb = rgb_samples(rng)
    ours = rgb_to_xyz(torch.from_numpy(rgb)).numpy()
    np.testing.assert_allclose(ours, skc.rgb2xyz(rgb), rtol=0, atol=TOLERANCE["skimage_xyz"])


def test_lab_to_rgb_matches_skimage(rng: np.random.Generator) -> None:
    lab = skc.rgb2lab(rgb_samples(rng))
    ours = lab_to_rgb(torch.from_numpy(lab)).numpy()
    # Back in [0, 1] units the constant mismatch shrinks by ~1/100.
    np.testing.assert_allclose(ours, skc.lab2rgb(lab), rtol=0, atol=TOLERANCE["skimage_lab"])


def test_xyz_to_lab_matches_colour(rng: np.random.Generator) -> None:
    xyz = np.concatenate(
        [
            rgb_to_xyz(torch.from_numpy(rgb_samples(rng))).numpy(),
            rng.random((500, 3)) * 0.02,  # the linear segment, t <= (6/29)^3
            WHITE_D65[None] * np.array([[0.0088], [0.00886], [0.0089]]),  # its edge
        ]
    )
    illuminant = colour.XYZ_to_xy(WHITE_D65)
    expected = colour.XYZ_to_Lab(xyz, illuminant=illuminant)
    ours = xyz_to_lab(torch.from_numpy(xyz)).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE["colour_lab"])
    back = lab_to_xyz(torch.from_numpy(expected)).numpy()
    np.testing.assert_allclose(
        back, colour.Lab_to_XYZ(expected, illuminant=illuminant), rtol=0, atol=1e-9
    )


def test_rgb_to_oklab_matches_colour(rng: np.random.Generator) -> None:
    rgb = rgb_samples(rng)
    ours = rgb_to_oklab(torch.from_numpy(rgb)).numpy()
    expected = colour.convert(rgb, "sRGB", "Oklab")
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE["colour_oklab"])


@pytest.mark.parametrize(
    ("rgb", "oklab"),
    [
        ((1.0, 1.0, 1.0), (1.000000, 0.000000, 0.000000)),
        ((1.0, 0.0, 0.0), (0.627955, 0.224863, 0.125846)),
        ((0.0, 1.0, 0.0), (0.866440, -0.233888, 0.179498)),
        ((0.0, 0.0, 1.0), (0.452014, -0.032457, -0.311528)),
        ((0.0, 0.0, 0.0), (0.000000, 0.000000, 0.000000)),
    ],
)
def test_rgb_to_oklab_primaries(
    rgb: tuple[float, float, float], oklab: tuple[float, float, float]
) -> None:
    ours = rgb_to_oklab(torch.tensor(rgb, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(ours, oklab, rtol=0, atol=TOLERANCE["ottosson_primaries"])


def lab_samples(rng: np.random.Generator) -> np.ndarray:
    """CIELAB of the sRGB samples, plus neutrals (a = b = 0) and chroma far out of gamut."""
    lab = skc.rgb2lab(rgb_samples(rng))
    neutral = np.stack([np.linspace(0, 100, 11), np.zeros(11), np.zeros(11)], axis=1)
    wild = rng.uniform([0, -150, -150], [100, 150, 150], (500, 3))
    return np.concatenate([lab, neutral, wild])


def test_lab_to_din99_matches_colour(rng: np.random.Generator) -> None:
    lab = lab_samples(rng)
    ours = lab_to_din99(torch.from_numpy(lab)).numpy()
    expected = colour.Lab_to_DIN99(lab, method="DIN99b")
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE["colour_din99"])


def test_din99_to_lab_matches_colour(rng: np.random.Generator) -> None:
    din = colour.Lab_to_DIN99(lab_samples(rng), method="DIN99b")
    ours = din99_to_lab(torch.from_numpy(din)).numpy()
    expected = colour.DIN99_to_Lab(din, method="DIN99b")
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE["colour_din99"])


def test_din99_white_and_black() -> None:
    # DIN99b keeps L = 0 and L = 100 (its lightness log is scaled so), and neutrals on the axis.
    lab = torch.tensor([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [50.0, 0.0, 0.0]], dtype=torch.float64)
    din = lab_to_din99(lab)
    torch.testing.assert_close(
        din[:2, 0], torch.tensor([0.0, 100.0], dtype=torch.float64), rtol=0, atol=0.01
    )
    assert din[:, 1:].abs().max().item() == 0.0


def test_matrices() -> None:
    np.testing.assert_allclose(RGB_FROM_XYZ @ XYZ_FROM_RGB, np.eye(3), rtol=0, atol=1e-14)
    # White (1, 1, 1) has Y = 1 and lands within 1e-4 of the D65 white point.
    assert XYZ_FROM_RGB[1].sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(XYZ_FROM_RGB.sum(1), WHITE_D65, rtol=0, atol=1e-4)
    # Ottosson's LMS rows each sum to 1: white stays at L = 1, a = b = 0.
    np.testing.assert_allclose(LMS_FROM_RGB.sum(1), np.ones(3), rtol=0, atol=1e-9)


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [
        (srgb_to_linear, linear_to_srgb),
        (rgb_to_xyz, xyz_to_rgb),
        (rgb_to_lab, lab_to_rgb),
        (rgb_to_oklab, oklab_to_rgb),
        (
            lambda x: lab_to_din99(rgb_to_lab(x)),
            lambda x: lab_to_rgb(din99_to_lab(x)),
        ),
    ],
    ids=["linear", "xyz", "lab", "oklab", "din99"],
)
def test_round_trip_float64(
    forward: Conversion, inverse: Conversion, rng: np.random.Generator
) -> None:
    rgb = torch.from_numpy(rgb_samples(rng))
    back = inverse(forward(rgb))
    torch.testing.assert_close(back, rgb, rtol=0, atol=TOLERANCE["round_trip"])


def test_xyz_lab_round_trip_float64(rng: np.random.Generator) -> None:
    lab = torch.from_numpy(valid_input("lab", 1000, rng))
    torch.testing.assert_close(
        xyz_to_lab(lab_to_xyz(lab)), lab, rtol=0, atol=TOLERANCE["round_trip"]
    )


# -- dtype, device, shapes -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fn"), FORWARD, ids=FORWARD_IDS)
def test_dtype_and_device_follow_input(
    name: str, fn: Conversion, dtype: torch.dtype, device: torch.device, rng: np.random.Generator
) -> None:
    x64 = torch.from_numpy(valid_input(name, 64, rng))
    out = fn(x64.to(device=device, dtype=dtype))
    assert out.dtype == dtype
    assert out.device.type == device.type
    assert out.shape == x64.shape
    reference = fn(x64)
    torch.testing.assert_close(
        out.cpu().to(torch.float64), reference, rtol=DTYPE_RTOL[dtype], atol=DTYPE_ATOL[dtype]
    )


@pytest.mark.parametrize(("name", "fn"), FORWARD, ids=FORWARD_IDS)
@pytest.mark.parametrize("shape", [(3,), (1, 3), (7, 3), (2, 5, 7, 3)], ids=str)
def test_batched_shapes(
    name: str, fn: Conversion, shape: tuple[int, ...], rng: np.random.Generator
) -> None:
    n = int(np.prod(shape[:-1]))
    flat = torch.from_numpy(valid_input(name, n, rng))
    out = fn(flat.reshape(shape))
    assert out.shape == shape
    # Each color converts on its own: the batched result is the flat one, reshaped.
    torch.testing.assert_close(out.reshape(-1, 3), fn(flat), rtol=0, atol=0)


# -- gradients -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fn"), FORWARD, ids=FORWARD_IDS)
def test_gradcheck_random_points(name: str, fn: Conversion, rng: np.random.Generator) -> None:
    # Points away from the piecewise joints, where finite differences are meaningful.
    x = torch.from_numpy(valid_input(name, 4, rng, low=0.1)).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fn", [rgb_to_lab, rgb_to_oklab], ids=["lab", "oklab"])
def test_gradcheck_white(fn: Conversion) -> None:
    white = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.5, 1.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(fn, (white.requires_grad_(True),), eps=1e-7, atol=1e-5)


def test_gradcheck_black_lab() -> None:
    # Both sRGB and CIELAB are linear near 0, so the derivative at black exists and is finite.
    black = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rgb_to_lab, (black,), eps=1e-7, atol=1e-5)


def rgb_to_din99(rgb: torch.Tensor) -> torch.Tensor:
    return lab_to_din99(rgb_to_lab(rgb))


@pytest.mark.parametrize(
    "fn",
    [srgb_to_linear, rgb_to_xyz, rgb_to_lab, rgb_to_oklab, rgb_to_din99],
    ids=["lin", "xyz", "lab", "ok", "din99"],
)
@pytest.mark.parametrize(
    "rgb",
    [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 0.0, 1e-9), (0.3, 0.0, 0.0)],
    ids=["black", "white", "near_black", "one_channel"],
)
def test_gradient_finite(
    fn: Conversion, rgb: tuple[float, float, float], dtype: torch.dtype
) -> None:
    # OKLab's cube root has an infinite slope at 0, so gradcheck cannot hold at black; the
    # promise there is a finite (no NaN, no inf) gradient, which is what an optimiser needs.
    x = torch.tensor(rgb, dtype=dtype, requires_grad=True)
    if fn is rgb_to_din99 and rgb == (0.0, 0.0, 0.0):
        # DIN99b's hue and chroma are singular at a = b = 0 (every neutral), the map is not.
        assert (rgb_to_lab(x.detach())[1:] == 0).all()
    for i in range(3):
        (grad,) = torch.autograd.grad(fn(x)[i], x)
        assert torch.isfinite(grad).all(), (i, grad)


@pytest.mark.parametrize("light", [0.0, 50.0, 100.0])
def test_din99_gradient_at_neutral_colors(light: float) -> None:
    # Near the neutral axis DIN99b is a smooth (to first order, linear) map of (a, b), so the
    # gradient at a = b = 0 is the limit of the gradients around it.
    x = torch.tensor([light, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lab_to_din99, x)
    assert torch.isfinite(jac).all(), jac
    near = torch.autograd.functional.jacobian(
        lab_to_din99, torch.tensor([light, 1e-7, 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(jac, near, rtol=1e-4, atol=1e-4)


# -- encode / decode -------------------------------------------------------------------------


def test_encode_rgb_keeps_the_8bit_scale() -> None:
    colors = torch.tensor([[0, 128, 255]], dtype=torch.uint8)
    assert encode_colors(colors, "rgb").tolist() == [[0.0, 128.0, 255.0]]
    assert encode_colors(colors, "rgb", torch.float64).dtype == torch.float64


def test_encode_matches_conversions() -> None:
    colors = torch.tensor([[255, 255, 255], [10, 200, 30]], dtype=torch.uint8)
    rgb = colors.to(torch.float64) / 255.0
    torch.testing.assert_close(encode_colors(colors, "lab", torch.float64), rgb_to_lab(rgb))
    torch.testing.assert_close(encode_colors(colors, "oklab", torch.float64), rgb_to_oklab(rgb))
    assert encode_colors(colors, "lab")[0, 0].item() == pytest.approx(100.0, abs=1e-2)
    assert encode_colors(colors, "oklab")[0, 0].item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("space", COLOR_SPACES)
def test_encode_decode_round_trip_exact(
    space: str, dtype: torch.dtype, rng: np.random.Generator
) -> None:
    grays = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    corners = (np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T * 255).astype(
        np.uint8
    )
    sample = rng.integers(0, 256, (20000, 3), dtype=np.uint8)
    colors = torch.from_numpy(np.concatenate([grays, corners, sample]))
    points = encode_colors(colors, space, dtype)  # type: ignore[arg-type]
    assert points.dtype == dtype
    back = decode_colors(points, space)  # type: ignore[arg-type]
    assert back.dtype == torch.uint8
    torch.testing.assert_close(back, colors, rtol=0, atol=0)


@pytest.mark.parametrize("space", COLOR_SPACES)
def test_encode_decode_device_and_batch(space: str, device: torch.device) -> None:
    colors = torch.arange(2 * 4 * 3, dtype=torch.uint8).reshape(2, 4, 3).to(device) * 10
    points = encode_colors(colors, space)  # type: ignore[arg-type]
    assert points.shape == (2, 4, 6 if space == "hybrid" else 3)
    assert points.device.type == device.type
    back = decode_colors(points, space)  # type: ignore[arg-type]
    assert back.device.type == device.type
    assert torch.equal(back, colors)


def test_decode_clips_and_rounds() -> None:
    points = torch.tensor([[-5.0, 300.0, 127.6], [0.49, 254.5001, 1e9]])
    assert decode_colors(points, "rgb").tolist() == [[0, 255, 128], [0, 255, 255]]
    # Out-of-gamut Lab (a very saturated green, L* = 100 with large b) clips, never wraps.
    out = decode_colors(torch.tensor([[100.0, -200.0, 200.0], [-10.0, 0.0, 0.0]]), "lab")
    assert out.tolist()[1] == [0, 0, 0]
    assert out[0, 1].item() == 255


@pytest.mark.parametrize("fn", [encode_colors, decode_colors], ids=["encode", "decode"])
def test_bad_space_lists_the_valid_ones(fn: Callable[..., torch.Tensor]) -> None:
    assert COLOR_SPACES[:3] == ("rgb", "lab", "oklab")
    valid = re.escape(", ".join(repr(c) for c in COLOR_SPACES))
    with pytest.raises(InputError, match=rf"color_space must be one of {valid}, got 'hsv'"):
        fn(torch.zeros(1, 3, dtype=torch.uint8), "hsv")


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fn"), FORWARD, ids=FORWARD_IDS)
@pytest.mark.parametrize("shape", [(4,), (2, 4), (5, 2), (3, 1)], ids=str)
def test_wrong_last_dim_raises(name: str, fn: Conversion, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        fn(torch.rand(shape, dtype=torch.float64))


@pytest.mark.parametrize(("name", "fn"), FORWARD, ids=FORWARD_IDS)
@pytest.mark.parametrize("int_dtype", [torch.uint8, torch.int64])
def test_integer_dtype_raises(name: str, fn: Conversion, int_dtype: torch.dtype) -> None:
    with pytest.raises(TypeError, match="floating point"):
        fn(torch.zeros(2, 3, dtype=int_dtype))
    with pytest.raises(TypeError, match="floating point"):
        fn(np.zeros((2, 3), dtype=np.int64))


@pytest.mark.parametrize(("name", "fn"), FORWARD, ids=FORWARD_IDS)
def test_not_an_array_raises(name: str, fn: Conversion) -> None:
    with pytest.raises(TypeError, match=r"NumPy array or a torch\.Tensor"):
        fn([[0.0, 0.0, 0.0]])  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "fn"), FORWARD, ids=FORWARD_IDS)
def test_numpy_equals_torch(name: str, fn: Conversion, rng: np.random.Generator) -> None:
    """One implementation serves both kinds: the same float64 numbers from each."""
    x = rgb_samples(rng)
    np.testing.assert_allclose(fn(x), fn(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-12)


def test_input_not_modified(rng: np.random.Generator) -> None:
    rgb = torch.from_numpy(rng.random((10, 3)))
    before = rgb.clone()
    for fn in (rgb_to_lab, rgb_to_oklab, srgb_to_linear, rgb_to_xyz):
        fn(rgb)
    assert torch.equal(rgb, before)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_hybrid_distance_is_rgb_plus_weighted_din99(kind: str, rng: np.random.Generator) -> None:
    from colorquant.color import HYBRID_DIN99_WEIGHT

    colors = rng.integers(0, 256, (50, 2, 3), dtype=np.uint8)
    x = colors if kind == "numpy" else torch.from_numpy(colors)
    hybrid = np.asarray(
        encode_colors(x, "hybrid", np.float64 if kind == "numpy" else torch.float64)
    )
    rgb = colors.astype(np.float64)
    din = np.asarray(encode_colors(colors, "din99"))
    assert hybrid.shape == (50, 2, 6)
    d2 = ((hybrid[:, 0] - hybrid[:, 1]) ** 2).sum(-1)
    expected = ((rgb[:, 0] - rgb[:, 1]) ** 2).sum(-1) + HYBRID_DIN99_WEIGHT**2 * (
        (din[:, 0] - din[:, 1]) ** 2
    ).sum(-1)
    np.testing.assert_allclose(d2, expected, rtol=1e-12)
    # Decoding reads the RGB half: the colors come back exactly.
    np.testing.assert_array_equal(
        np.asarray(decode_colors(encode_colors(x, "hybrid"), "hybrid")), colors
    )
