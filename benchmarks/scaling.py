"""How colorquant's time grows with image size and with K, and its peak memory on a large image.

Three measurements, all with colorquant's default settings (speed, seed 0) in ``--spaces``
(rgb and hybrid, the default space, by default):

1. time against megapixels at ``--k`` (256), beside libimagequant's (``imagequant``, no
   dithering, same image, same K): one Kodak image resized with Pillow LANCZOS to
   0.5 .. 24 MP. Upsampling smooths an image and leaves it far fewer distinct colors than a real
   photo of that size, and colorquant's work grows with the distinct colors; so light Gaussian
   noise (σ = ``--noise`` 8-bit levels, fixed seed) is added at every size to keep it photo-like.
   The table lists the distinct colors of each size.
2. time against K = 2, 4, .., 256 on the image at its native size (no noise).
3. peak resident memory of one run at ``--memory-mp`` (24) MP and K = ``--k``, in a fresh child
   process: the child's VmHWM (``/proc/self/status``) and ``getrusage(RUSAGE_CHILDREN).ru_maxrss``
   of a bare wrapper process that started it, beside the child's resident memory just before the
   call (interpreter, NumPy, the image; torch too on CUDA).

Times are in-process (``QuantizeResult.seconds``: fit + map), the median of ``--repeat`` runs
after a warm-up call. Usage::

    python benchmarks/scaling.py                  # up to 24 MP (slow on a small machine)
    python benchmarks/scaling.py --max-mp 2       # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits
from tqdm import tqdm

import colorquant
from _common import (
    BENCH_DIR,
    DEFAULT_IMAGES,
    RGB8,
    ensure_passive_omp,
    load_average,
    load_rgb,
    markdown_table,
    parse_int_list,
    report_header,
    set_threads,
)
from colorquant import ColorSpace

SPACES: tuple[ColorSpace, ...] = ("rgb", "hybrid", "din99", "oklab", "lab")
REFERENCE = "imagequant"
DEFAULT_MPS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 24.0)


# -- test images ------------------------------------------------------------------------------


def resized(image: RGB8, megapixels: float, noise: float, seed: int = 0) -> RGB8:
    """``image`` resized (LANCZOS, aspect kept) to about ``megapixels`` MP, plus Gaussian noise.

    Args:
        image: ``(H, W, 3)`` uint8 sRGB.
        megapixels: target size in 10^6 pixels.
        noise: standard deviation of the added noise in 8-bit levels (0: none).
        seed: seeds the noise; the same arguments give the same image.

    Returns:
        ``(H', W', 3)`` uint8 with ``H' * W'`` within a row of ``megapixels * 1e6``.
    """
    height, width = image.shape[:2]
    new_w = max(1, round(math.sqrt(megapixels * 1e6 * width / height)))
    new_h = max(1, round(megapixels * 1e6 / new_w))
    out = np.array(
        Image.fromarray(image).resize((new_w, new_h), Image.Resampling.LANCZOS),
        dtype=np.uint8,
    )
    if noise > 0:
        rng = np.random.default_rng(seed)
        rows = max(1, (1 << 22) // (new_w * 3))  # ~4 M samples at a time keeps memory low
        for top in range(0, new_h, rows):
            block = out[top : top + rows]
            n = rng.standard_normal(block.shape, dtype=np.float32) * np.float32(noise)
            out[top : top + rows] = np.clip(block + np.rint(n), 0, 255).astype(np.uint8)
    return out


def distinct_colors(image: RGB8) -> int:
    """Number of distinct RGB colors (packed to one integer per pixel: fast on big images)."""
    flat = image.reshape(-1, 3).astype(np.uint32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    return int(np.unique(packed).shape[0])


# -- timing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """One setting: median seconds of fit + map over the repeats, and the quality reached."""

    space: str
    k: int
    megapixels: float
    distinct: int
    seconds: float
    runs: tuple[float, ...]
    psnr: float
    n_iter: int


def time_quantize(
    image: RGB8, k: int, space: ColorSpace, repeat: int, device: str, distinct: int
) -> Timing:
    results = [
        colorquant.quantize(image, k, color_space=space, seed=0, device=device)
        for _ in range(repeat)
    ]
    runs = tuple(r.seconds for r in results)
    return Timing(
        space=space,
        k=k,
        megapixels=image.shape[0] * image.shape[1] / 1e6,
        distinct=distinct,
        seconds=statistics.median(runs),
        runs=runs,
        psnr=results[-1].psnr,
        n_iter=results[-1].n_iter,
    )


def time_imagequant(image: RGB8, k: int, repeat: int, distinct: int) -> Timing:
    """libimagequant on the same image (RGBA, as its wrapper takes), no dithering: the reference."""
    import imagequant

    pil = Image.fromarray(image).convert("RGBA")
    imagequant.quantize_pil_image(pil, dithering_level=0.0, max_colors=k)  # warm-up
    runs, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = imagequant.quantize_pil_image(pil, dithering_level=0.0, max_colors=k)
        runs.append(time.perf_counter() - start)
    assert out is not None
    quantized = np.asarray(out.convert("RGB"))
    return Timing(
        space=REFERENCE,
        k=k,
        megapixels=image.shape[0] * image.shape[1] / 1e6,
        distinct=distinct,
        seconds=statistics.median(runs),
        runs=tuple(runs),
        psnr=colorquant.psnr(image, quantized),
        n_iter=0,
    )


def log_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (1: linear, 2: quadratic)."""
    if len(xs) < 2:
        return math.nan
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    den = sum((x - mx) ** 2 for x in lx)
    return sum((x - mx) * (y - my) for x, y in zip(lx, ly, strict=True)) / den


