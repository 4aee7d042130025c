"""colorquant.histogram: exact color histograms, merging, and coarse binning."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from colorquant.histogram import (
    ColorHistogram,
    bin_colors,
    cell_means,
    color_histogram,
    merge_histograms,
    pack_rgb,
)
from conftest import NEEDS_TORCH

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

import colorquant._torch.histogram as torch_histogram

PROPERTY = settings(max_examples=40, deadline=None)


def pixel_arrays(max_n: int = 60) -> st.SearchStrategy[np.ndarray]:
    """Small ``(N, 3)`` uint8 pixel arrays, N >= 1; a narrow value range half the time, so
    colors repeat."""
    values = st.one_of(st.integers(0, 255), st.sampled_from([0, 1, 254, 255]))
    return st.integers(1, max_n).flatmap(lambda n: arrays(np.uint8, (n, 3), elements=values))


def check_histogram(pixels: np.ndarray, h: ColorHistogram) -> None:
    """Every invariant of an exact histogram of ``pixels``."""
    colors, counts = h.colors.cpu().numpy(), h.counts.cpu().numpy()
    assert h.colors.dtype == torch.uint8 and h.counts.dtype == torch.int64
    assert h.inverse is not None
    assert h.inverse.dtype in (torch.int32, torch.int64)  # int32 since the memory work
    inverse = h.inverse.cpu().numpy().astype(np.int64)
    np.testing.assert_array_equal(colors[inverse], pixels)
    assert counts.sum() == len(pixels) == h.n_pixels
    assert (counts >= 1).all()
    np.testing.assert_array_equal(counts, np.bincount(inverse, minlength=len(colors)))
    keys = (
        (colors[:, 0].astype(np.int64) << 16) | (colors[:, 1].astype(np.int64) << 8) | colors[:, 2]
    )
    assert (np.diff(keys) > 0).all(), "colors must be distinct and sorted by packed key"
    assert len(h) == len(np.unique(pixels, axis=0))
    np.testing.assert_array_equal(colors, np.unique(pixels, axis=0))  # lexicographic = key order


def test_docstring_example_by_hand() -> None:
    pixels = torch.tensor([[1, 2, 3], [0, 0, 0], [1, 2, 3]], dtype=torch.uint8)
    h = color_histogram(pixels)
    assert h.colors.tolist() == [[0, 0, 0], [1, 2, 3]]
    assert h.counts.tolist() == [1, 2]
    assert h.inverse is not None and h.inverse.tolist() == [1, 0, 1]
    assert h.n_pixels == 3 and len(h) == 2


def test_pack_rgb_values() -> None:
    colors = torch.tensor([[1, 2, 3], [255, 255, 255], [0, 0, 0], [128, 0, 1]], dtype=torch.uint8)
    assert pack_rgb(colors).tolist() == [0x010203, 0xFFFFFF, 0, 0x800001]
    assert pack_rgb(colors).dtype == torch.int32
    assert pack_rgb(colors.reshape(2, 2, 3)).shape == (2, 2)


def test_sorted_by_packed_key_not_by_channel_sum() -> None:
    # (0, 0, 255) has the larger channel sum, but (0, 1, 0) has the larger packed key.
    pixels = torch.tensor([[0, 1, 0], [0, 0, 255], [1, 0, 0]], dtype=torch.uint8)
    assert color_histogram(pixels).colors.tolist() == [[0, 0, 255], [0, 1, 0], [1, 0, 0]]


@PROPERTY
@given(pixels=pixel_arrays())
def test_histogram_properties(pixels: np.ndarray) -> None:
    check_histogram(pixels, color_histogram(torch.from_numpy(pixels)))


@settings(max_examples=8, deadline=None)  # each example zeroes a 2^24-entry table
@given(pixels=pixel_arrays())
def test_histogram_by_table_properties(pixels: np.ndarray) -> None:
    # Large images count into a 2^24 table instead of sorting: the same histogram.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch_histogram, "BINCOUNT_FROM", 0)
        by_table = color_histogram(torch.from_numpy(pixels))
    check_histogram(pixels, by_table)
    by_sort = color_histogram(torch.from_numpy(pixels))
    assert torch.equal(by_table.colors, by_sort.colors)
    assert torch.equal(by_table.counts, by_sort.counts)


def test_histogram_of_photo(photo_like: np.ndarray, device: torch.device) -> None:
    pixels = photo_like.reshape(-1, 3)
    h = color_histogram(torch.from_numpy(pixels).to(device))
    assert h.colors.device.type == device.type
    check_histogram(pixels, h)
    # The flat regions are single colors with many pixels.
    flat = h.counts[(h.colors == torch.tensor([200, 30, 40], device=device)).all(1)]
    assert flat.numel() == 1 and flat.item() >= 100


def test_histogram_does_not_modify_input(photo_like: np.ndarray) -> None:
    pixels = torch.from_numpy(photo_like.reshape(-1, 3).copy())
    before = pixels.clone()
    color_histogram(pixels)
    assert torch.equal(pixels, before)


@pytest.mark.parametrize(
    "pixels",
    [
        torch.zeros(4, 3, dtype=torch.float32),
        torch.zeros(4, 3, dtype=torch.int64),
        torch.zeros(4, 4, dtype=torch.uint8),
        torch.zeros(2, 2, 3, dtype=torch.uint8),
        torch.zeros(12, dtype=torch.uint8),
    ],
    ids=["float", "int64", "four_channels", "image_layout", "flat"],
)
def test_bad_pixels_raise(pixels: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"\(N, 3\) uint8"):
        color_histogram(pixels)


# -- merge ------------------------------------------------------------------------------------


@PROPERTY
@given(parts=st.lists(pixel_arrays(30), min_size=1, max_size=4))
def test_merge_equals_histogram_of_concatenation(parts: list[np.ndarray]) -> None:
    merged = merge_histograms([color_histogram(torch.from_numpy(p)) for p in parts])
    whole = color_histogram(torch.from_numpy(np.concatenate(parts)))
    assert merged.inverse is None
    assert torch.equal(merged.colors, whole.colors)
    assert torch.equal(merged.counts, whole.counts)
    assert merged.n_pixels == sum(len(p) for p in parts)


def test_merge_by_hand() -> None:
    a = color_histogram(torch.tensor([[5, 5, 5], [0, 0, 0], [5, 5, 5]], dtype=torch.uint8))
    b = color_histogram(torch.tensor([[9, 0, 0], [5, 5, 5]], dtype=torch.uint8))
    m = merge_histograms([a, b])
    assert m.colors.tolist() == [[0, 0, 0], [5, 5, 5], [9, 0, 0]]
    assert m.counts.tolist() == [1, 3, 1]


def test_merge_one_drops_inverse_and_keeps_counts() -> None:
    h = color_histogram(torch.tensor([[1, 1, 1], [1, 1, 1]], dtype=torch.uint8))
    m = merge_histograms([h])
    assert m.inverse is None
    assert m.counts.tolist() == [2] and m.colors.tolist() == [[1, 1, 1]]


def test_merge_nothing_raises() -> None:
    with pytest.raises(ValueError, match="at least one"):
        merge_histograms([])


# -- binning ----------------------------------------------------------------------------------


@PROPERTY
@given(pixels=pixel_arrays(), bits=st.integers(1, 8), on_numpy=st.booleans())
def test_bin_colors_groups_by_top_bits(pixels: np.ndarray, bits: int, on_numpy: bool) -> None:
    colors = color_histogram(pixels if on_numpy else torch.from_numpy(pixels)).colors
    cell, n_cells = bin_colors(colors, bits)
    assert cell.dtype == (np.int64 if on_numpy else torch.int64)
    assert cell.shape == (colors.shape[0],)
    cell_np = np.asarray(cell)
    coarse = np.asarray(colors) >> (8 - bits)
    # Cells are numbered in the order of their packed coarse key, on both kernels.
    keys = (coarse.astype(np.int64) << np.array([2 * bits, bits, 0])).sum(1)
    np.testing.assert_array_equal(cell_np, np.unique(keys, return_inverse=True)[1].ravel())
    assert n_cells == len(np.unique(coarse, axis=0))
    assert set(cell_np.tolist()) == set(range(n_cells))  # every cell index is occupied
    # Two colors share a cell exactly when their top `bits` bits agree in every channel.
    same_cell = cell_np[:, None] == cell_np[None, :]
    same_bits = (coarse[:, None, :] == coarse[None, :, :]).all(-1)
    np.testing.assert_array_equal(same_cell, same_bits)


def test_bin_colors_by_hand() -> None:
    colors = torch.tensor(
        [[0, 0, 0], [127, 127, 127], [128, 0, 0], [255, 255, 255], [200, 10, 20]],
        dtype=torch.uint8,
    )
    cell, n = bin_colors(colors, 1)
    assert n == 3
    c = cell.tolist()
    assert c[0] == c[1]  # both below 128 in every channel
    assert c[2] == c[4]  # red channel >= 128, others below
    assert len({c[0], c[2], c[3]}) == 3


def test_bin_colors_eight_bits_keeps_colors_apart(photo_like: np.ndarray) -> None:
    colors = color_histogram(torch.from_numpy(photo_like.reshape(-1, 3))).colors
    cell, n = bin_colors(colors, 8)
    assert n == colors.shape[0]
    # Sorted distinct colors are sorted distinct cells: the identity map.
    assert torch.equal(cell, torch.arange(n))


@pytest.mark.parametrize("on_numpy", [True, False], ids=["numpy", "torch"])
def test_cell_means_equal_float64_reference(on_numpy: bool, photo_like: np.ndarray) -> None:
    hist = color_histogram(photo_like.reshape(-1, 3))
    points = hist.colors.astype(np.float64) / 7.0
    weights = hist.counts.astype(np.float64)
    cell, n = bin_colors(hist.colors, 4)
    # Reference: every cell's weighted mean by a Python loop over the cells.
    ref_means = np.array(
        [np.average(points[cell == q], axis=0, weights=weights[cell == q]) for q in range(n)]
    )
    ref_weight = np.array([weights[cell == q].sum() for q in range(n)])
    ref_scatter = (weights * ((points - ref_means[cell]) ** 2).sum(1)).sum() / weights.sum()
    if on_numpy:
        means, cell_weight, scatter = cell_means(points, weights, cell, n)
    else:
        t_means, t_weight, scatter = cell_means(
            torch.from_numpy(points), torch.from_numpy(weights), torch.from_numpy(cell), n
        )
        means, cell_weight = t_means.numpy(), t_weight.numpy()
    np.testing.assert_allclose(means, ref_means, rtol=1e-12)
    np.testing.assert_allclose(cell_weight, ref_weight, rtol=1e-12)
    assert scatter == pytest.approx(ref_scatter, rel=1e-10)
    assert scatter > 0  # 4-bit cells of a noisy photo hold several colors


@pytest.mark.parametrize("bits", [0, 9, -1])
def test_bin_colors_bad_bits(bits: int) -> None:
    with pytest.raises(ValueError, match=rf"bits must be in 1\.\.8, got {bits}"):
        bin_colors(torch.zeros(1, 3, dtype=torch.uint8), bits)
