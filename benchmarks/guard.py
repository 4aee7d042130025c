"""Guard rail of the redesign on Kodak's photos: hashes of the CPU results, recorded or checked.

    python benchmarks/guard.py --record   # before a change: writes benchmarks/guard_kodak.json
    python benchmarks/guard.py            # after it: every hash must match

Palette and indices of ``colorquant.quantize`` at K = 16, 64 and 256, in every color space,
undithered, Floyd-Steinberg and ordered, seed 7 (tests/test_guard_rails.py does the same on
synthetic images in CI, where Kodak is not used).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from _common import DEFAULT_IMAGES, list_images, load_rgb
from colorquant import quantize

TABLE = Path(__file__).parent / "guard_kodak.json"
SPACES = ("hybrid", "rgb", "lab", "oklab", "din99")
DITHERS = ("none", "fs", "ordered")
COLORS = (16, 64, 256)


def digest(img: np.ndarray, k: int, space: str, dither: str) -> str:
    res = quantize(img, k, color_space=space, dither=dither, seed=7)  # type: ignore[arg-type]
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(res.palette, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(res.indices, dtype=np.int32).tobytes())
    return h.hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="write the table instead of checking")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    args = parser.parse_args()
    hashes: dict[str, str] = {}
    for path in list_images(args.images, None):
        img = load_rgb(path)
        for k in COLORS:
            for space in SPACES:
                for dither in DITHERS:
                    hashes[f"{path.stem}-{k}-{space}-{dither}"] = digest(img, k, space, dither)
    if args.record:
        TABLE.write_text(json.dumps(hashes, indent=1) + "\n")
        print(f"wrote {len(hashes)} hashes to {TABLE}")
        return 0
    table = json.loads(TABLE.read_text())
    changed = [name for name, h in hashes.items() if table.get(name) != h]
    print(f"{len(hashes) - len(changed)} of {len(hashes)} results bit-identical")
    for name in changed:
        print(f"changed: {name}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
