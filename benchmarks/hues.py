"""Hues where people look: before/after crops of ``--keep-hues`` at low K against pngquant.

For each photo below, the three commands as people run them (``pngquant K``, ``colorquant
quantize -k K`` and the same with ``--keep-hues``, each with its default dither), a crop where a
small region's hue is at stake (the cat's green eye, the parrot's face, a hat's red), enlarged 2x
(nearest) side by side with the original: ``benchmarks/figures/lowk/hues_<name>.png``. Prints the
color ``--keep-hues`` kept and each output's PSNR and mean / 99th-percentile ΔE00 after a sigma 2
blur (``lowk_dither.Judge``).

    python benchmarks/hues.py --k 16
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from _common import BENCH_DIR, DEFAULT_IMAGES, load_rgb, tool, write_second_set
from lowk_dither import Judge

CROPS = {  # photo -> (top, bottom, left, right) of the crop
    "chelsea": (60, 200, 100, 330),
    "astronaut": (20, 240, 120, 380),
    "kodim23": (40, 260, 180, 520),
}
FIG_DIR = BENCH_DIR / "figures" / "lowk"


def outputs(photo: Path, k: int, tmp: Path) -> dict[str, np.ndarray]:
    """The original and the three commands' outputs of ``photo``, decoded to RGB."""
    runs = {
        "pngquant": [tool("pngquant"), str(k), "--force", "--output"],
        "colorquant": [tool("colorquant"), "quantize", "-k", str(k), "--force", "-o"],
        "--keep-hues": [tool("colorquant"), "quantize", "-k", str(k), "--keep-hues", "-o"],
    }
    shown = {"original": load_rgb(photo)}
    for name, command in runs.items():
        out = tmp / f"{photo.stem}-{name.strip('-')}.png"
        subprocess.run([*command, str(out), str(photo)], check=True, capture_output=True)
        shown[name] = load_rgb(out)
    return shown


def strip(shown: dict[str, np.ndarray], box: tuple[int, int, int, int]) -> np.ndarray:
    """The crops side by side, 2 px white between them, enlarged 2x (nearest)."""
    top, bottom, left, right = box
    parts = [
        np.pad(img[top:bottom, left:right], ((2, 2), (2, 2), (0, 0)), constant_values=255)
        for img in shown.values()
    ]
    joined = np.concatenate(parts, axis=1)
    return np.asarray(joined.repeat(2, axis=0).repeat(2, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=16)
    args = parser.parse_args()
    FIG_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        second = write_second_set(tmp / "photos")
        for name, box in CROPS.items():
            photo = second / f"{name}.png"
            if not photo.exists():
                photo = DEFAULT_IMAGES / f"{name}.png"
            shown = outputs(photo, args.k, tmp)
            judge = Judge(shown["original"])
            for label in ("pngquant", "colorquant", "--keep-hues"):
                m = judge(shown[label])
                print(
                    f"{name} {label}: PSNR {m['PSNR']:.2f} dB, blurred dE00 {m['dE b2']:.3f}, "
                    f"its 99th percentile {m['dE99 b2']:.2f}"
                )
            figure = FIG_DIR / f"hues_{name}.png"
            Image.fromarray(strip(shown, box)).save(figure, optimize=True)
            print(f"wrote {figure.relative_to(BENCH_DIR.parent)}")


if __name__ == "__main__":
    main()
