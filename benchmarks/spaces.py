"""Which color space beats libimagequant on PSNR and CIEDE2000 at once? The Pareto front.

Every candidate is colorquant's default fit (speed 4, seed 0, no dithering) in one color space:
``rgb``, ``lab``, ``oklab``, ``din99``, and ``hybrid`` with several weights of its DIN99b part
(``colorquant.color.HYBRID_DIN99_WEIGHT``: the squared distance is
``|ΔRGB|^2 + (w |ΔDIN99b|)^2``, so w = 0 is ``rgb`` and a large w approaches ``din99``). The
reference is libimagequant (``imagequant.quantize_pil_image``, dithering 0) on the same image and
K. Quality is measured on every pixel, as ``colorquant.metrics`` defines it: PSNR over the three
8-bit sRGB channels, and the mean CIEDE2000.

The goal asked of the default space: at every K, mean PSNR at least libimagequant's and mean
ΔE00 at most 0.90 times libimagequant's. The table gives, per K and candidate, the mean ΔPSNR
against libimagequant (and the number of images below it) and the ratio of mean ΔE00s; the
figure plots one point per candidate and K, ΔPSNR against the ΔE00 ratio: the goal is the
corner right of 0 dB and below 0.90.

Usage (from the repository root)::

    .venv/bin/python benchmarks/spaces.py                      # 24 Kodak images, K = 16,64,256
    .venv/bin/python benchmarks/spaces.py --limit 4 --ks 64    # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import colorquant as cq
import colorquant.color as cq_color
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
)

REFERENCE = "imagequant"
GOAL_DE_RATIO = 0.90
HYBRID_WEIGHTS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0)


@dataclass(frozen=True)
class Candidate:
    """A color space of colorquant, with the DIN99b weight for ``hybrid``."""

    name: str
    space: cq.ColorSpace
    weight: float = 0.0


@dataclass(frozen=True)
class Point:
    """One candidate at one K, over all images."""

    candidate: str
    k: int
    d_psnr: float  # mean over images of PSNR - PSNR(imagequant)
    below: int  # images with a lower PSNR than imagequant's
    de_ratio: float  # mean ΔE00 / mean ΔE00 of imagequant
    psnr: float
    delta_e: float


def candidates() -> list[Candidate]:
    plain: list[Candidate] = [Candidate(s, s) for s in ("rgb", "lab", "oklab", "din99")]
    hybrid = [Candidate(f"hybrid w={w:g}", "hybrid", w) for w in HYBRID_WEIGHTS]
    return plain + hybrid


def run_imagequant(image: np.ndarray, k: int) -> np.ndarray:
    import imagequant

    pil = Image.fromarray(image).convert("RGBA")
    out = imagequant.quantize_pil_image(pil, dithering_level=0.0, max_colors=k)
    return np.asarray(out.convert("RGB"))


def run_candidate(cand: Candidate, image: np.ndarray, k: int) -> tuple[float, float]:
    """(PSNR, mean ΔE00) of colorquant in ``cand``'s space."""
    default_weight = cq_color.HYBRID_DIN99_WEIGHT
    try:
        if cand.space == "hybrid":
            # encode_colors reads the module constant on every call.
            cq_color.HYBRID_DIN99_WEIGHT = cand.weight
        res = cq.quantize(image, k, color_space=cand.space, seed=0, device="cpu")
        return res.psnr, res.delta_e
    finally:
        cq_color.HYBRID_DIN99_WEIGHT = default_weight


def measure(images: list[np.ndarray], ks: list[int], cands: list[Candidate]) -> list[Point]:
    points: list[Point] = []
    for k in ks:
        ref = [run_imagequant(img, k) for img in images]
        ref_psnr = [cq.psnr(img, q) for img, q in zip(images, ref, strict=True)]
        ref_de = statistics.fmean(
            cq.mean_delta_e(img, q) for img, q in zip(images, ref, strict=True)
        )
        points.append(Point(REFERENCE, k, 0.0, 0, 1.0, statistics.fmean(ref_psnr), ref_de))
        for cand in cands:
            runs = [run_candidate(cand, img, k) for img in images]
            d = [p - r for (p, _), r in zip(runs, ref_psnr, strict=True)]
            mean_de = statistics.fmean(de for _, de in runs)
            points.append(
                Point(
                    cand.name,
                    k,
                    statistics.fmean(d),
                    sum(x < 0 for x in d),
                    mean_de / ref_de,
                    statistics.fmean(p for p, _ in runs),
                    mean_de,
                )
            )
            print(f"K={k} {cand.name}: ΔPSNR {points[-1].d_psnr:+.3f} dB, ΔE00 ratio "
                  f"{points[-1].de_ratio:.3f}", file=sys.stderr)  # fmt: skip
    return points