def size_slope(by_mp: Sequence[Timing], space: str) -> float:
    """Exponent of time against megapixels for one color space."""
    pts = [t for t in by_mp if t.space == space]
    return log_slope([t.megapixels for t in pts], [t.seconds for t in pts])


# -- peak memory in a child process -----------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def memory_child(npy: Path, k: int, space: ColorSpace, threads: int, device: str) -> None:
    """The child's side: load the image, note the resident memory, quantize, print the peaks."""
    set_threads(threads)
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    with threadpool_limits(limits=threads):
        image: RGB8 = np.load(npy)
        before = _status_kib("VmRSS")
        res = colorquant.quantize(image, k, color_space=space, seed=0, device=device)
        report = {
            "rss_before_kib": before,
            "vm_hwm_kib": _status_kib("VmHWM"),
            "ru_maxrss_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "seconds": res.seconds,
            "cuda_peak_bytes": (
                sys.modules["torch"].cuda.max_memory_allocated() if device.startswith("cuda") else 0
            ),
        }
    print(json.dumps(report))


@dataclass(frozen=True)
class Memory:
    space: str
    megapixels: float
    distinct: int
    rss_before_mib: float
    vm_hwm_mib: float
    children_maxrss_mib: float
    seconds: float
    cuda_peak_mib: float


_WRAPPER = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
if done.returncode:
    sys.exit(done.returncode)
