"""A build of the compiled core without OpenMP (``make test-serial``: Debian's clang, no libomp)
gives what the OpenMP build gives, bit for bit.

These run only when ``COLORQUANT_TEST_KERNELS`` names such a build (conftest then makes the whole
run use it); ``make test-serial`` also runs the kernel test modules against it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import numpy as np
import pytest

import colorquant as cq
from colorquant import _cpu
from colorquant.threads import num_threads
from conftest import KERNELS_ENV, load_kernels

pytestmark = pytest.mark.skipif(
    not os.environ.get(KERNELS_ENV), reason=f"{KERNELS_ENV} names no other build (make test-serial)"
)


@pytest.fixture(scope="module")
def openmp_build() -> object:
    """The installed build (with OpenMP), loaded beside the one the run uses."""
    spec = importlib.util.find_spec("colorquant._cpu._kernels")
    assert spec is not None and spec.origin is not None
    return load_kernels(spec.origin)


@pytest.fixture
def threads() -> Iterator[None]:
    """Two threads and parallel regions from one item: the OpenMP build really runs threads."""
    with num_threads(2):
        yield


def test_this_build_is_serial(openmp_build: object) -> None:
    assert _cpu._kernels.openmp() is False  # type: ignore[attr-defined]
    assert openmp_build.openmp() is True  # type: ignore[attr-defined]


def images() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:96, 0:128].astype(np.float64)
    smooth = np.stack([x * 2, y * 2.5, (x + y) * 1.1], axis=2) + rng.normal(0, 9, (96, 128, 3))
    rgba = np.dstack([np.clip(smooth, 0, 255), np.clip(x * 3 - 60, 0, 255)]).astype(np.uint8)
    return [
        np.clip(smooth, 0, 255).astype(np.uint8),
        rng.integers(0, 256, (40, 50, 3), dtype=np.uint8),
        rgba,
    ]


@pytest.mark.parametrize("dither", ["none", "fs", "ordered"])
@pytest.mark.parametrize("space", ["hybrid", "rgb", "oklab"])
def test_serial_equals_openmp(
    openmp_build: object, threads: None, monkeypatch: pytest.MonkeyPatch, dither: str, space: str
) -> None:
    serial = _cpu._kernels  # type: ignore[attr-defined]
    for image in images():
        runs = []
        for build in (serial, openmp_build):
            monkeypatch.setattr(_cpu, "_kernels", build)
            old = build.set_parallel_min(1)  # type: ignore[attr-defined]
            try:
                runs.append(cq.quantize(image, 32, color_space=space, dither=dither, speed=2))  # type: ignore[arg-type]
            finally:
                build.set_parallel_min(old)  # type: ignore[attr-defined]
        a, b = runs
        np.testing.assert_array_equal(a.palette, b.palette)
        np.testing.assert_array_equal(a.indices, b.indices)
        assert a.mse == b.mse and a.history == b.history
