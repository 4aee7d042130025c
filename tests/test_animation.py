"""Animations: GIF and APNG in and out, one palette for all frames, timing and loop kept."""

from __future__ import annotations

import dataclasses
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import colorquant as cq
from colorquant.animation import (
    animation_bytes,
    is_animated,
    load_animation_bytes,
)
from colorquant.cli import main
from colorquant.io import ImageFileError
from conftest import NEEDS_TORCH

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

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


def gif_structure(data: bytes) -> dict[str, object]:
    """A GIF's blocks parsed from its bytes (not by Pillow): the global table's rows, the
    Netscape loop count (``None``: no extension), every frame's delay in ms and how many frames
    carry a local color table."""
    assert data[:6] in (b"GIF87a", b"GIF89a")
    flags, pos = data[10], 13
    global_rows = 2 << (flags & 7) if flags & 0x80 else 0
    pos += 3 * global_rows
    loop, delays, local_tables, frames = None, [], 0, 0

    def sub_blocks(pos: int) -> tuple[list[bytes], int]:
        chunks = []
        while data[pos]:
            chunks.append(data[pos + 1 : pos + 1 + data[pos]])
            pos += 1 + data[pos]
        return chunks, pos + 1

    while data[pos] != 0x3B:  # the trailer
        if data[pos] == 0x21:  # an extension
            label = data[pos + 1]
            blocks, pos = sub_blocks(pos + 2)
            if label == 0xFF and blocks[0] == b"NETSCAPE2.0":
                loop = struct.unpack("<H", blocks[1][1:3])[0]
            elif label == 0xF9:  # graphic control: the delay in 10 ms units
                delays.append(struct.unpack("<H", blocks[0][1:3])[0] * 10)
        else:
            assert data[pos] == 0x2C, f"unexpected block {data[pos]:#x} at {pos}"
            frames += 1
            local = data[pos + 9]
            pos += 10
            if local & 0x80:
                local_tables += 1
                pos += 3 * (2 << (local & 7))
            _, pos = sub_blocks(pos + 1)  # after the LZW minimum code size
    return {
        "global_rows": global_rows,
        "loop": loop,
        "delays": delays,
        "local_tables": local_tables,
        "frames": frames,
    }


def apng_num_plays(data: bytes) -> int:
    """``num_plays`` of an APNG's ``acTL`` chunk, read from the bytes."""
    at = data.index(b"acTL")
    return int(struct.unpack(">II", data[at + 4 : at + 12])[1])


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
    # Three plays: a GIF's Netscape count is the repeats after the first play.
    assert len(frames) == T and durations == DURATIONS and loop == (2 if suffix == ".gif" else 3)
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
    # Netscape count 2: two repeats after the first play, three plays.
    assert animation.loop == 3 and animation.frames[0].shape == (H, W, 3)
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


# Plays asked for -> (GIF Netscape count, None: no extension; APNG num_plays).
LOOPS = {None: (None, 1), 0: (0, 0), 1: (None, 1), 2: (1, 2), 5: (4, 5)}


@pytest.mark.parametrize("loop", list(LOOPS))
def test_loop_is_the_number_of_plays_in_gif_and_apng(loop: int | None) -> None:
    results = cq.quantize_animation(video(), 8)
    netscape, num_plays = LOOPS[loop]
    gif = animation_bytes(results, ".gif", loop=loop)
    apng = animation_bytes(results, ".png", loop=loop)
    assert gif_structure(gif)["loop"] == netscape
    assert apng_num_plays(apng) == num_plays
    # What load_animation says the loop is, written again, plays the same in both formats.
    for data in (gif, apng):
        again = load_animation_bytes(data).loop
        assert gif_structure(animation_bytes(results, ".gif", loop=again))["loop"] == netscape
        assert apng_num_plays(animation_bytes(results, ".png", loop=again)) == num_plays
    with pytest.raises(cq.InputError, match=r"loop must be in 0\.\.65536"):
        animation_bytes(results, ".gif", loop=70000)
    with pytest.raises(cq.InputError, match="loop must be"):
        animation_bytes(results, ".png", loop=-1)


def gif_delays(durations: list[int]) -> object:
    """The delays (ms) of the GIF written with ``durations``, one frame each."""
    frames = np.stack([video()[t % T] for t in range(len(durations))])
    results = cq.quantize_animation(frames, 8)
    return gif_structure(animation_bytes(results, ".gif", durations=durations))["delays"]


