"""File size and quality at K = 256 against the real ``pngquant`` command, with and without
dithering, on Kodak.

For every image: ``pngquant 256 --nofs`` and ``pngquant 256`` (its default Floyd-Steinberg)
against colorquant's default (``hybrid``) without dithering and with ``dither="fs"``, written
as PNG by ``colorquant.save_result``. Reported per method: the total bytes (and the ratio to
pngquant's of the same kind), the mean PSNR, the mean ΔE00, and for the dithered kinds the mean
ΔE00 after a Gaussian blur of both images (σ = 1.5 pixels: roughly what the eye averages at a
normal viewing distance, so a fine dither pattern counts as the color it mixes).

    .venv/bin/python benchmarks/compression.py
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

import colorquant as cq
from _common import (
    BENCH_DIR,
    DEFAULT_IMAGES,
    list_images,
    load_average,
    load_rgb,
    markdown_table,
    report_header,
    set_threads,
)

BLUR_SIGMA = 1.5
METHODS = (
    "pngquant --nofs",
    "colorquant --nofs",
    "colorquant --nofs --optimize",
    "pngquant (dithered)",
    "colorquant (dithered)",
    "colorquant (dithered) --optimize",
)
REFERENCE = {  # each method against pngquant of the same kind
    "pngquant --nofs": "pngquant --nofs",
    "colorquant --nofs": "pngquant --nofs",
    "colorquant --nofs --optimize": "pngquant --nofs",
    "pngquant (dithered)": "pngquant (dithered)",
    "colorquant (dithered)": "pngquant (dithered)",
    "colorquant (dithered) --optimize": "pngquant (dithered)",
}


def blurred(rgb8: np.ndarray) -> np.ndarray:
    image = Image.fromarray(rgb8).filter(ImageFilter.GaussianBlur(BLUR_SIGMA))
    return np.asarray(image)


def pngquant_path() -> str:
    here = Path(sys.executable).parent / "pngquant"
    found = str(here) if here.exists() else shutil.which("pngquant")
    if found is None:
        raise SystemExit("pngquant not found: install the dev lock (make test) first")
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--k", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH_DIR / "compression.md")
    args = p.parse_args()
    load_at_start = load_average()
    set_threads(args.threads)
    pngquant = pngquant_path()
    k = str(args.k)
    methods = list(METHODS)
    stats: dict[str, dict[str, list[float]]] = {
        m: {"bytes": [], "psnr": [], "de": [], "blur": []} for m in methods
    }
    paths = list_images(args.images, args.limit)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for path in paths:
            original = load_rgb(path)
            src = tmp / "in.png"
            Image.fromarray(original).save(src)
            outputs: dict[str, Path] = {}
            for name, flags in (("pngquant --nofs", ["--nofs"]), ("pngquant (dithered)", [])):
                out = tmp / f"{len(outputs)}.png"
                cmd = [pngquant, k, *flags, "--force", "-o", str(out), str(src)]
                subprocess.run(cmd, check=True, capture_output=True)
                outputs[name] = out
            for name, dither in (("colorquant --nofs", "none"), ("colorquant (dithered)", "fs")):
                result = cq.quantize(original, args.k, dither=dither)  # type: ignore[arg-type]
                for optimize in (False, True):
                    out = tmp / f"{len(outputs)}.png"
                    cq.save_result(result, out, force=True, optimize=optimize)
                    outputs[name + (" --optimize" if optimize else "")] = out
            for name, out in outputs.items():
                quantized = np.asarray(Image.open(out).convert("RGB"))
                stats[name]["bytes"].append(out.stat().st_size)
                stats[name]["psnr"].append(cq.psnr(original, quantized))
                stats[name]["de"].append(cq.mean_delta_e(original, quantized))
                stats[name]["blur"].append(cq.mean_delta_e(blurred(original), blurred(quantized)))
            print(path.name, file=sys.stderr)
    rows = []
    for name in methods:
        ref = REFERENCE[name]
        total = sum(stats[name]["bytes"])
        rows.append(
            [
                name,
                f"{total:,.0f}",
                f"{total / sum(stats[ref]['bytes']):.3f}",
                f"{statistics.fmean(stats[name]['psnr']):.2f}",
                f"{statistics.fmean(stats[name]['de']):.3f}",
                f"{statistics.fmean(stats[name]['blur']):.3f}",
            ]
        )
    header = report_header(
        f"Compression at K = {args.k} against pngquant ({len(paths)} images)",
        args.threads,
        "cpu",
        load_at_start,
    )
    table = markdown_table(
        ["method", "bytes (all images)", "bytes / pngquant", "mean PSNR dB", "mean ΔE00",
         f"mean ΔE00 after blur σ={BLUR_SIGMA}"],
        rows,
        "lrrrrr",
    )  # fmt: skip
    text = "\n".join(header) + (
        f"\n\n{table}\n\nbytes / pngquant: against pngquant of the same kind (dithered or not). "
        "colorquant's dithered runs are its command's default, --dither fs; --optimize "
        "recompresses the same PNG with oxipng (lossless).\n"
    )
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
