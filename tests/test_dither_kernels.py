"""The compiled dithering kernels against plain NumPy: exact nearest colors, any channel count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from colorquant import _cpu
from colorquant._cpu import _kernels
from colorquant.color import COLOR_SPACES, ColorSpace, embed, encode_colors
from colorquant.dither import ordered_map, ordered_offsets
from colorquant.threads import num_threads
from conftest import fs_reference


@contextmanager
def threads(n: int) -> Iterator[None]:
    """``n`` threads, and parallel regions even on tiny inputs."""
    old_min = _kernels.set_parallel_min(1)
    try:
        with num_threads(n):
            yield
    finally:
        _kernels.set_parallel_min(old_min)


def brute_nearest(points: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Float64 brute force, channels summed in order, lowest index on ties."""
    return ((points[:, None, :] - palette[None, :, :]) ** 2).sum(-1).argmin(1)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("k", [1, 2, 9, 300])
def test_fs_equals_reference_for_any_channel_count(channels: int, k: int) -> None:
    rng = np.random.default_rng(channels * 1000 + k)
    pixels = rng.integers(0, 256, (7, 11, channels), dtype=np.uint8)
    # Colors anywhere in 0..255, some of them twice, some off the integers.
    palette = rng.integers(0, 256, (k, channels)).astype(np.float64)
    palette[k // 2 :] += rng.uniform(0, 1, (k - k // 2, channels))
    if k > 2:
        palette[1] = palette[k - 1]
    strength = rng.uniform(0, 1, (7, 11)).astype(np.float32)
    for max_error in (1000.0, 9.0):
        expected = fs_reference(pixels, palette, strength, max_error)
        got = _cpu.dither_fs(pixels, palette, strength, max_error)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("step", [5, 32, 64])
def test_fs_nearest_breaks_ties_to_the_lowest_index(step: int) -> None:
    # A lattice palette (shuffled, all of it when small), every color listed twice: the
    # midpoints of an even lattice lie at the same distance from 2, 4 or 8 colors; without error
    # diffusion each pixel must get the lowest row among them, as the brute force does.
    rng = np.random.default_rng(step)
    axis = np.arange(0, 256, step, dtype=np.float64)
    lattice = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    lattice = lattice[rng.permutation(len(lattice))[:600]]
    palette = np.concatenate([lattice, lattice[::-1]])
    pixels = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    pixels[:20] = (pixels[:20] // step) * step + step // 2  # the midpoints: ties everywhere
    got = _cpu.dither_fs(pixels, palette, np.zeros((40, 50), np.float32), 50.0)
    expected = brute_nearest(pixels.reshape(-1, 3).astype(np.float64), palette)
    np.testing.assert_array_equal(got.ravel(), expected)
    if step % 2 == 0:  # ties were there to break
        d2 = ((pixels[:20].reshape(-1, 1, 3) - palette[None]) ** 2).sum(-1)
        assert ((d2 == d2.min(1, keepdims=True)).sum(1) >= 4).mean() > 0.5


def test_fs_on_a_large_image_equals_reference_row_by_row() -> None:
    # Enough pixels to visit many cells of the candidate grid, with points off the integers.
    rng = np.random.default_rng(5)
    base = np.linspace(0, 255, 64)
    pixels = np.stack(np.meshgrid(base, base[::-1], indexing="ij"), -1)
    pixels = np.concatenate([pixels, pixels[..., :1] * 0.5 + 60], -1)
    pixels = np.clip(pixels + rng.normal(0, 6, pixels.shape), 0, 255).astype(np.uint8)
    palette = rng.integers(0, 256, (256, 3)).astype(np.float64)
    strength = np.ones((64, 64), np.float32)
    spread = 12.0
    expected = fs_reference(pixels, palette, strength, spread)
    np.testing.assert_array_equal(_cpu.dither_fs(pixels, palette, strength, spread), expected)


@pytest.mark.parametrize(("band", "warm"), [(4, 0), (4, 3), (5, 8), (13, 2)])
def test_fs_in_bands_equals_reference_band_by_band(band: int, warm: int) -> None:
    # Each band of rows starts `warm` rows above its first (with no error there) and keeps its
    # own rows: the same whatever the number of threads.
    rng = np.random.default_rng(band * 10 + warm)
    pixels = rng.integers(0, 256, (13, 9, 3), dtype=np.uint8)
    palette = rng.integers(0, 256, (20, 3)).astype(np.float64)
    strength = rng.uniform(0, 1, (13, 9)).astype(np.float32)
    expected = np.zeros((13, 9), np.int64)
    for top in range(0, 13, band):
        rows = fs_reference(pixels, palette, strength, 30.0, max(0, top - warm), top + band)
        expected[top : top + band] = rows[top : top + band]
    for n in (1, 2, 3):
        with threads(n):
            got = _cpu.dither_fs(pixels, palette, strength, 30.0, band=band, warm=warm)
        np.testing.assert_array_equal(got, expected)


def test_fs_rejects_bad_input() -> None:
    pixels = np.zeros((2, 3, 3), np.uint8)
    strength = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="palette"):
        _cpu.dither_fs(pixels, np.zeros((4, 4)), strength, 1.0)
    with pytest.raises(ValueError, match="pixels"):
        _cpu.dither_fs(pixels.astype(np.float64), np.zeros((4, 3)), strength, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strength"):
        _cpu.dither_fs(pixels, np.zeros((4, 3)), strength[:1], 1.0)
    with pytest.raises(ValueError, match="max_error"):
        _cpu.dither_fs(pixels, np.zeros((4, 3)), strength, -1.0)
    with pytest.raises(ValueError, match="band"):
        _cpu.dither_fs(pixels, np.zeros((4, 3)), strength, 1.0, band=0)
    with pytest.raises(ValueError, match="warm"):
        _cpu.dither_fs(pixels, np.zeros((4, 3)), strength, 1.0, warm=-1)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_fs_groups_of_one_group_equal_fs(channels: int) -> None:
    # One diffusion loop serves both kinds: 8-bit pixels searched on the candidate grid, and
    # float64 pixels searched by group. With every pixel and row in group 0, unit weights and
    # integer pixels, the two searches agree (exact, lowest row on ties), and so must the maps.
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 256, (23, 17, channels), dtype=np.uint8)
    palette = rng.integers(0, 256, (12, channels)).astype(np.float64)
    palette[5] = palette[2]  # a tie
    strength = rng.uniform(0, 1, (23, 17)).astype(np.float32)
    got = _cpu.dither_fs_groups(
        pixels.astype(np.float64),
        palette,
        np.ones(channels),
        np.zeros((23, 17), np.int8),
        np.ones(12, np.int8),
        np.zeros((23, 17), np.int32),
        strength,
        20.0,
    )
    np.testing.assert_array_equal(got, _cpu.dither_fs(pixels, palette, strength, 20.0))


def test_fs_groups_a_row_of_fixed_pixels_passes_no_error() -> None:
    # Row 3 takes fixed rows (group -1): it neither takes nor passes error, so row 4 starts
    # afresh, left to right as row 0 does: rows 4.. are the map of the image cut there.
    rng = np.random.default_rng(11)
    pixels = rng.uniform(0, 255, (9, 14, 4))
    palette = rng.uniform(0, 255, (10, 4))
    weight = np.array([1.0, 2.0, 0.5, 1.5])
    group = rng.integers(0, 3, (9, 14)).astype(np.int8)
    group[3] = -1
    entry = np.full(10, 0b111, np.int8)
    fixed = rng.integers(0, 10, (9, 14)).astype(np.int32)
    strength = np.ones((9, 14), np.float32)
    whole = _cpu.dither_fs_groups(pixels, palette, weight, group, entry, fixed, strength, 1e6)
    cut = _cpu.dither_fs_groups(
        pixels[4:].copy(), palette, weight, group[4:].copy(), entry, fixed[4:].copy(),
        strength[4:].copy(), 1e6,
    )  # fmt: skip
    np.testing.assert_array_equal(whole[3], fixed[3])
    np.testing.assert_array_equal(whole[4:], cut)
    # Not vacuous: the rows above do pass error on where no row stops it.
    group[3] = 0
    carried = _cpu.dither_fs_groups(pixels, palette, weight, group, entry, fixed, strength, 1e6)
    assert (carried[4:] != cut).any()


def test_squared_error_is_exact() -> None:
    rng = np.random.default_rng(0)
    for channels in (1, 3, 4):
        pixels = rng.integers(0, 256, (5000, channels), dtype=np.uint8)
        palette = rng.integers(0, 256, (30, channels), dtype=np.uint8)
        index = rng.integers(0, 30, 5000)
        expected = int(((pixels.astype(np.int64) - palette[index]) ** 2).sum())
        with threads(2):
            assert _cpu.squared_error(pixels, palette, index) == expected
    with pytest.raises(ValueError, match="index"):
        _cpu.squared_error(pixels, palette, index + 1)


def ordered_reference(
    rgb8: np.ndarray, palette: np.ndarray, space: ColorSpace, amplitude: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The NumPy path: shift, embed, brute force; with the points and palette points."""
    h, w = rgb8.shape[:2]
    offsets = ordered_offsets(np.empty(0), h, w, amplitude)
    shifted = np.clip(rgb8.astype(np.float64) + offsets[..., None], 0.0, 255.0)
    points = embed(shifted.reshape(-1, 3) / 255.0, space)
    targets = encode_colors(palette, space)
    return brute_nearest(points, targets), points, targets


@pytest.mark.parametrize("space", COLOR_SPACES)
@pytest.mark.parametrize("k", [1, 5, 64, 300])
def test_ordered_map_is_the_nearest_color_of_each_shifted_pixel(space: ColorSpace, k: int) -> None:
    rng = np.random.default_rng(k)
    rgb8 = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    rgb8[:10] = rng.integers(0, 4, (10, 45, 3))  # near black: the linear parts of the curves
    rgb8[10:14] = 128  # neutral: chroma 0
    rgb8[14:20] = rng.integers(6, 16, (6, 45, 3))  # where sRGB's two pieces meet (10.3)
    palette = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    if k > 2:
        palette[1] = palette[k - 1]  # a duplicate
    expected, points, targets = ordered_reference(rgb8, palette, space, 23.0)
    for n in (1, 3):
        with threads(n):
            got = ordered_map(rgb8, palette, space, 23.0).ravel()
        if space == "rgb":  # the tables hold the NumPy path's values: the same points
            np.testing.assert_array_equal(got, expected)
            continue
        # Elsewhere the conversion runs in C (its float64 rounding may differ in the last bits):
        # a different answer must be a tie, up to that rounding.
        differ = np.flatnonzero(got != expected)
        assert differ.size <= 2
        d_got = ((points[differ] - targets[got[differ]]) ** 2).sum(-1)
        d_expected = ((points[differ] - targets[expected[differ]]) ** 2).sum(-1)
        np.testing.assert_allclose(d_got, d_expected, rtol=1e-9, atol=1e-12)


def test_ordered_map_on_a_flat_area_mixes_two_colors() -> None:
    flat = np.full((16, 16, 3), 100, np.uint8)
    palette = np.array([[90, 90, 90], [110, 110, 110]], np.uint8)
    index = ordered_map(flat, palette, "rgb", 20.0)
    assert set(np.unique(index).tolist()) == {0, 1}
    assert abs(index.mean() - 0.5) < 0.05


def test_dither_ordered_rejects_bad_input() -> None:
    rgb8 = np.zeros((4, 4, 3), np.uint8)
    table = np.zeros((64, 256))
    params = np.zeros(_cpu.ORDERED_PARAMS)
    with pytest.raises(ValueError, match="rgb_table"):
        _cpu.dither_ordered(rgb8, table[:8], table, 0, params, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="space"):
        _cpu.dither_ordered(rgb8, table, table, 5, params, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="palette"):
        _cpu.dither_ordered(rgb8, table, table, 4, params, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="params"):
        _cpu.dither_ordered(rgb8, table, table, 0, params[:3], np.zeros((2, 3)))