def plot(path: Path, points: list[Point], ks: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6))
    colors = dict(
        zip(ks, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"), strict=False)
    )
    markers = {"rgb": "s", "lab": "^", "oklab": "v", "din99": "D", REFERENCE: "*"}
    for k in ks:
        at_k = [p for p in points if p.k == k]
        hybrid = [p for p in at_k if p.candidate.startswith("hybrid")]
        ax.plot(
            [p.d_psnr for p in hybrid],
            [p.de_ratio for p in hybrid],
            "o-",
            color=colors.get(k, "gray"),
            label=f"K = {k}: hybrid, w = {', '.join(f'{w:g}' for w in HYBRID_WEIGHTS)}",
        )
        default = f"hybrid w={cq_color.HYBRID_DIN99_WEIGHT:g}"
        for p in at_k:
            if p.candidate == default:
                ax.plot(p.d_psnr, p.de_ratio, "o", ms=14, mfc="none", color=colors.get(k, "gray"))
            if p.candidate in markers and p.candidate != REFERENCE:
                ax.plot(
                    p.d_psnr, p.de_ratio, markers[p.candidate], color=colors.get(k, "gray"), ms=8
                )
                ax.annotate(p.candidate, (p.d_psnr, p.de_ratio), fontsize=7,
                            xytext=(4, 3), textcoords="offset points")  # fmt: skip
    ax.plot(0, 1, "k*", ms=14, label="libimagequant (reference)")
    ax.axvline(0, color="k", lw=0.8, ls="--")
    ax.axhline(GOAL_DE_RATIO, color="k", lw=0.8, ls="--")
    ax.fill_between([0, 1], 0, GOAL_DE_RATIO, color="tab:green", alpha=0.08, label="goal")
    ax.set_xlim(min(p.d_psnr for p in points) - 0.1, max(p.d_psnr for p in points) + 0.1)
    ax.set_ylim(min(p.de_ratio for p in points) - 0.02, max(p.de_ratio for p in points) + 0.02)
    ax.set_xlabel("mean PSNR − libimagequant's (dB)  →  better")
    ax.set_ylabel("mean ΔE00 / libimagequant's  (lower is better)")
    ax.set_title("Color spaces on Kodak: the circled point is the default")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(args: argparse.Namespace, points: list[Point], n_images: int) -> str:
    lines = [
        *report_header(
            "Color spaces against libimagequant: PSNR and ΔE00",
            args.threads,
            "cpu",
            args.load_at_start,
        ),
        f"- images: {n_images} from `{args.images}`; colorquant default settings (speed 4, "
        "seed 0); no dithering",
        "",
    ]
    for k in args.ks:
        rows = [
            [
                p.candidate,
                f"{p.psnr:.2f}",
                f"{p.d_psnr:+.3f}",
                f"{p.below}/{n_images}" if p.candidate != REFERENCE else "—",
                f"{p.delta_e:.3f}",
                f"{p.de_ratio:.3f}",
                "yes" if p.d_psnr >= 0 and p.de_ratio <= GOAL_DE_RATIO else "",
            ]
            for p in points
            if p.k == k
        ]
        headers = ["space", "PSNR dB", "ΔPSNR vs iq", "# below iq", "ΔE00", "ΔE00 / iq", "goal"]
        lines += [f"### K = {k}", "", markdown_table(headers, rows, "lrrrrrl"), ""]
    rel = Path(args.plot).resolve().relative_to(Path(args.out).resolve().parent)
    lines += [f"![PSNR against ΔE00]({rel.as_posix()})", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--ks", default="16,64,256", help="palette sizes, comma separated")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH_DIR / "spaces.md")
    p.add_argument("--plot", type=Path, default=BENCH_DIR / "spaces.png")
    args = p.parse_args(argv)
    args.ks = parse_int_list("--ks", args.ks, 2, 256)
    args.load_at_start = load_average()
    set_threads(args.threads)
    paths = list_images(args.images, args.limit)
    images = [load_rgb(path) for path in paths]
    points = measure(images, args.ks, candidates())
    text = report(args, points, len(images))
    args.out.write_text(text)
    plot(args.plot, points, args.ks)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
