"""The time dithering adds: colorquant's map without and with each dither, against libimagequant.

For every image and K: colorquant fits the palette once (not timed), then maps the image with
``dither="none"``, ``"fs"`` and ``"ordered"`` (timed); libimagequant quantizes the image with
dithering level 0 and 1 (its whole call, timed: its remap is not exposed alone). Every call is
timed ``--repeat`` times, one after the other for the two tools, and its fastest time kept (the
least disturbed by other work on a shared machine). The medians over the images and the extra
time of dithering (for Floyd-Steinberg also its rate in MP/s) are reported.

    .venv/bin/python benchmarks/dither_speed.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

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
)

DITHERS = ("none", "fs", "ordered")


def seconds(fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def fastest(repeat: int, fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    return min(seconds(fn, *args, **kwargs) for _ in range(repeat))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--ks", default="16,256")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3, help="timings of each call (the fastest kept)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "dither_speed.md")
    args = p.parse_args()
    import imagequant

    load_at_start = load_average()
    set_threads(args.threads)
    images = [load_rgb(path) for path in list_images(args.images, args.limit)]
    megapixels = statistics.median(img.shape[0] * img.shape[1] / 1e6 for img in images)
    rows = []
    for k in parse_int_list("--ks", args.ks, 2, 256):
        times: dict[str, list[float]] = {name: [] for name in (*DITHERS, "iq 0", "iq 1")}
        for img in images:
            q = cq.Quantizer(k).fit(img)
            q.apply(img, dither="fs")  # warm-up
            for dither in DITHERS:
                times[dither].append(fastest(args.repeat, q.apply, img, dither=dither))
            pil = Image.fromarray(img).convert("RGBA")
            for level in (0, 1):
                times[f"iq {level}"].append(
                    fastest(
                        args.repeat,
                        imagequant.quantize_pil_image,
                        pil,
                        dithering_level=float(level),
                        max_colors=k,
                    )
                )
        med = {name: statistics.median(ts) for name, ts in times.items()}
        extra, iq_extra = med["fs"] - med["none"], med["iq 1"] - med["iq 0"]
        rows.append(
            [
                str(k),
                " / ".join(f"{1000 * med[d]:.1f}" for d in DITHERS),
                f"{1000 * extra:.0f} ms ({megapixels / extra:.1f} MP/s)",
                f"{1000 * (med['ordered'] - med['none']):.0f} ms",
                f"{1000 * med['iq 0']:.1f} / {1000 * med['iq 1']:.1f}",
                f"{1000 * iq_extra:.0f} ms ({megapixels / iq_extra:.1f} MP/s)",
            ]
        )
        print(rows[-1], file=sys.stderr)
    table = markdown_table(
        ["K", "colorquant map ms: none / fs / ordered", "extra for fs", "extra for ordered",
         "libimagequant ms: 0 / 1", "its extra"],
        rows,
        "llllll",
    )  # fmt: skip
    header = report_header("Dithering time", args.threads, "cpu", load_at_start)
    header.append(f"- timings: the fastest of {args.repeat} per call, medians over the images")
    text = "\n".join(header) + f"\n\n{table}\n"
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
