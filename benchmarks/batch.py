"""Batches of tensors: images/s of ``quantize_batch`` and of the palette layer.

1. A batch of 64 images of 256x256 (crops of the Kodak photos) at K = 16 and 256:
   ``colorquant.quantize_batch`` (default space, and ``rgb``) against a Python loop of
   ``colorquant.quantize`` and a loop of libimagequant (``imagequant``, no dithering) over the
   same images, with the mean PSNR beside each.
2. The layer: forward + backward time of ``colorquant.nn.PaletteQuantize`` (``ste`` and ``soft``)
   on a ``(16, 3, 256, 256)`` float32 batch, against a plain ``torch.cdist`` + ``argmin`` with a
   straight-through gradient, the usual hand-written baseline.

Times are medians of ``--repeat`` runs after a warm-up, wall time, ``--threads`` threads.
``--device cuda`` runs the same on a GPU (the batch and the layer on it); ``--backend torch``
runs ``quantize_batch``'s batched torch stages on any device (CPU tensors included).

    .venv/bin/python benchmarks/batch.py
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

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
from colorquant.nn import PaletteQuantize


def crops(folder: Path, count: int, size: int) -> np.ndarray:
    """``count`` crops of ``size x size`` from the images of ``folder``: ``(count, H, W, 3)``."""
    out: list[np.ndarray] = []
    for path in list_images(folder, None):
        img = load_rgb(path)
        for top in range(0, img.shape[0] - size + 1, size):
            for left in range(0, img.shape[1] - size + 1, size):
                out.append(img[top : top + size, left : left + size])
                if len(out) == count:
                    return np.stack(out)
    raise SystemExit(f"{folder}: only {len(out)} crops of {size}x{size}, {count} asked for")


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def imagequant_outputs(images: np.ndarray, k: int) -> list[np.ndarray]:
    import imagequant

    return [
        np.asarray(
            imagequant.quantize_pil_image(
                Image.fromarray(img).convert("RGBA"), dithering_level=0.0, max_colors=k
            ).convert("RGB")
        )
        for img in images
    ]


def batch_rows(
    images: np.ndarray, ks: list[int], repeat: int, device: str, backend: str
) -> list[list[str]]:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    n = images.shape[0]

    def batch_hybrid(k: int) -> list[float]:
        out = cq.quantize_batch(x, k, backend=backend)  # type: ignore[arg-type]
        return [float(v) for v in out.psnr.tolist()]

    def batch_rgb(k: int) -> list[float]:
        out = cq.quantize_batch(x, k, color_space="rgb", backend=backend)  # type: ignore[arg-type]
        return [float(v) for v in out.psnr.tolist()]

    def loop_quantize(k: int) -> list[float]:
        return [cq.quantize(img, k, device=device).psnr for img in images]

    def loop_imagequant(k: int) -> list[float]:
        outs = imagequant_outputs(images, k)
        return [cq.psnr(img, out) for img, out in zip(images, outs, strict=True)]

    cases: list[tuple[str, Callable[[int], object], Callable[[int], list[float]]]] = [
        ("quantize_batch (hybrid)", batch_hybrid, batch_hybrid),
        ("quantize_batch (rgb)", batch_rgb, batch_rgb),
        ("loop of quantize (hybrid)", loop_quantize, loop_quantize),
        ("loop of libimagequant", lambda k: imagequant_outputs(images, k), loop_imagequant),
    ]
    rows = []
    for k in ks:
        rates = []
        for name, run, psnr in cases:
            rate = n / timed(functools.partial(run, k), repeat)
            rates.append(rate)
            rows.append([str(k), name, f"{rate:,.1f}", f"{statistics.fmean(psnr(k)):.2f}"])
            print(f"K={k} {name}: {rate:.1f} images/s", file=sys.stderr)
        for row, rate in zip(rows[-len(cases) :], rates, strict=True):
            row.append(f"{rate / rates[-1]:.2f}")
    return rows


def baseline_ste(x: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """What people write by hand: cdist + argmin over all pixels, straight-through gradient."""
    flat = x.movedim(1, -1).reshape(-1, 3)
    index = torch.cdist(flat, palette).argmin(1)
    out = palette[index] + (flat - flat.detach())
    return out.reshape(x.shape[0], x.shape[2], x.shape[3], 3).movedim(-1, 1)


def layer_rows(images: np.ndarray, ks: list[int], repeat: int, device: str) -> list[list[str]]:
    x0 = torch.from_numpy(images[:16]).permute(0, 3, 1, 2).float().div(255).to(device)
    rows = []
    for k in ks:
        palette = torch.rand(k, 3, device=device)

        def step(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
            x = x0.clone().requires_grad_(True)
            fn(x).square().mean().backward()  # type: ignore[no-untyped-call]
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        def baseline(x: torch.Tensor, p: torch.Tensor = palette) -> torch.Tensor:
            return baseline_ste(x, p)

        cases: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "cdist + argmin (baseline, RGB)": baseline,
            "PaletteQuantize ste, rgb": PaletteQuantize(palette=palette, color_space="rgb"),
            "PaletteQuantize ste, hybrid": PaletteQuantize(palette=palette),
            "PaletteQuantize soft, rgb": PaletteQuantize(
                palette=palette, color_space="rgb", mode="soft", temperature=50.0
            ),
        }
        base = None
        for name, fn in cases.items():
            seconds = timed(lambda fn=fn: step(fn), repeat)  # type: ignore[misc]
            base = base or seconds
            rows.append([str(k), name, f"{1000 * seconds:,.0f}", f"{seconds / base:.2f}"])
            print(f"K={k} {name}: {1000 * seconds:.0f} ms", file=sys.stderr)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    p.add_argument("--count", type=int, default=64)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--ks", default="16,256")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "torch"],
        help="quantize_batch's backend: torch runs the batched torch stages on any device",
    )
    p.add_argument("--no-layer", action="store_true", help="skip the layer's table")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "batch.md")
    args = p.parse_args()
    load_at_start = load_average()
    set_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    images = crops(args.images, args.count, args.size)
    batch = batch_rows(images, ks, args.repeat, args.device, args.backend)
    layer = [] if args.no_layer else layer_rows(images, ks, args.repeat, args.device)
    text = "\n".join(
        [
            *report_header("Batches of tensors", args.threads, args.device, load_at_start),
            "",
            f"### quantize_batch: {args.count} images of {args.size}x{args.size} "
            f"(Kodak crops), device {args.device}, backend {args.backend}",
            "",
            markdown_table(
                ["K", "method", "images/s", "mean PSNR dB", "rate / libimagequant"], batch, "llrrr"
            ),
            "",
            f"### The layer: forward + backward, 16 images of {args.size}x{args.size}, float32",
            "",
            markdown_table(["K", "method", "ms per batch", "time / baseline"], layer, "llrr"),
            "",
            f"Medians of {args.repeat} runs after a warm-up.",
            "",
        ]
    )
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
