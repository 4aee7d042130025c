"""Draw the documentation's benchmark figures from the numbers the benchmarks already wrote.

Reads ``benchmarks/results.csv`` (``compare.py``: quality and time per image, K and method),
``benchmarks/compression*.md`` (``compression.py``: bytes and quality against the ``pngquant``
command at K = 16, 64, 256) and ``benchmarks/scaling.md`` (``scaling.py``: time against
megapixels), and writes three PNGs into ``docs/figures/``:

- ``quality_by_k.png``: mean PSNR and mean ΔE00 over Kodak's 24 photos against K, colorquant's
  default and ``rgb`` against libimagequant (the library) and the ``pngquant`` command;
- ``speed.png``: median fit + map time per image against K, and time against image size;
- ``bytes.png``: PNG bytes against ``pngquant``'s, dithered and not, and the PSNR difference.

Nothing is measured here: it only plots (seconds, no benchmark is rerun), so ``make docs`` can
use the committed PNGs and this script redraws them after a benchmark run::

    .venv/bin/python benchmarks/figures.py            # -> docs/figures/*.png
    .venv/bin/python benchmarks/figures.py --out /tmp/figs
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_OUT = REPO_ROOT / "docs" / "figures"

KS = (16, 64, 256)
"""The palette sizes every benchmark table covers."""

COMPRESSION_FILES = {
    16: "compression_k16.md",
    64: "compression_k64.md",
    256: "compression.md",
}

# Methods of results.csv drawn, with their legend and style.
QUALITY_METHODS = {
    "imagequant": ("libimagequant (library)", "tab:gray", "s"),
    "colorquant-hybrid": ("colorquant default (hybrid)", "tab:blue", "o"),
    "colorquant-rgb": ("colorquant --space rgb", "tab:orange", "^"),
    "colorquant-din99": ("colorquant --space din99", "tab:green", "v"),
    "pillow-mediancut": ("Pillow median cut", "tab:brown", "x"),
}
SPEED_METHODS = {
    "imagequant": ("libimagequant", "tab:gray"),
    "colorquant-rgb": ("colorquant rgb", "tab:orange"),
    "colorquant-hybrid": ("colorquant hybrid (default)", "tab:blue"),
    "colorquant-hybrid-s8": ("colorquant hybrid --speed 8", "tab:cyan"),
}


def markdown_tables(path: Path) -> list[list[dict[str, str]]]:
    """Every pipe table of a Markdown file, as rows keyed by the header's cells.

    Args:
        path: a Markdown file written by a benchmark script.

    Returns:
        One list of rows per table, in file order; cells are stripped strings.
    """
    tables: list[list[dict[str, str]]] = []
    block: list[list[str]] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if len(block) >= 3:
            header, rows = block[0], block[2:]
            tables.append([dict(zip(header, row, strict=False)) for row in rows])
        block = []
    return tables


def number(cell: str) -> float:
    """A table cell as a float: ``"5,959,580"`` -> 5959580.0, ``"+0.27"`` -> 0.27."""
    return float(cell.replace(",", "").replace("**", ""))


def results_by_method(path: Path) -> dict[tuple[str, int], dict[str, float]]:
    """Mean PSNR, mean ΔE00 and median time per (method, K) over the images of results.csv."""
    cells: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            key = (row["method"], int(row["k"]))
            cells[key]["psnr"].append(float(row["psnr_db"]))
            cells[key]["de"].append(float(row["mean_delta_e00"]))
            cells[key]["ms"].append(float(row["ms_median"]))
    return {
        key: {
            "psnr": statistics.fmean(v["psnr"]),
            "de": statistics.fmean(v["de"]),
            "ms": statistics.median(v["ms"]),
            "n": float(len(v["psnr"])),
        }
        for key, v in cells.items()
    }


def compression_rows(bench_dir: Path) -> dict[int, dict[str, dict[str, str]]]:
    """Per K, the rows of compression.py's table: ``pngquant``/``colorquant`` x ``nofs``/``fs``.

    The K = 16 and 64 tables name colorquant's undithered row ``colorquant`` and its dithered one
    ``colorquant --dither fs``; the K = 256 table ``colorquant --nofs`` and ``colorquant
    (dithered)``. ``--optimize`` rows (lossless recompression) are left out.
    """
    out: dict[int, dict[str, dict[str, str]]] = {}
    for k, name in COMPRESSION_FILES.items():
        rows = next(t for t in markdown_tables(bench_dir / name) if "bytes / pngquant" in t[0])
        picked: dict[str, dict[str, str]] = {}
        for row in rows:
            method = row["method"]
            if "--optimize" in method:
                continue
            tool = "pngquant" if method.startswith("pngquant") else "colorquant"
            dithered = "dither" in method and "--nofs" not in method
            picked.setdefault(f"{tool} {'fs' if dithered else 'nofs'}", row)
        out[k] = picked
    return out


def scaling_rows(path: Path) -> list[dict[str, str]]:
    """The rows of scaling.md's "time against image size" table."""
    return next(t for t in markdown_tables(path) if "MP" in t[0] and "imagequant ms" in t[0])


def _log2_k_axis(ax: Axes) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(KS), [str(k) for k in KS])
    ax.set_xlabel("K (palette size)")
    ax.grid(True, alpha=0.3)


