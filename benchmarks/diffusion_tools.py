"""Animations and batches as diffusion users make them: colorquant against their tools' defaults.

1. A 24-frame clip with a still background (a Kodak photo, cropped) and a moving, changing
   object, written as a GIF by:

   - ``diffusers.utils.export_to_gif`` (Pillow picks a palette per frame);
   - ComfyUI's core ``ImageQuantize`` behaviour (Pillow median cut per frame, 256 colors, no
     dither: its default), saved as a GIF with each frame's palette;
   - ``colorquant.diffusers.export_to_gif`` (one palette for every frame), undithered and with
     ordered dithering; and ``export_to_apng``.

   For each: the file's bytes, the flicker of the still part (the mean absolute change, in 8-bit
   levels, between consecutive frames of the pixels the object never covers: 0 means still),
   PSNR against the frames, and the time to write.

2. A batch of four 1024x1024 images through the ColorQuant Quantize node of the ComfyUI pack
   (loaded as ComfyUI loads it), K = 256, shared palette and per-image palettes: seconds per
   image on the device given (``--device cuda`` on a GPU).

    .venv/bin/python benchmarks/diffusion_tools.py            # writes benchmarks/diffusion_tools.md
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageSequence

from _common import (
    BENCH_DIR,
    DEFAULT_IMAGES,
    REPO_ROOT,
    load_average,
    load_rgb,
    markdown_table,
    report_header,
    set_threads,
)
from colorquant.diffusers import export_to_apng, export_to_gif

FRAMES = 24
FPS = 12


def make_clip(background: np.ndarray, frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames of ``background`` with a disk of changing colors crossing its upper third; and the
    ``(H, W)`` mask of the pixels the disk never covers (the still part)."""
    height, width = background.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width]
    radius = height / 8
    still = np.ones((height, width), bool)
    clip = []
    for t in range(frames):
        f = background.copy()
        cx = radius + t * (width - 2 * radius) / max(frames - 1, 1)
        disk = (xx - cx) ** 2 + (yy - height / 3) ** 2 < radius**2
        pattern = np.stack(
            [
                255 * (0.5 + 0.5 * np.sin(xx / 9 + t / 2)),
                255 * (0.5 + 0.5 * np.cos(yy / 7 - t / 3)),
                np.full(xx.shape, (37 * t) % 256),
            ],
            axis=-1,
        )
        f[disk] = pattern[disk].astype(np.uint8)
        still &= ~disk
        clip.append(f)
    return clip, still


def comfyui_image_quantize_gif(frames: list[np.ndarray], path: str, fps: int) -> str:
    """ComfyUI 0.3.64's ImageQuantize (colors=256, dither none) per frame, saved as a GIF."""
    images = []
    for f in frames:
        im = Image.fromarray(f)
        pal_im = im.quantize(colors=256)
        images.append(im.quantize(palette=pal_im, dither=Image.Dither.NONE))
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
    return path


