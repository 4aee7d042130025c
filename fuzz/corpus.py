"""Small, valid files of every format colorquant reads: the seeds that fuzzing mutates.

``samples()`` builds them in memory (no files are read or downloaded), so the fuzz harness and
the CI test (``tests/test_fuzz.py``) start from the same bytes. ``python fuzz/corpus.py DIR``
writes them to ``DIR`` as a seed corpus for the atheris targets (one sub-folder per target).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, features

#: Formats of the image samples (name -> file suffix).
IMAGE_SUFFIXES = {
    "png": ".png",
    "png_palette": ".png",
    "png_rgba": ".png",
    "png16": ".png",
    "apng": ".png",
    "gif": ".gif",
    "gif_anim": ".gif",
    "jpeg": ".jpg",
    "webp": ".webp",
    "webp_anim": ".webp",
    "tiff": ".tif",
    "tiff_deflate": ".tif",
}
ANIMATED = ("apng", "gif_anim", "webp_anim")


def _frames(height: int = 12, width: int = 16, count: int = 3) -> list[np.ndarray]:
    """``count`` RGBA frames of a moving gradient with a moving transparent hole."""
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for t in range(count):
        rgba = np.stack(
            [
                (x * 16 + t * 40) % 256,
                y * 20,
                np.full_like(x, 60 * t),
                np.where(np.hypot(y - height / 2, x - 4 - 3 * t) < 3, 0, 255),
            ],
            axis=2,
        )
        out.append(rgba.astype(np.uint8))
    return out


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def samples() -> dict[str, bytes]:
    """Name -> bytes of each sample: still and animated PNG, GIF, WebP; JPEG; TIFF."""
    frames = _frames()
    rgb = [Image.fromarray(f[..., :3]) for f in frames]
    rgba = [Image.fromarray(f) for f in frames]
    pal = [im.quantize(16) for im in rgb]
    out = {
        "png": _save(rgb[0], "PNG"),
        "png_palette": _save(pal[0], "PNG", transparency=0),
        "png_rgba": _save(rgba[0], "PNG"),
        "png16": _save(Image.fromarray(frames[0][..., 0].astype(np.uint16) * 257), "PNG"),
        "apng": _save(rgba[0], "PNG", save_all=True, append_images=rgba[1:], duration=40, loop=2),
        "gif": _save(pal[0], "GIF"),
        "gif_anim": _save(
            pal[0], "GIF", save_all=True, append_images=pal[1:], duration=[30, 40, 50], loop=1
        ),
        "jpeg": _save(rgb[0], "JPEG", quality=90),
        "tiff": _save(rgb[0], "TIFF"),
        "tiff_deflate": _save(rgba[0], "TIFF", compression="tiff_adobe_deflate"),
    }
    if features.check("webp"):
        out["webp"] = _save(rgb[0], "WEBP", lossless=True)
        out["webp_anim"] = _save(
            rgb[0], "WEBP", save_all=True, append_images=rgb[1:], duration=40, quality=80
        )
    return out


def npz_sample() -> bytes:
    """The ``.npz`` of ``colorquant.save_animation``: ``indices`` ``(T, H, W)``, ``palette``
    ``(K, 4)`` RGBA, ``durations`` and ``loop``."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        indices=rng.integers(0, 4, (3, 12, 16), dtype=np.uint8),
        palette=np.array(
            [[0, 0, 0, 0], [255, 0, 0, 255], [0, 255, 0, 255], [9, 9, 9, 128]], np.uint8
        ),
        durations=np.array([30, 40, 50]),
        loop=np.array(2),
    )
    return buffer.getvalue()


def palette_samples() -> dict[str, bytes]:
    """Name -> bytes of palette files: a GIMP palette (RGB and RGBA) and a hex list."""
    return {
        "gpl": b"GIMP Palette\nName: test\nColumns: 4\n# a comment\n"
        b"  0   0   0 black\n255 255 255\tWhite\n200  30  40 red\n",
        "gpl_rgba": b"GIMP Palette\nChannels: RGBA\n1 2 3 4 x\n255 0 0 128\n",
        "hex": b"#ff0000, 00ff00  # green\n#00f\n\n#123456 #abcdef\n",
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python fuzz/corpus.py DIR", file=sys.stderr)
        return 2
    root = Path(argv[1])
    targets = {
        "load_image_bytes": samples(),
        "load_animation": {**samples(), "npz": npz_sample()},
        "load_palette": {**palette_samples(), "png_palette": samples()["png_palette"]},
    }
    for target, files in targets.items():
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
    print(f"wrote seeds for {', '.join(targets)} under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
