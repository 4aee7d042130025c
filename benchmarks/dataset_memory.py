"""Memory of a long dataset job: is it flat in the number of images?

Makes ``--count`` small PNGs (crops of the Kodak photos, ``--size`` pixels square, written once
into a temporary folder), runs ``colorquant dataset SRC DST -k K --workers N`` on them, and
samples the resident memory of the command and all its processes (from /proc) every 50 ms,
with the number of images done so far (the output files). Reported: the peak memory over each
tenth of the run, and the peak over all: a job whose memory grew with the images done would
show it here.

    .venv/bin/python benchmarks/dataset_memory.py --count 10000
"""

from __future__ import annotations

import argparse
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from _common import (
    BENCH_DIR,
    DEFAULT_IMAGES,
    list_images,
    load_average,
    markdown_table,
    report_header,
    tool,
)
from dataset import measure


def _crop(job: tuple[Path, Path, int, int]) -> None:
    source, target, index, size = job
    with Image.open(source) as image:
        rgb = np.asarray(image.convert("RGB"))
    rng = np.random.default_rng(index)
    top = int(rng.integers(0, rgb.shape[0] - size))
    left = int(rng.integers(0, rgb.shape[1] - size))
    Image.fromarray(rgb[top : top + size, left : left + size]).save(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "dataset_memory.md")
    args = parser.parse_args()
    load_at_start = load_average()
    kodak = list_images(args.images, None)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src, dst = tmp / "src", tmp / "dst"
        src.mkdir()
        jobs = [
            (kodak[i % len(kodak)], src / f"{i // 1000:02d}" / f"img{i:05d}.png", i, args.size)
            for i in range(args.count)
        ]
        for folder in {job[1].parent for job in jobs}:
            folder.mkdir()
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(_crop, jobs, chunksize=64))
        command = [
            tool("colorquant"), "dataset", str(src), str(dst), "-k", str(args.k),
            "--workers", str(args.workers),
        ]  # fmt: skip
        samples: list[tuple[int, int]] = []  # (images done, resident bytes)

        def sample(rss: int) -> None:
            finished = sum(len(files) for _, _, files in os.walk(dst)) if dst.exists() else 0
            samples.append((finished, rss))

        seconds, peak = measure(command, on_sample=sample)
    rows = []
    for tenth in range(10):
        low, high = args.count * tenth / 10, args.count * (tenth + 1) / 10
        part = [rss for n, rss in samples if low <= n < high or (tenth == 9 and n >= high)]
        if part:
            rows.append([f"{int(low):,}-{int(high):,}", f"{max(part) / 2**20:.0f}"])
    header = report_header(
        f"Memory of a dataset job: {args.count:,} images of {args.size}x{args.size}, K = {args.k}, "
        f"{args.workers} workers",
        args.workers,
        "cpu",
        load_at_start,
    )
    table = markdown_table(["images done", "peak resident MiB (command + workers)"], rows, "lr")
    text = "\n".join(header) + (
        f"\n\n{table}\n\nWhole run: {seconds:.1f} s ({args.count / seconds:.1f} images/s), "
        f"peak {peak / 2**20:.0f} MiB, {len(samples)} samples.\n"
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