def test_gif_delays_carry_the_rounding_and_are_never_zero() -> None:
    assert gif_delays([33] * 9) == [30, 40, 30, 30, 40, 30, 30, 30, 40]
    # 0, 4 and 5 ms show 10 ms each: the next frame gives the 21 ms back (109 ms in all).
    assert gif_delays([0, 4, 5, 100]) == [10, 10, 10, 80]
    results = cq.quantize_animation(video(), 8)
    delays = gif_structure(animation_bytes(results, ".gif", durations=33))["delays"]
    assert delays == [30, 40, 30, 30, 40]
    # Every frame starts within 5 ms of its time, so the total is kept to 5 ms.
    starts = np.cumsum(delays)
    assert np.abs(starts - 33 * np.arange(1, T + 1)).max() <= 5
    zero = gif_structure(animation_bytes(results, ".gif", durations=[0, 1, 5, 0, 2]))["delays"]
    assert min(zero) == 10  # type: ignore[type-var]
    # An APNG keeps milliseconds as they are.
    assert read_frames(animation_bytes(results, ".png", durations=33))[1] == [33] * T
    with pytest.raises(cq.InputError, match="at most 655350 ms"):
        animation_bytes(results, ".gif", durations=700_000)


def test_gif_with_a_shared_palette_has_one_color_table() -> None:
    results = cq.quantize_animation(video(), 16)
    data = animation_bytes(results, ".gif")
    blocks = gif_structure(data)
    n_colors = len({tuple(c) for r in results for c in r.palette.tolist()})
    assert blocks["frames"] == T and blocks["local_tables"] == 0
    assert n_colors <= blocks["global_rows"] < 2 * n_colors  # type: ignore[operator]
    frames, _, _ = read_frames(data)
    for t in range(T):
        np.testing.assert_array_equal(frames[t][..., :3], results[t].to_numpy())
    # Palettes per frame that fit 256 together share one table too; beyond, a table a frame.
    own = cq.quantize_animation(video(), 8, shared=False, color_space="rgb")
    assert gif_structure(animation_bytes(own, ".gif"))["local_tables"] == 0
    many = cq.quantize_animation(video(), 200, shared=False, color_space="rgb")
    data = animation_bytes(many, ".gif")
    assert gif_structure(data)["local_tables"] == T - 1
    for t, frame in enumerate(read_frames(data)[0]):
        np.testing.assert_array_equal(frame[..., :3], many[t].to_numpy())


def test_gif_transparency_with_one_color_table() -> None:
    # Frames whose transparent rows differ, and a transparent row black like an opaque one:
    # one transparent row in the table, the opaque colors kept.
    frames = video(alpha=True)
    frames[..., 3] = np.where(frames[..., 3] >= 128, 255, 0)
    frames[:, -4:, :, :] = [0, 0, 0, 255]  # opaque black
    frames[frames[..., 3] == 0] = [0, 0, 0, 0]
    results = cq.quantize_animation(frames, 16, shared=False)
    assert all((r.palette[:, 3] == 0).sum() == 1 for r in results)
    data = animation_bytes(results, ".gif")
    assert gif_structure(data)["local_tables"] == 0
    back = load_animation_bytes(data).frames
    for t in range(T):
        expected = results[t].to_numpy()
        np.testing.assert_array_equal(back[t][..., 3], expected[..., 3])
        opaque = expected[..., 3] == 255
        np.testing.assert_array_equal(back[t][opaque], expected[opaque])


def png_chunk(data: bytes, kind: bytes) -> bytes:
    at = data.index(kind) - 4
    (length,) = struct.unpack(">I", data[at : at + 4])
    return data[at + 8 : at + 8 + length]


