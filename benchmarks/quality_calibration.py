"""Calibrate ``colorquant.quality_of`` (the scale of ``--quality``) to pngquant's, on Kodak.

pngquant's ``--verbose`` prints, for the colors it chose, its error ("MSE", measured by
libimagequant in its own space: gamma 0.57, weighted channels) and the quality ``Q`` it reads
from it (libimagequant's curve, see ``colorquant.quality.liq_error``). Our scale can only see
our own error, the 8-bit sRGB MSE of the same output. For every photo and every K in ``--ks``
this runs ``pngquant K --nofs --verbose`` (no dither: its Q is that of the plain mapping),
reads its MSE and Q, and measures our MSE of the very file it wrote. Then it fits

    libimagequant's MSE = A * (our MSE) ** B

by least squares on the quality scale (the distance that matters to ``--quality``) over the
outputs pngquant rates 20 <= Q < 100, prints A and B (to copy into ``LIQ_MSE_SCALE`` and
``LIQ_MSE_POWER``) and the residuals of ``quality_of`` as it stands against pngquant's Q, by Q
range.

Second, the recipes: for ``--recipes`` (MIN-MAX ranges), ``pngquant --quality MIN-MAX`` (its
default dither) against ``colorquant.quantize(..., 256, quality=(MIN, MAX), dither="fs")`` (what
``colorquant quantize --quality MIN-MAX`` runs): how many photos each writes, and their colors.

    .venv/bin/python benchmarks/quality_calibration.py
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import colorquant as cq
from _common import (
    BENCH_DIR,
    DEFAULT_IMAGES,
    list_images,
    load_average,
    load_rgb,
    markdown_table,
    parse_int_list,
    report_header,
    set_threads,
    tool,
)
from colorquant.metrics import psnr_from_mse
from colorquant.quality import LIQ_MSE_POWER, LIQ_MSE_SCALE, liq_error

VERBOSE = re.compile(r"MSE=([0-9.]+) \(Q=(\d+)\)")
WRITING = re.compile(r"writing (\d+)-color image")


QS = np.linspace(0.0, 100.0, 20001)
CURVE = np.array([liq_error(float(q)) for q in QS])


def liq_quality(error: np.ndarray) -> np.ndarray:
    """libimagequant's quality (real-valued, 0..100) of its own errors: where its curve meets
    them (``floor`` of it is what pngquant prints, up to its rounding)."""
    return np.asarray(np.interp(-np.log(np.maximum(error, 1e-12)), -np.log(CURVE), QS))


def fit(ours: np.ndarray, target_q: np.ndarray) -> tuple[float, float, float]:
    """A, B minimising the RMS of liq_quality(A * ours ** B) - target_q; and that RMS."""
    best = (np.inf, 0.0, 0.0)
    for b in np.linspace(0.85, 1.25, 81):
        for log_a in np.linspace(-2.0, 0.0, 401):
            rms = float(np.sqrt(np.mean((liq_quality(np.exp(log_a) * ours**b) - target_q) ** 2)))
            if rms < best[0]:
                best = (rms, float(np.exp(log_a)), float(b))
    return best[1], best[2], best[0]


def run_pngquant(pngquant: str, args: list[str], src: Path, out: Path) -> tuple[int, str]:
    cmd = [pngquant, "--verbose", *args, "--force", "-o", str(out), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--ks", default="2,4,8,16,32,64,128,256")
    p.add_argument("--recipes", default="65-80,40-60,60-85,90-100")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH_DIR / "quality_calibration.md")
    args = p.parse_args()
    ks = parse_int_list("--ks", args.ks, 2, 256)
    recipes = [tuple(int(v) for v in r.split("-")) for r in args.recipes.split(",")]
    load_at_start = load_average()
    set_threads(args.threads)
    pngquant = tool("pngquant")
    paths = list_images(args.images, args.limit)
    ours_mse, liq_mse, liq_q = [], [], []
    recipe_rows: dict[tuple[int, ...], list[tuple[bool, int, bool, int, float]]] = {
        r: [] for r in recipes
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        out = Path(tmp_name) / "out.png"
        for src in paths:
            original = load_rgb(src)
            for k in ks:
                _, text = run_pngquant(pngquant, [str(k), "--nofs"], src, out)
                found = VERBOSE.search(text)
                if found is None:
                    raise SystemExit(f"{src.name}, K={k}: no MSE in pngquant's output:\n{text}")
                liq_mse.append(float(found.group(1)))
                liq_q.append(int(found.group(2)))
                ours_mse.append(cq.mse(original, load_rgb(out)))
            for low, high in recipes:
                code, text = run_pngquant(pngquant, ["--quality", f"{low}-{high}"], src, out)
                written = WRITING.search(text)
                pq_colors = int(written.group(1)) if written and code == 0 else 0
                try:
                    res = cq.quantize(original, 256, quality=(low, high), dither="fs")
                    ok, colors, quality = True, res.n_colors, cq.quality_of(res.psnr)
                except cq.QualityTooLowError as error:
                    ok, colors, quality = False, 256, error.quality
                recipe_rows[(low, high)].append((code == 0, pq_colors, ok, colors, quality))
            print(src.name, file=sys.stderr)
    ours, liq, q = np.array(ours_mse), np.array(liq_mse), np.array(liq_q)
    used = (q >= 20) & (q < 100)
    a, b, rms = fit(ours[used], liq_quality(liq[used]))
    ours_q = np.array([cq.quality_of(psnr_from_mse(float(m))) for m in ours])
    lines = report_header("pngquant's quality scale", args.threads, "cpu", load_at_start)
    lines += [
        "",
        f"{len(paths)} photos x K = {', '.join(map(str, ks))}: `pngquant K --nofs --verbose`, "
        "its MSE and Q against our MSE of the file it wrote.",
        "",
        f"Fit over the {int(used.sum())} outputs with 20 <= Q < 100: libimagequant's MSE = "
        f"**{a:.4f} * MSE^{b:.4f}** (RMS {rms:.2f} on the quality scale). In use: "
        f"LIQ_MSE_SCALE = {LIQ_MSE_SCALE}, LIQ_MSE_POWER = {LIQ_MSE_POWER}.",
        "",
        "Residuals of `quality_of` in use: ours (real) minus pngquant's Q + 0.5 (its Q is whole, "
        "rounded down), and whole against whole (`floor`):",
        "",
    ]
    rows = []
    for low, high in ((0, 20), (20, 50), (50, 80), (80, 90), (90, 100), (100, 101), (20, 100)):
        m = (q >= low) & (q < high)
        if not m.any():
            continue
        diff = ours_q[m] - (q[m] + 0.5)
        whole = np.floor(ours_q[m]) - q[m]
        rows.append(
            [
                f"{low}..{min(high, 100) - (high <= 100)}",
                str(int(m.sum())),
                f"{diff.mean():+.2f}",
                f"{diff.std():.2f}",
                f"{np.abs(diff).max():.2f}",
                f"{np.mean(np.abs(whole) <= 2):.0%}",
                f"{int(np.abs(whole).max())}",
            ]
        )
    lines.append(
        markdown_table(
            ["pngquant Q", "outputs", "mean", "sd", "max abs", "within 2", "max abs (whole)"], rows
        )
    )
    lines += ["", "Recipes (K = 256 at most, dithered, as each command by default):", ""]
    rows = []
    for (low, high), got in recipe_rows.items():
        pq_wrote = [g for g in got if g[0]]
        our_wrote = [g for g in got if g[2]]
        both = [g for g in got if g[0] and g[2]]
        rows.append(
            [
                f"--quality {low}-{high}",
                f"{len(pq_wrote)}/{len(got)}",
                f"{len(our_wrote)}/{len(got)}",
                str(sum(1 for g in got if g[0] and not g[2])),
                f"{statistics.median(g[1] for g in both):.0f}" if both else "-",
                f"{statistics.median(g[3] for g in both):.0f}" if both else "-",
            ]
        )
    lines.append(
        markdown_table(
            [
                "recipe",
                "pngquant wrote",
                "colorquant wrote",
                "pngquant wrote, we did not",
                "median colors pngquant",
                "median colors colorquant",
            ],
            rows,
        )
    )
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
