"""Side-by-side comparison of colorquant with other color quantizers on a folder of photos.

Every method reduces each image to the same K colors without dithering. The images are decoded
once beforehand; a method's time is fit + map, measured in-process after one warm-up call per
method on the first image, and is the median of ``--repeat`` runs. Quality is measured on the full
images, identically for all methods (``colorquant.metrics``). imagequant (libimagequant, the
library behind pngquant) is the reference: the Δ and ratio columns compare with it, image by image.

Usage (from the repository root; see benchmarks/README.md for what each number means)::

    python benchmarks/compare.py --limit 3 --repeat 1          # a quick look
    python benchmarks/compare.py                              # all 24 Kodak images, K 16/64/256
    python benchmarks/compare.py --speeds 1,7 --with-optimum  # speed sweep + quality ceiling
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from threadpoolctl import threadpool_limits
from tqdm import tqdm

import colorquant
from _common import (
    BENCH_DIR,
    DEFAULT_IMAGES,
    RGB8,
    ensure_passive_omp,
    list_images,
    load_average,
    load_rgb,
    markdown_table,
    parse_int_list,
    report_header,
    set_threads,
)
from colorquant import DEFAULT_SPEED, ColorSpace
from colorquant.metrics import mean_delta_e, mse, psnr_from_mse

REFERENCE = "imagequant"
SPACES: tuple[ColorSpace, ...] = ("rgb", "hybrid", "din99", "lab", "oklab")
NAIVE_ITERATIONS = 20


# -- inputs and outputs of one method call ---------------------------------------------------


@dataclass
class Inputs:
    """One decoded image, in the form each library's API takes (prepared before any timing).

    Attributes:
        name: file name.
        rgb: ``(H, W, 3)`` uint8 sRGB (colorquant's input and the metrics' original).
        pil_rgb: the same as a PIL ``"RGB"`` image (Pillow's input).
        pil_rgba: as ``"RGBA"`` (libimagequant's pixel format; the Python wrapper would otherwise
            convert inside the timed call).
        pixels: ``(H*W, 3)`` float32 RGB in 0..255 (scikit-learn's and torch-naive's input).
    """

    name: str
    rgb: RGB8
    pil_rgb: Image.Image
    pil_rgba: Image.Image
    pixels: npt.NDArray[np.float32]

    @classmethod
    def load(cls, path: Path) -> Inputs:
        rgb = load_rgb(path)
        pil_rgb = Image.fromarray(rgb)
        return cls(
            name=path.name,
            rgb=rgb,
            pil_rgb=pil_rgb,
            pil_rgba=pil_rgb.convert("RGBA"),
            pixels=rgb.reshape(-1, 3).astype(np.float32),
        )


@dataclass(frozen=True)
class Output:
    """What one call produced: the quantized image and the seconds of fit + map."""

    rgb: RGB8
    seconds: float
    own_psnr: float | None = None  # the library's own report (colorquant), as a cross-check
    n_iter: int | None = None  # colorquant's Lloyd iterations


Runner = Callable[[Inputs, int], Output]


@dataclass(frozen=True)
class Method:
    """A contender: its table name, how to run it, and the largest K it is run at."""

    name: str
    run: Runner
    max_k: int = 256
    skip_reason: str = ""
    is_colorquant: bool = False
    quality_only: bool = False


def _palette_image(palette: torch.Tensor | npt.NDArray[np.floating], labels: object) -> RGB8:
    """Round float centroids to 8-bit colors and paint every pixel with its cluster's color."""
    pal = np.clip(np.rint(np.asarray(palette, dtype=np.float64)), 0, 255).astype(np.uint8)
    return pal[np.asarray(labels, dtype=np.int64)]


# -- the methods ------------------------------------------------------------------------------


def colorquant_runner(
    space: ColorSpace, speed: int, device: str, method: Literal["kmeans", "adam"] = "kmeans"
) -> Runner:
    def run(inp: Inputs, k: int) -> Output:
        res = colorquant.quantize(
            inp.rgb, k, color_space=space, speed=speed, seed=0, device=device, method=method
        )
        # res.seconds is fit + map (histogram, K-means, nearest color, index map on the host);
        # the metrics the library computes afterwards are not timed, as for the other methods.
        return Output(res.to_numpy(), res.seconds, res.psnr, res.n_iter)

    return run


def run_imagequant(inp: Inputs, k: int) -> Output:
    import imagequant

    start = time.perf_counter()
    out = imagequant.quantize_pil_image(inp.pil_rgba, dithering_level=0.0, max_colors=k)
    seconds = time.perf_counter() - start
    return Output(np.asarray(out.convert("RGB"), dtype=np.uint8), seconds)


def pillow_runner(method: Image.Quantize) -> Runner:
    def run(inp: Inputs, k: int) -> Output:
        start = time.perf_counter()
        out = inp.pil_rgb.quantize(k, method=method, dither=Image.Dither.NONE)
        seconds = time.perf_counter() - start
        return Output(np.asarray(out.convert("RGB"), dtype=np.uint8), seconds)

    return run


def run_sklearn_kmeans(inp: Inputs, k: int) -> Output:
    from sklearn.cluster import KMeans

    start = time.perf_counter()
    km = KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=0).fit(inp.pixels)
    labels = km.predict(inp.pixels)
    seconds = time.perf_counter() - start
    return Output(_palette_image(km.cluster_centers_, labels).reshape(inp.rgb.shape), seconds)


