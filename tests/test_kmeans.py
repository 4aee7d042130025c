"""colorquant.kmeans: weighted Lloyd and the Adam alternative.

Properties (libimagequant-style): the objective never increases; the reported inertia is the
objective of the returned (labels, centroids); no empty or NaN centroid, whatever the start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from colorquant.color import COLOR_SPACES, encode_colors
from colorquant.kmeans import KMeansResult, fit_adam, weighted_kmeans
from colorquant.nearest import nearest
from conftest import NEEDS_TORCH

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

MONOTONE_RTOL = 1e-9  # float64: relative slack for "never increases"
INERTIA_RTOL = 1e-9
# The NumPy CPU kernel and the torch loop (the one cuda and mps run) promise the same results.
BACKENDS = ["numpy", "torch"]
with_backends = pytest.mark.parametrize("backend", BACKENDS)


def kmeans(
    points: torch.Tensor,
    weights: torch.Tensor,
    init: torch.Tensor,
    *,
    backend: str,
    **options: float,
) -> KMeansResult:
    """:func:`weighted_kmeans` on NumPy arrays (the compiled kernel) or on the tensors, with
    the result as tensors either way so that one set of assertions serves both."""
    if backend == "torch":
        return weighted_kmeans(points, weights, init, **options)  # type: ignore[arg-type]
    r = weighted_kmeans(points.numpy(), weights.numpy(), init.numpy(), **options)  # type: ignore[arg-type]
    assert isinstance(r.centroids, np.ndarray) and isinstance(r.labels, np.ndarray)
    return dataclasses.replace(
        r, centroids=torch.from_numpy(r.centroids), labels=torch.from_numpy(r.labels)
    )


def objective(
    points: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor
) -> float:
    """``J = sum_i w_i |x_i - c_{label_i}|^2 / sum_i w_i`` in float64, from the definition."""
    x, w, c = points.double(), weights.double(), centroids.double()
    return float((w * (x - c[labels]).pow(2).sum(1)).sum() / w.sum())


def distinct_points(rng: np.random.Generator, n: int) -> torch.Tensor:
    keys = rng.choice(256**3, n, replace=False)
    return torch.from_numpy(
        np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], 1).astype(np.float64)
    )


def assert_non_increasing(history: tuple[float, ...], rtol: float = MONOTONE_RTOL) -> None:
    h = np.asarray(history)
    rises = h[1:] - h[:-1]
    assert (rises <= rtol * np.abs(h[:-1])).all(), f"objective rose: {history}"


def check_result(r: KMeansResult, points: torch.Tensor, weights: torch.Tensor, k: int) -> None:
    """The invariants of every K-means result."""
    assert r.centroids.shape == (k, points.shape[1])
    assert r.centroids.dtype == points.dtype
    assert r.labels.shape == (points.shape[0],) and r.labels.dtype == torch.int64
    assert int(r.labels.min()) >= 0 and int(r.labels.max()) < k
    assert torch.isfinite(r.centroids).all()
    assert r.n_iter == len(r.history) >= 1
    expected = objective(points, weights, r.labels, r.centroids)
    assert r.inertia == pytest.approx(expected, rel=INERTIA_RTOL, abs=1e-12)


# -- Lloyd by hand ------------------------------------------------------------------------------


@with_backends
def test_two_clusters_by_hand(
    backend: str,
) -> None:
    points = torch.tensor([[0.0], [1.0], [10.0], [11.0]], dtype=torch.float64)
    r = kmeans(
        points,
        torch.ones(4, dtype=torch.float64),
        torch.tensor([[0.0], [1.0]], dtype=torch.float64),
        backend=backend,
    )
    assert r.centroids.flatten().tolist() == [0.5, 10.5]
    assert r.labels.tolist() == [0, 0, 1, 1]
    assert r.inertia == 0.25
    assert r.converged
    # J before the first update: 0 and 1 sit on centroids, 10 and 11 go to 1 (81 + 100) / 4.
    assert r.history[0] == (81.0 + 100.0) / 4


@with_backends
def test_weights_pull_the_mean(
    backend: str,
) -> None:
    points = torch.tensor([[0.0, 0.0], [4.0, 0.0]], dtype=torch.float64)
    weights = torch.tensor([3.0, 1.0], dtype=torch.float64)
    r = kmeans(points, weights, points[:1], backend=backend)
    assert r.centroids.tolist() == [[1.0, 0.0]]
    assert r.inertia == pytest.approx((3 * 1 + 9) / 4)


@with_backends
@pytest.mark.parametrize("k", [1, 3, 8])
def test_weights_equal_repeated_points(backend: str, k: int, rng: np.random.Generator) -> None:
    points = distinct_points(rng, 60)
    counts = torch.from_numpy(rng.integers(1, 5, 60))
    init = points[:k].clone()
    weighted = kmeans(points, counts.double(), init, tol=0.0, backend=backend)
    repeated = torch.repeat_interleave(points, counts, dim=0)
    plain = kmeans(
        repeated, torch.ones(repeated.shape[0], dtype=torch.float64), init, tol=0.0, backend=backend
    )
    torch.testing.assert_close(weighted.centroids, plain.centroids, rtol=1e-12, atol=1e-9)
    assert weighted.inertia == pytest.approx(plain.inertia, rel=1e-10)
    assert torch.equal(torch.repeat_interleave(weighted.labels, counts), plain.labels)


@with_backends
def test_k_equals_n_is_lossless(backend: str, rng: np.random.Generator) -> None:
    points = distinct_points(rng, 12)
    r = kmeans(points, torch.ones(12, dtype=torch.float64), points.flip(0), backend=backend)
    assert r.inertia == 0.0
    assert r.converged
    assert torch.equal(r.centroids[r.labels], points)


# -- properties ---------------------------------------------------------------------------------


@st.composite
def kmeans_problems(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = draw(st.integers(2, 60))
    c = draw(st.integers(1, 3))
    k = draw(st.integers(1, min(n, 8)))
    high = draw(st.sampled_from([3, 20, 255]))
    pts = draw(arrays(np.int64, (n, c), elements=st.integers(0, high)))
    w = draw(arrays(np.int64, (n,), elements=st.integers(1, 9)))
    start = draw(st.sampled_from(["subset", "equal", "anywhere"]))
    if start == "subset":
        rows = draw(st.permutations(range(n)))[:k]
        init = pts[list(rows)]
    elif start == "equal":
        init = np.repeat(pts[:1], k, axis=0)
    else:
        init = draw(arrays(np.int64, (k, c), elements=st.integers(0, 300)))
    return (
        torch.from_numpy(pts.astype(np.float64)),
        torch.from_numpy(w.astype(np.float64)),
        torch.from_numpy(init.astype(np.float64)),
    )


@with_backends
@settings(max_examples=50, deadline=None)
@given(problem=kmeans_problems(), tol=st.sampled_from([0.0, 1e-4]))
def test_lloyd_properties(
    backend: str, problem: tuple[torch.Tensor, torch.Tensor, torch.Tensor], tol: float
) -> None:
    points, weights, init = problem
    p0, w0, i0 = points.clone(), weights.clone(), init.clone()
    r = kmeans(points, weights, init, max_iter=50, tol=tol, backend=backend)
    assert torch.equal(points, p0) and torch.equal(weights, w0) and torch.equal(init, i0)
    check_result(r, points, weights, init.shape[0])
    assert_non_increasing(r.history)
    # The returned inertia (after the last update) is no worse than the last assignment's J.
    assert r.inertia <= r.history[-1] * (1 + MONOTONE_RTOL) + 1e-12
    # Every cluster that holds points is centred on their weighted mean.
    for j in range(init.shape[0]):
        member = r.labels == j
        if member.any():
            w = weights[member]
            mean = (points[member] * w[:, None]).sum(0) / w.sum()
            torch.testing.assert_close(r.centroids[j], mean, rtol=1e-12, atol=1e-9)


@with_backends
@pytest.mark.parametrize("k", [16, 64])  # 64 > 17: the neighbour-list search is used too
@pytest.mark.parametrize("space", COLOR_SPACES)
def test_monotone_on_encoded_colors(
    backend: str, space: str, k: int, photo_like: np.ndarray
) -> None:
    colors, counts = torch.unique(
        torch.from_numpy(photo_like.reshape(-1, 3)), dim=0, return_counts=True
    )
    points = encode_colors(colors, space, torch.float64)  # type: ignore[arg-type]
    init = points[torch.randperm(points.shape[0], generator=torch.Generator().manual_seed(0))[:k]]
    r = kmeans(points, counts.double(), init, max_iter=200, tol=0.0, backend=backend)
    check_result(r, points, counts.double(), k)
    assert_non_increasing(r.history)
    assert r.history[-1] < 0.5 * r.history[0]
    assert r.converged and r.n_iter < 200
    # At the fixed point every point sits with a nearest centroid (the pruning skipped none).
    d2 = torch.cdist(points, r.centroids).pow(2)
    own = d2.gather(1, r.labels[:, None]).squeeze(1)
    torch.testing.assert_close(own, d2.min(1).values, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("space", COLOR_SPACES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_backends_agree(space: str, dtype: torch.dtype, photo_like: np.ndarray) -> None:
    colors, counts = torch.unique(
        torch.from_numpy(photo_like.reshape(-1, 3)), dim=0, return_counts=True
    )
    points = encode_colors(colors, space, dtype)  # type: ignore[arg-type]
    weights = counts.to(dtype)
    init = points[torch.randperm(points.shape[0], generator=torch.Generator().manual_seed(5))[:24]]
    a = kmeans(points, weights, init, backend="numpy", max_iter=30)
    b = kmeans(points, weights, init, backend="torch", max_iter=30)
    assert torch.equal(a.labels, b.labels)
    assert a.n_iter == b.n_iter and a.converged == b.converged
    rtol = 1e-5 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(a.centroids, b.centroids, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(a.history, b.history, rtol=rtol)


# -- bad starts ---------------------------------------------------------------------------------


@with_backends
@pytest.mark.parametrize("k", [2, 5, 16])
@pytest.mark.parametrize("start", ["all_equal", "duplicates", "far_away"])
def test_bad_init_gives_full_clusters(
    backend: str, start: str, k: int, rng: np.random.Generator
) -> None:
    points = distinct_points(rng, 50)
    weights = torch.from_numpy(rng.integers(1, 10, 50).astype(np.float64))
    if start == "all_equal":
        init = points[:1].repeat(k, 1)
    elif start == "duplicates":
        init = torch.cat([points[: k // 2], points[: k - k // 2]])
    else:  # every centroid beyond the data: all points pick the first, the rest are empty
        init = (
            torch.full((k, 3), 1e4, dtype=torch.float64)
            + torch.arange(k, dtype=torch.float64)[:, None]
        )
    r = kmeans(points, weights, init, backend=backend)
    check_result(r, points, weights, k)
    assert not torch.isnan(r.centroids).any()
    sizes = torch.bincount(r.labels, minlength=k)
    assert (sizes > 0).all(), f"empty clusters: {sizes.tolist()}"
    assert torch.unique(r.centroids, dim=0).shape[0] == k
    assert_non_increasing(r.history)


@with_backends
def test_more_centroids_than_distinct_points_no_nan(
    backend: str,
) -> None:
    # 3 distinct colors, 5 centroids: two must stay empty, but never NaN.
    points = torch.tensor([[0.0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 10, 0]], dtype=torch.float64)
    r = kmeans(points, torch.ones(4, dtype=torch.float64), points[:1].repeat(5, 1), backend=backend)
    assert torch.isfinite(r.centroids).all()
    assert r.inertia == 0.0


@with_backends
def test_converged_flag_and_max_iter(backend: str, rng: np.random.Generator) -> None:
    points = distinct_points(rng, 200)
    weights = torch.ones(200, dtype=torch.float64)
    init = points[:1].repeat(8, 1)
    one = kmeans(points, weights, init, max_iter=1, backend=backend)
    assert one.n_iter == 1 and not one.converged
    full = kmeans(points, weights, init, max_iter=500, tol=0.0, backend=backend)
    assert full.converged and full.n_iter < 500
    # tol = 0 stops only at a fixed point: the labels are the nearest-centroid labels.
    assert torch.equal(full.labels, nearest(points, full.centroids, exact=True)[0])
    loose = kmeans(points, weights, init, tol=0.5, backend=backend)
    assert loose.converged and loose.n_iter <= full.n_iter


def test_result_is_frozen(rng: np.random.Generator) -> None:
    points = distinct_points(rng, 10)
    r = weighted_kmeans(points, torch.ones(10, dtype=torch.float64), points[:2])
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.inertia = 0.0  # type: ignore[misc]


@with_backends
def test_dtype_and_device(
    backend: str, dtype: torch.dtype, device: torch.device, rng: np.random.Generator
) -> None:
    points = distinct_points(rng, 80).to(device=device, dtype=dtype)
    weights = torch.ones(80, dtype=dtype, device=device)
    r = kmeans(points, weights, points[:4], backend=backend)
    assert r.centroids.dtype == dtype and r.centroids.device.type == device.type
    assert r.labels.device.type == device.type
    assert r.inertia == pytest.approx(objective(points, weights, r.labels, r.centroids), rel=1e-5)


@pytest.mark.parametrize("fit", [weighted_kmeans, fit_adam])
@pytest.mark.parametrize(
    ("points", "weights", "init", "match"),
    [
        (torch.zeros(5, 3), torch.ones(5), torch.zeros(2, 2), "agree in C"),
        (torch.zeros(5), torch.ones(5), torch.zeros(2, 1), "agree in C"),
        (torch.zeros(5, 3), torch.ones(4), torch.zeros(2, 3), r"weights must be \(5,\)"),
    ],
)
def test_bad_shapes_raise(
    fit: Callable[..., KMeansResult],
    points: torch.Tensor,
    weights: torch.Tensor,
    init: torch.Tensor,
    match: str,
) -> None:
    with pytest.raises(ValueError, match=match):
        fit(points, weights, init)


# -- Adam -----------------------------------------------------------------------------------------


def test_fit_adam_improves_and_returns_best(photo_like: np.ndarray) -> None:
    colors, counts = torch.unique(
        torch.from_numpy(photo_like.reshape(-1, 3)), dim=0, return_counts=True
    )
    points = colors.double()
    weights = counts.double()
    init = points[torch.randperm(points.shape[0], generator=torch.Generator().manual_seed(1))[:8]]
    i0, p0, w0 = init.clone(), points.clone(), weights.clone()
    r = fit_adam(points, weights, init, max_iter=150)
    assert torch.equal(init, i0) and torch.equal(points, p0) and torch.equal(weights, w0)
    start = objective(points, weights, nearest(points, init)[0], init)
    assert r.history[0] == pytest.approx(start, rel=1e-12)
    assert r.inertia < 0.7 * start
    assert r.inertia == min(r.history)
    check_result(r, points, weights, 8)
    assert torch.equal(r.labels, nearest(points, r.centroids)[0])
    assert not r.centroids.requires_grad


def test_fit_adam_close_to_lloyd(photo_like: np.ndarray) -> None:
    colors, counts = torch.unique(
        torch.from_numpy(photo_like.reshape(-1, 3)), dim=0, return_counts=True
    )
    points, weights = colors.double(), counts.double()
    init = points[torch.randperm(points.shape[0], generator=torch.Generator().manual_seed(2))[:8]]
    lloyd = weighted_kmeans(points, weights, init)
    adam = fit_adam(points, weights, lloyd.centroids, max_iter=50)
    # Started at Lloyd's optimum, the best seen is never worse than the start.
    assert adam.inertia <= adam.history[0] <= lloyd.inertia * (1 + 1e-9)


@pytest.mark.parametrize("start", ["all_equal", "far_away"])
def test_fit_adam_refills_empty_clusters(start: str, rng: np.random.Generator) -> None:
    points = distinct_points(rng, 60)
    weights = torch.ones(60, dtype=torch.float64)
    if start == "all_equal":
        init = points[:1].repeat(6, 1)
    else:  # five centroids no point will ever choose unless they are moved onto the data
        init = torch.cat([points[:1], torch.full((5, 3), 1e5, dtype=torch.float64)])
    r = fit_adam(points, weights, init, max_iter=60)
    assert torch.isfinite(r.centroids).all()
    assert r.inertia < r.history[0]
    assert torch.unique(r.labels).numel() == 6
    assert r.centroids.abs().max() <= 255.0 + 1e-6


def test_fit_adam_returns_the_best_seen(rng: np.random.Generator) -> None:
    # A learning rate far too large makes J jump around: the best step is not the last.
    points = distinct_points(rng, 80)
    weights = torch.from_numpy(rng.integers(1, 5, 80).astype(np.float64))
    r = fit_adam(points, weights, points[:6], max_iter=40, lr=60.0)
    assert min(r.history) < r.history[-1], "the case must not end on its best step"
    assert r.inertia == min(r.history)
    assert r.inertia == pytest.approx(
        objective(points, weights, r.labels, r.centroids), rel=INERTIA_RTOL
    )
    assert torch.equal(r.labels, nearest(points, r.centroids)[0])


def test_fit_adam_deterministic(rng: np.random.Generator) -> None:
    points = distinct_points(rng, 100)
    weights = torch.from_numpy(rng.integers(1, 5, 100).astype(np.float64))
    a = fit_adam(points, weights, points[:5], max_iter=40)
    b = fit_adam(points, weights, points[:5], max_iter=40)
    assert torch.equal(a.centroids, b.centroids) and a.history == b.history
