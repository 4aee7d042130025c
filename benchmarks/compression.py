"""File size and quality at K = 256 against the real ``pngquant`` command, with and without
dithering, on Kodak.

For every image: ``pngquant 256 --nofs`` and ``pngquant 256`` (its default Floyd-Steinberg)
against colorquant's default (``hybrid``) without dithering and with ``dither="fs"``, written
as PNG by ``colorquant.save_result``. Reported per method: the total bytes (and the ratio to
pngquant's of the same kind), the mean PSNR, the mean ΔE00, and for the dithered kinds the mean
ΔE00 after a Gaussian blur of both images (σ = 1.5 pixels: roughly what the eye averages at a
normal viewing distance, so a fine dither pattern counts as the color it mixes).

With ``--alpha`` every photo gets an alpha channel first (opaque in an ellipse, a soft edge 40
pixels wide, fully transparent outside; the color under the transparent part is kept, as an
editor leaves it), and the quality columns become: PSNR of premultiplied RGBA
(``colorquant.alpha.mse_rgba``), mean absolute alpha error, and the pixels whose
transparency flipped (fully transparent became visible or the reverse), and the opaque pixels
that came back translucent.

    .venv/bin/python benchmarks/compression.py
"""

from __future__ import annotations

import argparse
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
    tool,
)
from colorquant.alpha import mse_rgba

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


def with_alpha(rgb8: np.ndarray) -> np.ndarray:
    """``rgb8`` with an alpha channel: opaque inside an ellipse, a 40-pixel soft edge, fully
    transparent outside (the colors under it kept)."""
    height, width = rgb8.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = np.hypot((y - height / 2) / (0.42 * height), (x - width / 2) / (0.42 * width))
    inside = (1.0 - r) * min(height, width) * 0.42  # pixels inside the ellipse's edge, roughly
    alpha = np.clip(inside / 40.0, 0.0, 1.0)
    return np.dstack([rgb8, np.rint(alpha * 255).astype(np.uint8)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--k", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--alpha", action="store_true", help="RGBA inputs (see the docstring)")
    args = p.parse_args()
    if args.out is None:
        args.out = BENCH_DIR / ("compression_alpha.md" if args.alpha else "compression.md")
    load_at_start = load_average()
    set_threads(args.threads)
    pngquant = tool("pngquant")
    k = str(args.k)
    methods = list(METHODS)
    stats: dict[str, dict[str, list[float]]] = {
        m: {"bytes": [], "psnr": [], "de": [], "blur": [], "opaque": []} for m in methods
    }
    paths = list_images(args.images, args.limit)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for path in paths:
            original = load_rgb(path)
            if args.alpha:
                original = with_alpha(original)
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
                stats[name]["bytes"].append(out.stat().st_size)
                if args.alpha:
                    rgba = np.asarray(Image.open(out).convert("RGBA"))
                    error = mse_rgba(original, rgba)
                    stats[name]["psnr"].append(float(10 * np.log10(255.0**2 / error)))
                    diff = np.abs(rgba[..., 3].astype(int) - original[..., 3])
                    stats[name]["de"].append(float(diff.mean()))
                    flips = (rgba[..., 3] == 0) != (original[..., 3] == 0)
                    stats[name]["blur"].append(float(flips.sum()))
                    lost = (original[..., 3] == 255) & (rgba[..., 3] != 255)
                    stats[name]["opaque"].append(float(lost.sum()))
                    continue
                quantized = np.asarray(Image.open(out).convert("RGB"))
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
                *([f"{statistics.fmean(stats[name]['opaque']):.1f}"] if args.alpha else []),
            ]
        )
    header = report_header(
        f"Compression at K = {args.k} against pngquant ({len(paths)} images"
        + (", RGBA)" if args.alpha else ")"),
        args.threads,
        "cpu",
        load_at_start,
    )
    columns = ["mean ΔE00", f"mean ΔE00 after blur σ={BLUR_SIGMA}"]
    if args.alpha:
        columns = [
            "mean abs alpha error",
            "transparency flips per image",
            "opaque pixels made translucent per image",
        ]
    table = markdown_table(
        ["method", "bytes (all images)", "bytes / pngquant",
         "mean PSNR dB" + (" (premultiplied RGBA)" if args.alpha else ""), *columns],
        rows,
        "lrrrrr" + ("r" if args.alpha else ""),
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