def draw_quality(bench_dir: Path, out: Path) -> Path:
    """Mean PSNR and ΔE00 against K: colorquant, libimagequant, Pillow and the pngquant command."""
    res = results_by_method(bench_dir / "results.csv")
    comp = compression_rows(bench_dir)
    fig, (ax_psnr, ax_de) = plt.subplots(1, 2, figsize=(10, 4.2))
    for method, (label, color, marker) in QUALITY_METHODS.items():
        ks = [k for k in KS if (method, k) in res]
        ax_psnr.plot(
            ks, [res[method, k]["psnr"] for k in ks], marker=marker, color=color, label=label
        )
        ax_de.plot(ks, [res[method, k]["de"] for k in ks], marker=marker, color=color, label=label)
    pq = [comp[k]["pngquant nofs"] for k in KS]
    for ax, column in ((ax_psnr, "mean PSNR dB"), (ax_de, "mean ΔE00")):
        ys = [number(r[column]) for r in pq]
        ax.plot(list(KS), ys, "D--", color="black", label="pngquant --nofs (command)")
    ax_psnr.set_ylabel("mean PSNR, dB (higher is better)")
    ax_de.set_ylabel("mean CIEDE2000 (lower is better)")
    for ax in (ax_psnr, ax_de):
        _log2_k_axis(ax)
    ax_psnr.legend(fontsize=8)
    fig.suptitle("Quality on Kodak's 24 photos, no dithering (benchmarks/results.csv)")
    fig.tight_layout()
    path = out / "quality_by_k.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_speed(bench_dir: Path, out: Path) -> Path:
    """Median time per image against K, and time against megapixels at K = 256."""
    res = results_by_method(bench_dir / "results.csv")
    fig, (ax_k, ax_mp) = plt.subplots(1, 2, figsize=(10, 4.2))
    width = 0.8 / len(SPEED_METHODS)
    for i, (method, (label, color)) in enumerate(SPEED_METHODS.items()):
        xs = [j + (i - (len(SPEED_METHODS) - 1) / 2) * width for j in range(len(KS))]
        ax_k.bar(xs, [res[method, k]["ms"] for k in KS], width, color=color, label=label)
    ax_k.set_xticks(range(len(KS)), [f"K = {k}" for k in KS])
    ax_k.set_ylabel("median ms per 768x512 image (fit + map)")
    ax_k.set_title("In-process time, 2 threads")
    ax_k.legend(fontsize=8)
    ax_k.grid(True, axis="y", alpha=0.3)
    rows = scaling_rows(bench_dir / "scaling.md")
    mp = [number(r["MP"]) for r in rows]
    for column, label, color in (
        ("imagequant ms", "libimagequant", "tab:gray"),
        ("rgb ms", "colorquant rgb", "tab:orange"),
        ("hybrid ms", "colorquant hybrid (default)", "tab:blue"),
    ):
        ax_mp.plot(
            mp, [number(r[column]) / 1000 for r in rows], marker="o", color=color, label=label
        )
    ax_mp.set_xscale("log")
    ax_mp.set_yscale("log")
    ax_mp.set_xticks(mp, [f"{m:g}" for m in mp])
    ax_mp.set_xlabel("megapixels")
    ax_mp.set_ylabel("seconds (K = 256)")
    ax_mp.set_title("Time against image size (benchmarks/scaling.md)")
    ax_mp.grid(True, which="both", alpha=0.3)
    ax_mp.legend(fontsize=8)
    fig.tight_layout()
    path = out / "speed.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_bytes(bench_dir: Path, out: Path) -> Path:
    """PNG bytes and PSNR of the colorquant command against the pngquant command, by K."""
    comp = compression_rows(bench_dir)
    fig, (ax_b, ax_p) = plt.subplots(1, 2, figsize=(10, 4.2))
    kinds = (("nofs", "undithered (--nofs)", "tab:blue"), ("fs", "dithered (default)", "tab:red"))
    for i, (kind, label, color) in enumerate(kinds):
        xs = [j + (i - 0.5) * 0.38 for j in range(len(KS))]
        ratio = [
            number(comp[k][f"colorquant {kind}"]["bytes (all images)"])
            / number(comp[k][f"pngquant {kind}"]["bytes (all images)"])
            for k in KS
        ]
        gain = [
            number(comp[k][f"colorquant {kind}"]["mean PSNR dB"])
            - number(comp[k][f"pngquant {kind}"]["mean PSNR dB"])
            for k in KS
        ]
        ax_b.bar(xs, ratio, 0.38, color=color, label=label)
        ax_p.bar(xs, gain, 0.38, color=color, label=label)
        for x, r in zip(xs, ratio, strict=True):
            ax_b.annotate(f"{r:.2f}", (x, r), ha="center", va="bottom", fontsize=8)
    ax_b.axhline(1.0, color="black", linewidth=1)
    ax_b.set_ylabel("bytes / pngquant's (24 PNGs; below 1: smaller)")
    ax_b.set_ylim(0.0, 1.3)
    ax_p.axhline(0.0, color="black", linewidth=1)
    ax_p.set_ylabel("PSNR − pngquant's, dB (above 0: better)")
    for ax in (ax_b, ax_p):
        ax.set_xticks(range(len(KS)), [f"K = {k}" for k in KS])
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("The colorquant command against the pngquant command, each kind against its own")
    fig.tight_layout()
    path = out / "bytes.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Draw every figure; print the paths written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bench-dir", type=Path, default=BENCH_DIR, help="benchmark results")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for draw in (draw_quality, draw_speed, draw_bytes):
        print(draw(args.bench_dir, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
