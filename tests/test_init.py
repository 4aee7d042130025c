"""colorquant.init: k-means++ and random seeding: distinct input points, seeded, weight-aware."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from colorquant.init import INITS, initial_centroids, kmeans_plusplus, random_init
from conftest import NEEDS_TORCH

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

Init = Callable[..., torch.Tensor]
METHODS: list[tuple[str, Init]] = [("k-means++", kmeans_plusplus), ("random", random_init)]
IDS = [name for name, _ in METHODS]


def distinct_points(
    rng: np.random.Generator, n: int, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``(n, 3)`` distinct 8-bit-valued points."""
    keys = rng.choice(256**3, n, replace=False)
    rgb = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1)
    return torch.from_numpy(rgb.astype(np.float64)).to(dtype)


def row_indices(points: torch.Tensor, rows: torch.Tensor) -> list[int]:
    """Index in ``points`` of each row of ``rows``; fails if a row is not a point."""
    out = []
    for r in rows:
        match = torch.nonzero((points == r).all(1)).flatten()
        assert match.numel() >= 1, f"{r.tolist()} is not an input point"
        out.append(int(match[0]))
    return out


def on(kind: str, x: torch.Tensor) -> torch.Tensor | np.ndarray:
    """``x`` as the kind of array a backend takes: NumPy (the compiled kernel) or torch."""
    return x.numpy() if kind == "numpy" else x


@pytest.mark.parametrize(("name", "init"), METHODS, ids=IDS)
@pytest.mark.parametrize("k", [1, 2, 7, 40])
def test_k_distinct_input_points(
    name: str, init: Init, k: int, rng: np.random.Generator, dtype: torch.dtype
) -> None:
    points = distinct_points(rng, 40, dtype)
    weights = torch.from_numpy(rng.integers(1, 10, 40).astype(np.float64)).to(dtype)
    out = init(points, weights, k, seed=0)
    assert out.shape == (k, 3)
    assert out.dtype == dtype
    chosen = row_indices(points, out)
    assert len(set(chosen)) == k


@pytest.mark.parametrize(("name", "init"), METHODS, ids=IDS)
def test_same_seed_same_result(name: str, init: Init, rng: np.random.Generator) -> None:
    points = distinct_points(rng, 200)
    weights = torch.from_numpy(rng.integers(1, 10, 200).astype(np.float64))
    a = init(points, weights, 12, seed=7)
    b = init(points, weights, 12, seed=7)
    assert torch.equal(a, b)
    # And the seed is what decides: some other seed gives another palette.
    others = [init(points, weights, 12, seed=s) for s in range(1, 6)]
    assert any(not torch.equal(a, o) for o in others)


@pytest.mark.parametrize(("name", "init"), METHODS, ids=IDS)
def test_global_rng_untouched(name: str, init: Init, rng: np.random.Generator) -> None:
    points = distinct_points(rng, 50)
    weights = torch.ones(50, dtype=torch.float64)
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 (the legacy global state is what is checked)
    expected = torch.rand(3), np.random.random(3)  # noqa: NPY002
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 (the legacy global state is what is checked)
    init(points, weights, 5, seed=0)
    init(points.numpy(), weights.numpy(), 5, seed=0)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.random(3), expected[1])  # noqa: NPY002


@pytest.mark.parametrize(("name", "init"), METHODS, ids=IDS)
def test_inputs_not_modified_and_output_is_a_copy(
    name: str, init: Init, rng: np.random.Generator
) -> None:
    points = distinct_points(rng, 30)
    weights = torch.from_numpy(rng.random(30) + 0.5)
    p0, w0 = points.clone(), weights.clone()
    out = init(points, weights, 30, seed=0)
    assert torch.equal(points, p0) and torch.equal(weights, w0)
    out += 1000.0
    assert torch.equal(points, p0)


