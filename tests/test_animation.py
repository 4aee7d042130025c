"""Animations: GIF and APNG in and out, one palette for all frames, timing and loop kept."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from PIL import Image

import colorquant as cq
from colorquant.animation import animation_bytes, is_animated, load_animation_bytes
from colorquant.cli import main

H, W, T = 24, 32, 5
DURATIONS = [40, 50, 60, 70, 80]


def video(alpha: bool = False) -> np.ndarray:
    """``(T, H, W, 3)`` frames of a moving gradient (``(T, H, W, 4)`` with a moving hole)."""
    y, x = np.mgrid[0:H, 0:W]
    frames = []
    for t in range(T):
        rgb = np.stack([(x * 8 + t * 30) % 256, y * 10, np.full_like(x, t * 50)], axis=2)
        if alpha:
            a = np.where(np.hypot(y - H / 2, x - 6 - 4 * t) < 5, 0, 255)
            a[0] = 128  # a translucent row
            rgb = np.dstack([rgb, a])
        frames.append(rgb.astype(np.uint8))
    return np.stack(frames)


def write_animation(path: Path, frames: np.ndarray, loop: int = 2) -> Path:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=DURATIONS, loop=loop)
    return path


def read_frames(path: Path | bytes) -> tuple[list[np.ndarray], list[float], object]:
    with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as image:
        frames, durations = [], []
        for t in range(image.n_frames):
            image.seek(t)
            frames.append(np.asarray(image.convert("RGBA")))
            durations.append(image.info["duration"])
        return frames, durations, image.info.get("loop")


# -- Python -----------------------------------------------------------------------------------


def test_one_palette_for_all_frames() -> None:
    frames = video()
    shared = cq.quantize_animation(frames, 8, color_space="rgb")
    fitted = cq.Quantizer(8, color_space="rgb").fit(list(frames)).palette
    rows = {tuple(c) for c in fitted.tolist()}
    for r in shared:
        assert {tuple(c) for c in r.palette.tolist()} <= rows
    own = cq.quantize_animation(frames, 8, color_space="rgb", shared=False)
    for t in range(T):  # a palette per frame fits that frame better, and differs
        assert own[t].mse <= shared[t].mse + 1e-9
    assert len({tuple(map(tuple, r.palette.tolist())) for r in own}) > 1


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_save_keeps_timing_loop_and_pixels(tmp_path: Path, suffix: str) -> None:
    results = cq.quantize_animation(video(), 16)
    path = tmp_path / f"a{suffix}"
    size = cq.save_animation(results, path, durations=DURATIONS, loop=3)
    assert size == path.stat().st_size
    frames, durations, loop = read_frames(path)
    assert len(frames) == T and durations == DURATIONS and loop == 3
    for t in range(T):
        np.testing.assert_array_equal(frames[t][..., :3], results[t].to_numpy())
    with Image.open(path) as image:
        assert image.mode == "P"
    assert (tmp_path / f"a{suffix}").read_bytes() == animation_bytes(
        results, suffix, durations=DURATIONS, loop=3
    )
    with pytest.raises(FileExistsError):
        cq.save_animation(results, path)


def test_tensor_frames_export(tmp_path: Path) -> None:
    # A diffusers-style (T, 3, H, W) float video to a GIF with one palette, ordered dither.
    x = torch.from_numpy(video()).permute(0, 3, 1, 2).float() / 255.0
    results = cq.quantize_animation(x, 32, dither="ordered")
    cq.save_animation(results, tmp_path / "v.gif", durations=40)
    frames, durations, _ = read_frames(tmp_path / "v.gif")
    assert len(frames) == T and durations == [40] * T
    # Ordered dithering is the same pattern on every frame: a static area stays identical.
    static = video()
    static[:, :, :8] = static[0, :, :8]
    same = cq.quantize_animation(static, 8, dither="ordered")
    for r in same[1:]:
        np.testing.assert_array_equal(r.to_numpy()[:, :8], same[0].to_numpy()[:, :8])


def test_rgba_animation_roundtrip(tmp_path: Path) -> None:
    frames = video(alpha=True)
    results = cq.quantize_animation(frames, 16)
    cq.save_animation(results, tmp_path / "a.png")
    back, _, _ = read_frames(tmp_path / "a.png")
    for t in range(T):
        np.testing.assert_array_equal(back[t][..., 3] == 0, frames[t][..., 3] == 0)
        np.testing.assert_array_equal(back[t], results[t].to_numpy())
    with pytest.raises(cq.InputError, match="GIF has no translucency"):
        cq.save_animation(results, tmp_path / "a.gif")


def test_load_animation(tmp_path: Path) -> None:
    path = write_animation(tmp_path / "a.gif", video())
    assert is_animated(path) and not is_animated(b"not an image")
    animation = cq.load_animation(path)
    assert len(animation.frames) == T and animation.durations == DURATIONS
    assert animation.loop == 2 and animation.frames[0].shape == (H, W, 3)
    # Each frame as a viewer shows it (the GIF writer reduced the colors: compare with Pillow).
    np.testing.assert_array_equal(animation.frames[2], read_frames(path)[0][2][..., :3])
    same = load_animation_bytes(path.read_bytes())
    assert same.durations == DURATIONS


def test_bad_frames_and_options(tmp_path: Path) -> None:
    results = cq.quantize_animation(video(), 4)
    with pytest.raises(cq.InputError, match="one value per frame"):
        cq.save_animation(results, tmp_path / "a.gif", durations=[1, 2])
    with pytest.raises(cq.InputError, match="an animation is written as"):
        cq.save_animation(results, tmp_path / "a.jpg")
    with pytest.raises(cq.InputError, match="one size"):
        cq.quantize_animation([video()[0], video()[0][:5]], 4)
    with pytest.raises(cq.InputError, match="frames tensor must be"):
        cq.quantize_animation(torch.zeros(2, 5, 4, 4), 4)
    per_frame = cq.quantize_animation(video(), 200, shared=False, color_space="rgb")
    with pytest.raises(cq.InputError, match="APNG has one palette of at most 256"):
        cq.save_animation(per_frame, tmp_path / "many.png")
    assert not (tmp_path / "many.png").exists()


# -- the command line -------------------------------------------------------------------------


def run(*args: object, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=stdin, catch_exceptions=False)


def test_cli_gif_to_apng_and_back(tmp_path: Path) -> None:
    src = write_animation(tmp_path / "a.gif", video())
    result = run("quantize", src, "-k", "8", "--json")
    assert result.exit_code == 0, result.output
    assert '"frames": 5' in result.stdout
    frames, durations, loop = read_frames(tmp_path / "a-cq.png")
    assert len(frames) == T and durations == DURATIONS and loop == 2
    colors = {tuple(c) for f in frames for c in f.reshape(-1, 4).tolist()}
    assert len(colors) <= 8  # one palette of 8 for all frames
    out = tmp_path / "b.gif"
    assert run("quantize", tmp_path / "a-cq.png", "-k", "8", "-o", out).exit_code == 0
    assert read_frames(out)[1] == DURATIONS


def test_cli_stdin_animation(tmp_path: Path) -> None:
    src = write_animation(tmp_path / "a.gif", video())
    result = run("quantize", "-", "-k", "8", "--format", "gif", stdin=src.read_bytes())
    assert result.exit_code == 0
    frames, durations, _ = read_frames(result.stdout_bytes)
    assert len(frames) == T and durations == DURATIONS


def test_cli_per_frame_palette(tmp_path: Path) -> None:
    src = write_animation(tmp_path / "a.gif", video())
    out = tmp_path / "p.gif"
    assert run("quantize", src, "-k", "4", "--per-frame-palette", "-o", out).exit_code == 0
    frames, _, _ = read_frames(out)
    palettes = [{tuple(c) for c in f.reshape(-1, 4).tolist()} for f in frames]
    assert all(len(p) <= 4 for p in palettes) and len({frozenset(p) for p in palettes}) > 1


def test_cli_quality_on_animation(tmp_path: Path) -> None:
    src = write_animation(tmp_path / "a.gif", video())
    result = run("quantize", src, "-k", "256", "--quality", "0-15", "-o", tmp_path / "q.png")
    assert result.exit_code == 0, result.output
    frames, _, _ = read_frames(tmp_path / "q.png")
    assert len({tuple(c) for f in frames for c in f.reshape(-1, 4).tolist()}) < 256
    too_high = run("quantize", src, "-k", "2", "--quality", "90-100", "-o", tmp_path / "n.png")
    assert too_high.exit_code == 99 and not (tmp_path / "n.png").exists()


def test_cli_broken_frame(tmp_path: Path) -> None:
    data = write_animation(tmp_path / "a.gif", video()).read_bytes()
    broken = tmp_path / "broken.gif"
    broken.write_bytes(data[: len(data) * 3 // 4])
    result = run("quantize", broken, "-o", tmp_path / "o.png")
    assert result.exit_code == 1
    assert "frame" in result.stderr and "cannot be decoded" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()
