"""Issue 18's bytes and quality cells against the ``pngquant`` command, on whole photos.

Every cell runs the two commands as people would, on every photo of the set, and compares the
files they write (timings are ``benchmarks/startup.py``'s):

- ``K = 16`` / ``64`` / ``256``: ``colorquant quantize -k K`` (its default dither) against
  ``pngquant K`` (its default Floyd-Steinberg);
- ``--quality 65-80`` / ``40-60``: the same flag given to both (colorquant's ``--quality`` is
  pngquant's scale; each chooses its own number of colors); a photo one of them refuses (exit 99)
  is left out of the comparison and counted.

colorquant runs once per cell over all the photos (``-d``), once with its defaults and once per
``--strength`` (``--dither-strength S``) and ``--variant`` (any flags). A ``--quality`` cell has
one more row, the engine at equal quality: per photo the fewest colors K whose output (``-k K``,
the default dither) has a PSNR at most 0.3 dB below pngquant's file (a bisection on K with the
library, the same mapping as the command's; then the command writes it).

Per photo: the file's bytes; its pixels against the original by five numbers, so that no single
metric decides (``lowk_dither.Judge``): mean CIEDE2000 after a Gaussian blur of both in linear
light at sigma 1 and 2 px (two viewing distances), the 99th percentile at sigma 2 (a small region
that changed hue), SSIM (scikit-image, Gaussian window, channel mean; it punishes dither noise) and
PSNR. A row gives the total bytes against pngquant's, each metric's mean over the photos against
pngquant's mean, and on how many photos colorquant's is the better one.

    python benchmarks/pngquant_cells.py --out benchmarks/pngquant_cells_kodak.md
    python benchmarks/pngquant_cells.py --second-set --out benchmarks/pngquant_cells_photos2.md
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from _common import (
    DEFAULT_IMAGES,
    list_images,
    load_average,
    load_rgb,
    markdown_table,
    report_header,
    tool,
    write_second_set,
)
from lowk_dither import Judge

CELLS: dict[str, tuple[list[str], list[str]]] = {
    "K = 16": (["-k", "16"], ["16"]),
    "K = 64": (["-k", "64"], ["64"]),
    "K = 256": (["-k", "256"], ["256"]),
    "--quality 65-80": (["--quality", "65-80"], ["--quality", "65-80"]),
    "--quality 40-60": (["--quality", "40-60"], ["--quality", "40-60"]),
}
LOWER_IS_BETTER = ("dE b1", "dE b2", "dE99 b2")
METRICS = ("dE b1", "dE b2", "dE99 b2", "SSIM", "PSNR")
EXIT_QUALITY = 99  # both commands: --quality's minimum not reached, nothing written

Scores = dict[str, float]
"""One output's numbers: ``bytes``, ``colors`` and :data:`METRICS`."""


def _colors(path: Path) -> int:
    with Image.open(path) as image:
        palette = image.getpalette()
        return len(palette) // 3 if palette is not None else 0


def run_pngquant(photos: list[Path], flags: list[str], out: Path) -> dict[str, Path]:
    """``pngquant FLAGS`` on each photo (one call each, as a script would); the files written."""
    out.mkdir()
    written = {}
    for photo in photos:
        target = out / photo.name
        done = subprocess.run(
            [tool("pngquant"), *flags, "--force", "--output", str(target), str(photo)],
            capture_output=True,
            check=False,
        )
        if done.returncode not in (0, EXIT_QUALITY):
            raise SystemExit(f"pngquant failed on {photo}: {done.stderr.decode().strip()}")
        if done.returncode == 0:
            written[photo.stem] = target
    return written


def run_colorquant(photos: list[Path], flags: list[str], out: Path) -> dict[str, Path]:
    """One ``colorquant quantize FLAGS -d OUT`` call over all the photos; the files written."""
    command = [tool("colorquant"), "quantize", *flags, "-d", str(out), *map(str, photos)]
    done = subprocess.run(command, capture_output=True, check=False)
    if done.returncode not in (0, EXIT_QUALITY):
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode().strip()}")
    return {p.stem: out / f"{p.stem}.png" for p in photos if (out / f"{p.stem}.png").exists()}


def fewest_colors(photo: Path, target_psnr: float) -> int:
    """The fewest K in 2..256 whose ``colorquant quantize -k K`` output reaches ``target_psnr``
    (256 if none does): a bisection, PSNR rising with K."""
    import colorquant as cq
    from colorquant.cli.quantize import DEFAULT_FS_STRENGTH

    pixels = load_rgb(photo)

    def reaches(k: int) -> bool:
        result = cq.quantize(pixels, k, dither="fs", dither_strength=DEFAULT_FS_STRENGTH)
        return cq.psnr(pixels, result.to_numpy()) >= target_psnr

    low, high = 2, 256
    if not reaches(high):
        return high
    while low < high:
        middle = (low + high) // 2
        if reaches(middle):
            high = middle
        else:
            low = middle + 1
    return low


