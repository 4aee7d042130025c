"""Whole-command wall time: the ``colorquant`` command against the real ``pngquant`` command.

What a script that calls a quantizer once per file sees: process start, imports, decoding,
quantizing and writing the PNG. Two workloads, each at K = 256 without dithering:

- **one file**: a 512x512 crop of a Kodak photo (``--image``, the centre crop), written to
  ``-o``; also a bare ``python -c pass`` and ``python -c "import numpy, PIL.Image"`` for the
  floor that any Python tool pays;
- **many files**: all the images of ``--images`` in one call of each command
  (``pngquant 256 --nofs --ext ...`` writes next to copies of the inputs; ``colorquant
  quantize ... -d OUT``).

The commands run alternately (A, B, A, B, ...) after one warm-up each, ``--repeat`` times, so a
passing burst of other work on a shared machine hits both alike; the medians and their ratio are
reported. ``pngquant`` is the binary shipped by the PyPI package ``pngquant-cli`` (dev lock).

    .venv/bin/python benchmarks/cli_speed.py --repeat 15
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def _wall(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace')}")
    return seconds


def alternate(commands: dict[str, list[str]], repeat: int) -> dict[str, list[float]]:
    """Run every command once to warm up, then ``repeat`` rounds of all of them in turn."""
    for command in commands.values():
        _wall(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            times[name].append(_wall(command))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--image", default="kodim23.png", help="the photo of the one-file case")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "cli_speed.md")
    args = parser.parse_args()
    load_at_start = load_average()
    pngquant, colorquant = tool("pngquant"), tool("colorquant")
    python = sys.executable
    k = str(args.k)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        photo = Image.open(args.images / args.image).convert("RGB")
        left, top = (photo.width - 512) // 2, (photo.height - 512) // 2
        single = tmp / "photo512.png"
        photo.crop((left, top, left + 512, top + 512)).save(single)
        one = {
            "pngquant": [pngquant, k, "--nofs", "--force", "-o", str(tmp / "pq.png"), str(single)],
            "colorquant": [
                colorquant, "quantize", str(single), "-k", k, "--nofs", "-o", str(tmp / "cq.png"),
                "--force",
            ],
            "python -c pass": [python, "-c", "pass"],
            "python: import numpy, PIL": [python, "-c", "import numpy, PIL.Image"],
        }  # fmt: skip
        t_one = alternate(one, args.repeat)
        base = statistics.median(t_one["pngquant"])
        for name, ts in t_one.items():
            med = statistics.median(ts)
            rows.append(["one 512x512 file", name, f"{1000 * med:.0f}", f"{med / base:.2f}"])
        many_in = tmp / "in"
        many_in.mkdir()
        for path in list_images(args.images, None):
            shutil.copy(path, many_in / path.name)
        inputs = sorted(str(p) for p in many_in.iterdir())
        out_dir = tmp / "out"
        out_dir.mkdir()
        many = {
            "pngquant": [pngquant, k, "--nofs", "--force", "--ext", "-pq.png", *inputs],
            "colorquant": [
                colorquant,
                "quantize",
                *inputs,
                "-k",
                k,
                "--nofs",
                "-d",
                str(out_dir),
                "--force",
            ],
        }
        t_many = alternate(many, max(3, args.repeat // 3))
        base = statistics.median(t_many["pngquant"])
        for name, ts in t_many.items():
            med = statistics.median(ts)
            label = f"{len(inputs)} files, one call"
            rows.append([label, name, f"{1000 * med:.0f}", f"{med / base:.2f}"])
    table = markdown_table(["workload", "command", "median ms", "time / pngquant"], rows, "llrr")
    title = f"Whole-command time against pngquant (K = {args.k}, no dithering)"
    text = (
        "\n".join(report_header(title, 0, "cpu", load_at_start)) + f"\n\n{table}\n\n"
        f"Medians of {args.repeat} alternating runs (the many-files case: "
        f"{max(3, args.repeat // 3)}), wall time of the whole process, after one warm-up.\n"
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