@pytest.mark.parametrize("k", [1, 2, 9, 60])
def test_kmeans_plusplus_backends_agree(
    k: int, rng: np.random.Generator, dtype: torch.dtype
) -> None:
    # The NumPy CPU loop and the torch loop (the one cuda runs) draw the same numbers and must
    # choose the same points.
    points = distinct_points(rng, 60, dtype)
    weights = torch.from_numpy(rng.integers(1, 50, 60).astype(np.float64)).to(dtype)
    a = kmeans_plusplus(points.numpy(), weights.numpy(), k, seed=11)
    b = kmeans_plusplus(points, weights, k, seed=11)
    assert isinstance(a, np.ndarray) and a.dtype == points.numpy().dtype
    assert torch.equal(torch.from_numpy(a), b)
    assert len(set(row_indices(points, b))) == k


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_kmeans_plusplus_takes_one_point_per_blob(backend: str, rng: np.random.Generator) -> None:
    # Five tight, far-apart blobs: after one blob is hit, D(x)^2 makes the others all but certain.
    centers = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]])
    blob = np.repeat(np.arange(5), 40)
    points = torch.from_numpy(centers[blob] + rng.normal(0, 2.0, (200, 3)))
    weights = torch.from_numpy(rng.integers(1, 20, 200).astype(np.float64))
    for seed in range(10):
        out = kmeans_plusplus(on(backend, points), on(backend, weights), 5, seed=seed)
        out = torch.as_tensor(out)
        assert sorted(blob[row_indices(points, out)].tolist()) == [0, 1, 2, 3, 4], seed


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_greedy_trials_lower_the_potential(backend: str, photo_like: np.ndarray) -> None:
    # scikit-learn's greedy variant keeps the best of several D^2 candidates per step: over many
    # seeds its potential is clearly lower than plain k-means++ (one candidate per step).
    colors, counts = torch.unique(
        torch.from_numpy(photo_like.reshape(-1, 3)), dim=0, return_counts=True
    )
    points, weights = colors.double(), counts.double()

    def potential(centroids: torch.Tensor) -> float:
        d2 = torch.cdist(points, centroids).pow(2).min(1).values
        return float((weights * d2).sum() / weights.sum())

    def seeded(seed: int, trials: int | None) -> torch.Tensor:
        out = kmeans_plusplus(
            on(backend, points), on(backend, weights), 8, seed=seed, n_local_trials=trials
        )
        return torch.as_tensor(out)

    greedy = [potential(seeded(s, None)) for s in range(20)]
    plain = [potential(seeded(s, 1)) for s in range(20)]
    assert np.mean(greedy) < 0.9 * np.mean(plain)


def test_kmeans_plusplus_k_equals_n_takes_every_point(rng: np.random.Generator) -> None:
    points = distinct_points(rng, 25)
    out = kmeans_plusplus(points, torch.ones(25, dtype=torch.float64), 25, seed=3)
    assert sorted(row_indices(points, out)) == list(range(25))


def test_kmeans_plusplus_duplicate_points_not_picked_twice() -> None:
    # Two distinct colors, one repeated: with k = 2 both must be taken, never one color twice.
    points = torch.tensor([[0.0, 0.0, 0.0]] * 5 + [[9.0, 9.0, 9.0]], dtype=torch.float64)
    for seed in range(20):
        out = kmeans_plusplus(points, torch.ones(6, dtype=torch.float64), 2, seed=seed)
        assert sorted(out[:, 0].tolist()) == [0.0, 9.0]


@pytest.mark.parametrize(("name", "init"), METHODS, ids=IDS)
def test_first_pick_follows_weight(name: str, init: Init, rng: np.random.Generator) -> None:
    # One point holds nearly all the weight: with k = 1 it is the pick for every seed.
    points = distinct_points(rng, 30)
    weights = torch.full((30,), 1e-9, dtype=torch.float64)
    weights[17] = 1.0
    for seed in range(10):
        out = init(points, weights, 1, seed=seed)
        assert torch.equal(out[0], points[17])


def test_random_init_never_picks_zero_weight(rng: np.random.Generator) -> None:
    points = distinct_points(rng, 20)
    weights = torch.zeros(20, dtype=torch.float64)
    weights[[2, 5, 11, 19]] = 1.0
    for seed in range(10):
        out = random_init(points, weights, 4, seed=seed)
        assert sorted(row_indices(points, out)) == [2, 5, 11, 19]