def test_frames_sharing_one_palette_keep_its_rows_and_order(tmp_path: Path) -> None:
    # Every frame with the same palette P (its own order, a row unused, an opaque row black
    # like the transparent one): the files' palettes are P row for row, indices unchanged.
    frames = video(alpha=True)
    frames[..., 3] = np.where(frames[..., 3] >= 128, 255, 0)
    own = cq.quantize_animation(frames, 8, shared=False)
    colors = np.unique(np.concatenate([r.palette for r in own]), axis=0)
    clear = colors[:, 3] == 0
    shared = np.concatenate([colors[~clear][::-1], [[0, 0, 0, 0]], [[0, 0, 0, 255]]])
    shared = shared.astype(np.uint8)
    results = []
    for r in own:
        rows = [int(np.flatnonzero((shared == c).all(1) | ((c[3] == 0) & (shared[:, 3] == 0)))[0])
                for c in r.palette]  # fmt: skip
        indices = np.array(rows, np.uint8)[r.indices]
        results.append(dataclasses.replace(r, palette=shared, indices=indices))
    apng = animation_bytes(results, ".png")
    assert png_chunk(apng, b"PLTE") == shared[:, :3].tobytes()
    assert png_chunk(apng, b"tRNS") == shared[: len(shared) - 1, 3].tobytes()
    cq.save_animation(results, tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as saved:
        np.testing.assert_array_equal(saved["palette"], shared)
        np.testing.assert_array_equal(saved["indices"][2], results[2].indices)
    gif = animation_bytes(results, ".gif")
    table = gif[13 : 13 + 3 * len(shared)]
    assert table == shared[:, :3].tobytes() and gif_structure(gif)["local_tables"] == 0
    back = load_animation_bytes(gif).frames
    for t in range(T):
        np.testing.assert_array_equal(back[t][..., 3], results[t].to_numpy()[..., 3])


@pytest.mark.parametrize("loop", [None, 0, 3])
def test_npz_round_trip(tmp_path: Path, loop: int | None) -> None:
    frames = video(alpha=True)
    results = cq.quantize_animation(frames, 16)
    path = tmp_path / "a.npz"
    cq.save_animation(results, path, durations=DURATIONS, loop=loop)
    animation = cq.load_animation(path)
    assert animation.durations == DURATIONS and animation.loop == loop
    assert len(animation.frames) == T
    for t in range(T):
        np.testing.assert_array_equal(animation.frames[t], results[t].to_numpy())
    same = load_animation_bytes(path.read_bytes())
    np.testing.assert_array_equal(same.frames[2], animation.frames[2])


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


GOOD = {
    "indices": np.zeros((2, 3, 4), np.uint8),
    "palette": np.zeros((1, 3), np.uint8),
    "durations": np.array([10, 20]),
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"indices": None}, "no 'indices' array"),
        ({"indices": np.zeros((3, 4), np.uint8)}, "'indices' must have shape"),
        ({"indices": np.ones((2, 3, 4), np.uint8)}, "'indices' must lie in 0..0"),
        ({"palette": np.zeros((1, 2), np.uint8)}, "'palette' must have shape"),
        ({"palette": np.full((1, 3), 300)}, "colors must lie in 0..255"),
        ({"palette": np.zeros((1, 3), np.float32)}, "must hold integers"),
        ({"durations": np.array([10])}, "'durations' must be 2 milliseconds"),
        ({"loop": np.array([1, 2])}, "'loop' must be one number"),
        ({"indices": np.array([None] * 24, object).reshape(2, 3, 4)}, "must hold integers"),
    ],
)
def test_malformed_npz_is_one_clear_error(change: dict[str, object], message: str) -> None:
    arrays = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    data = npz_bytes(**arrays)  # type: ignore[arg-type]
    with pytest.raises(ImageFileError, match=message):
        load_animation_bytes(data, "x.npz")
    assert len(load_animation_bytes(npz_bytes(**GOOD)).frames) == 2


def test_npz_bomb_refused_before_decompressing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in {**GOOD, "indices": np.zeros((10, 100, 100), np.uint8)}.items():
            with archive.open(f"{name}.npy", "w") as fh:
                np.lib.format.write_array(fh, array)
    with pytest.raises(ImageFileError, match="decompression-bomb limit of 2,000 pixels"):
        load_animation_bytes(buffer.getvalue(), "bomb.npz")


def test_too_many_frames_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each frame is under Pillow's limit, all of them together are not.
    data = animation_bytes(cq.quantize_animation(video(), 4), ".gif")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2 * H * W)
    with pytest.raises(ImageFileError, match=r"frame 5 of 32x24 pixels is over the"):
        load_animation_bytes(data, "many.gif")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3 * H * W)
    assert len(load_animation_bytes(data).frames) == T


# -- the command line -------------------------------------------------------------------------


def run(*args: object, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=stdin, catch_exceptions=False)


def test_cli_gif_to_apng_and_back(tmp_path: Path) -> None:
    src = write_animation(tmp_path / "a.gif", video())
    result = run("quantize", src, "-k", "8", "--json")
    assert result.exit_code == 0, result.output
    assert '"frames": 5' in result.stdout
    frames, durations, loop = read_frames(tmp_path / "a-cq.png")
    # The GIF's Netscape count 2 is three plays: the APNG's num_plays.
    assert len(frames) == T and durations == DURATIONS and loop == 3
    colors = {tuple(c) for f in frames for c in f.reshape(-1, 4).tolist()}
    assert len(colors) <= 8  # one palette of 8 for all frames
    out = tmp_path / "b.gif"
    assert run("quantize", tmp_path / "a-cq.png", "-k", "8", "-o", out).exit_code == 0
    assert read_frames(out)[1] == DURATIONS
    assert gif_structure(out.read_bytes())["loop"] == 2


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