report = json.loads(done.stdout.strip().splitlines()[-1])
report["children_maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(report))
"""


def measure_memory(
    image: RGB8, k: int, space: ColorSpace, threads: int, device: str, distinct: int
) -> Memory:
    """Run one quantization in a fresh interpreter and return its peak resident memory."""
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "image.npy"
        np.save(npy, image)
        child = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child-memory",
            str(npy),
            "--k",
            str(k),
            "--spaces",
            space,
            "--threads",
            str(threads),
            "--device",
            device,
        ]
        # Through a small wrapper: a child's ru_maxrss starts from its parent's resident size at
        # fork, and this process holds torch and images; the wrapper holds a bare interpreter.
        done = subprocess.run(
            [sys.executable, "-c", _WRAPPER, *child], capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Memory(
        space=space,
        megapixels=image.shape[0] * image.shape[1] / 1e6,
        distinct=distinct,
        rss_before_mib=result["rss_before_kib"] / 1024,
        vm_hwm_mib=result["vm_hwm_kib"] / 1024,
        children_maxrss_mib=result["children_maxrss_kib"] / 1024,
        seconds=result["seconds"],
        cuda_peak_mib=result["cuda_peak_bytes"] / 2**20,
    )


# -- report -----------------------------------------------------------------------------------


def _fmt_s(seconds: float) -> str:
    ms = 1000 * seconds
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}"


def plot(path: Path, by_mp: list[Timing], by_k: list[Timing], spaces: list[ColorSpace]) -> None:
    """Left: log-log time against megapixels with a linear reference; right: time against K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_mp, ax_k) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = {
        "rgb": "tab:red",
        "hybrid": "tab:orange",
        "din99": "tab:purple",
        "oklab": "tab:blue",
        "lab": "tab:green",
        REFERENCE: "black",
    }
    for space in (*spaces, REFERENCE):
        pts = [t for t in by_mp if t.space == space]
        if pts:
            ax_mp.plot(
                [t.megapixels for t in pts],
                [1000 * t.seconds for t in pts],
                "o-",
                color=colors[space],
                label=f"{space} (slope {size_slope(by_mp, space):.2f})",
            )
        pts_k = [t for t in by_k if t.space == space]
        if pts_k:
            ax_k.plot(
                [t.k for t in pts_k],
                [1000 * t.seconds for t in pts_k],
                "o-",
                color=colors[space],
                label=space,
            )
    if by_mp:
        # A line of slope 1 through the geometric centre of all points: time ∝ pixels.
        mps = sorted({t.megapixels for t in by_mp})
        centre_x = math.exp(statistics.fmean(math.log(t.megapixels) for t in by_mp))
        centre_y = math.exp(statistics.fmean(math.log(1000 * t.seconds) for t in by_mp))
        ax_mp.plot(
            [mps[0], mps[-1]],
            [centre_y * mps[0] / centre_x, centre_y * mps[-1] / centre_x],
            "--",
            color="0.5",
            label="∝ megapixels (linear)",
        )
    k_label = by_mp[0].k if by_mp else "?"
    ax_mp.set(
        xscale="log",
        yscale="log",
        xlabel="megapixels (log)",
        ylabel="time, ms (median; log)",
        title=f"time vs image size, K = {k_label}",
    )
    ax_k.set(
        xscale="log",
        yscale="log",
        xlabel="K (log)",
        ylabel="time, ms (median; log)",
        title=f"time vs K at {by_k[0].megapixels:.2f} MP" if by_k else "time vs K",
    )
    ax_k.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(sorted({t.k for t in by_k})))
    ax_k.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax_k.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    for ax in (ax_mp, ax_k):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("colorquant scaling (default settings, fit + map)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(
    args: argparse.Namespace,
    image_path: Path,
    native_shape: tuple[int, int],
    by_mp: list[Timing],
    by_k: list[Timing],
    memory: list[Memory],
    plot_path: Path,
) -> str:
    spaces: list[ColorSpace] = args.spaces
    lines = [
        *report_header("Scaling of colorquant", args.threads, args.device, args.load_at_start),
        f"- image: `{image_path.name}` ({native_shape[1]}x{native_shape[0]}), resized with "
        f"Pillow LANCZOS; Gaussian noise σ = {args.noise} levels (seed 0) added at every size, "
        "because upsampling alone leaves too few distinct colors to be photo-like",
        f"- default settings (speed {colorquant.DEFAULT_SPEED}, seed 0), device {args.device}; "
        f"time = fit + map (`QuantizeResult.seconds`), median of {args.repeat} runs after a "
        "warm-up",
        "",
    ]
    if by_mp:
        mps = sorted({t.megapixels for t in by_mp})
        rows = []
        for mp in mps:
            at = {t.space: t for t in by_mp if t.megapixels == mp}
            any_t = next(iter(at.values()))
            row = [f"{mp:.2f}", f"{any_t.distinct:,}"]
            for space in spaces:
                t = at.get(space)
                row += (
                    [
                        _fmt_s(t.seconds),
                        f"{1000 * t.seconds / mp:,.0f}",
                        str(t.n_iter),
                        f"{t.psnr:.2f}",
                    ]
                    if t
                    else ["—"] * 4
                )
            rows.append(row)
        headers = ["MP", "distinct colors"]
        for space in spaces:
            headers += [f"{space} ms", f"{space} ms/MP", f"{space} iters", f"{space} PSNR"]
        headers += [f"{REFERENCE} ms", f"{REFERENCE} PSNR"]
        headers += [f"{space} time / {REFERENCE}" for space in spaces]
        for row, mp in zip(rows, mps, strict=True):
            at = {t.space: t for t in by_mp if t.megapixels == mp}
            ref = at.get(REFERENCE)
            row += [_fmt_s(ref.seconds), f"{ref.psnr:.2f}"] if ref else ["—"] * 2
            row += [
                f"{at[space].seconds / ref.seconds:.2f}" if ref and space in at else "—"
                for space in spaces
            ]
        slopes = ", ".join(
            f"{space} {size_slope(by_mp, space):.2f}" for space in (*spaces, REFERENCE)
        )
        lines += [
            f"### Time against image size (K = {args.k})",
            "",
            markdown_table(headers, rows),
            "",
            f"Fitted exponent of time against megapixels (1 = linear): {slopes}. "
            "iters: Lloyd iterations of the fit (coarse + exact stages); they stop on a "
            "tolerance, so time follows them as well as the size.",
            "",
        ]
    if by_k:
        ks = sorted({t.k for t in by_k})
        rows = []
        for k in ks:
            row = [str(k)]
            for space in spaces:
                t = next((t for t in by_k if t.k == k and t.space == space), None)
                row += [_fmt_s(t.seconds), str(t.n_iter), f"{t.psnr:.2f}"] if t else ["—"] * 3
            rows.append(row)
        headers = ["K"]
        for space in spaces:
            headers += [f"{space} ms", f"{space} iters", f"{space} PSNR"]
        lines += [
            f"### Time against K ({by_k[0].megapixels:.2f} MP, "
            f"{by_k[0].distinct:,} distinct colors, no noise)",
            "",
            markdown_table(headers, rows),
            "",
        ]
    if memory:
        rows = [
            [
                m.space,
                f"{m.megapixels:.2f}",
                f"{m.distinct:,}",
                f"{m.rss_before_mib:,.0f}",
                f"{m.vm_hwm_mib:,.0f}",
                f"{m.vm_hwm_mib - m.rss_before_mib:,.0f}",
                f"{(m.vm_hwm_mib - m.rss_before_mib) * 2**20 / (m.megapixels * 1e6):.1f}",
                f"{m.children_maxrss_mib:,.0f}",
                f"{m.seconds:.1f}",
            ]
            for m in memory
        ]
        headers = [
            "space",
            "MP",
            "distinct colors",
            "RSS before MiB",
            "peak RSS MiB",
            "peak - before MiB",
            "bytes/pixel",
            "ru_maxrss MiB",
            "s",
        ]
        lines += [
            f"### Peak resident memory (K = {args.k}, one run in a fresh process)",
            "",
            markdown_table(headers, rows),
            "",
            "RSS before: the child's resident memory after importing colorquant and loading the "
            "image (3 bytes/pixel), just before `quantize`; peak RSS: its VmHWM afterwards; "
            "ru_maxrss: the same peak as its parent sees it, `getrusage(RUSAGE_CHILDREN)` "
            "in a bare wrapper process. "
            "bytes/pixel = (peak - before) / pixels: the working memory of one call.",
            "",
        ]
        if any(m.cuda_peak_mib > 0 for m in memory):
            cuda = ", ".join(f"{m.space} {m.cuda_peak_mib:,.0f} MiB" for m in memory)
            lines += [f"Peak CUDA memory allocated by torch: {cuda}.", ""]
    rel = os.path.relpath(plot_path, args.out.parent)
    lines += [f"![scaling]({Path(rel).as_posix()})", ""]
    return "\n".join(lines)


