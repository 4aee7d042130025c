"""colorquant.metrics: CIEDE2000 against Sharma, Wu & Dalal's published table and scikit-image;
MSE and PSNR from hand-computed numbers; weights equal to repeated rows."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from colorquant.color import rgb_to_lab
from colorquant.metrics import ciede2000, mean_delta_e, mse, psnr, psnr_from_mse
from conftest import NEEDS_DEV, NEEDS_TORCH

skc = pytest.importorskip("skimage.color", reason=NEEDS_DEV)
torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

# G. Sharma, W. Wu, E. N. Dalal, "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Color Res. Appl. 30(1), 2005, Table 1:
# all 34 pairs as (L1, a1, b1, L2, a2, b2, ΔE00). ΔE00 is published to 4 decimals.
SHARMA_2005 = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]
# Half a unit in the 4th decimal: the table's rounding.
SHARMA_ATOL = 5e-5
# scikit-image implements the same formula: float64 rounding only.
SKIMAGE_ATOL = 1e-8


def sharma_table() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    t = torch.tensor(SHARMA_2005, dtype=torch.float64)
    return t[:, :3], t[:, 3:6], t[:, 6]


def random_lab_pairs(rng: np.random.Generator, n: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Random pairs, a third of them near-neutral and some with zero chroma (the formula's
    special cases), some with nearly opposite hues, some nearly equal."""
    low, high = [0.0, -128.0, -128.0], [100.0, 128.0, 128.0]
    a = rng.uniform(low, high, (n, 3))
    b = rng.uniform(low, high, (n, 3))
    a[: n // 3, 1:] *= 0.02
    b[n // 6 : n // 3, 1:] = 0.0
    a[n // 3 : n // 2, 1:] = 0.0
    # Hues nearly opposite, 180° +- 0.1° apart. Not exactly 180°: there the mean hue h̄' jumps
    # by 180° (a discontinuity of the formula, Sharma et al. 2005, section 3), so two correct
    # implementations may land on either side by float rounding.
    m = slice(n // 2, 2 * n // 3)
    chroma = np.hypot(a[m, 1], a[m, 2])
    hue = np.arctan2(a[m, 2], a[m, 1]) + np.deg2rad(rng.choice([179.9, 180.1], chroma.shape))
    b[m] = np.stack([a[m, 0] + 1.0, chroma * np.cos(hue), chroma * np.sin(hue)], axis=1)
    b[2 * n // 3 :] = a[2 * n // 3 :] + rng.normal(0.0, 0.5, (n - 2 * n // 3, 3))
    return a, b


def test_ciede2000_sharma_table() -> None:
    lab1, lab2, expected = sharma_table()
    torch.testing.assert_close(ciede2000(lab1, lab2), expected, rtol=0, atol=SHARMA_ATOL)


def test_ciede2000_sharma_table_is_symmetric() -> None:
    lab1, lab2, expected = sharma_table()
    torch.testing.assert_close(ciede2000(lab2, lab1), expected, rtol=0, atol=SHARMA_ATOL)


def test_ciede2000_matches_skimage(rng: np.random.Generator) -> None:
    a, b = random_lab_pairs(rng)
    ours = ciede2000(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(ours, skc.deltaE_ciede2000(a, b), rtol=0, atol=SKIMAGE_ATOL)


def test_ciede2000_zero_for_equal_colors(rng: np.random.Generator) -> None:
    a, _ = random_lab_pairs(rng, 300)
    lab = torch.from_numpy(a)
    assert torch.equal(ciede2000(lab, lab), torch.zeros(300, dtype=torch.float64))


def test_ciede2000_shapes_broadcast_dtype(dtype: torch.dtype) -> None:
    lab1, lab2, expected = sharma_table()
    batched = ciede2000(lab1.reshape(2, 17, 3).to(dtype), lab2.reshape(2, 17, 3).to(dtype))
    assert batched.shape == (2, 17)
    assert batched.dtype == dtype
    atol = SHARMA_ATOL if dtype == torch.float64 else 1e-3
    torch.testing.assert_close(batched.reshape(-1).double(), expected, rtol=0, atol=atol)
    # One reference color against many: broadcasting over the leading dimensions.
    one = ciede2000(lab1[:1], lab2[:4])
    torch.testing.assert_close(
        one, torch.stack([ciede2000(lab1[0], lab2[i]) for i in range(4)]), rtol=0, atol=0
    )


def test_ciede2000_device(device: torch.device) -> None:
    lab1, lab2, expected = sharma_table()
    out = ciede2000(lab1.to(device), lab2.to(device))
    assert out.device.type == device.type
    torch.testing.assert_close(out.cpu(), expected, rtol=0, atol=SHARMA_ATOL)


# -- mse / psnr -------------------------------------------------------------------------------


def test_mse_hand_numbers() -> None:
    original = np.array([[0, 0, 0], [10, 20, 30]], np.uint8)
    quantized = np.array([[3, 0, 0], [10, 20, 30]], np.uint8)
    # One channel off by 3 in one of 2 pixels: 9 over 2 pixels x 3 channels.
    assert mse(original, quantized) == 9 / 6
    assert psnr(original, quantized) == pytest.approx(10 * math.log10(255**2 / 1.5), abs=1e-12)


def test_mse_no_uint8_wraparound() -> None:
    # 0 - 255 in uint8 arithmetic would wrap to 1; the error must be the full 255.
    black = np.zeros((1, 1, 3), np.uint8)
    white = np.full((1, 1, 3), 255, np.uint8)
    assert mse(black, white) == 255.0**2
    assert mse(white, black) == 255.0**2
    assert psnr(black, white) == pytest.approx(0.0, abs=1e-12)


def test_mse_image_shapes_and_tensors() -> None:
    original = np.zeros((2, 3, 3), np.uint8)
    quantized = original.copy()
    quantized[1, 2] = (1, 2, 3)  # 1 + 4 + 9 = 14 over 6 pixels x 3 channels
    expected = 14 / 18
    assert mse(original, quantized) == pytest.approx(expected, abs=1e-15)
    assert mse(torch.from_numpy(original), torch.from_numpy(quantized)) == pytest.approx(
        expected, abs=1e-15
    )
    assert mse(original.astype(np.float64), quantized.astype(np.float32)) == pytest.approx(
        expected, abs=1e-15
    )


def test_psnr_identical_is_inf(rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    assert mse(img, img) == 0.0
    assert psnr(img, img) == math.inf
    assert psnr_from_mse(0.0) == math.inf


def test_psnr_from_mse() -> None:
    assert psnr_from_mse(255.0**2) == pytest.approx(0.0, abs=1e-12)
    assert psnr_from_mse(255.0**2 / 100.0) == pytest.approx(20.0, abs=1e-12)
    assert psnr_from_mse(1.0, peak=10.0) == pytest.approx(20.0, abs=1e-12)


def test_weights_equal_repeated_rows(rng: np.random.Generator) -> None:
    colors = rng.integers(0, 256, (20, 3), dtype=np.uint8)
    mapped = rng.integers(0, 256, (20, 3), dtype=np.uint8)
    counts = rng.integers(1, 6, 20)
    full_a, full_b = np.repeat(colors, counts, axis=0), np.repeat(mapped, counts, axis=0)
    assert mse(colors, mapped, weights=counts) == pytest.approx(mse(full_a, full_b), rel=1e-12)
    assert psnr(colors, mapped, weights=counts) == pytest.approx(psnr(full_a, full_b), rel=1e-12)
    assert mean_delta_e(colors, mapped, weights=counts) == pytest.approx(
        mean_delta_e(full_a, full_b), rel=1e-12
    )
    # And the weights matter: unweighted differs.
    assert mse(colors, mapped) != pytest.approx(mse(full_a, full_b), rel=1e-6)


def test_weights_as_tensor_and_shaped_like_image(rng: np.random.Generator) -> None:
    a = rng.integers(0, 256, (2, 3, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 3, 3), dtype=np.uint8)
    w = np.arange(1, 7).reshape(2, 3)
    expected = mse(
        np.repeat(a.reshape(-1, 3), w.ravel(), 0), np.repeat(b.reshape(-1, 3), w.ravel(), 0)
    )
    assert mse(a, b, weights=w) == pytest.approx(expected, rel=1e-12)
    assert mse(a, b, weights=torch.from_numpy(w)) == pytest.approx(expected, rel=1e-12)


def test_mean_delta_e_matches_skimage(rng: np.random.Generator) -> None:
    a = rng.integers(0, 256, (200, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    expected = skc.deltaE_ciede2000(skc.rgb2lab(a / 255.0), skc.rgb2lab(b / 255.0)).mean()
    # Lab differs from scikit-image's by <= 2e-4 (its rounded constants), so ΔE by about as much.
    assert mean_delta_e(a, b) == pytest.approx(expected, abs=1e-3)
    assert mean_delta_e(a, a) == 0.0


def test_mean_delta_e_hand_value() -> None:
    # Black against white: the full CIEDE2000 lightness difference, ΔL' / S_L with L̄' = 50.
    black = np.zeros((1, 3), np.uint8)
    white = np.full((1, 3), 255, np.uint8)
    light = rgb_to_lab(torch.ones(3, dtype=torch.float64))[0].item()
    l_bar = light / 2
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / math.sqrt(20 + (l_bar - 50) ** 2)
    # White's a*, b* are ~1e-3 (matrix rounding): chroma contributes < 1e-4 here.
    assert mean_delta_e(black, white) == pytest.approx(light / s_l, abs=1e-3)
    assert mean_delta_e(black, white) == pytest.approx(100.0, abs=0.01)


@pytest.mark.parametrize("fn", [mse, psnr, mean_delta_e])
def test_bad_shapes_raise(fn: Callable[..., float]) -> None:
    a = np.zeros((4, 3), np.uint8)
    with pytest.raises(ValueError, match="same"):
        fn(a, np.zeros((5, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        fn(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="weights must have 4 entries, got 3"):
        fn(a, a, weights=np.ones(3))
