"""Guard rails of the redesign: the CPU results stay bit-identical.

Hashes of the palette and the index map of :func:`colorquant.quantize` on three synthetic
photo-like images (and one with a soft alpha edge), at K = 16, 64 and 256, in every color space,
undithered, Floyd-Steinberg and ordered, at fixed seeds. They were recorded before the code was
split into one module per stage (``python tests/test_guard_rails.py --record``); any change to
them is a change of the CPU results and must be explained. ``benchmarks/guard.py`` records the
same hashes on Kodak's photos for a by-hand check.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from colorquant import quantize

TABLE = Path(__file__).parent / "data" / "guard_hashes.json"
SPACES = ("hybrid", "rgb", "lab", "oklab", "din99")
DITHERS = ("none", "fs", "ordered")
COLORS = (16, 64, 256)


def photo(seed: int, size: int = 96, alpha: bool = False) -> np.ndarray:
    """A deterministic photo-like image: smooth color fields, edges, texture and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = []
    for c in range(3):
        a, b, f = rng.uniform(0.5, 3.0, 3)
        field = 0.5 + 0.35 * np.sin(a * np.pi * x + c) * np.cos(b * np.pi * y - c)
        field += 0.1 * np.sin(f * 9 * np.pi * (x + y))
        channels.append(field)
    img = np.stack(channels, axis=-1)
    for _ in range(6):  # discs of flat saturated color: small salient regions and sharp edges
        cx, cy, r = [*rng.uniform(0, 1, 2).tolist(), rng.uniform(0.04, 0.15)]
        disc = (x - cx) ** 2 + (y - cy) ** 2 < r**2
        img[disc] = rng.uniform(0, 1, 3)
    img += rng.normal(0, 0.03, img.shape)
    rgb = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    if not alpha:
        return rgb
    a = np.clip((x * 2 - 0.5) * 255, 0, 255).astype(np.uint8)  # clear, a soft ramp, opaque
    return np.dstack([rgb, a])


def cases() -> list[tuple[str, np.ndarray, int, str, str]]:
    out = []
    for seed in (1, 2, 3):
        img = photo(seed)
        for k in COLORS:
            for space in SPACES:
                for dither in DITHERS:
                    out.append((f"photo{seed}-{k}-{space}-{dither}", img, k, space, dither))
    rgba = photo(4, alpha=True)
    for k in (16, 64):
        for space in ("hybrid", "rgb"):
            for dither in ("none", "fs"):
                out.append((f"rgba4-{k}-{space}-{dither}", rgba, k, space, dither))
    return out


def digest(img: np.ndarray, k: int, space: str, dither: str) -> str:
    res = quantize(img, k, color_space=space, dither=dither, seed=7)  # type: ignore[arg-type]
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(res.palette, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(res.indices, dtype=np.int32).tobytes())
    return h.hexdigest()[:16]


_CASES = cases()


@pytest.mark.parametrize("case", _CASES, ids=[c[0] for c in _CASES])
def test_cpu_results_are_bit_identical(case: tuple[str, np.ndarray, int, str, str]) -> None:
    name, img, k, space, dither = case
    table = json.loads(TABLE.read_text())
    assert digest(img, k, space, dither) == table[name], f"{name}: the CPU result changed"


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_guard_rails.py --record")
    TABLE.write_text(json.dumps({c[0]: digest(*c[1:]) for c in _CASES}, indent=1) + "\n")
    print(f"wrote {len(_CASES)} hashes to {TABLE}")