# -- the command ------------------------------------------------------------------------------


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--image", type=Path, default=DEFAULT_IMAGES / "kodim23.png", help="the base image"
    )
    p.add_argument(
        "--mps", default=",".join(f"{m:g}" for m in DEFAULT_MPS), help="sizes in megapixels"
    )
    p.add_argument("--max-mp", type=float, default=24.0, help="skip sizes above this")
    p.add_argument("--k", type=int, default=256, help="K of the size sweep and the memory run")
    p.add_argument("--ks", default="2,4,8,16,32,64,128,256", help="K sweep at the native size")
    p.add_argument("--spaces", default="rgb,hybrid", help="color spaces, comma separated")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per point (median kept)")
    p.add_argument("--threads", type=int, default=2, help="threads for torch/OpenMP/BLAS")
    p.add_argument("--device", default="cpu", help="colorquant device: cpu or cuda")
    p.add_argument("--noise", type=float, default=1.5, help="noise σ in 8-bit levels")
    p.add_argument(
        "--memory-mp",
        type=float,
        default=None,
        help="size of the memory run (default: 24, or --max-mp if smaller)",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the memory run")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "scaling.md", help="Markdown report")
    p.add_argument("--plot", type=Path, default=BENCH_DIR / "scaling.png", help="the figure")
    p.add_argument("--child-memory", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        args.mps = sorted({float(m) for m in args.mps.split(",") if m.strip()})
        if not args.mps or min(args.mps) <= 0:
            raise ValueError(f"--mps must be positive numbers, got {args.mps}")
        args.ks = sorted(set(parse_int_list("--ks", args.ks, 1, 65536)))
        spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
        if not spaces or any(s not in SPACES for s in spaces):
            raise ValueError(f"--spaces must be from {', '.join(SPACES)}, got {args.spaces!r}")
        args.spaces = spaces
        if args.memory_mp is None:
            args.memory_mp = min(24.0, args.max_mp)
        for name in ("repeat", "threads", "k"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if args.device.startswith("cuda") and not _cuda_available():
            raise ValueError("--device cuda: torch sees no CUDA device here")
    except ValueError as exc:
        p.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    ensure_passive_omp()
    args = parse_args(argv)
    if args.child_memory is not None:
        memory_child(args.child_memory, args.k, args.spaces[0], args.threads, args.device)
        return 0
    args.load_at_start = load_average()
    set_threads(args.threads)
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    spaces: list[ColorSpace] = args.spaces
    native = load_rgb(args.image)
    mps = [m for m in args.mps if m <= args.max_mp]

    by_mp: list[Timing] = []
    by_k: list[Timing] = []
    memory: list[Memory] = []
    with threadpool_limits(limits=args.threads):
        for space in spaces:  # warm-up: first calls pay for lazy initialisation
            colorquant.quantize(native, 16, color_space=space, seed=0, device=args.device)
        for mp in tqdm(mps, desc="sizes", unit="size"):
            image = resized(native, mp, args.noise)
            distinct = distinct_colors(image)
            for space in spaces:
                by_mp.append(
                    time_quantize(image, args.k, space, args.repeat, args.device, distinct)
                )
            by_mp.append(time_imagequant(image, args.k, args.repeat, distinct))
            del image
        distinct = distinct_colors(native)
        for k in tqdm(args.ks, desc="K", unit="K"):
            for space in spaces:
                by_k.append(time_quantize(native, k, space, args.repeat, args.device, distinct))
        if not args.no_memory:
            image = resized(native, args.memory_mp, args.noise)
            distinct = distinct_colors(image)
            for space in tqdm(spaces, desc=f"memory at {args.memory_mp:g} MP", unit="run"):
                memory.append(
                    measure_memory(image, args.k, space, args.threads, args.device, distinct)
                )
            del image

    text = report(args, args.image, native.shape[:2], by_mp, by_k, memory, args.plot)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    plot(args.plot, by_mp, by_k, spaces)
    print(f"wrote {args.out}, {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
