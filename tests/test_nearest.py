"""colorquant.nearest: the exact search equals a float64 brute force, ties and chunks included."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from colorquant.color import COLOR_SPACES, encode_colors
from colorquant.nearest import nearest
from conftest import NEEDS_TORCH

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

import colorquant._torch.nearest as nearest_module
from colorquant._torch.nearest import two_nearest

BruteForce = Callable[..., tuple[np.ndarray, np.ndarray]]
PERCEPTUAL = [s for s in COLOR_SPACES if s != "rgb"]  # spaces with non-integer coordinates


def check_exact(points: torch.Tensor, palette: torch.Tensor, brute_force: BruteForce) -> None:
    """``nearest(..., exact=True)`` gives the brute-force index and the direct distance."""
    index, dist2 = nearest(points, palette, exact=True)
    expected, best = brute_force(points, palette)
    assert index.dtype == torch.int64 and index.shape == (points.shape[0],)
    assert dist2.dtype == points.dtype
    np.testing.assert_array_equal(index.cpu().numpy(), expected)
    direct = (points - palette[index]).pow(2).sum(1)
    torch.testing.assert_close(dist2, direct, rtol=0, atol=0)
    # float64: equal up to the order of the channel sum (6 channels in hybrid).
    np.testing.assert_allclose(
        dist2.double().cpu().numpy(), best, rtol=1e-6 if points.dtype == torch.float32 else 1e-15
    )


def float32_expanded_index(points: torch.Tensor, palette: torch.Tensor) -> np.ndarray:
    """What a plain float32 ``|x|^2 - 2 x.c + |c|^2`` search answers (to show a case is hard)."""
    x = points.cpu().numpy().astype(np.float32)
    c = palette.cpu().numpy().astype(np.float32)
    d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
    return d.argmin(axis=1)


# -- by hand ----------------------------------------------------------------------------------


def test_docstring_example_by_hand() -> None:
    idx, d2 = nearest(
        torch.tensor([[0.0, 0.0], [9.0, 9.0]]), torch.tensor([[1.0, 0.0], [8.0, 8.0]])
    )
    assert idx.tolist() == [0, 1]
    assert d2.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("exact", [True, False])
def test_exact_tie_takes_lowest_index(exact: bool) -> None:
    # Integer RGB coordinates: float32 holds every term exactly, so both paths see exact ties.
    point = torch.tensor([[1.0, 0.0, 0.0], [100.0, 100.0, 100.0]])
    for palette in ([[0, 0, 0], [2, 0, 0]], [[2, 0, 0], [0, 0, 0]]):
        idx, d2 = nearest(point[:1], torch.tensor(palette, dtype=torch.float32), exact=exact)
        assert idx.tolist() == [0] and d2.tolist() == [1.0]
    # A three-way tie behind a farther first entry: 25 = 5^2 = 3^2 + 4^2.
    palette = torch.tensor([[9.0, 9.0, 9.0], [0.0, 0.0, 5.0], [5.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    idx, d2 = nearest(torch.zeros(1, 3), palette, exact=True)
    assert idx.tolist() == [1] and d2.tolist() == [25.0]
    # The same three-way tie at large coordinates (|x|^2 ~ 1e5, still exact in float32).
    shifted = palette + 200.0
    idx, _ = nearest(torch.full((1, 3), 200.0), shifted, exact=True)
    assert idx.tolist() == [1]


def test_duplicate_palette_entries_take_the_first() -> None:
    palette = torch.tensor([[5.0, 5.0, 5.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    points = torch.tensor([[1.0, 0.0, 0.0], [4.0, 5.0, 5.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    idx, d2 = nearest(points, palette, exact=True)
    assert idx.tolist() == [1, 0, 1, 0]
    assert d2.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_single_color_palette(rng: np.random.Generator, dtype: torch.dtype) -> None:
    points = torch.from_numpy(rng.normal(size=(500, 3))).to(dtype)
    palette = torch.tensor([[0.5, -1.0, 2.0]], dtype=dtype)
    for exact in (True, False):
        idx, d2 = nearest(points, palette, exact=exact)
        assert torch.equal(idx, torch.zeros(500, dtype=torch.int64))
        torch.testing.assert_close(d2, (points - palette).pow(2).sum(1), rtol=0, atol=0)


def test_no_points() -> None:
    idx, d2 = nearest(torch.zeros(0, 3), torch.ones(4, 3), exact=True)
    assert idx.shape == (0,) and d2.shape == (0,)


def test_other_dimensions(rng: np.random.Generator, brute_force: BruteForce) -> None:
    for c in (1, 2, 5):
        points = torch.from_numpy(rng.integers(0, 6, (200, c)).astype(np.float64))
        palette = torch.from_numpy(rng.integers(0, 6, (7, c)).astype(np.float64))
        check_exact(points, palette, brute_force)


# -- adversarial ------------------------------------------------------------------------------


def test_integer_rgb_ties(rng: np.random.Generator, brute_force: BruteForce) -> None:
    """Midpoints of palette pairs whose coordinates sum to even numbers: exact ties."""
    palette = rng.integers(0, 128, (24, 3)) * 2  # even coordinates: every midpoint is integer
    i, j = rng.integers(0, 24, (2, 2000))
    points = (palette[i] + palette[j]) // 2
    pts = torch.from_numpy(points.astype(np.float32))
    pal = torch.from_numpy(palette.astype(np.float32))
    d2 = ((points[:, None, :] - palette[None, :, :]) ** 2).sum(-1)
    n_ties = ((d2 == d2.min(1, keepdims=True)).sum(1) > 1).sum()
    assert n_ties > 100, "the case must hold many exact ties"
    check_exact(pts, pal, brute_force)
    check_exact(pts.double(), pal.double(), brute_force)


@pytest.mark.parametrize("space", PERCEPTUAL)
def test_near_equal_encoded_colors(
    space: str, rng: np.random.Generator, brute_force: BruteForce
) -> None:
    """A palette of 8-bit colors one step apart, points from the 8-bit cube around them."""
    base = rng.integers(20, 230, (6, 3))
    steps = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1]])
    palette8 = (base[:, None, :] + steps[None]).reshape(-1, 3)
    grid = np.stack(np.meshgrid(*[np.arange(-2, 4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    points8 = (base[:, None, :] + grid[None]).reshape(-1, 3)
    for dtype in (torch.float64, torch.float32):
        palette = encode_colors(torch.from_numpy(palette8.astype(np.uint8)), space, dtype)  # type: ignore[arg-type]
        points = encode_colors(torch.from_numpy(points8.astype(np.uint8)), space, dtype)  # type: ignore[arg-type]
        check_exact(points, palette, brute_force)


@pytest.mark.parametrize("space", PERCEPTUAL)
def test_bisector_points_beyond_float32(
    space: str, rng: np.random.Generator, brute_force: BruteForce
) -> None:
    """Points a hair off the bisector of two near-equal encoded colors: float32's expanded
    distance cannot tell the sides apart, the float64 re-decision must."""
    colors8 = rng.integers(0, 255, (40, 3))
    partner8 = np.clip(colors8 + rng.integers(-1, 2, (40, 3)), 0, 255)
    partner8[(partner8 == colors8).all(1), 0] ^= 1  # never the same color
    p = encode_colors(torch.from_numpy(colors8.astype(np.uint8)), space, torch.float64)  # type: ignore[arg-type]
    q = encode_colors(torch.from_numpy(partner8.astype(np.uint8)), space, torch.float64)  # type: ignore[arg-type]
    offsets = torch.tensor([-1e-4, -1e-6, -1e-9, 0.0, 1e-9, 1e-6, 1e-4], dtype=torch.float64)
    mid = 0.5 * (p + q)
    points = (mid[:, None, :] + offsets[None, :, None] * (q - p)[:, None, :]).reshape(
        -1, p.shape[1]
    )
    palette = torch.cat([p, q])
    assert (float32_expanded_index(points, palette) != brute_force(points, palette)[0]).any(), (
        "the case must defeat a float32 search"
    )
    check_exact(points, palette, brute_force)
    # The pair in the other order: on the exact bisector (offset 0) the lower index still wins.
    check_exact(points, torch.cat([q, p]), brute_force)


def test_inexact_search_is_close(rng: np.random.Generator, brute_force: BruteForce) -> None:
    """``exact=False`` may pick a near-tie, but never one farther than float32 rounding."""
    points = encode_colors(
        torch.from_numpy(rng.integers(0, 256, (3000, 3), dtype=np.uint8)), "lab", torch.float64
    )
    palette = encode_colors(
        torch.from_numpy(rng.integers(0, 256, (64, 3), dtype=np.uint8)), "lab", torch.float64
    )
    _, d2 = nearest(points, palette, exact=False)
    _, best = brute_force(points, palette)
    scale = (points * points).sum(1).numpy() + (palette * palette).sum(1).max().item()
    assert (d2.numpy() - best <= 1e-5 * scale).all()


# -- chunking ---------------------------------------------------------------------------------


@pytest.mark.parametrize("exact", [True, False])
def test_many_chunks(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator, brute_force: BruteForce, exact: bool
) -> None:
    # chunk = max(256, budget // (4 K)) = 256 rows: 3000 points make 12 chunks, and the many
    # ties (coordinates 0..5) make hundreds of rows to re-decide, in several chunks too.
    monkeypatch.setattr(nearest_module, "MEMORY_BUDGET", 1024)
    points = torch.from_numpy(rng.integers(0, 6, (3000, 3)).astype(np.float32))
    palette = torch.from_numpy(rng.integers(0, 6, (16, 3)).astype(np.float32))
    if exact:
        check_exact(points, palette, brute_force)
        check_exact(points.double(), palette.double(), brute_force)
    else:
        _, d2 = nearest(points, palette)
        np.testing.assert_array_equal(d2.numpy(), brute_force(points, palette)[1])


@pytest.mark.parametrize("space", PERCEPTUAL)
def test_bisector_points_in_later_chunks(
    monkeypatch: pytest.MonkeyPatch, space: str, rng: np.random.Generator, brute_force: BruteForce
) -> None:
    """Rows to re-decide in the 4th and later chunks must be found at their own positions."""
    monkeypatch.setattr(nearest_module, "MEMORY_BUDGET", 1)  # 256-row chunks
    colors8 = rng.integers(0, 255, (60, 3))
    partner8 = np.clip(colors8 + rng.integers(-1, 2, (60, 3)), 0, 255)
    partner8[(partner8 == colors8).all(1), 0] ^= 1
    p = encode_colors(torch.from_numpy(colors8.astype(np.uint8)), space, torch.float64)  # type: ignore[arg-type]
    q = encode_colors(torch.from_numpy(partner8.astype(np.uint8)), space, torch.float64)  # type: ignore[arg-type]
    offsets = torch.tensor([-1e-7, -1e-9, 1e-9, 1e-7], dtype=torch.float64)
    mid = 0.5 * (p + q)
    hard = (mid[:, None, :] + offsets[None, :, None] * (q - p)[:, None, :]).reshape(-1, p.shape[1])
    easy = p.repeat(13, 1)[:780]  # 3 chunks of points sitting on palette colors
    points = torch.cat([easy, hard])
    palette = torch.cat([p, q])
    assert (float32_expanded_index(hard, palette) != brute_force(hard, palette)[0]).any()
    check_exact(points, palette, brute_force)


def test_many_chunks_default_budget(rng: np.random.Generator, brute_force: BruteForce) -> None:
    # A large palette makes the default chunk small: 16 MiB / (4 * 6000) = 699 rows.
    points = torch.from_numpy(rng.integers(0, 256, (2100, 3)).astype(np.float64))
    palette = torch.from_numpy(rng.integers(0, 256, (6000, 3)).astype(np.float64))
    assert nearest_module.MEMORY_BUDGET // (4 * 6000) * 3 < 2100
    check_exact(points, palette, brute_force)


@pytest.mark.parametrize("space", PERCEPTUAL)
def test_many_chunks_encoded(
    monkeypatch: pytest.MonkeyPatch, space: str, rng: np.random.Generator, brute_force: BruteForce
) -> None:
    monkeypatch.setattr(nearest_module, "MEMORY_BUDGET", 1)
    colors = torch.from_numpy(rng.integers(0, 256, (2000, 3), dtype=np.uint8))
    points = encode_colors(colors, space)  # type: ignore[arg-type]
    palette = points[rng.choice(2000, 40, replace=False)]
    palette = torch.cat([palette, palette[:5]])  # duplicates: the first copy must win
    check_exact(points, palette, brute_force)


# -- properties -------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 40),
    k=st.integers(1, 8),
    c=st.integers(1, 4),
    high=st.sampled_from([2, 5, 255]),
)
def test_equals_brute_force_property(
    data: st.DataObject, n: int, k: int, c: int, high: int
) -> None:
    values = st.integers(0, high)
    points = data.draw(arrays(np.int64, (n, c), elements=values))
    palette = data.draw(arrays(np.int64, (k, c), elements=values))
    for dtype in (np.float32, np.float64):
        pts, pal = torch.from_numpy(points.astype(dtype)), torch.from_numpy(palette.astype(dtype))
        index, dist2 = nearest(pts, pal, exact=True)
        expected, d2 = brute_force_nearest_np(points, palette)
        np.testing.assert_array_equal(index.numpy(), expected)
        np.testing.assert_array_equal(dist2.numpy(), d2.min(1).astype(dtype))


def brute_force_nearest_np(
    points: np.ndarray, palette: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((points[:, None, :].astype(np.float64) - palette[None].astype(np.float64)) ** 2).sum(-1)
    return d2.argmin(1), d2


# -- dist2, gradient, device, bad input ---------------------------------------------------------


def test_dist2_is_direct_and_keeps_dtype(rng: np.random.Generator, dtype: torch.dtype) -> None:
    points = torch.from_numpy(rng.normal(size=(300, 3)) * 50).to(dtype)
    palette = torch.from_numpy(rng.normal(size=(9, 3)) * 50).to(dtype)
    index, dist2 = nearest(points, palette, exact=True)
    assert dist2.dtype == dtype
    torch.testing.assert_close(dist2, ((points - palette[index]) ** 2).sum(1), rtol=0, atol=0)


def test_dist2_differentiable_in_palette(rng: np.random.Generator) -> None:
    points = torch.from_numpy(rng.normal(size=(100, 3)))
    palette = torch.from_numpy(rng.normal(size=(4, 3))).requires_grad_(True)
    index, dist2 = nearest(points, palette)
    dist2.sum().backward()
    assert palette.grad is not None
    expected = torch.zeros(4, 3, dtype=torch.float64)
    expected.index_add_(0, index, 2.0 * (palette.detach()[index] - points))
    torch.testing.assert_close(palette.grad, expected)


def test_device(device: torch.device, rng: np.random.Generator, brute_force: BruteForce) -> None:
    points = torch.from_numpy(rng.integers(0, 8, (1000, 3)).astype(np.float32)).to(device)
    palette = torch.from_numpy(rng.integers(0, 8, (12, 3)).astype(np.float32)).to(device)
    index, dist2 = nearest(points, palette, exact=True)
    assert index.device.type == device.type and dist2.device.type == device.type
    np.testing.assert_array_equal(index.cpu().numpy(), brute_force(points, palette)[0])


def test_inputs_not_modified(rng: np.random.Generator) -> None:
    points = torch.from_numpy(rng.normal(size=(50, 3)))
    palette = torch.from_numpy(rng.normal(size=(5, 3)))
    p0, c0 = points.clone(), palette.clone()
    nearest(points, palette, exact=True)
    assert torch.equal(points, p0) and torch.equal(palette, c0)


@pytest.mark.parametrize(
    ("points", "palette", "match"),
    [
        (torch.zeros(4, 3), torch.zeros(2, 4), "agree in C"),
        (torch.zeros(4), torch.zeros(2, 3), "agree in C"),
        (torch.zeros(4, 3), torch.zeros(3), "agree in C"),
        (torch.zeros(2, 4, 3), torch.zeros(2, 3), "agree in C"),
        (torch.zeros(4, 3), torch.zeros(0, 3), "at least one color"),
    ],
)
def test_bad_input_raises(points: torch.Tensor, palette: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        nearest(points, palette)


# -- two_nearest ---------------------------------------------------------------------------------


def test_two_nearest(rng: np.random.Generator) -> None:
    points = torch.from_numpy(rng.normal(size=(700, 3)) * 30)
    palette = torch.from_numpy(rng.normal(size=(11, 3)) * 30)
    index, first, second = two_nearest(points, palette)
    d2 = ((points[:, None, :] - palette[None]) ** 2).sum(-1).numpy()
    two = np.sort(d2, axis=1)[:, :2]
    assert index.dtype == torch.int64 and first.dtype == torch.float32
    # Expanded-form float32 distances: close to the true ones up to float32 rounding of
    # |x|^2 + |c|^2, not exact.
    slack = 1e-5 * ((points**2).sum(1) + (palette**2).sum(1).max()).numpy()
    assert (np.abs(first.numpy() - two[:, 0]) <= slack).all()
    assert (np.abs(second.numpy() - two[:, 1]) <= slack).all()
    assert (d2[np.arange(700), index.numpy()] <= two[:, 0] + slack).all()
    assert (first >= 0).all() and (second >= first).all()
    with pytest.raises(ValueError, match="at least 2"):
        two_nearest(points, palette[:1])


# -- NumPy arrays: the compiled CPU kernel behind the same function ----------------------------


@pytest.mark.parametrize("space", COLOR_SPACES)
@pytest.mark.parametrize("k", [1, 2, 17, 256])
def test_numpy_equals_brute_force_and_torch(
    space: str, k: int, rng: np.random.Generator, brute_force: BruteForce
) -> None:
    colors = rng.integers(0, 256, (3000, 3), dtype=np.uint8)
    palette = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    points, pal = encode_colors(colors, space), encode_colors(palette, space)  # type: ignore[arg-type]
    index, d2 = nearest(points, pal)
    assert isinstance(index, np.ndarray) and index.dtype == np.int64
    expected, expected_d2 = brute_force(points, pal)
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(d2, expected_d2, rtol=1e-12, atol=0)
    on_torch, _ = nearest(torch.from_numpy(points), torch.from_numpy(pal), exact=True)
    np.testing.assert_array_equal(index, on_torch.numpy())


def test_numpy_ties_take_lowest_index() -> None:
    palette = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    points = np.array([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [9.0, 0.0, 0.0]])
    index, _ = nearest(points, palette)
    # 0.5 is as far from 0 (row 1) as from 1 (row 3): row 1; 1.5 ties rows 3 and 0: row 0.
    assert index.tolist() == [1, 1, 0, 0]