@pytest.mark.parametrize(("name", "init"), METHODS, ids=IDS)
def test_same_result_on_every_device(
    name: str, init: Init, device: torch.device, rng: np.random.Generator
) -> None:
    points = distinct_points(rng, 100)
    weights = torch.from_numpy(rng.integers(1, 9, 100).astype(np.float64))
    on_cpu = init(points, weights, 8, seed=1)
    here = init(points.to(device), weights.to(device), 8, seed=1)
    assert here.device.type == device.type
    assert torch.equal(here.cpu(), on_cpu)


@pytest.mark.parametrize(("name", "init"), METHODS, ids=IDS)
@pytest.mark.parametrize("k", [0, 11, -1])
def test_bad_k_raises(name: str, init: Init, k: int) -> None:
    with pytest.raises(ValueError, match=rf"k must be in 1\.\.10 .* got {k}"):
        init(torch.zeros(10, 3), torch.ones(10), k, seed=0)


@pytest.mark.parametrize(("name", "init"), METHODS, ids=IDS)
@pytest.mark.parametrize(
    ("points", "weights"),
    [
        (torch.zeros(10, 3), torch.ones(9)),
        (torch.zeros(10), torch.ones(10)),
        (torch.zeros(10, 3), torch.ones(10, 1)),
    ],
)
def test_bad_shapes_raise(
    name: str, init: Init, points: torch.Tensor, weights: torch.Tensor
) -> None:
    with pytest.raises(ValueError, match=r"points must be \(N, C\) and weights \(N,\)"):
        init(points, weights, 2, seed=0)


def test_initial_centroids_dispatch(rng: np.random.Generator) -> None:
    points = distinct_points(rng, 60)
    weights = torch.ones(60, dtype=torch.float64)
    assert INITS == ("k-means++", "random")
    assert torch.equal(
        initial_centroids("k-means++", points, weights, 6, seed=4),
        kmeans_plusplus(points, weights, 6, seed=4),
    )
    assert torch.equal(
        initial_centroids("random", points, weights, 6, seed=4),
        random_init(points, weights, 6, seed=4),
    )
    with pytest.raises(ValueError, match=r"init must be one of k-means\+\+, random, got 'wu'"):
        initial_centroids("wu", points, weights, 6, seed=4)  # type: ignore[arg-type]


def _kmeanspp_brute_force(
    points: np.ndarray, weights: np.ndarray, k: int, u_first: float, u: np.ndarray
) -> list[int]:
    """Greedy k-means++ as written in the docstring: every distance, every step, float64."""
    cum = np.cumsum(weights)
    chosen = [min(int(np.searchsorted(cum, u_first * cum[-1], side="right")), len(points) - 1)]
    closest = ((points - points[chosen[0]]) ** 2).sum(1)
    for i in range(1, k):
        cum = np.cumsum(weights * closest)
        cand = np.minimum(np.searchsorted(cum, u[i - 1] * cum[-1], side="right"), len(points) - 1)
        d2 = np.minimum(((points[None, :, :] - points[cand][:, None, :]) ** 2).sum(-1), closest)
        best = int(np.argmin((d2 * weights).sum(1)))
        chosen.append(int(cand[best]))
        closest = d2[best]
    return chosen


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k", [2, 40, 150])
def test_compiled_kmeans_plusplus_equals_brute_force(threads: int, k: int) -> None:
    # Thousands of clustered points: the compiled kernel's triangle-inequality pruning skips most
    # of them, and must still choose exactly what the unpruned float64 algorithm chooses.
    from colorquant import _cpu
    from colorquant._cpu import _kernels

    rng = np.random.default_rng(k)
    centers = rng.uniform(0, 100, (30, 3))
    points = centers[rng.integers(0, 30, 3000)] + rng.normal(0, 4.0, (3000, 3))
    weights = rng.integers(1, 30, 3000).astype(np.float64)
    u = rng.random((k - 1, 2 + int(np.log(k))))
    expected = _kmeanspp_brute_force(points, weights, k, 0.37, u)
    old_threads, old_min = _cpu.get_num_threads(), _kernels.set_parallel_min(1)
    try:
        _cpu.set_num_threads(threads)
        got = _cpu.kmeans_plusplus(points, weights, k, 0.37, u)
    finally:
        _cpu.set_num_threads(old_threads)
        _kernels.set_parallel_min(old_min)
    assert got.tolist() == expected