def equal_psnr(
    photos: list[Path], theirs: dict[str, Scores], out: Path, margin: float = 0.3
) -> dict[str, Path]:
    """Per photo pngquant wrote, ``colorquant quantize -k K`` at the fewest K within ``margin``
    dB of pngquant's PSNR; the files written."""
    out.mkdir()
    written = {}
    for photo in photos:
        if photo.stem not in theirs:
            continue
        k = fewest_colors(photo, theirs[photo.stem]["PSNR"] - margin)
        target = out / photo.name
        command = [tool("colorquant"), "quantize", "-k", str(k), "-o", str(target), str(photo)]
        subprocess.run(command, capture_output=True, check=True)
        written[photo.stem] = target
    return written


def score(judge: Judge, path: Path) -> Scores:
    """The bytes, colors and metrics of one written file against its original."""
    numbers = judge(load_rgb(path))
    numbers["bytes"] = float(path.stat().st_size)
    numbers["colors"] = float(_colors(path))
    return numbers


def compare(
    ours: dict[str, Scores], theirs: dict[str, Scores], quality_cell: bool
) -> tuple[list[str], int]:
    """One table row's cells for a colorquant variant against pngquant; the photos compared."""
    both = sorted(set(ours) & set(theirs))
    if not both:
        return ["-"] * (len(METRICS) + 3 + quality_cell), 0
    total = sum(ours[s]["bytes"] for s in both) / sum(theirs[s]["bytes"] for s in both)
    cells = [f"{total:.3f}"]
    for metric in METRICS:
        mine = statistics.fmean(ours[s][metric] for s in both)
        other = statistics.fmean(theirs[s][metric] for s in both)
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        wins = sum(sign * (ours[s][metric] - theirs[s][metric]) > 0 for s in both)
        cells.append(f"{mine / other:.3f} ({wins}/{len(both)})")
    colors = statistics.median(ours[s]["colors"] for s in both)
    cells.append(f"{colors:g} / {statistics.median(theirs[s]['colors'] for s in both):g}")
    if quality_cell:
        gap = [ours[s]["PSNR"] - theirs[s]["PSNR"] for s in both]
        within = sum(g >= -0.3 for g in gap)
        cells.append(f"{statistics.fmean(gap):+.2f} dB ({within}/{len(both)})")
    return cells, len(both)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--second-set", action="store_true", help="_common.SECOND_SET's photos")
    parser.add_argument("--strength", default="", help="extra --dither-strength values, e.g. 1.0")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="extra colorquant flags to compare, one variant each, e.g. --variant=--keep-hues",
    )
    parser.add_argument("--cells", default=",".join(CELLS), help="comma list of cell names")
    parser.add_argument("--limit", type=int, default=None, help="the first N photos only")
    parser.add_argument("--out", type=Path, default=None, help="Markdown report to write")
    args = parser.parse_args()
    strengths = [s for s in args.strength.split(",") if s]
    cells = [c.strip() for c in args.cells.split(",")]
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        raise SystemExit(f"--cells: unknown {unknown}; known: {list(CELLS)}")
    load = load_average()
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = write_second_set(tmp / "photos") if args.second_set else args.images
        photos = list_images(folder, args.limit)
        judges = {p.stem: Judge(load_rgb(p)) for p in photos}
        title = "second set" if args.second_set else str(folder)
        lines += report_header(f"Against pngquant, {len(photos)} photos ({title})", 0, "cpu", load)
        headers = ["colorquant", "bytes", *METRICS, "colors (median) ours / its"]
        for n, cell in enumerate(cells):
            our_flags, their_flags = CELLS[cell]
            quality_cell = cell.startswith("--quality")
            theirs_files = run_pngquant(photos, their_flags, tmp / f"pq{n}")
            theirs = {s: score(judges[s], f) for s, f in theirs_files.items()}
            rows = []
            compared = 0
            variants = [
                "",
                *(f"--dither-strength {s}" for s in strengths),
                *args.variant,
            ]
            for v, variant in enumerate(variants):
                out = tmp / f"cq{n}-{v}"
                ours_files = run_colorquant(photos, [*our_flags, *variant.split()], out)
                ours = {s: score(judges[s], f) for s, f in ours_files.items()}
                row, compared = compare(ours, theirs, quality_cell)
                name = variant or "default"
                rows.append([name, *row])
                missing = len(photos) - len(ours)
                print(f"{cell} {name}: {row} ({missing} refused)", file=sys.stderr, flush=True)
            if quality_cell:
                ours_files = equal_psnr(photos, theirs, tmp / f"cq{n}-equal")
                ours = {s: score(judges[s], f) for s, f in ours_files.items()}
                row, _ = compare(ours, theirs, quality_cell)
                rows.append(["-k K within 0.3 dB of its PSNR", *row])
                print(f"{cell} equal PSNR: {row}", file=sys.stderr, flush=True)
            lines += ["", f"### {cell}", ""]
            lines.append(
                f"pngquant wrote {len(theirs)} of {len(photos)}; compared on {compared}. "
                "Bytes: total, ours / its; metrics: our mean / its mean (photos where ours is "
                "better)."
            )
            lines.append("")
            table_headers = headers + (["PSNR ours − its (≥ −0.3 dB)"] if quality_cell else [])
            lines.append(markdown_table(table_headers, rows))
    text = "\n".join(lines) + "\n"
    if args.out is not None:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