def read_frames(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.stack(
            [np.asarray(f.convert("RGB")).astype(np.int64) for f in ImageSequence.Iterator(im)]
        )


def clip_rows(frames: list[np.ndarray], still: np.ndarray, folder: str) -> list[list[str]]:
    from diffusers.utils.export_utils import export_to_gif as diffusers_export_to_gif

    pil = [Image.fromarray(f) for f in frames]
    writers: list[tuple[str, Callable[[str], str], str]] = [
        (
            "diffusers.utils.export_to_gif",
            lambda p: diffusers_export_to_gif(pil, p, fps=FPS),
            ".gif",
        ),
        (
            "ComfyUI ImageQuantize (median cut per frame) + GIF",
            lambda p: comfyui_image_quantize_gif(frames, p, FPS),
            ".gif",
        ),
        ("colorquant export_to_gif", lambda p: export_to_gif(pil, p, fps=FPS), ".gif"),
        (
            "colorquant export_to_gif, dither='ordered'",
            lambda p: export_to_gif(pil, p, fps=FPS, dither="ordered"),
            ".gif",
        ),
        ("colorquant export_to_apng", lambda p: export_to_apng(pil, p, fps=FPS), ".png"),
    ]
    reference = np.stack(frames).astype(np.int64)
    rows = []
    for number, (name, write, suffix) in enumerate(writers):
        path = os.path.join(folder, f"{number}{suffix}")
        start = time.perf_counter()
        write(path)
        seconds = time.perf_counter() - start
        got = read_frames(path)
        flicker = float(np.abs(np.diff(got, axis=0))[:, still].mean())
        mse = float(((got - reference) ** 2).mean())
        rows.append(
            [
                name,
                f"{os.path.getsize(path):,}",
                f"{flicker:.2f}",
                f"{10 * np.log10(255**2 / mse):.2f}",
                f"{seconds:.2f}",
            ]
        )
    return rows


def load_pack() -> Any:
    """The ComfyUI pack's nodes module, loaded as ComfyUI loads ``custom_nodes/<pack>``."""
    pack = REPO_ROOT / "integrations" / "comfyui"
    name = str(pack).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, pack / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return sys.modules[name + ".nodes"]


def node_rows(device: str, repeat: int) -> list[list[str]]:
    nodes = load_pack()
    quantize = nodes.ColorQuantQuantize().quantize
    generator = torch.Generator().manual_seed(0)
    # Four 1024x1024 images with the structure of photos: smooth fields plus noise.
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 1024), torch.linspace(0, 1, 1024), indexing="ij")
    base = torch.stack([xx, yy, 1 - xx * yy], dim=-1)
    batch = torch.stack(
        [
            (base * (0.6 + 0.1 * b) + 0.08 * torch.rand(1024, 1024, 3, generator=generator))
            for b in range(4)
        ]
    ).clamp(0, 1)
    image = batch.to(device)
    rows = []
    for shared in (True, False):
        times = []
        for _ in range(repeat):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            out, _, _ = quantize(image, 256, "hybrid", "none", 1.0, shared, 0)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        per_image = min(times) / 4
        rows.append(
            [
                "one palette for the batch" if shared else "a palette per image",
                device,
                f"{per_image:.2f}",
                f"{len(out.reshape(-1, 3).unique(dim=0))}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "diffusion_tools.md")
    args = parser.parse_args()
    set_threads(args.threads)
    load = load_average()
    kodak = args.images / "kodim23.png"
    if kodak.is_file():
        background = load_rgb(kodak)[64:448, 64:576]  # 512x384
        source = f"{kodak.name} cropped to 512x384"
    else:
        sys.path.insert(0, str(REPO_ROOT / "tests"))
        from conftest import make_photo_like

        background = make_photo_like(384, 512)
        source = "a synthetic photo-like 512x384 image (no Kodak folder)"
    frames, still = make_clip(background, FRAMES)
    with tempfile.TemporaryDirectory() as folder:
        clip = clip_rows(frames, still, folder)
    nodes = node_rows(args.device, args.repeat)
    lines = [
        *report_header("Diffusion users' tools (issue 15)", args.threads, args.device, load),
        "",
        f"{FRAMES} frames at {FPS} fps: {source}, a disk of changing colors crossing it "
        f"({int((~still).sum())} of {still.size} pixels ever covered). Flicker: mean absolute "
        "change between consecutive frames of the pixels the disk never covers (8-bit levels; "
        "0 = still). K = 256 everywhere.",
        "",
        markdown_table(["writer", "bytes", "flicker", "PSNR dB", "seconds"], clip, "lrrrr"),
        "",
        "The ComfyUI ColorQuant Quantize node on a batch of four 1024x1024 images, K = 256, "
        "no dither (fastest of "
        f"{args.repeat} runs):",
        "",
        markdown_table(["palette", "device", "s / image", "colors in batch"], nodes, "llrr"),
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
