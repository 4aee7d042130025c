"""CPU time of one ``colorquant.quantize`` call, one thread, in two source trees run alternately.

    python benchmarks/tree_ab.py --before /path/to/old/src --after src --images 4 --rounds 2

Each round runs a child interpreter per tree (``PYTHONPATH`` set to the tree), which times
``quantize`` on the first N Kodak photos at K = 16, 64, 256, rgb and hybrid, undithered and
Floyd-Steinberg, the best of three calls per photo, and prints the medians; the table gives the
median over rounds and the ratio after / before. CPU time (``time.process_time``) on one
thread, as the shared machine's wall time is too noisy for a few percent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _common import DEFAULT_IMAGES

CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np
from PIL import Image
import colorquant as cq
paths = sorted(Path(sys.argv[1]).glob("*.png"))[: int(sys.argv[2])]
images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
out = {}
for k in (16, 64, 256):
    for space in ("rgb", "hybrid"):
        for dither in ("none", "fs"):
            times = []
            for img in images:
                best = 1e9
                for _ in range(3):
                    t = time.process_time()
                    cq.quantize(img, k, color_space=space, dither=dither)
                    best = min(best, time.process_time() - t)
                times.append(best)
            out[f"{k} {space} {dither}"] = float(np.median(times))
print(json.dumps(out))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the old tree's src/")
    parser.add_argument("--after", type=Path, required=True, help="the new tree's src/")
    parser.add_argument("--images", type=int, default=4, help="first N Kodak photos")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=DEFAULT_IMAGES)
    args = parser.parse_args()
    env = {**os.environ, "COLORQUANT_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        for name in ("before", "after"):
            tree = getattr(args, name).resolve()
            child = [sys.executable, "-c", CHILD, str(args.folder), str(args.images)]
            proc = subprocess.run(
                child, env={**env, "PYTHONPATH": str(tree)}, capture_output=True, text=True
            )
            if proc.returncode:
                sys.exit(f"{name}: {proc.stderr.strip().splitlines()[-1]}")
            runs[name].append(json.loads(proc.stdout))
    print("| K, space, dither | before ms | after ms | after / before |")
    print("|---|---|---|---|")
    for key in runs["before"][0]:
        b = statistics.median(r[key] for r in runs["before"])
        a = statistics.median(r[key] for r in runs["after"])
        print(f"| {key} | {b * 1000:.1f} | {a * 1000:.1f} | {a / b:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
