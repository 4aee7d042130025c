"""The public API: ``colorquant.quantize`` and ``Quantizer``.

Properties (libimagequant's list): at most K colors; an image with <= K colors comes back
unchanged; palette colors map to themselves; the same seed gives the same result; every pixel
gets its exact nearest palette color. Then accepted inputs, bad inputs, the result's metrics,
and a quality floor against Pillow's median cut.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import numpy as np
import pytest
from PIL import Image

import colorquant as cq
from colorquant.color import COLOR_SPACES, encode_colors
from conftest import NEEDS_TORCH

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

SPACES = list(COLOR_SPACES)


def encode64(colors: np.ndarray, space: str) -> np.ndarray:
    """8-bit colors ``(..., 3)`` to float64 coordinates of ``space``, flattened to ``(N, 3)``."""
    t = torch.from_numpy(np.ascontiguousarray(colors).reshape(-1, 3))
    return encode_colors(t, space, torch.float64).numpy()  # type: ignore[arg-type]


def nearest_colors(
    pixels: np.ndarray, palette: np.ndarray, space: str
) -> tuple[np.ndarray, np.ndarray]:
    """Float64 brute force in ``space``: (index of the nearest palette row, lowest on ties;
    the full ``(N, K)`` distance table)."""
    x, c = encode64(pixels, space), encode64(palette, space)
    d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    return d2.argmin(1), d2


def few_colors_image(
    n: int, rng: np.random.Generator, shape: tuple[int, int] = (20, 30)
) -> np.ndarray:
    """An image made of exactly ``n`` distinct colors whose channels all differ."""
    colors = rng.choice(256**3, n, replace=False)
    rgb = np.stack([colors >> 16, (colors >> 8) & 255, colors & 255], 1).astype(np.uint8)
    idx = rng.integers(0, n, shape)
    idx.flat[:n] = np.arange(n)  # every color present
    return rgb[idx]


def assert_same_result(a: cq.QuantizeResult, b: cq.QuantizeResult) -> None:
    np.testing.assert_array_equal(a.palette, b.palette)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert a.mse == b.mse and a.history == b.history


# -- core properties ----------------------------------------------------------------------------


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("k", [1, 5, 16])
def test_at_most_k_colors_all_used(space: str, k: int, photo_like: np.ndarray) -> None:
    res = cq.quantize(photo_like, k, color_space=space)  # type: ignore[arg-type]
    assert 1 <= res.n_colors <= k
    assert res.palette.dtype == np.uint8 and res.palette.shape == (res.n_colors, 3)
    assert len(np.unique(res.palette, axis=0)) == res.n_colors, "palette colors are distinct"
    assert res.indices.shape == photo_like.shape[:2] and res.indices.dtype == np.uint8
    counts = np.bincount(res.indices.ravel(), minlength=res.n_colors)
    assert (counts > 0).all(), "every palette color is used"
    np.testing.assert_array_equal(res.counts, counts)
    assert res.counts.sum() == photo_like.shape[0] * photo_like.shape[1]
    assert (np.diff(res.counts) <= 0).all(), "most used first"
    assert res.color_space == space and res.method == "kmeans"


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("method", ["kmeans", "adam"])
@pytest.mark.parametrize(("n_distinct", "k"), [(1, 1), (5, 5), (5, 8), (40, 256)])
def test_few_colors_come_back_exactly(
    space: str, method: str, n_distinct: int, k: int, rng: np.random.Generator
) -> None:
    img = few_colors_image(n_distinct, rng)
    res = cq.quantize(img, k, color_space=space, method=method)  # type: ignore[arg-type]
    np.testing.assert_array_equal(res.to_numpy(), img)
    assert res.n_colors == n_distinct
    assert res.mse == 0.0 and res.psnr == math.inf and res.delta_e == 0.0


@pytest.mark.parametrize("space", SPACES)
def test_palette_colors_map_to_themselves(space: str, photo_like: np.ndarray) -> None:
    q = cq.Quantizer(16, color_space=space).fit(photo_like)  # type: ignore[arg-type]
    palette_image = q.palette[None, :, :]
    res = q.apply(palette_image)
    np.testing.assert_array_equal(res.to_numpy(), palette_image)
    assert res.mse == 0.0


@pytest.mark.parametrize("space", SPACES)
def test_given_palette_colors_map_to_themselves(space: str, rng: np.random.Generator) -> None:
    palette = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    palette[40:] = palette[:10]  # duplicates
    # Near-equal colors: one step apart in red.
    palette[30:35] = palette[0] + np.array([1, 0, 0], np.uint8) * np.arange(5)[:, None]
    res = cq.quantize(palette[None], palette=palette, color_space=space)  # type: ignore[arg-type]
    np.testing.assert_array_equal(res.to_numpy(), palette[None])
    assert res.method == "palette" and res.history == ()


@pytest.mark.parametrize(
    ("space", "init"),
    [("rgb", "k-means++"), ("lab", "random"), ("oklab", "k-means++"), ("din99", "k-means++")],
)
def test_same_seed_same_result(space: str, init: str, photo_like: np.ndarray) -> None:
    kwargs: dict[str, Any] = {"color_space": space, "init": init, "seed": 3}
    first = cq.quantize(photo_like, 12, **kwargs)
    # The seed is what decides: the global torch RNG plays no part.
    torch.manual_seed(999)
    torch.rand(10)
    assert_same_result(first, cq.quantize(photo_like, 12, **kwargs))
    q = cq.Quantizer(12, **kwargs).fit(photo_like)
    assert_same_result(first, q.apply(photo_like))


def test_different_seeds_can_differ(photo_like: np.ndarray) -> None:
    palettes = {
        cq.quantize(photo_like, 12, init="random", seed=s, speed=10).palette.tobytes()
        for s in range(4)
    }
    assert len(palettes) > 1


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("k", [8, 24, 64])
def test_mapping_is_exact_nearest_with_lowest_index(
    space: str, k: int, photo_like: np.ndarray
) -> None:
    q = cq.Quantizer(k, color_space=space, speed=10).fit(photo_like)  # type: ignore[arg-type]
    res = q.apply(photo_like)
    # Against the fitted palette (duplicates and all), ties going to the lowest index.
    index, _ = nearest_colors(photo_like, q.palette, space)
    np.testing.assert_array_equal(res.to_numpy().reshape(-1, 3), q.palette[index])


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("k", [10, 40])
def test_quantize_mapping_is_exact_nearest(space: str, k: int, rng: np.random.Generator) -> None:
    # Uniform noise: thousands of distinct colors, many near the bisectors of the palette.
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    res = cq.quantize(img, k, color_space=space, speed=10)  # type: ignore[arg-type]
    _, d2 = nearest_colors(img, res.palette, space)
    chosen = d2[np.arange(d2.shape[0]), res.indices.ravel()]
    # The returned palette is reordered, so compare distances: equal to the minimum, exactly.
    np.testing.assert_array_equal(chosen, d2.min(1))


@pytest.mark.parametrize("space", SPACES)
def test_apply_to_another_image_with_as_many_colors(space: str, photo_like: np.ndarray) -> None:
    # The inverted photo has exactly as many distinct colors as the photo: nothing learnt while
    # fitting the photo (its labels) may leak into mapping the other image.
    q = cq.Quantizer(32, color_space=space, speed=10).fit(photo_like)  # type: ignore[arg-type]
    other = 255 - photo_like
    assert len(np.unique(other.reshape(-1, 3), axis=0)) == len(
        np.unique(photo_like.reshape(-1, 3), axis=0)
    )
    index, _ = nearest_colors(other, q.palette, space)
    np.testing.assert_array_equal(q.apply(other).to_numpy().reshape(-1, 3), q.palette[index])
    # A shuffled photo: the same colors, the same histogram, other pixel positions.
    shuffled = (
        np.random.default_rng(0).permutation(photo_like.reshape(-1, 3)).reshape(photo_like.shape)
    )
    index, _ = nearest_colors(shuffled, q.palette, space)
    np.testing.assert_array_equal(q.apply(shuffled).to_numpy().reshape(-1, 3), q.palette[index])


@pytest.mark.parametrize("space", SPACES)
def test_given_palette_mapping_is_exact_nearest(
    space: str, rng: np.random.Generator, photo_like: np.ndarray
) -> None:
    palette = rng.integers(0, 256, (30, 3), dtype=np.uint8)
    palette[20:] = palette[:10]
    res = cq.quantize(photo_like, palette=palette, color_space=space)  # type: ignore[arg-type]
    index, _ = nearest_colors(photo_like, palette, space)
    np.testing.assert_array_equal(res.to_numpy().reshape(-1, 3), palette[index])
    assert set(map(tuple, res.palette.tolist())) <= set(map(tuple, palette.tolist()))


@pytest.mark.parametrize("space", SPACES)
def test_history_never_increases(space: str, photo_like: np.ndarray) -> None:
    for speed in (1, 4, 10):
        res = cq.quantize(photo_like, 16, color_space=space, speed=speed)  # type: ignore[arg-type]
        h = np.asarray(res.history)
        assert len(h) == res.n_iter >= 1
        # float32 points inside: allow float32 rounding, relative.
        assert (np.diff(h) <= 1e-5 * h[:-1]).all(), (speed, res.history)


def test_one_color_is_the_mean(photo_like: np.ndarray) -> None:
    res = cq.quantize(photo_like, 1, color_space="rgb")
    mean = photo_like.reshape(-1, 3).mean(0)
    assert res.n_colors == 1
    assert np.abs(res.palette[0] - mean).max() <= 0.5 + 1e-3


def test_inputs_not_modified(photo_like: np.ndarray) -> None:
    array = photo_like.copy()
    tensor = torch.from_numpy(photo_like.transpose(2, 0, 1).copy())
    cq.quantize(array, 8)
    cq.quantize(tensor, 8)
    np.testing.assert_array_equal(array, photo_like)
    assert torch.equal(tensor, torch.from_numpy(photo_like.transpose(2, 0, 1).copy()))


# -- the result ---------------------------------------------------------------------------------


@pytest.mark.parametrize("space", SPACES)
def test_metrics_agree_with_full_image(space: str, photo_like: np.ndarray) -> None:
    res = cq.quantize(photo_like, 8, color_space=space)  # type: ignore[arg-type]
    out = res.to_numpy()
    assert out.shape == photo_like.shape and out.dtype == np.uint8
    assert res.mse == pytest.approx(cq.mse(photo_like, out), rel=1e-12)
    assert res.psnr == pytest.approx(cq.psnr(photo_like, out), rel=1e-12)
    assert res.delta_e == pytest.approx(cq.mean_delta_e(photo_like, out), rel=1e-9)
    assert res.mse > 0 and 10 < res.psnr < 60 and 0 < res.delta_e < 20


def test_to_pil_palette_is_the_used_colors(photo_like: np.ndarray) -> None:
    res = cq.quantize(photo_like, 16)
    im = res.to_pil()
    assert im.mode == "P"
    assert im.getpalette() == res.palette.ravel().tolist()
    np.testing.assert_array_equal(np.asarray(im), res.indices)
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), res.to_numpy())


def test_to_tensor(photo_like: np.ndarray) -> None:
    res = cq.quantize(photo_like, 4)
    t = res.to_tensor()
    assert t.shape == (3, *photo_like.shape[:2]) and t.dtype == torch.float32
    torch.testing.assert_close(t * 255, torch.from_numpy(res.to_numpy()).permute(2, 0, 1).float())


def test_more_than_256_colors(rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)  # 576 distinct colors
    res = cq.quantize(img, 257, speed=10, init="random")
    assert 256 < res.n_colors <= 257
    assert res.indices.dtype == np.uint16
    assert res.counts.sum() == 24 * 24
    np.testing.assert_array_equal(res.palette[res.indices], res.to_numpy())
    with pytest.raises(ValueError, match="at most 256"):
        res.to_pil()


# -- Quantizer ----------------------------------------------------------------------------------


def test_fit_on_a_list_shares_one_palette(photo_like: np.ndarray) -> None:
    top, bottom = photo_like[:24], photo_like[24:]
    q = cq.Quantizer(12, color_space="lab").fit([top, bottom])
    shared = set(map(tuple, q.palette.tolist()))
    for part in (top, bottom):
        res = q.apply(part)
        assert set(map(tuple, res.palette.tolist())) <= shared
    # Pooled pixels: the same palette as fitting the two halves glued back together.
    whole = cq.Quantizer(12, color_space="lab").fit(photo_like)
    np.testing.assert_array_equal(q.palette, whole.palette)
    # Images of different sizes and kinds can share a palette too.
    mixed = cq.Quantizer(12, color_space="lab").fit((Image.fromarray(top), bottom[:, :40]))
    assert mixed.palette.shape == (12, 3)


def test_fit_one_image_or_a_list_of_one(photo_like: np.ndarray) -> None:
    a = cq.Quantizer(8).fit(photo_like).palette
    b = cq.Quantizer(8).fit([photo_like]).palette
    np.testing.assert_array_equal(a, b)
    # And quantize() is fit + apply.
    assert_same_result(
        cq.quantize(photo_like, 8), cq.Quantizer(8).fit(photo_like).apply(photo_like)
    )


def test_unfitted_quantizer_raises(photo_like: np.ndarray) -> None:
    q = cq.Quantizer(8)
    with pytest.raises(RuntimeError, match="fit"):
        q.apply(photo_like)
    with pytest.raises(RuntimeError, match="fit"):
        _ = q.palette
    with pytest.raises(cq.InputError, match="at least one image"):
        q.fit([])


def test_device(device: torch.device, photo_like: np.ndarray) -> None:
    res = cq.quantize(photo_like, 8, device=device, color_space="rgb")
    cpu = cq.quantize(photo_like, 8, device="cpu", color_space="rgb")
    assert res.n_colors <= 8
    index, d2 = nearest_colors(photo_like, res.palette, "rgb")
    np.testing.assert_array_equal(d2[np.arange(len(index)), res.indices.ravel()], d2.min(1))
    assert res.psnr == pytest.approx(cpu.psnr, abs=0.1)


# -- accepted inputs ----------------------------------------------------------------------------


INPUT_KINDS = [
    "ndarray_uint8",
    "ndarray_float64",
    "ndarray_float32",
    "ndarray_float_rounded",
    "ndarray_rgba",
    "ndarray_gray",
    "ndarray_gray_hw1",
    "tensor_chw_float32",
    "tensor_chw_float64",
    "tensor_chw_uint8",
    "tensor_1chw",
    "tensor_1hw",
    "tensor_rgba",
    "pil_rgb",
    "pil_rgba",
    "pil_l",
    "pil_la",
    "pil_p",
    "pil_i16",
]


def make_input(kind: str, photo: np.ndarray) -> tuple[Any, np.ndarray]:
    """The photo as input ``kind``, and the ``(H, W, 3)`` uint8 image it must decode to
    (``(H, W, 4)`` for an input with alpha: fully transparent pixels are ``(0, 0, 0, 0)``)."""
    gray = photo[..., 1].copy()
    gray3 = np.repeat(gray[..., None], 3, axis=2)
    chw = torch.from_numpy(photo).permute(2, 0, 1)
    alpha = (np.arange(gray.size).reshape(gray.shape) % 256).astype(np.uint8)
    rgba = np.dstack([photo, alpha])
    rgba[alpha == 0] = 0
    gray_alpha = np.dstack([gray3, alpha])
    gray_alpha[alpha == 0] = 0
    if kind == "ndarray_uint8":
        return photo, photo
    if kind == "ndarray_float64":
        return photo / 255.0, photo
    if kind == "ndarray_float32":
        return (photo / 255.0).astype(np.float32), photo
    if kind == "ndarray_float_rounded":
        # Floats a little off the 8-bit grid round to the nearest level (not truncate).
        jitter = np.random.default_rng(1).uniform(-0.45, 0.45, photo.shape)
        return np.clip((photo + jitter) / 255.0, 0.0, 1.0), photo
    if kind == "ndarray_rgba":
        return np.dstack([photo, alpha]), rgba
    if kind == "ndarray_gray":
        return gray, gray3
    if kind == "ndarray_gray_hw1":
        return gray[..., None], gray3
    if kind == "tensor_chw_float32":
        return chw.float() / 255, photo
    if kind == "tensor_chw_float64":
        return chw.double() / 255, photo
    if kind == "tensor_chw_uint8":
        return chw.contiguous(), photo
    if kind == "tensor_1chw":
        return chw[None].float() / 255, photo
    if kind == "tensor_1hw":
        return torch.from_numpy(gray)[None], gray3
    if kind == "tensor_rgba":
        return torch.from_numpy(np.dstack([photo, alpha])).permute(2, 0, 1), rgba
    if kind == "pil_rgb":
        return Image.fromarray(photo), photo
    if kind == "pil_rgba":
        return Image.fromarray(np.dstack([photo, alpha])), rgba
    if kind == "pil_l":
        return Image.fromarray(gray), gray3
    if kind == "pil_la":
        return Image.fromarray(np.dstack([gray, alpha])), gray_alpha
    if kind == "pil_p":
        p_image = Image.fromarray(photo).quantize(40)
        return p_image, np.asarray(p_image.convert("RGB"))
    if kind == "pil_i16":
        # 16-bit v * 257 is the 16-bit form of 8-bit v; +-100 of noise stays under half a step.
        noise = photo[..., 0].astype(np.int64) % 201 - 100
        wide = (gray.astype(np.int64) * 257 + noise).clip(0, 65535).astype(np.uint16)
        image = Image.fromarray(wide)
        assert image.mode == "I;16"
        return image, gray3
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_accepted_inputs(kind: str, photo_like: np.ndarray) -> None:
    image, expected = make_input(kind, photo_like)
    assert expected.shape[:2] == photo_like.shape[:2] and expected.dtype == np.uint8
    # Enough colors to keep every one: the output is the decoded input itself, pixel for pixel.
    n_distinct = len(np.unique(expected.reshape(-1, expected.shape[2]), axis=0))
    lossless = cq.quantize(image, n_distinct, color_space="rgb")
    np.testing.assert_array_equal(lossless.to_numpy(), expected)
    assert lossless.mse == 0.0


def test_channels_first_tensor_keeps_channels(rng: np.random.Generator) -> None:
    # The classic bug: x.view(-1, 3) on a (3, H, W) tensor mixes channels. Every channel differs
    # here, so any mix-up changes the colors.
    hwc = few_colors_image(6, rng, (9, 11))
    chw = torch.from_numpy(hwc).permute(2, 0, 1).contiguous()
    res = cq.quantize(chw, 6)
    np.testing.assert_array_equal(res.to_numpy(), hwc)
    assert_same_result(res, cq.quantize(hwc, 6))
    assert_same_result(cq.quantize(chw.float() / 255, 3, seed=1), cq.quantize(hwc, 3, seed=1))


@pytest.mark.parametrize("kind", ["tensor_chw_float32", "tensor_chw_uint8", "tensor_1chw"])
def test_channels_first_tensor_same_fit(kind: str, photo_like: np.ndarray) -> None:
    tensor, _ = make_input(kind, photo_like)
    assert_same_result(cq.quantize(tensor, 8, speed=10), cq.quantize(photo_like, 8, speed=10))


# -- bad inputs ---------------------------------------------------------------------------------

TINY = np.zeros((4, 4, 3), np.uint8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_colors": 0}, r"n_colors must be in 1\.\.65536, got 0"),
        ({"n_colors": 70000}, r"n_colors must be in 1\.\.65536, got 70000"),
        ({"n_colors": -3}, "n_colors"),
        ({"n_colors": 2.5}, "n_colors must be an integer"),
        ({"n_colors": True}, "n_colors must be an integer"),
        ({"n_colors": "16"}, "n_colors must be an integer"),
        (
            {"color_space": "hsv"},
            "color_space must be one of " + re.escape(", ".join(map(repr, COLOR_SPACES))),
        ),
        ({"color_space": "hsv"}, r"color_space must be one of 'rgb', 'lab', 'oklab'.*got 'hsv'"),
        ({"color_space": "RGB"}, "color_space"),
        ({"method": "sgd"}, r"method must be one of 'kmeans', 'adam'"),
        ({"init": "wu"}, r"init must be one of 'k-means\+\+', 'random'"),
        ({"speed": 0}, r"speed must be in 1\.\.10, got 0"),
        ({"speed": 11}, r"speed must be in 1\.\.10, got 11"),
        ({"seed": -1}, "seed"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": 0.0}, "tol must be a positive number"),
        ({"tol": float("nan")}, "tol must be a positive number"),
        ({"device": "tpu"}, "device must be one of"),
        ({"palette": np.zeros((3, 5), np.uint8)}, r"palette must be \(K, 3\) or \(K, 4\)"),
        ({"palette": np.zeros((0, 3), np.uint8)}, r"palette must be \(K, 3\) or \(K, 4\)"),
        ({"palette": np.array([[0, 0, 256]])}, "palette colors must be integers in 0..255"),
        ({"palette": np.array([[0.5, 0, 0]])}, "palette colors must be integers"),
    ],
)
def test_bad_options_raise(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(cq.InputError, match=match):
        cq.quantize(TINY, **kwargs)


@pytest.mark.parametrize("n_colors", [1, 2, 256, 257, 65536])
def test_n_colors_range_accepted(n_colors: int) -> None:
    q = cq.Quantizer(n_colors)
    assert q.n_colors == n_colors


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.full((4, 4, 3), 1.01), r"image is floating point, so it must lie in \[0, 1\]"),
        (np.full((4, 4, 3), -0.01), r"\[0, 1\]"),
        (torch.full((3, 4, 4), 2.0), r"\[0, 1\]"),
        (np.where(np.eye(4)[..., None] > 0, np.nan, 0.5) * np.ones(3), "image holds NaN"),
        (np.full((4, 4, 3), np.inf), "image holds NaN or infinite"),
        (np.zeros((0, 5, 3), np.uint8), "image is empty: 0x5"),
        (np.zeros((5, 0), np.uint8), "image is empty: 5x0"),
        (torch.zeros((3, 0, 5), dtype=torch.uint8), "image is empty"),
        (np.zeros((0, 5, 3), np.float64), "image is empty"),
        (torch.zeros((3, 0, 5)), "image is empty"),
        (np.zeros((4, 4, 2), np.uint8), r"image array must be \(H, W\)"),
        (np.zeros((4, 4, 5), np.uint8), r"image array must be"),
        (np.zeros((2, 4, 4, 3), np.uint8), r"image array must be"),
        (np.zeros(12, np.uint8), r"image array must be"),
        (np.zeros((4, 4, 3), np.int64), "image must be uint8 or floating point"),
        (np.zeros((4, 4, 3), bool), "image must be uint8 or floating point"),
        (torch.zeros(5, 4, 4), r"image tensor must be \(3, H, W\), \(4, H, W\)"),
        (torch.zeros(2, 3, 4, 4), r"image tensor must be"),
        (torch.zeros(4, 4), r"image tensor must be"),
        (torch.zeros(3, 4, 4, dtype=torch.int32), "image must be uint8 or floating point"),
        ([[[0, 0, 0]]], "image must be a PIL image, a NumPy array or a torch tensor, got list"),
        ("no-such-photo.png", "no-such-photo.png"),  # a path: read as a file
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_images_raise(image: Any, match: str) -> None:
    with pytest.raises(cq.InputError, match=match):
        cq.quantize(image, 4)
    if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[1] == 3:
        return  # fit takes a (B, 3, H, W) batch as B images (test_fit_takes_a_tensor_batch)
    with pytest.raises(cq.InputError, match=match):
        cq.Quantizer(4).fit(image)


def test_fit_takes_a_tensor_batch() -> None:
    from conftest import make_photo_like

    a, b = make_photo_like(16, 20, 1), make_photo_like(16, 20, 2)
    batch = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2)
    from_batch = cq.Quantizer(6, seed=1).fit(batch)
    np.testing.assert_array_equal(from_batch.palette, cq.Quantizer(6, seed=1).fit([a, b]).palette)


def test_input_error_is_a_value_error() -> None:
    assert issubclass(cq.InputError, ValueError)


# -- quality and options ------------------------------------------------------------------------


def test_beats_pillow_median_cut(photo_like: np.ndarray) -> None:
    pillow = Image.fromarray(photo_like).quantize(16, method=Image.Quantize.MEDIANCUT)
    pillow_psnr = cq.psnr(photo_like, np.asarray(pillow.convert("RGB")))
    ours = cq.quantize(photo_like, 16, color_space="rgb")
    assert ours.psnr >= pillow_psnr, (ours.psnr, pillow_psnr)


def test_adam_close_to_kmeans(photo_like: np.ndarray) -> None:
    # speed 7: 3 Lloyd steps, or 30 Adam steps, on the exact histogram after the coarse stages.
    kmeans = cq.quantize(photo_like, 16, color_space="rgb", speed=7)
    adam = cq.quantize(photo_like, 16, color_space="rgb", method="adam", speed=7)
    assert adam.method == "adam" and adam.n_colors <= 16
    assert adam.psnr >= kmeans.psnr - 1.5, (adam.psnr, kmeans.psnr)


@pytest.mark.parametrize("speed", range(1, 11))
def test_every_speed_runs(speed: int, photo_like: np.ndarray) -> None:
    res = cq.quantize(photo_like, 16, color_space="oklab", speed=speed)
    assert res.n_colors <= 16
    assert res.psnr > 20.0
    assert res.n_iter >= 1 and len(res.history) == res.n_iter


def test_max_iter_and_tol_overrides(photo_like: np.ndarray) -> None:
    short = cq.quantize(photo_like, 16, color_space="rgb", speed=1, max_iter=1)
    full = cq.quantize(photo_like, 16, color_space="rgb", speed=1, tol=1e-9)
    assert short.n_iter < full.n_iter
    assert full.history[-1] <= short.history[-1]


@pytest.mark.parametrize("seed", [0, 1])
def test_hybrid_default_takes_the_best_of_rgb_and_din99(seed: int) -> None:
    # The default space keeps nearly all of rgb's PSNR and nearly all of din99's ΔE00 gain.
    from conftest import make_photo_like

    img = make_photo_like(96, 128, seed)
    assert cq.DEFAULT_COLOR_SPACE == "hybrid"
    rgb, hybrid, din99 = (cq.quantize(img, 16, color_space=s) for s in ("rgb", "hybrid", "din99"))
    default = cq.quantize(img, 16)
    assert default.psnr == hybrid.psnr and default.color_space == "hybrid"
    assert din99.psnr + 1.5 < hybrid.psnr  # (rgb may land in a worse local optimum)
    assert hybrid.psnr > rgb.psnr - 0.3
    assert din99.delta_e < hybrid.delta_e < rgb.delta_e
    assert hybrid.delta_e < din99.delta_e * 1.06


def test_partial_fit_equals_fit_on_everything_seen() -> None:
    from conftest import make_photo_like

    a, b, c = (make_photo_like(24, 32, seed) for seed in (1, 2, 3))
    whole = cq.Quantizer(10, seed=5).fit([a, b, c])
    stream = cq.Quantizer(10, seed=5).partial_fit(a).partial_fit([b, c])
    np.testing.assert_array_equal(stream.palette, whole.palette)
    np.testing.assert_array_equal(stream.apply(a).to_numpy(), whole.apply(a).to_numpy())
    # A (B, 3, H, W) tensor batch is a list of images.
    batch = torch.from_numpy(np.stack([b, c])).permute(0, 3, 1, 2)
    tensors = cq.Quantizer(10, seed=5, device="cpu").partial_fit(a).partial_fit(batch)
    np.testing.assert_array_equal(tensors.palette, whole.palette)


def test_partial_fit_refits_when_more_colors_arrive_and_fit_starts_over() -> None:
    black, white = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)
    q = cq.Quantizer(2, color_space="rgb").partial_fit(black)
    assert q.palette.tolist() == [[0, 0, 0]]
    q.partial_fit(white)  # the palette is refitted on the next use
    assert sorted(q.palette.tolist()) == [[0, 0, 0], [255, 255, 255]]
    q.fit(white)  # fit forgets what partial_fit saw
    assert q.palette.tolist() == [[255, 255, 255]]
    q.partial_fit(black)  # ... and a later partial_fit adds to the fit's images
    assert sorted(q.palette.tolist()) == [[0, 0, 0], [255, 255, 255]]
    seen = q.seen
    assert seen is not None and seen.n_pixels == 8


def test_a_given_palette_is_never_refitted() -> None:
    img = np.full((2, 2, 3), 100, np.uint8)
    q = cq.Quantizer.from_palette([[0, 0, 0], [255, 255, 255]], color_space="rgb")
    for method in ("fit", "partial_fit"):
        with pytest.raises(cq.InputError, match=rf"^{method}\(\) would replace the palette"):
            getattr(q, method)(img)
    assert q.palette.tolist() == [[0, 0, 0], [255, 255, 255]]


def test_partial_fit_memory_is_one_entry_per_distinct_color() -> None:
    from conftest import make_photo_like

    img = make_photo_like(24, 32, 1)
    q = cq.Quantizer(4)
    for _ in range(5):
        q.partial_fit(img)
    seen = q.seen
    assert seen is not None
    distinct = len(np.unique(img.reshape(-1, 3), axis=0))
    assert len(seen) == distinct and seen.n_pixels == 5 * 24 * 32


def test_partial_fit_needs_an_image() -> None:
    with pytest.raises(cq.InputError, match="partial_fit needs at least one image"):
        cq.Quantizer(4).partial_fit([])
    with pytest.raises(RuntimeError, match="partial_fit"):
        _ = cq.Quantizer(4).palette


# -- fixed colors -------------------------------------------------------------------------------


@pytest.mark.parametrize("space", ["rgb", "hybrid", "lab"])
def test_fixed_colors_stay_in_every_palette(space: str) -> None:
    from conftest import make_photo_like

    img = make_photo_like(32, 40, 2)
    fixed = np.array([[0, 255, 0], [200, 30, 40]], np.uint8)  # green: no pixel is near it
    res = cq.quantize(img, 8, color_space=space, fixed_colors=fixed)  # type: ignore[arg-type]
    rows = {tuple(c) for c in res.palette.tolist()}
    assert {(0, 255, 0), (200, 30, 40)} <= rows and len(rows) == res.n_colors <= 8
    green = res.palette.tolist().index([0, 255, 0])
    assert res.counts[green] == 0  # listed although unused: indices never point to it
    assert not (res.indices == green).any()
    free = cq.quantize(img, 8, color_space=space)  # type: ignore[arg-type]
    assert res.psnr <= free.psnr + 0.05  # fewer free colors cannot fit much better
    q = cq.Quantizer(8, color_space=space, fixed_colors=fixed).fit(img)  # type: ignore[arg-type]
    np.testing.assert_array_equal(q.palette[:2], fixed)  # fixed first in the fitted palette


def test_fixed_colors_equal_to_k_is_mapping_to_them() -> None:
    from conftest import make_photo_like

    img = make_photo_like(24, 32, 3)
    palette = cq.quantize(img, 6, color_space="rgb").palette
    fixed = cq.quantize(img, 6, color_space="rgb", fixed_colors=palette)
    mapped = cq.quantize(img, color_space="rgb", palette=palette)
    np.testing.assert_array_equal(fixed.to_numpy(), mapped.to_numpy())


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_lloyd_never_moves_fixed_centroids(backend: str, rng: np.random.Generator) -> None:
    from colorquant.kmeans import weighted_kmeans

    points = rng.normal(0, 10, (400, 3))
    weights = rng.integers(1, 9, 400).astype(np.float64)
    init = np.concatenate([[[100.0, 100.0, 100.0], [0.0, 0.0, 0.0]], points[:4]])
    if backend == "torch":
        out = weighted_kmeans(
            torch.from_numpy(points), torch.from_numpy(weights), torch.from_numpy(init), n_fixed=2
        )
        centroids, history = out.centroids.numpy(), out.history
    else:
        res = weighted_kmeans(points, weights, init, n_fixed=2)
        centroids, history = res.centroids, res.history
    np.testing.assert_array_equal(centroids[:2], init[:2])  # even the far, empty one
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(history))
    assert not np.allclose(centroids[2:], init[2:])


def test_fixed_colors_both_backends_agree(rng: np.random.Generator) -> None:
    from colorquant.kmeans import weighted_kmeans

    points = rng.normal(0, 10, (300, 3))
    weights = np.ones(300)
    init = np.concatenate([[[5.0, 5.0, 5.0]], points[:5]])
    a = weighted_kmeans(points, weights, init, n_fixed=1)
    b = weighted_kmeans(
        torch.from_numpy(points), torch.from_numpy(weights), torch.from_numpy(init), n_fixed=1
    )
    np.testing.assert_array_equal(a.labels, b.labels.numpy())
    np.testing.assert_allclose(a.centroids, b.centroids.numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fixed_colors": np.zeros((5, 3), np.uint8)}, r"1 <= F <= n_colors \(4\)"),
        ({"fixed_colors": [[0, 0, 0], [0, 0, 0]]}, "distinct"),
        ({"fixed_colors": [[0, 0, 300]]}, "0..255"),
        ({"fixed_colors": [[0, 0, 0]], "method": "adam"}, "method='kmeans'"),
    ],
)
def test_bad_fixed_colors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(cq.InputError, match=match):
        cq.Quantizer(4, **kwargs)


def test_palette_and_fixed_colors_together_raise() -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(cq.InputError, match="not both"):
        cq.quantize(img, palette=[[0, 0, 0]], fixed_colors=[[1, 1, 1]])


def test_quality_scale_and_the_fewest_colors() -> None:
    from conftest import make_photo_like

    # pngquant's scale (BENCHMARKS.md, "pngquant's quality scale"), monotone in the PSNR.
    scale = [cq.quality_of(p) for p in (10.0, 20.0, 30.0, 35.0, 40.0, 60.0, math.inf)]
    assert [round(q) for q in scale] == [0, 1, 36, 77, 93, 100, 100]
    assert all(a < b for a, b in zip(scale[:5], scale[1:6], strict=True))  # noqa: RUF007
    img = make_photo_like(32, 40, 1)
    res = cq.quantize(img, 64, quality=(0, 40))
    assert cq.quality_of(res.psnr) >= 40
    assert cq.quality_of(cq.quantize(img, res.n_colors - 1).psnr) < 40
    # Unreachable maximum: the most colors allowed, as long as the minimum holds.
    most = cq.quantize(img, 8, quality=(0, 100))
    assert most.n_colors == 8
    with pytest.raises(
        cq.QualityTooLowError, match=r"quality \d+ with 4 colors is below 99"
    ) as info:
        cq.quantize(img, 4, quality=(99, 100))
    assert info.value.result.n_colors == 4
    assert info.value.quality == cq.quality_of(info.value.result.psnr) < info.value.minimum == 99
    with pytest.raises(cq.InputError, match="quality must be"):
        cq.quantize(img, 4, quality=(50, 10))


@pytest.mark.parametrize("bits", [1, 3, 5])
def test_posterize_rounds_fitted_colors_and_keeps_fixed_ones(bits: int) -> None:
    from conftest import make_photo_like

    img = make_photo_like(24, 32, 4)
    fixed = np.array([[1, 2, 3]], np.uint8)  # not on any coarse grid
    res = cq.quantize(img, 12, color_space="rgb", posterize=bits, fixed_colors=fixed)
    levels = (1 << bits) - 1
    grid = {round(round(v * levels / 255) * 255 / levels) for v in range(256)}
    free = [c for c in res.palette.tolist() if c != [1, 2, 3]]
    assert free and all(v in grid for c in free for v in c)
    assert [1, 2, 3] in res.palette.tolist()
    plain = cq.quantize(img, 12, color_space="rgb", fixed_colors=fixed)
    assert res.mse >= plain.mse  # rounding the colors cannot fit better
    with pytest.raises(cq.InputError, match="posterize"):
        cq.quantize(img, 4, posterize=0)


# -- the fit's settings in one value: options= ---------------------------------------------------


def test_options_give_what_the_keywords_give() -> None:
    from conftest import make_photo_like

    img = make_photo_like(40, 52, 6)
    opts = cq.FitOptions(color_space="rgb", seed=3, speed=6, fixed_colors=[[255, 0, 0]])
    want = cq.quantize(img, 12, color_space="rgb", seed=3, speed=6, fixed_colors=[[255, 0, 0]])
    got = cq.quantize(img, 12, options=opts)
    np.testing.assert_array_equal(got.palette, want.palette)
    np.testing.assert_array_equal(got.indices, want.indices)
    assert [255, 0, 0] in got.palette.tolist()
    q = cq.Quantizer(12, options=opts).fit(img)
    assert q.options is opts and q.color_space == "rgb" and q.seed == 3
    assert q.with_colors(5).options is opts
    np.testing.assert_array_equal(
        q.palette,
        cq.Quantizer(12, color_space="rgb", seed=3, speed=6, fixed_colors=[[255, 0, 0]])
        .fit(img)
        .palette,
    )
    # A different seed in the options is a different fit: the options are read, not ignored.
    other = cq.quantize(img, 12, options=opts.replace(seed=4, speed=1))
    assert not np.array_equal(other.palette, got.palette)


def test_options_and_a_conflicting_keyword_raise_one_line() -> None:
    opts = cq.FitOptions(color_space="rgb")
    for call in (
        lambda: cq.quantize(TINY, 4, options=opts, color_space="lab"),
        lambda: cq.Quantizer(4, options=opts, color_space="lab"),
        lambda: cq.quantize_batch(torch.zeros(1, 3, 4, 4), 4, options=opts, color_space="lab"),
    ):
        with pytest.raises(cq.InputError) as info:
            call()
        assert str(info.value) == (
            "give options or color_space, not both: options.color_space is 'rgb', color_space='lab'"
        )
    with pytest.raises(cq.InputError, match="give options or fixed_colors, not both"):
        cq.quantize(TINY, 4, options=cq.FitOptions(), fixed_colors=[[1, 2, 3]])
    fixed = cq.FitOptions(fixed_colors=[[0, 0, 0]])
    with pytest.raises(cq.InputError, match=r"give palette .* or options with fixed_colors"):
        cq.quantize(TINY, palette=[[0, 0, 0], [9, 9, 9]], options=fixed)
    with pytest.raises(cq.InputError, match=r"give palette .* or options with fixed_colors"):
        cq.quantize_batch(torch.zeros(1, 3, 4, 4), palette=[[0, 0, 0]], options=fixed)
    with pytest.raises(cq.InputError, match=r"fixed_colors must be \(F, 3\) with 1 <= F"):
        cq.Quantizer(1, options=cq.FitOptions(fixed_colors=[[0, 0, 0], [9, 9, 9]]))


def test_options_with_a_given_palette_and_a_batch() -> None:
    from conftest import make_photo_like

    img = make_photo_like(24, 32, 8)
    grays = np.repeat(np.arange(0, 256, 51, dtype=np.uint8)[:, None], 3, axis=1)
    opts = cq.FitOptions(color_space="rgb")
    got = cq.quantize(img, palette=grays, options=opts)
    want = cq.quantize(img, palette=grays, color_space="rgb")
    np.testing.assert_array_equal(got.indices, want.indices)
    assert got.color_space == "rgb"
    x = torch.from_numpy(np.stack([img, img[::-1].copy()])).permute(0, 3, 1, 2)
    batch = cq.quantize_batch(x, 8, options=opts.replace(seed=2), device="cpu")
    keywords = cq.quantize_batch(x, 8, color_space="rgb", seed=2, device="cpu")
    assert torch.equal(batch.palettes, keywords.palettes)
    assert torch.equal(batch.indices, keywords.indices)
    alone = cq.quantize(img, 8, options=opts.replace(seed=2))
    np.testing.assert_array_equal(batch.indices[0].numpy(), alone.indices)
