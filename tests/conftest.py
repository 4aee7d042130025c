"""Shared fixtures: devices, float dtypes, a synthetic photo, a float64 brute-force search, and
a plain Python Floyd-Steinberg that the compiled kernels must equal.

Nothing here reads a file: every input is built in memory from a fixed seed.
"""

from __future__ import annotations

import importlib.util
import os
import struct
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from hypothesis import settings

#: Why a test that needs an extra skips in the minimal configuration (the base install only,
#: `make pytest-min`): the extra that brings what it needs.
NEEDS_TORCH = "needs the torch extra: pip install 'colorquant[torch]'"
NEEDS_PLOT = "needs the plot extra (matplotlib): pip install 'colorquant[plot]'"
NEEDS_DEV = "needs the dev tools (requirements-dev.lock): make test"
NEEDS_OPTIMIZE = "needs the optimize extra (pyoxipng): pip install 'colorquant[optimize]'"

#: Marks for single tests that need an extra (a module that needs one skips at its top).
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason=NEEDS_TORCH)
needs_plot = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason=NEEDS_PLOT)
needs_optimize = pytest.mark.skipif(
    importlib.util.find_spec("oxipng") is None, reason=NEEDS_OPTIMIZE
)

try:
    import torch
except ModuleNotFoundError:  # the minimal configuration: the fixtures below skip
    torch = None  # type: ignore[assignment]

#: Another build of the compiled core (the path of its ``_kernels`` shared library, e.g. the
#: serial clang build `make test-serial` makes) that the whole run uses instead of the installed
#: one: ``colorquant._cpu``'s wrappers call whatever module its ``_kernels`` names.
KERNELS_ENV = "COLORQUANT_TEST_KERNELS"


def load_kernels(path: str) -> ModuleType:
    """Load a ``_kernels`` shared library from ``path`` as a module of its own."""
    spec = importlib.util.spec_from_file_location("colorquant_other_build._kernels", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{KERNELS_ENV}: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if os.environ.get(KERNELS_ENV):
    import colorquant._cpu as _cpu_module

    _cpu_module._kernels = load_kernels(os.environ[KERNELS_ENV])  # type: ignore[attr-defined]

# No example database: a test reads no file it did not make, and a run depends only on the code.
settings.register_profile("colorquant", database=None, deadline=None)
settings.load_profile("colorquant")

CUDA = pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="no CUDA device")

DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
DTYPES = ["float32", "float64"]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every device the suite can run on here; ``cuda`` is skipped without a GPU."""
    pytest.importorskip("torch", reason=NEEDS_TORCH)
    return torch.device(request.param)


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """Both float dtypes the library promises to keep."""
    pytest.importorskip("torch", reason=NEEDS_TORCH)
    return getattr(torch, request.param)  # type: ignore[no-any-return]


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh NumPy generator with a fixed seed, so every test sees the same numbers."""
    return np.random.default_rng(12345)


def make_photo_like(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A small photo-like ``(height, width, 3)`` uint8 image.

    Smooth gradients (sky, shading), Gaussian sensor noise, and a few flat regions with exact
    colors (a sign, a wall, a highlight): many distinct colors, some heavily repeated, channels
    all different from each other (so a channel mix-up changes the result).
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / (width - 1), y / (height - 1)
    img = np.stack(
        (
            40.0 + 190.0 * u,
            30.0 + 150.0 * v + 30.0 * np.sin(6.0 * u),
            200.0 - 120.0 * u * v + 20.0 * np.cos(5.0 * v),
        ),
        axis=-1,
    )
    img += rng.normal(0.0, 6.0, img.shape)
    img[4 : height // 4, 4 : width // 3] = (200, 30, 40)
    img[height // 2 : height - 4, width // 2 : width - 6] = (20, 90, 200)
    img[height - 10 : height - 2, 2:12] = (250, 250, 240)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.fixture
def photo_like() -> np.ndarray:
    """The 64x48 synthetic photo of :func:`make_photo_like` (a fresh copy per test)."""
    return make_photo_like()


def brute_force_nearest(
    points: torch.Tensor | np.ndarray, palette: torch.Tensor | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Float64 nearest palette row by direct differences; ``argmin`` takes the lowest index on ties.

    Returns ``(index, d2)``: ``(N,)`` int64 and the ``(N,)`` float64 squared distance to it.
    """
    x = np.asarray(points.cpu() if hasattr(points, "cpu") else points, np.float64)
    c = np.asarray(palette.cpu() if hasattr(palette, "cpu") else palette, np.float64)
    index = np.empty(x.shape[0], np.int64)
    best = np.empty(x.shape[0], np.float64)
    rows = max(1, 2**21 // max(1, c.shape[0] * c.shape[1]))  # keep each block to ~16 MB
    for start in range(0, x.shape[0], rows):
        d2 = ((x[start : start + rows, None, :] - c[None, :, :]) ** 2).sum(-1)
        index[start : start + rows] = d2.argmin(axis=1)
        best[start : start + rows] = d2.min(axis=1)
    return index, best


@pytest.fixture
def brute_force() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """:func:`brute_force_nearest`, as a fixture so test modules need not import conftest."""
    return brute_force_nearest


def fs_reference(
    pixels: np.ndarray,
    palette: np.ndarray,
    strength: np.ndarray,
    max_error: float,
    first: int = 0,
    last: int | None = None,
    *,
    weight: np.ndarray | None = None,
    pixel_group: np.ndarray | None = None,
    entry_group: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
) -> np.ndarray:
    """Serpentine Floyd-Steinberg on C channels, plainly, on rows ``first..last-1`` (starting
    there with no error; even rows left to right): what ``_cpu.dither_fs`` must equal.

    With groups, what ``_cpu.dither_fs_groups`` must equal: a pixel of group g searches the
    rows whose ``entry_group`` mask has bit g by ``sum(weight * diff**2)``; group 2 takes no
    error in its last channel; group -1 (or a group without rows) takes ``fixed`` and passes no
    error.
    """
    h, w, c = pixels.shape
    err = np.zeros((h + 1, w + 2, c))
    out = np.zeros((h, w), np.int64)
    rows = np.arange(len(palette))
    for y in range(first, h if last is None else min(last, h)):
        forward = y % 2 == 0
        for q in range(w):
            x = q if forward else w - 1 - q
            v = np.clip(pixels[y, x] + np.clip(err[y, x + 1], -max_error, max_error), 0.0, 255.0)
            if pixel_group is not None and entry_group is not None and fixed is not None:
                group = int(pixel_group[y, x])
                if group == 2:  # opaque: no error in the last channel
                    v[-1] = pixels[y, x, -1]
                mask = entry_group.astype(np.int64)
                rows = np.flatnonzero((mask >> max(group, 0)) & 1) if group >= 0 else rows[:0]
                if group < 0 or rows.size == 0:
                    out[y, x] = fixed[y, x]
                    continue
            d2 = (v - palette[rows]) ** 2
            k = int(rows[(d2 if weight is None else d2 * weight).sum(1).argmin()])
            out[y, x] = k
            d = (v - palette[k]) * (strength[y, x] / 16.0)
            ahead, behind = (x + 1, x - 1) if forward else (x - 1, x + 1)
            err[y, ahead + 1] += 7 * d
            err[y + 1, behind + 1] += 3 * d
            err[y + 1, x + 1] += 5 * d
            err[y + 1, ahead + 1] += d
    return out


def png_chunks(data: bytes) -> dict[bytes, bytes]:
    """The chunks of a PNG file by type (the first of each type), read from its bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunks.setdefault(kind, data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return chunks