def naive_kmeans(
    x: torch.Tensor, k: int, *, iterations: int = NAIVE_ITERATIONS, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain Lloyd on every pixel, as a first implementation would write it.

    Args:
        x: ``(N, 3)`` float pixels.
        k: number of centroids.
        iterations: fixed number of Lloyd steps (no convergence test).
        seed: seeds the random choice of ``k`` pixels as the first centroids.

    Returns:
        ``(K, 3)`` centroids and ``(N,)`` int64 label of every pixel. A centroid that loses all
        its pixels stays where it was (duplicate seeds stay empty: no refill).
    """
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(x.shape[0], generator=generator)[:k].to(x.device)
    centroids = x[pick].clone()
    for _ in range(iterations):
        labels = torch.cdist(x, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None].to(x.dtype)
    return centroids, torch.cdist(x, centroids).argmin(dim=1)


def torch_naive_runner(device: str) -> Runner:
    def run(inp: Inputs, k: int) -> Output:
        start = time.perf_counter()
        x = torch.from_numpy(inp.pixels).to(device)
        centroids, labels = naive_kmeans(x, k)
        centroids, labels = centroids.cpu(), labels.cpu()  # synchronizes a GPU
        seconds = time.perf_counter() - start
        return Output(_palette_image(centroids, labels).reshape(inp.rgb.shape), seconds)

    return run


def run_kmeans_best5(inp: Inputs, k: int) -> Output:
    """Best of 5 converged k-means++ runs on the weighted color histogram (quality ceiling)."""
    from sklearn.cluster import KMeans

    start = time.perf_counter()
    colors, inverse, counts = np.unique(
        inp.rgb.reshape(-1, 3), axis=0, return_inverse=True, return_counts=True
    )
    if colors.shape[0] <= k:
        return Output(inp.rgb.copy(), time.perf_counter() - start)
    points = colors.astype(np.float64)
    km = KMeans(
        n_clusters=k, init="k-means++", n_init=5, max_iter=300, tol=1e-6, random_state=0
    ).fit(points, sample_weight=counts.astype(np.float64))
    labels = km.predict(points)
    seconds = time.perf_counter() - start
    image = _palette_image(km.cluster_centers_, labels[inverse.reshape(-1)])
    return Output(image.reshape(inp.rgb.shape), seconds)


def build_methods(args: argparse.Namespace) -> list[Method]:
    """Every method the options ask for, the reference first."""
    device: str = args.device
    speeds: list[int] = args.speeds
    speed_spaces: list[ColorSpace] = args.speed_spaces
    catalog: list[Method] = [Method(REFERENCE, run_imagequant)]
    for space in SPACES:
        catalog.append(
            Method(
                f"colorquant-{space}",
                colorquant_runner(space, DEFAULT_SPEED, device),
                is_colorquant=True,
            )
        )
    catalog += [
        Method("pillow-mediancut", pillow_runner(Image.Quantize.MEDIANCUT)),
        Method("pillow-fastoctree", pillow_runner(Image.Quantize.FASTOCTREE)),
        Method(
            "sklearn-kmeans",
            run_sklearn_kmeans,
            max_k=args.sklearn_max_k,
            skip_reason=f"K > --sklearn-max-k {args.sklearn_max_k}",
        ),
        Method(
            "torch-naive",
            torch_naive_runner(device),
            max_k=args.naive_max_k,
            skip_reason=f"K > --naive-max-k {args.naive_max_k}",
        ),
        Method("kmeans-best5", run_kmeans_best5, quality_only=True),
    ]
    # Opt-in only (--methods): the palette fitted by Adam instead of Lloyd, same objective.
    catalog += [
        Method(
            f"colorquant-{space}-adam",
            colorquant_runner(space, DEFAULT_SPEED, device, "adam"),
            is_colorquant=True,
        )
        for space in ("rgb", "din99")
    ]
    opt_in = {"colorquant-rgb-adam", "colorquant-din99-adam"}
    if not args.with_optimum:
        opt_in.add("kmeans-best5")
    by_name = {m.name: m for m in catalog}
    if args.methods is None:
        wanted = [m.name for m in catalog if m.name not in opt_in]
    else:
        wanted = [name.strip() for name in args.methods.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in by_name]
        if unknown:
            valid = ", ".join(by_name)
            raise SystemExit(f"--methods: unknown {', '.join(unknown)}; valid: {valid}")
        if args.with_optimum and "kmeans-best5" not in wanted:
            wanted.append("kmeans-best5")
        if REFERENCE not in wanted:
            print(f"note: adding {REFERENCE}, the reference of every ratio", file=sys.stderr)
            wanted.insert(0, REFERENCE)
    methods = [by_name[name] for name in by_name if name in wanted]
    for speed in speeds:
        if speed == DEFAULT_SPEED:
            print(f"note: --speeds {speed} is the default speed, already run", file=sys.stderr)
            continue
        for space in speed_spaces:
            methods.append(
                Method(
                    f"colorquant-{space}-s{speed}",
                    colorquant_runner(space, speed, device),
                    is_colorquant=True,
                )
            )
    return methods


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Record:
    """One method on one image at one K."""

    image: str
    width: int
    height: int
    k: int
    method: str
    psnr: float
    mse: float
    delta_e: float
    ms: float  # median over repeats
    ms_runs: list[float]
    n_colors: int
    own_psnr: float | None
    n_iter: int | None
    vs_ref: dict[str, float] = field(default_factory=dict)


def measure(method: Method, inp: Inputs, k: int, repeat: int) -> Record:
    """Run ``repeat`` times (median time), then score the last output on the full image."""
    outputs = [method.run(inp, k) for _ in range(repeat)]
    out = outputs[-1]
    if out.rgb.shape != inp.rgb.shape or out.rgb.dtype != np.uint8:
        raise RuntimeError(f"{method.name} returned {out.rgb.shape} {out.rgb.dtype}")
    error = mse(inp.rgb, out.rgb)
    height, width = inp.rgb.shape[:2]
    return Record(
        image=inp.name,
        width=width,
        height=height,
        k=k,
        method=method.name,
        psnr=psnr_from_mse(error),
        mse=error,
        delta_e=mean_delta_e(inp.rgb, out.rgb),
        ms=1000.0 * statistics.median(o.seconds for o in outputs),
        ms_runs=[1000.0 * o.seconds for o in outputs],
        n_colors=int(np.unique(out.rgb.reshape(-1, 3), axis=0).shape[0]),
        own_psnr=out.own_psnr,
        n_iter=out.n_iter,
    )


def compare_with_reference(records: list[Record]) -> None:
    """Fill ``vs_ref`` of each record: ΔPSNR, ΔE00 ratio, time ratio against imagequant."""
    ref = {(r.image, r.k): r for r in records if r.method == REFERENCE}
    for r in records:
        base = ref.get((r.image, r.k))
        if base is None:
            continue
        r.vs_ref = {
            "d_psnr": r.psnr - base.psnr,
            "de_ratio": r.delta_e / base.delta_e if base.delta_e > 0 else math.nan,
            "time_ratio": r.ms / base.ms if base.ms > 0 else math.nan,
        }


# -- reporting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """One method at one K over all images (the definitions are in benchmarks/README.md)."""

    method: str
    k: int
    n: int
    psnr: float  # mean over images
    d_psnr: float  # mean of per-image PSNR - PSNR(imagequant)
    min_d_psnr: float  # worst image
    below: int  # images whose PSNR is below imagequant's
    delta_e: float  # mean over images of the per-image mean ΔE00
    de_ratio: float  # mean ΔE00 / mean ΔE00 of imagequant
    ms: float  # median over images of the per-image median time
    time_ratio: float  # geometric mean over images of time / time(imagequant)


def _geomean(values: Sequence[float]) -> float:
    good = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(statistics.fmean(math.log(v) for v in good)) if good else math.nan


def summarize(records: list[Record], method: str, k: int) -> Summary | None:
    rows = [r for r in records if r.method == method and r.k == k]
    if not rows:
        return None
    ref = [r for r in records if r.method == REFERENCE and r.k == k]
    ref_de = statistics.fmean(r.delta_e for r in ref) if ref else math.nan
    d_psnr = [r.vs_ref["d_psnr"] for r in rows if r.vs_ref]
    return Summary(
        method=method,
        k=k,
        n=len(rows),
        psnr=statistics.fmean(r.psnr for r in rows),
        d_psnr=statistics.fmean(d_psnr) if d_psnr else math.nan,
        min_d_psnr=min(d_psnr) if d_psnr else math.nan,
        below=sum(d < 0 for d in d_psnr),
        delta_e=statistics.fmean(r.delta_e for r in rows),
        de_ratio=statistics.fmean(r.delta_e for r in rows) / ref_de if ref_de > 0 else math.nan,
        ms=statistics.median(r.ms for r in rows),
        time_ratio=_geomean([r.vs_ref["time_ratio"] for r in rows if r.vs_ref]),
    )


def _fmt(value: float, spec: str, signed: bool = False) -> str:
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return format(value, ("+" if signed else "") + spec)


def _fmt_ms(ms: float) -> str:
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


HEADERS = (
    "method",
    "PSNR dB",
    "ΔPSNR vs iq",
    "min ΔPSNR",
    "# below iq",
    "ΔE00",
    "ΔE00 / iq",
    "median ms",
    "time / iq",
)


def table_for_k(
    records: list[Record], methods: list[Method], k: int, n_images: int
) -> tuple[str, list[Summary], list[str]]:
    """The Markdown table of one K, its summaries, and notes on methods not run at this K."""
    rows: list[list[str]] = []
    summaries: list[Summary] = []
    notes: list[str] = []
    for m in methods:
        s = summarize(records, m.name, k)
        if s is None:
            if k > m.max_k:
                notes.append(f"{m.name} not run at K={k} ({m.skip_reason}).")
            continue
        summaries.append(s)
        is_ref = m.name == REFERENCE
        label = f"{m.name} (reference)" if is_ref else m.name
        if m.quality_only:
            label += " (quality ceiling, not a contender)"
        rows.append(
            [
                label,
                _fmt(s.psnr, ".2f"),
                "0" if is_ref else _fmt(s.d_psnr, ".2f", signed=True),
                "0" if is_ref else _fmt(s.min_d_psnr, ".2f", signed=True),
                "—" if is_ref else f"{s.below}/{s.n}",
                _fmt(s.delta_e, ".3f"),
                "1" if is_ref else _fmt(s.de_ratio, ".3f"),
                _fmt_ms(s.ms),
                "1" if is_ref else _fmt(s.time_ratio, ".2f"),
            ]
        )
    title = f"### K = {k} ({n_images} image{'s' if n_images != 1 else ''})"
    return f"{title}\n\n{markdown_table(HEADERS, rows)}", summaries, notes


def write_csv(path: Path, records: list[Record]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [
        "image",
        "width",
        "height",
        "k",
        "method",
        "psnr_db",
        "mse",
        "mean_delta_e00",
        "ms_median",
        "ms_runs",
        "n_colors_used",
        "d_psnr_vs_imagequant",
        "delta_e_ratio_vs_imagequant",
        "time_ratio_vs_imagequant",
        "library_reported_psnr_db",
        "colorquant_iterations",
    ]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in records:
            writer.writerow(
                [
                    r.image,
                    r.width,
                    r.height,
                    r.k,
                    r.method,
                    f"{r.psnr:.4f}",
                    f"{r.mse:.4f}",
                    f"{r.delta_e:.4f}",
                    f"{r.ms:.3f}",
                    ";".join(f"{t:.3f}" for t in r.ms_runs),
                    r.n_colors,
                    f"{r.vs_ref['d_psnr']:.4f}" if r.vs_ref else "",
                    f"{r.vs_ref['de_ratio']:.4f}" if r.vs_ref else "",
                    f"{r.vs_ref['time_ratio']:.4f}" if r.vs_ref else "",
                    "" if r.own_psnr is None else f"{r.own_psnr:.4f}",
                    "" if r.n_iter is None else r.n_iter,
                ]
            )


_MARKERS = ("*", "o", "s", "D", "^", "v", "<", ">", "P", "X", "h", "p", "d", "8", "H", "1")


def plot(path: Path, summaries: list[Summary], methods: list[Method], ks: list[int]) -> None:
    """Quality against time: one column per K, PSNR above and ΔE00 below, log time axis.

    Marker per method, color per K; dashed lines cross at imagequant, so a point above-left
    (PSNR) or below-left (ΔE00) of the cross is better and faster than the reference.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    marker = {m.name: _MARKERS[i % len(_MARKERS)] for i, m in enumerate(methods)}
    cmap = plt.get_cmap("viridis")
    color = {k: cmap(0.15 + 0.7 * i / max(len(ks) - 1, 1)) for i, k in enumerate(ks)}
    fig, axes = plt.subplots(
        2, len(ks), figsize=(max(4.8 * len(ks), 10.0), 8.0), squeeze=False, sharex=True
    )
    for col, k in enumerate(ks):
        at_k = [s for s in summaries if s.k == k]
        ref = next((s for s in at_k if s.method == REFERENCE), None)
        for row, (attr, label) in enumerate(
            (
                ("psnr", "mean PSNR (dB) — higher is better"),
                ("delta_e", "mean ΔE00 — lower is better"),
            )
        ):
            ax = axes[row][col]
            for s in at_k:
                ax.scatter(
                    s.ms,
                    getattr(s, attr),
                    marker=marker[s.method],
                    s=140 if s.method == REFERENCE else 60,
                    color=color[k],
                    edgecolor="black",
                    linewidth=0.6,
                    zorder=3,
                )
                ax.annotate(
                    s.method.replace("colorquant-", "cq-"),
                    (s.ms, getattr(s, attr)),
                    xytext=(5, 4),
                    textcoords="offset points",
                    fontsize=7,
                    color="0.25",
                )
            if ref is not None:
                ax.axhline(getattr(ref, attr), color="0.5", linestyle="--", linewidth=0.8)
                ax.axvline(ref.ms, color="0.5", linestyle="--", linewidth=0.8)
            ax.set_xscale("log")
            ax.margins(x=0.2, y=0.08)
            ax.grid(True, which="both", alpha=0.25)
            if row == 0:
                ax.set_title(f"K = {k}", color=color[k], fontweight="bold")
            else:
                ax.set_xlabel("time per image, ms (median; log scale)")
            if col == 0:
                ax.set_ylabel(label)
    handles = [
        Line2D(
            [],
            [],
            marker=marker[m.name],
            linestyle="",
            markerfacecolor="white",
            markeredgecolor="black",
            markersize=8,
            label=m.name + (" (reference)" if m.name == REFERENCE else ""),
        )
        for m in methods
        if any(s.method == m.name for s in summaries)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), frameon=False)
    fig.suptitle(
        "Quality vs time per image, no dithering (means over images; time: median ms)\n"
        "dashed cross = imagequant: above-left (PSNR) / below-left (ΔE00) of it is better and "
        "faster",
        fontsize=10,
    )
    rows_of_legend = math.ceil(len(handles) / 4)
    fig.tight_layout(rect=(0, 0.01 + 0.035 * rows_of_legend, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_report(
    args: argparse.Namespace,
    tables: list[str],
    notes: list[str],
    image_names: list[str],
    plot_path: Path,
    md_path: Path,
    records: list[Record],
) -> str:
    mismatch = [
        r
        for r in records
        if r.own_psnr is not None and math.isfinite(r.psnr) and abs(r.own_psnr - r.psnr) > 1e-6
    ]
    lines = [
        *report_header(
            "Results: colorquant vs other quantizers",
            args.threads,
            args.device,
            args.load_at_start,
        ),
        f"- images: {len(image_names)} from `{args.images}` ({', '.join(image_names)})",
        f"- K: {', '.join(map(str, args.ks))}; repeats per image: {args.repeat} (median time); "
        f"colorquant device: {args.device}; seed 0 everywhere",
        "- no dithering; time = fit + map in-process, after one warm-up call per method; "
        "PSNR and ΔE00 on the full images (benchmarks/README.md defines every column)",
        "",
        *tables,
        "",
    ]
    if notes:
        lines += ["Notes:", "", *(f"- {n}" for n in notes), ""]
    if mismatch:
        lines += [
            f"Warning: colorquant's own PSNR differs from the full-image PSNR on {len(mismatch)} "
            "runs (see the CSV).",
            "",
        ]
    rel = os.path.relpath(plot_path, md_path.parent)
    lines += [f"![quality vs time]({Path(rel).as_posix()})", ""]
    return "\n".join(lines)


# -- the command ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of images")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--ks", default="16,64,256", help="palette sizes, comma separated (2..256)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per image (median kept)")
    p.add_argument("--threads", type=int, default=2, help="threads for torch/OpenMP/BLAS")
    p.add_argument(
        "--methods",
        default=None,
        help="comma list (default: all but kmeans-best5): imagequant, colorquant-rgb, "
        "colorquant-hybrid, colorquant-din99, colorquant-oklab, colorquant-lab, "
        "pillow-mediancut, pillow-fastoctree, sklearn-kmeans, torch-naive, kmeans-best5",
    )
    p.add_argument(
        "--speeds",
        default="",
        help=f"also run colorquant at these speeds 1..10 (default speed is {DEFAULT_SPEED})",
    )
    p.add_argument(
        "--speed-spaces",
        default="rgb,hybrid",
        help="color spaces of the --speeds runs",
    )
    p.add_argument("--sklearn-max-k", type=int, default=64, help="skip sklearn-kmeans above")
    p.add_argument("--naive-max-k", type=int, default=256, help="skip torch-naive above")
    p.add_argument(
        "--with-optimum",
        action="store_true",
        help="add kmeans-best5, the quality ceiling (slow)",
    )
    p.add_argument("--device", default="cpu", help="device of colorquant and torch-naive")
    p.add_argument(
        "--out",
        type=Path,
        default=BENCH_DIR / "results.md",
        help="Markdown results section",
    )
    p.add_argument("--csv", type=Path, default=BENCH_DIR / "results.csv", help="per-image rows")
    p.add_argument(
        "--plot", type=Path, default=BENCH_DIR / "quality_vs_time.png", help="scatter plot"
    )
    args = p.parse_args(argv)
    try:
        args.ks = sorted(set(parse_int_list("--ks", args.ks, 2, 256)))
        args.speeds = parse_int_list("--speeds", args.speeds, 1, 10) if args.speeds else []
        spaces = [s.strip() for s in args.speed_spaces.split(",") if s.strip()]
        if not spaces or any(s not in SPACES for s in spaces):
            raise ValueError(f"--speed-spaces must be from {', '.join(SPACES)}, got {spaces}")
        args.speed_spaces = spaces
        for name in ("repeat", "threads"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
            raise ValueError(f"--device must be cpu or cuda, got {args.device!r}")
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("--device cuda: torch sees no CUDA device here")
    except ValueError as exc:
        p.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    ensure_passive_omp()
    args = parse_args(argv)
    args.load_at_start = load_average()
    set_threads(args.threads)
    methods = build_methods(args)
    paths = list_images(args.images, args.limit)
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

    with threadpool_limits(limits=args.threads):
        inputs = [Inputs.load(p) for p in tqdm(paths, desc="decoding", leave=False)]
        for m in tqdm(methods, desc="warm-up", leave=False):
            k = next((k for k in args.ks if k <= m.max_k), None)
            if k is not None:
                m.run(inputs[0], k)
        records: list[Record] = []
        bar = tqdm(inputs, desc="images", unit="img")
        for inp in bar:
            for k in args.ks:
                for m in methods:
                    if k > m.max_k:
                        continue
                    bar.set_postfix_str(f"K={k} {m.name}")
                    records.append(measure(m, inp, k, args.repeat))
        bar.close()

    compare_with_reference(records)
    tables: list[str] = []
    summaries: list[Summary] = []
    notes: list[str] = []
    for k in args.ks:
        table, at_k, skipped = table_for_k(records, methods, k, len(inputs))
        tables += [table, ""]
        summaries += at_k
        notes += skipped
    report = markdown_report(
        args, tables, notes, [i.name for i in inputs], args.plot, args.out, records
    )
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    write_csv(args.csv, records)
    plot(args.plot, summaries, methods, args.ks)
    print(f"wrote {args.out}, {args.csv}, {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
