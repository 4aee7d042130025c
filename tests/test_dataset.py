"""colorquant dataset: folders, list files and WebDataset shards; resume, kills, bad items.

Every input is made here (small synthetic images, tar shards written with tarfile); nothing is
read from outside the test's temporary folder.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import colorquant as cq
from colorquant.animation import load_animation_bytes
from colorquant.cli import main
from colorquant.dataset import (
    MANIFEST_NAME,
    DestinationBusyError,
    JobStopped,
    SettingsMismatchError,
    expand_braces,
    quantize_dataset,
    quantize_examples,
)
from colorquant.dataset import work as dataset_work
from colorquant.dataset.lock import JobLock
from colorquant.dataset.sources import LOCK_NAME, Plan, assign_outputs, image_field, sample_key
from colorquant.io import WriteError
from conftest import needs_torch

K = 16
PSNR_FLOOR = 22.0  # dB: K = 16 on these smooth noisy images gives 26-30 dB


# -- helpers ----------------------------------------------------------------------------------


def photo(seed: int, height: int = 24, width: int = 32) -> np.ndarray:
    """A small smooth image with noise (many distinct colors), different for every seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    shift = rng.uniform(0, 60, 3)
    base = np.stack(
        [x / width * 180 + shift[0], y / height * 170 + shift[1], (x + y) * 1.5 + shift[2]], 2
    )
    return np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def make_folder(root: Path, n: int = 6) -> dict[str, np.ndarray]:
    """``n`` images in ``root`` and ``root/sub/deeper``, PNG and JPEG; returns their pixels."""
    pixels: dict[str, np.ndarray] = {}
    for i in range(n):
        rel = ["", "sub/", "sub/deeper/"][i % 3] + f"img{i}." + ("jpg" if i % 2 else "png")
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        array = photo(i)
        path.write_bytes(encode(array, "JPEG" if rel.endswith("jpg") else "PNG"))
        pixels[rel] = np.array(Image.open(path).convert("RGB"))
    return pixels


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def make_shard(path: Path, seed: int, n: int = 4, bad: int | None = None) -> None:
    """A WebDataset shard: samples ``key.jpg`` / ``key.cls`` / ``key.json`` (``bad``: a sample
    whose .jpg is text)."""
    with tarfile.open(path, "w") as tar:
        for i in range(n):
            key = f"{seed:02d}{i:04d}"
            image = b"this is no image" if i == bad else encode(photo(100 * seed + i), "JPEG")
            add_member(tar, f"{key}.jpg", image)
            add_member(tar, f"{key}.cls", str(i % 3).encode())
            add_member(tar, f"{key}.json", json.dumps({"seed": seed, "i": i}).encode())


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["dataset", *[str(a) for a in args]])


def summary_of(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, (result.output, result.exception)
    record: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return record


def manifest_records(dst: Path) -> list[dict[str, Any]]:
    lines = (dst / MANIFEST_NAME).read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]


def check_palette_png(
    data: bytes | Path, original: np.ndarray | None, k: int = K, floor: float = PSNR_FLOOR
) -> np.ndarray:
    """A palette PNG with at most k colors, close to ``original``; returns its RGB pixels."""
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        assert image.format == "PNG" and image.mode == "P"
        assert len(image.getpalette() or []) // 3 <= k
        rgb = np.array(image.convert("RGB"))
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) <= k
    if original is not None:
        assert rgb.shape == original.shape
        assert cq.psnr(original, rgb) > floor
    return rgb


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".new"))]


def one_error_line(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("colorquant: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# -- patterns and WebDataset names ------------------------------------------------------------


def test_expand_braces() -> None:
    assert expand_braces("d-{000000..000003}.tar") == [f"d-{i:06d}.tar" for i in range(4)]
    assert expand_braces("s{8..10}-{a,b}") == ["s8-a", "s8-b", "s9-a", "s9-b", "s10-a", "s10-b"]
    assert expand_braces("x{3..1}") == ["x3", "x2", "x1"]
    assert expand_braces("plain.tar") == ["plain.tar"]
    with pytest.raises(cq.InputError, match="empty braces"):
        expand_braces("a{}.tar")
    with pytest.raises(cq.InputError, match="unmatched"):
        expand_braces("a{1..2.tar")


def test_sample_keys_and_image_fields() -> None:
    assert sample_key("dir/abc.seg.png") == ("dir/abc", "seg.png")
    assert sample_key("abc.jpg") == ("abc", "jpg")
    assert sample_key("README") == ("README", "")
    assert image_field("jpg") and image_field("seg.PNG") and image_field("webp")
    assert not image_field("cls") and not image_field("json") and not image_field("")


# -- folders ----------------------------------------------------------------------------------


def test_folder_job_mirrors_paths_and_records_bad_files(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    pixels = make_folder(src)
    (src / "notes.txt").write_text("not an image")
    (src / "sub" / "broken.png").write_bytes(encode(photo(9))[:200])  # truncated
    (src / ".hidden.png").write_bytes(encode(photo(10)))  # hidden: not an item
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}

    record = summary_of(run(src, dst, "-k", K, "--workers", 2, "--json"))

    for rel, original in pixels.items():
        check_palette_png(dst / Path(rel).with_suffix(".png"), original)
    assert not (dst / ".hidden.png").exists()
    assert record["kind"] == "folder" and record["items"] == len(pixels) + 2
    assert record["images"] == len(pixels) and record["errors"] == 1 and record["copied"] == 1
    assert (dst / "notes.txt").read_text() == "not an image"
    assert record["processed"] == len(pixels) + 2 and record["done_before"] == 0
    assert record["bytes_in"] == sum((src / rel).stat().st_size for rel in pixels)
    outputs = [dst / Path(rel).with_suffix(".png") for rel in pixels]
    assert record["bytes_out"] == sum(p.stat().st_size for p in outputs)
    written = [np.array(Image.open(p).convert("RGB")) for p in outputs]
    mean = np.mean([cq.psnr(o, w) for o, w in zip(pixels.values(), written, strict=True)])
    assert record["mean_psnr"] == pytest.approx(mean, rel=1e-9)
    errors = [
        json.loads(line) for line in (dst / "colorquant-errors.jsonl").read_text().splitlines()
    ]
    assert [e["item"] for e in errors] == ["sub/broken.png"]
    assert all(e["reason"] for e in errors)
    records = manifest_records(dst)
    assert len(records) == len(pixels) + 2 == len({r["item"] for r in records})
    # SRC untouched, nothing temporary left.
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before
    assert temp_files(dst) == []


def test_rerun_skips_done_work_and_other_settings_are_refused(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_folder(src, 4)
    first = summary_of(run(src, dst, "-k", K, "--workers", 1, "--json"))
    stamps = {p: p.stat().st_mtime_ns for p in dst.rglob("*.png")}
    again = summary_of(run(src, dst, "-k", K, "--workers", 1, "--json"))
    assert again["processed"] == 0 and again["done_before"] == 4
    assert again["images"] == first["images"] == 4
    assert again["bytes_out"] == first["bytes_out"]
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.png")} == stamps
    assert len(manifest_records(dst)) == 4

    line = one_error_line(run(src, dst, "-k", 8, "--dither", "fs"), "other settings", "--restart")
    assert "n_colors 16, now 8" in line and "dither 'none', now 'fs'" in line
    restarted = summary_of(run(src, dst, "-k", 8, "--restart", "--workers", 1, "--json"))
    assert restarted["done_before"] == 0 and restarted["images"] == 4
    for png in dst.rglob("*.png"):
        check_palette_png(png, None, k=8)


def test_new_files_are_picked_up_on_rerun(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_folder(src, 3)
    summary_of(run(src, dst, "-k", K, "--workers", 1, "--json"))
    (src / "late.png").write_bytes(encode(photo(42)))
    record = summary_of(run(src, dst, "-k", K, "--workers", 1, "--json"))
    assert record["processed"] == 1 and record["images"] == 4
    check_palette_png(dst / "late.png", photo(42))


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        ("inside", "overlap"),
        ("same", "overlap"),
        ("nonempty", "not empty"),
        ("file", "not a folder"),
    ],
)
def test_bad_destinations_one_line(tmp_path: Path, where: str, fragment: str) -> None:
    src = tmp_path / "src"
    make_folder(src, 2)
    dst = {
        "inside": src / "out",
        "same": src,
        "nonempty": tmp_path / "full",
        "file": tmp_path / "afile",
    }[where]
    if where == "nonempty":
        dst.mkdir()
        (dst / "precious.txt").write_text("mine")
    if where == "file":
        dst.write_text("x")
    one_error_line(run(src, dst, "--workers", 1), fragment)
    if where == "nonempty":
        assert sorted(p.name for p in dst.iterdir()) == ["precious.txt"]


def test_missing_source_and_bad_options(tmp_path: Path) -> None:
    one_error_line(run(tmp_path / "nothing", tmp_path / "dst"), "no such folder")
    (tmp_path / "one.png").write_bytes(encode(photo(0)))
    one_error_line(run(tmp_path / "one.png", tmp_path / "dst"), "binary file", "quantize")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    one_error_line(run(tmp_path / "empty.txt", tmp_path / "dst"), "names no images")
    assert not (tmp_path / "dst").exists()
    result = run(tmp_path, tmp_path / "dst", "-k", "300")
    assert result.exit_code == 2  # click's usage error
    result = run(tmp_path, tmp_path / "dst", "--engine", "spark")
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (("--concurrency", "2"), "--concurrency"),
        (("--gpus-per-task", "1"), "--gpus-per-task"),
        (("--cpus-per-task", "1"), "--cpus-per-task"),  # even its default, given
        (("--engine", "local", "--concurrency", "2"), "--concurrency"),
    ],
)
def test_ray_flags_without_the_ray_engine_are_usage_errors(
    tmp_path: Path, flags: tuple[str, ...], named: str
) -> None:
    make_folder(tmp_path / "src", 1)
    result = run(tmp_path / "src", tmp_path / "out", *flags)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"colorquant: error: {named} needs --engine ray (the local engine ignores it)"
    ]
    assert not (tmp_path / "out").exists()


def test_list_file_job(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pixels = make_folder(data, 3)
    outside = tmp_path / "elsewhere" / "far.png"
    outside.parent.mkdir()
    outside.write_bytes(encode(photo(7)))
    listing = data / "train.txt"
    names = sorted(pixels)
    listing.write_text("# training images\n" + "\n".join(names) + f"\n\n{outside}\nmissing.png\n")
    dst = tmp_path / "dst"
    record = summary_of(run(listing, dst, "-k", K, "--workers", 1, "--json"))
    assert record["kind"] == "list" and record["images"] == 4 and record["errors"] == 1
    for rel in names:
        check_palette_png(dst / Path(rel).with_suffix(".png"), pixels[rel])
    check_palette_png(dst / str(outside.with_suffix(".png")).lstrip("/"), photo(7))
    errors = (dst / "colorquant-errors.jsonl").read_text()
    assert "missing.png" in errors and "no such file" in errors


def test_a_list_naming_one_file_twice_writes_it_once(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "lists").mkdir()
    image = tmp_path / "imgs" / "a.png"
    image.write_bytes(encode(photo(3)))
    (tmp_path / "imgs" / "a.txt").write_text("its caption")
    listing = tmp_path / "lists" / "train.txt"
    listing.write_text(
        f"../imgs/a.png\n{image}\n../imgs/./a.png\n../imgs/a.txt\n{image.with_suffix('.txt')}\n"
    )
    dst = tmp_path / "dst"
    record = summary_of(run(listing, dst, "-k", K, "--workers", 1, "--json"))
    assert record["images"] == 1 and record["errors"] == 0 and record["copied"] == 1
    assert record["repeated"] == 3 and record["items"] == 2
    mirrored = dst / str(image.parent).lstrip("/")  # outside the list's folder: mirrored whole
    check_palette_png(mirrored / "a.png", photo(3))
    assert (mirrored / "a.txt").read_text() == "its caption"
    assert sorted(r["item"] for r in manifest_records(dst)) == [
        f"{str(image.parent).lstrip('/')}/{n}" for n in ("a.png", "a.txt")
    ]
    assert (dst / "colorquant-errors.jsonl").read_text() == ""


def test_folder_job_copies_files_that_are_no_images(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    pixels = make_folder(src, 3)
    others = {
        "img0.txt": b"a caption for img0\n",
        "sub/img1.json": json.dumps({"caption": "img1", "score": 0.5}).encode(),
        "sub/deeper/features.npy": bytes(range(256)) * 40,  # binary, 10 kB
        "README": b"no suffix at all",
        "empty.txt": b"",
    }
    for rel, data in others.items():
        (src / rel).write_bytes(data)
    os.utime(src / "img0.txt", ns=(1_600_000_000_000_000_000,) * 2)

    record = summary_of(run(src, dst, "-k", K, "--workers", 2, "--batch-size", 2, "--json"))

    assert record["images"] == 3 and record["errors"] == 0
    assert record["copied"] == len(others) and record["items"] == 3 + len(others)
    assert record["bytes_copied"] == sum(len(d) for d in others.values())
    assert record["bytes_in"] == sum((src / rel).stat().st_size for rel in pixels)  # images only
    for rel, data in others.items():
        assert (dst / rel).read_bytes() == data, rel
    assert (dst / "img0.txt").stat().st_mtime_ns == 1_600_000_000_000_000_000
    for rel, original in pixels.items():
        check_palette_png(dst / Path(rel).with_suffix(".png"), original)
    copied = {r["item"]: r for r in manifest_records(dst) if r["status"] == "copied"}
    assert sorted(copied) == sorted(others)
    assert all(r["bytes"] == len(others[name]) for name, r in copied.items())
    assert temp_files(dst) == []
    # Resumable like images: a rerun copies nothing again (a new copy would be a new inode).
    inodes = {rel: (dst / rel).stat().st_ino for rel in others}
    again = summary_of(run(src, dst, "-k", K, "--workers", 1, "--json"))
    assert again["processed"] == 0 and again["done_before"] == 3 + len(others)
    assert again["copied"] == len(others) and again["bytes_copied"] == record["bytes_copied"]
    assert {rel: (dst / rel).stat().st_ino for rel in others} == inodes
    # A DST used as the next job's SRC: its manifest and errors file are records, not data.
    chained = summary_of(run(dst, tmp_path / "again", "-k", K, "--workers", 1, "--json"))
    assert chained["images"] == 3 and chained["copied"] == len(others)
    header = json.loads((tmp_path / "again" / MANIFEST_NAME).read_text().splitlines()[0])
    assert header["job"]["source"] == str(dst.resolve())
    assert not (tmp_path / "again" / "colorquant-errors.jsonl").read_text()


def test_human_summary_names_copies_renames_and_repeats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.png").write_bytes(encode(photo(1)))
    (data / "a.jpg").write_bytes(encode(photo(2), "JPEG"))
    (data / "a.txt").write_text("caption")
    (data / "list.txt").write_text(f"a.png\na.jpg\na.txt\n{data / 'a.png'}\n")
    result = run(data / "list.txt", tmp_path / "dst", "-k", K, "--workers", 1)
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.endswith(
        ": 2 images, 1 other files copied (7 bytes), 1 renamed (a.jpg beside a.png writes "
        "a.jpg.png), 1 repeated lines of the list done once, 0 errors"
    ), first


def _small_colors(seed: int) -> np.ndarray:
    """An image of 6 colors: a palette PNG of K >= 6 reproduces it exactly."""
    rng = np.random.default_rng(seed)
    colors = rng.integers(0, 256, (6, 3), dtype=np.uint8)
    return colors[rng.integers(0, 6, (20, 30))]


def test_a_png_and_a_jpg_of_one_name_both_get_an_output(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    lossless = _small_colors(3)
    (src / "a.jpg").write_bytes(encode(photo(1), "JPEG"))
    (src / "a.png").write_bytes(encode(lossless))
    (src / "sub" / "b.jpg").write_bytes(encode(photo(4), "JPEG"))
    (src / "sub" / "b.webp").write_bytes(encode(photo(5), "WEBP"))
    (src / "c.PNG").write_bytes(encode(photo(6)))
    (src / "c.png").write_bytes(encode(photo(7)))
    record = summary_of(run(src, dst, "-k", K, "--workers", 1, "--json"))
    assert record["images"] == 6 and record["errors"] == 0 and record["renamed"] == 4
    # The PNG keeps the plain name, and stays lossless; the other keeps its suffix in its name.
    assert np.array_equal(np.array(Image.open(dst / "a.png").convert("RGB")), lossless)
    jpg = np.array(Image.open(src / "a.jpg").convert("RGB"))
    check_palette_png(dst / "a.jpg.png", jpg)
    # No PNG among them: each keeps its suffix. Case counts: c.png keeps its name, c.PNG not.
    for name in ("sub/b.jpg", "sub/b.webp", "c.PNG"):
        check_palette_png(dst / f"{name}.png", np.array(Image.open(src / name).convert("RGB")))
    check_palette_png(dst / "c.png", photo(7))
    outputs = {p.relative_to(dst).as_posix() for p in dst.rglob("*.png")}
    assert outputs == {"a.png", "a.jpg.png", "sub/b.jpg.png", "sub/b.webp.png"} | {
        "c.png",
        "c.PNG.png",
    }
    written = {r["item"]: Path(r["output"]).name for r in manifest_records(dst)}
    assert written["a.jpg"] == "a.jpg.png" and written["a.png"] == "a.png"


def test_output_names_are_stable_when_a_colliding_file_comes_later(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    jpg = photo(1)
    (src / "a.jpg").write_bytes(encode(jpg, "JPEG"))
    summary_of(run(src, dst, "-k", K, "--workers", 1, "--json"))
    first = (dst / "a.png").read_bytes()  # a.jpg's output, recorded in the manifest
    lossless = _small_colors(2)
    (src / "a.png").write_bytes(encode(lossless))
    record = summary_of(run(src, dst, "-k", K, "--workers", 1, "--json"))
    assert record["processed"] == 1 and record["images"] == 2
    # a.jpg keeps what it wrote (not overwritten); a.png takes the next free name.
    assert (dst / "a.png").read_bytes() == first
    assert np.array_equal(np.array(Image.open(dst / "a.2.png").convert("RGB")), lossless)
    assert {p.name for p in dst.glob("*.png")} == {"a.png", "a.2.png"}
    # And again: nothing to do, nothing renamed.
    again = summary_of(run(src, dst, "-k", K, "--workers", 1, "--json"))
    assert again["processed"] == 0 and {p.name for p in dst.glob("*.png")} == {"a.png", "a.2.png"}


@pytest.mark.parametrize(
    ("names", "outputs"),
    [
        (["a.jpg", "a.png"], ["a.jpg.png", "a.png"]),
        (["a.jpg", "a.png", "a.webp"], ["a.jpg.png", "a.png", "a.webp.png"]),
        (["a.jpg", "a.webp"], ["a.jpg.png", "a.webp.png"]),
        # a file already named like a fallback keeps its name; the fallback gets a number
        (["a.jpg", "a.jpg.png", "a.png"], ["a.jpg.2.png", "a.jpg.png", "a.png"]),
        (["x/a.jpg", "y/a.png", "a.tif"], ["x/a.png", "y/a.png", "a.png"]),  # other folders
    ],
)
def test_output_name_rule(tmp_path: Path, names: list[str], outputs: list[str]) -> None:
    root = tmp_path / "dst"
    with Plan.of_files("folder", "src", str(root), [(n, f"/src/{n}") for n in names]) as plan:
        items = list(plan.iter_items())
        got = [Path(i.dst).relative_to(root.absolute()).as_posix() for i in items]
        assert got == outputs
        # Resuming with what an earlier run wrote keeps it, and moves the newcomer.
        resumed = list(assign_outputs(plan, {"a.png": "a.jpg"}).iter_items())
        assert {i.name: Path(i.dst).name for i in resumed}.get("a.jpg", "a.png") == "a.png"
        assert len({i.dst for i in resumed}) == len(names)


def test_shared_palette_is_one_palette_for_all(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    pixels = make_folder(src, 6)
    record = summary_of(
        run(src, dst, "-k", K, "--shared-palette", "--sample", 4, "--workers", 2, "--json")
    )
    assert record["images"] == 6
    header = json.loads((dst / MANIFEST_NAME).read_text().splitlines()[0])
    palette = {tuple(c) for c in header["palette"]}
    assert len(header["palette"]) == K and header["job"]["shared_palette"] is True
    used: set[tuple[int, ...]] = set()
    for rel, original in pixels.items():
        # One palette for six different images: less close than a palette each.
        rgb = check_palette_png(dst / Path(rel).with_suffix(".png"), original, floor=18.0)
        used |= {tuple(c) for c in np.unique(rgb.reshape(-1, 3), axis=0).tolist()}
    assert used <= palette  # every image uses colors of the one palette only
    assert len(used) > 6  # and not a palette of a few colors each
    again = quantize_dataset(src, dst, K, shared_palette=True, sample=4, workers=1)
    assert again.done_before == 6 and again.processed == 0  # the palette is not fitted again


def test_transparency_kept_with_a_shared_palette(tmp_path: Path) -> None:
    # RGBA and RGB images in one folder: one RGBA palette; fully transparent pixels stay so.
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    rgba = np.dstack([photo(1), np.full((24, 32), 255, np.uint8)])
    rgba[:6, :, 3] = 0
    rgba[6:9, :, 3] = 128
    Image.fromarray(rgba).save(src / "a.png")
    Image.fromarray(photo(2)).save(src / "b.png")
    summary = quantize_dataset(src, dst, 16, shared_palette=True, workers=1)
    assert summary.processed == 2 and summary.errors == 0
    header = json.loads((dst / MANIFEST_NAME).read_text().splitlines()[0])
    assert all(len(color) == 4 for color in header["palette"])
    with Image.open(dst / "a.png") as image:
        back = np.asarray(image.convert("RGBA"))
    np.testing.assert_array_equal(back[..., 3] == 0, rgba[..., 3] == 0)
    assert np.abs(back[6:9, :, 3].astype(int) - 128).max() <= 8
    with Image.open(dst / "b.png") as image:
        assert (np.asarray(image.convert("RGBA"))[..., 3] > 0).all()


def test_shared_palette_over_shards(tmp_path: Path) -> None:
    for s in range(2):
        make_shard(tmp_path / f"p-{s}.tar", s, n=3)
    dst = tmp_path / "out"
    summary = quantize_dataset(
        tmp_path / "p-{0..1}.tar", dst, 8, shared_palette=True, sample=2, workers=1
    )
    assert summary.images == 6
    palette = json.loads((dst / MANIFEST_NAME).read_text().splitlines()[0])["palette"]
    colors = {tuple(c) for c in palette}
    for s in range(2):
        for name, data in read_shard(dst / f"p-{s}.tar"):
            if name.endswith(".png"):
                rgb = check_palette_png(data, None, k=8)
                assert {tuple(c) for c in rgb.reshape(-1, 3).tolist()} <= colors


def test_a_manifest_of_the_earlier_format_resumes(tmp_path: Path) -> None:
    """The settings line as jobs wrote it before the settings were a FitOptions: a resume
    accepts it, keeps it byte for byte and finishes with the same outputs."""
    src = tmp_path / "src"
    make_folder(src, n=3)
    args: dict[str, Any] = {"seed": 3, "speed": 5, "color_space": "oklab", "dither": "fs"}
    whole = quantize_dataset(src, tmp_path / "whole", 8, workers=1, dither_strength=0.5, **args)
    assert whole.images == 3
    first = manifest_records(tmp_path / "whole")[0]
    dst = tmp_path / "dst"
    (dst / Path(first["item"]).parent).mkdir(parents=True, exist_ok=True)
    (dst / first["item"]).write_bytes((tmp_path / "whole" / first["item"]).read_bytes())
    header = (
        '{"colorquant_manifest": 1, "job": {"kind": "folder", "source": "SRC", "n_colors": 8, '
        '"color_space": "oklab", "dither": "fs", "dither_strength": 0.5, "speed": 5, '
        '"seed": 3, "shared_palette": false, "sample": null}, "palette": null}'
    ).replace("SRC", str(src))
    record = {**first, "output": str(dst / first["item"])}
    (dst / MANIFEST_NAME).write_text(header + "\n" + json.dumps(record) + "\n")
    (dst / "colorquant-errors.jsonl").write_text("")
    resumed = quantize_dataset(src, dst, 8, workers=1, dither_strength=0.5, **args)
    assert (resumed.done_before, resumed.processed, resumed.images) == (1, 2, 3)
    assert (dst / MANIFEST_NAME).read_text().splitlines()[0] == header
    assert {p.name: p.read_bytes() for p in dst.rglob("*.png")} == {
        p.name: p.read_bytes() for p in (tmp_path / "whole").rglob("*.png")
    }
    with pytest.raises(SettingsMismatchError):  # another seed is another job
        quantize_dataset(src, dst, 8, workers=1, dither_strength=0.5, **{**args, "seed": 4})


def test_a_cut_last_line_is_dropped_and_a_damaged_manifest_refused(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_folder(src, 3)
    quantize_dataset(src, dst, 8, workers=1)
    manifest = dst / MANIFEST_NAME
    whole = manifest.read_bytes()
    manifest.write_bytes(whole[:-9])  # a kill while the last line was written
    summary = quantize_dataset(src, dst, 8, workers=1)
    assert summary.done_before == 2 and summary.processed == 1
    assert manifest.read_bytes().count(b"\n") == 4 and manifest.read_bytes().endswith(b"\n")
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([lines[0], "{oops", *lines[2:]]) + "\n")
    with pytest.raises(cq.InputError, match="line 2: not a manifest record"):
        quantize_dataset(src, dst, 8, workers=1)


def test_disk_full_stops_the_job_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    pixels = make_folder(src, 6)
    real = dataset_work.atomic_write
    calls = {"n": 0}

    def full_after_three(path: Any, writer: Any, **kw: Any) -> int:
        calls["n"] += 1
        if calls["n"] > 3:
            raise WriteError(f"{path}: cannot write: No space left on device")
        return real(path, writer, **kw)

    monkeypatch.setattr(dataset_work, "atomic_write", full_after_three)
    with pytest.raises(JobStopped, match=r"No space left on device.*rerun the same command"):
        quantize_dataset(src, dst, K, workers=1, batch_size=1)
    assert len(manifest_records(dst)) == 3
    result = run(src, tmp_path / "dst2", "-k", K, "--workers", 1)
    one_error_line(result, "No space left on device", "rerun the same command to resume")

    monkeypatch.setattr(dataset_work, "atomic_write", real)
    summary = quantize_dataset(src, dst, K, workers=1)
    assert summary.done_before == 3 and summary.processed == 3 and summary.images == 6
    for rel, original in pixels.items():
        check_palette_png(dst / Path(rel).with_suffix(".png"), original)
    assert sorted(r["item"] for r in manifest_records(dst)) == sorted(pixels)
    assert temp_files(dst) == []


def test_progress_counts_every_item(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []

    def progress(total: int) -> Any:
        calls.append(("total", total))
        return lambda n: calls.append(("done", n))

    src = tmp_path / "src"
    make_folder(src, 5)
    (src / "bad.png").write_text("x")
    (src / "img0.txt").write_text("a caption: copied, not counted as an image")
    quantize_dataset(src, tmp_path / "d1", 8, workers=1, batch_size=2, progress=progress)
    assert calls[0] == ("total", 6) and sum(n for what, n in calls[1:]) == 6
    calls.clear()
    for s in range(2):
        make_shard(tmp_path / f"p-{s}.tar", s, n=3, bad=1)
    quantize_dataset(tmp_path / "p-{0..1}.tar", tmp_path / "d2", 8, workers=1, progress=progress)
    # The driver opens no shard to count its members: the total is unknown (0), and each
    # task's count of image members (bad ones too) advances the bar.
    assert calls == [("total", 0), ("done", 3), ("done", 3)]


def test_a_failing_quantize_costs_only_its_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = dataset_work.quantize

    def picky(pixels: np.ndarray, *args: Any, **kw: Any) -> Any:
        if pixels.shape[:2] == (16, 20):
            raise cq.InputError("image: too picky")
        return real(pixels, *args, **kw)

    monkeypatch.setattr(dataset_work, "quantize", picky)
    src = tmp_path / "src"
    make_folder(src, 3)
    (src / "odd.png").write_bytes(encode(photo(5, 16, 20)))
    summary = quantize_dataset(src, tmp_path / "d", 8, workers=1, batch_size=4)
    assert summary.images == 3 and summary.errors == 1
    errors = (tmp_path / "d" / "colorquant-errors.jsonl").read_text()
    assert "odd.png" in errors and "too picky" in errors
    # In a shard: the sample is left out, the others written.
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        for key, array in (("a", photo(1)), ("b", photo(2, 16, 20)), ("c", photo(3))):
            add_member(tar, f"{key}.png", encode(array))
            add_member(tar, f"{key}.txt", key.encode())
    summary = quantize_dataset(tmp_path / "s.tar", tmp_path / "ds", 8, workers=1)
    assert summary.images == 2 and summary.errors == 1
    names = [n for n, _ in read_shard(tmp_path / "ds" / "s.tar")]
    assert names == ["a.png", "a.txt", "c.png", "c.txt"]


def test_library_errors_name_the_argument(tmp_path: Path) -> None:
    with pytest.raises(cq.InputError, match="n_colors"):
        quantize_dataset(tmp_path, tmp_path / "o", 0)
    with pytest.raises(cq.InputError, match="engine"):
        quantize_dataset(tmp_path, tmp_path / "o", engine="spark")  # type: ignore[arg-type]
    with pytest.raises(cq.InputError, match="workers"):
        quantize_dataset(tmp_path, tmp_path / "o", workers=0)
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_folder(src, 2)
    quantize_dataset(src, dst, 8, workers=1)
    with pytest.raises(SettingsMismatchError, match="seed 0, now 5"):
        quantize_dataset(src, dst, 8, workers=1, seed=5)


# -- shards -----------------------------------------------------------------------------------


def read_shard(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        out = []
        for member in tar:
            handle = tar.extractfile(member)
            out.append((member.name, handle.read() if handle else b""))
        return out


def test_shard_job_replaces_images_and_copies_the_rest(tmp_path: Path) -> None:
    for s in range(3):
        make_shard(tmp_path / f"data-{s:06d}.tar", s, n=4, bad=2 if s == 1 else None)
    (tmp_path / "data-000003.tar").write_bytes(b"not a tar at all" * 100)
    dst = tmp_path / "out"
    pattern = str(tmp_path / "data-{000000..000003}.tar")
    before = {p: p.read_bytes() for p in tmp_path.glob("data-*.tar")}

    record = summary_of(run(pattern, dst, "-k", K, "--workers", 2, "--json"))

    assert record["kind"] == "shards" and record["items"] == 4
    assert record["images"] == 11 and record["errors"] == 2  # a bad sample, an unreadable shard
    assert {p: p.read_bytes() for p in tmp_path.glob("data-*.tar")} == before
    assert not (dst / "data-000003.tar").exists()
    bytes_out = 0
    for s in range(3):
        source = read_shard(tmp_path / f"data-{s:06d}.tar")
        output = read_shard(dst / f"data-{s:06d}.tar")
        expected = [
            (n.replace(".jpg", ".png"), d)
            for n, d in source
            if not (s == 1 and n.startswith(f"{s:02d}0002."))
        ]
        assert [n for n, _ in output] == [n for n, _ in expected]  # order kept, bad sample out
        for (name, data), (_, old) in zip(output, expected, strict=True):
            if name.endswith(".png"):
                original = np.array(Image.open(io.BytesIO(old)).convert("RGB"))
                check_palette_png(data, original)
                bytes_out += len(data)
            else:
                assert data == old  # every other member byte-identical
    assert record["bytes_out"] == bytes_out
    errors = [json.loads(x) for x in (dst / "colorquant-errors.jsonl").read_text().splitlines()]
    assert sorted(e["item"] for e in errors) == ["data-000001.tar:010002.jpg", "data-000003.tar"]


def test_shards_to_a_pattern_and_from_a_list(tmp_path: Path) -> None:
    for s in range(2):
        make_shard(tmp_path / f"in-{s}.tar", s, n=2)
    record = summary_of(
        run(tmp_path / "in-{0..1}.tar", tmp_path / "o" / "q-{0..1}.tar", "--workers", 1, "--json")
    )
    assert record["images"] == 4
    assert read_shard(tmp_path / "o" / "q-1.tar")[0][0] == "010000.png"
    listing = tmp_path / "shards.txt"
    listing.write_text("in-0.tar\nin-1.tar\n")
    record = summary_of(run(listing, tmp_path / "o2", "--workers", 1, "--json"))
    assert record["kind"] == "shards" and record["images"] == 4
    assert sorted(p.name for p in (tmp_path / "o2").glob("*.tar")) == ["in-0.tar", "in-1.tar"]
    line = one_error_line(run(tmp_path / "in-{0..1}.tar", tmp_path / "o3" / "q-{0..2}.tar"))
    assert "names 3 shards" in line


# -- kills ------------------------------------------------------------------------------------


def start_job(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "colorquant.cli", "dataset", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def descendants(pid: int) -> set[int]:
    """Every process under ``pid`` (children, their children, ...), from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
    found, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in found and child not in found:
                found.add(child)
                grew = True
    return found - {pid}


def alive(pids: set[int]) -> set[int]:
    return {p for p in pids if Path(f"/proc/{p}").exists() and b"Z" not in _state(p)}


def _state(pid: int) -> bytes:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return b"Z"
    return stat[stat.rfind(b")") + 2 :].split()[0]


def kill_after(proc: subprocess.Popen[str], manifest: Path, records: int) -> None:
    """SIGKILL the job once its manifest holds ``records`` finished items (it must still run);
    its worker processes (and the fork server) must then exit by themselves."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if manifest.exists() and len(manifest.read_text().splitlines()) > records:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    assert proc.poll() is None, "the job ended before the kill"
    helpers = descendants(proc.pid)
    assert helpers, "the job runs worker processes"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(helpers), "workers outlived the killed job"


@pytest.mark.slow
def test_sigkill_mid_folder_job_then_resume(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    n = 48
    pixels = {}
    for i in range(n):
        array = photo(i, 96, 128)
        (src / f"part{i % 4}").mkdir(parents=True, exist_ok=True)
        (src / f"part{i % 4}" / f"{i:03d}.png").write_bytes(encode(array))
        pixels[f"part{i % 4}/{i:03d}.png"] = array
    (src / "part0" / "zz-bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    captions = {f"part{i % 4}/{i:03d}.txt": f"caption {i}\n" * 1000 for i in range(0, n, 5)}
    for rel, text in captions.items():
        (src / rel).write_text(text)
    args = [str(src), str(dst), "-k", "64", "--workers", "2", "--batch-size", "1", "--speed", "1"]

    proc = start_job(args)
    kill_after(proc, dst / MANIFEST_NAME, 3)
    # Whatever the kill left: every PNG under its final name is complete.
    for png in dst.rglob("*.png"):
        check_palette_png(png, pixels[png.relative_to(dst).as_posix()], k=64)
    for txt in dst.rglob("*.txt"):  # a copy under its final name is complete
        assert txt.read_text() == captions[txt.relative_to(dst).as_posix()]
    done_at_kill = len(manifest_records(dst))
    assert 3 <= done_at_kill < n + 1 + len(captions)
    # The killed job's lock file stays, but the kernel released its lock: no stale lock.
    assert json.loads((dst / LOCK_NAME).read_text())["pid"] == proc.pid

    proc = start_job([*args, "--json"])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    record = json.loads(out.strip().splitlines()[-1])
    assert record["done_before"] >= done_at_kill
    assert record["images"] == n and record["errors"] == 1
    assert record["copied"] == len(captions)
    items = [r["item"] for r in manifest_records(dst)]
    assert len(items) == len(set(items)) == n + 1 + len(captions)  # none twice, none missing
    assert set(items) == {*pixels, *captions, "part0/zz-bad.png"}
    for rel, text in captions.items():
        assert (dst / rel).read_text() == text
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.png")) == sorted(pixels)
    for rel, original in pixels.items():
        check_palette_png(dst / rel, original, k=64)
    errors = (dst / "colorquant-errors.jsonl").read_text().splitlines()
    assert len(errors) == 1 and "zz-bad.png" in errors[0]
    assert temp_files(dst) == [] and not (dst / LOCK_NAME).exists()


@pytest.mark.slow
def test_sigkill_mid_shard_job_then_resume(tmp_path: Path) -> None:
    shards = 6
    for s in range(shards):
        make_shard(tmp_path / f"d-{s:03d}.tar", s, n=12)
    dst = tmp_path / "out"
    args = [str(tmp_path / "d-{000..005}.tar"), str(dst), "-k", "64", "--workers", "2"]
    args += ["--speed", "1"]
    proc = start_job(args)
    kill_after(proc, dst / MANIFEST_NAME, 1)
    for shard in dst.glob("*.tar"):  # a shard under its final name is complete
        assert len(read_shard(shard)) == 36

    proc = start_job([*args, "--json"])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    record = json.loads(out.strip().splitlines()[-1])
    assert record["images"] == shards * 12 and record["errors"] == 0
    items = [r["item"] for r in manifest_records(dst)]
    assert sorted(items) == [f"d-{s:03d}.tar" for s in range(shards)]
    for s in range(shards):
        output = read_shard(dst / f"d-{s:03d}.tar")
        assert len(output) == 36 and sum(n.endswith(".png") for n, _ in output) == 12
    assert temp_files(dst) == []


@pytest.mark.slow
def test_a_second_job_on_one_dst_is_refused_and_the_first_finishes(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    n = 20
    for i in range(n):
        (src / f"part{i % 2}").mkdir(parents=True, exist_ok=True)
        (src / f"part{i % 2}" / f"{i:03d}.png").write_bytes(encode(photo(i, 96, 128)))
    args = [str(src), str(dst), "-k", "64", "--workers", "1", "--speed", "1", "--json"]
    first = start_job(args)
    manifest = dst / MANIFEST_NAME
    deadline = time.monotonic() + 120
    while not (manifest.exists() and len(manifest.read_text().splitlines()) > 1):  # working
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.01)

    second = subprocess.run(
        [sys.executable, "-m", "colorquant.cli", "dataset", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 1 and second.stdout == "", (second.stdout, second.stderr)
    assert first.poll() is None, "the first job ended before the second was refused"
    lines = second.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("colorquant: error: "), second.stderr
    holder = f"pid {first.pid} on {socket.gethostname()}, started {time.gmtime().tm_year}-"
    assert "another colorquant dataset job is writing there" in lines[0] and holder in lines[0]

    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    record = json.loads(out.strip().splitlines()[-1])
    assert record["images"] == n and record["errors"] == 0 and record["processed"] == n
    items = [r["item"] for r in manifest_records(dst)]
    assert len(items) == len(set(items)) == n
    assert not (dst / LOCK_NAME).exists() and temp_files(dst) == []


def test_a_held_lock_refuses_the_job_before_it_touches_dst(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_folder(src, 2)
    summary_of(run(src, dst, "-k", K, "--workers", 1, "--json"))
    (dst / ".img0.png.abcdefgh.tmp").write_bytes(b"another job's temporary file")
    before = {p: p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    with JobLock(dst):
        held = json.loads((dst / LOCK_NAME).read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        with pytest.raises(DestinationBusyError, match=f"pid {os.getpid()} on "):
            quantize_dataset(src, dst, K, workers=1, restart=True)
        line = one_error_line(run(src, dst, "-k", K, "--restart"), f"pid {os.getpid()} on ")
        assert "wait for it to end, or choose another DST" in line
        before[dst / LOCK_NAME] = (dst / LOCK_NAME).read_bytes()
        assert {p: p.read_bytes() for p in dst.rglob("*") if p.is_file()} == before  # untouched
    assert not (dst / LOCK_NAME).exists()  # the holder removes the file when it ends
    with JobLock(tmp_path / "new"):
        assert (tmp_path / "new" / LOCK_NAME).is_file()
    assert not (tmp_path / "new").exists()  # created for the lock, removed with it (empty)


# -- the batched (GPU) path, the file path's imports, Hugging Face datasets --------------------


@needs_torch
def test_batched_path_groups_sizes_and_writes_palette_images() -> None:
    images = [photo(1), photo(2, 16, 20), photo(3), photo(4, 16, 20), photo(5)]
    batched = dataset_work.Settings(n_colors=K, batched=True, device="cpu")
    single = dataset_work.Settings(n_colors=K)
    for a, b, original in zip(
        dataset_work.encode_images(images, batched),
        dataset_work.encode_images(images, single),
        images,
        strict=True,
    ):
        rgb = check_palette_png(cq.io.result_bytes(a), original)
        assert np.array_equal(rgb, b.to_numpy())  # on the CPU the batch runs quantize's pipeline


class FlakyDevice:
    """A device-side batch call (``quantize_batch`` on the torch stages, on CPU tensors) that
    runs out of memory on batches of more than ``fits`` images, or on any batch holding the
    image ``never`` (its bytes); it records the size of every call and the images (bytes) of
    every batch that succeeded."""

    def __init__(self, fits: int, never: np.ndarray | None = None) -> None:
        self.fits, self.never = fits, None if never is None else never.tobytes()
        self.sizes: list[int] = []
        self.landed: list[bytes] = []

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        import torch

        images = [img.permute(1, 2, 0).contiguous().numpy().tobytes() for img in x.cpu()]
        self.sizes.append(len(images))
        if len(images) > self.fits or self.never in images:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB.")
        self.landed += images
        return cq.quantize_batch(x, *args, **{**kwargs, "backend": "torch"})


@needs_torch
def test_batch_out_of_gpu_memory_is_retried_in_halves_to_the_same_results() -> None:
    images = [photo(i) for i in range(5)] + [photo(5, 16, 20), photo(6, 16, 20)]
    settings = dataset_work.Settings(n_colors=K, batched=True, device="cpu")
    whole = FlakyDevice(fits=len(images))
    expected = dataset_work.encode_each(images, settings, run_batch=whole)
    assert whole.sizes == [5, 2]  # one batch per size
    flaky = FlakyDevice(fits=2)
    got = dataset_work.encode_each(images, settings, run_batch=flaky)
    assert flaky.sizes == [5, 2, 3, 1, 2, 2]  # 5 -> 2 + 3 -> 2 + (1 + 2); the 2 of 16x20 fit
    assert sorted(flaky.landed) == sorted(img.tobytes() for img in images)  # each exactly once
    for a, b in zip(got, expected, strict=True):
        assert isinstance(a, cq.QuantizeResult) and isinstance(b, cq.QuantizeResult)
        assert cq.io.result_bytes(a) == cq.io.result_bytes(b)
        assert np.array_equal(a.palette, b.palette) and np.array_equal(a.indices, b.indices)
    # An image that does not fit even alone is its own error; the others land as before.
    never = FlakyDevice(fits=len(images), never=images[3])
    got = dataset_work.encode_each(images, settings, run_batch=never)
    assert never.sizes == [5, 2, 3, 1, 2, 1, 1, 2]
    assert isinstance(got[3], MemoryError)
    assert str(got[3]) == "out of cpu memory for this image alone: CUDA out of memory"
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        if i != 3:
            assert cq.io.result_bytes(a) == cq.io.result_bytes(b)  # type: ignore[arg-type]


@needs_torch
def test_gpu_job_is_one_worker_and_survives_out_of_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--device cuda`` on the local engine, with a CPU device standing in for the GPU."""
    import colorquant.dataset.job as dataset_job

    src = tmp_path / "src"
    pixels = make_folder(src, n=9)
    monkeypatch.setattr(dataset_job, "resolve_device", lambda device: "cpu:0")  # not "cpu"
    trees = {}
    for name, device in [
        ("whole", FlakyDevice(fits=99)),
        ("halves", FlakyDevice(fits=1)),
        ("never", FlakyDevice(fits=3, never=pixels["sub/img4.png"])),
    ]:
        monkeypatch.setattr(dataset_work, "quantize_batch", device)
        summary = quantize_dataset(src, tmp_path / name, K, device="cuda", batch_size=4)
        assert summary.workers == 1  # one GPU worker by default: in this process
        assert sorted(device.landed) == sorted(
            p.tobytes() for rel, p in pixels.items() if name != "never" or rel != "sub/img4.png"
        )
        trees[name] = {
            p.relative_to(tmp_path / name).as_posix(): p.read_bytes()
            for p in (tmp_path / name).rglob("*.png")
        }
        assert (summary.images, summary.errors) == ((8, 1) if name == "never" else (9, 0))
    assert len(trees["whole"]) == 9 and trees["halves"] == trees["whole"]
    assert trees["never"] == {k: v for k, v in trees["whole"].items() if k != "sub/img4.png"}
    errors = (tmp_path / "never" / "colorquant-errors.jsonl").read_text().splitlines()
    assert [json.loads(line)["item"] for line in errors] == ["sub/img4.png"]
    assert "out of cpu:0 memory for this image alone" in errors[0]


def test_dataset_command_imports_no_torch_ray_or_datasets(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_folder(src, 2)
    code = (
        "import sys\n"
        "from colorquant.cli import main\n"
        f"sys.argv = ['colorquant', 'dataset', {str(src)!r}, {str(tmp_path / 'o')!r},"
        " '--workers', '1', '--device', 'cpu']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in ('torch', 'ray', 'datasets', 'pyarrow') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout


def test_engine_ray_without_ray_is_refused_before_dst_exists(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_folder(src, 2)
    code = (
        "import sys\n"
        "sys.modules['ray'] = None  # as if Ray were not installed: `import ray` fails\n"
        "from colorquant.cli import main\n"
        f"sys.argv = ['colorquant', 'dataset', {str(src)!r}, {str(dst)!r}, '--engine', 'ray']\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert not dst.exists()
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "colorquant: error: --engine ray needs Ray, which is not installed here: "
        "pip install 'colorquant[ray]' (ray[data])"
    ]


def test_other_commands_start_without_the_dataset_package() -> None:
    # `colorquant quantize` pays nothing for `colorquant dataset` (its package loads on use).
    code = "import sys, colorquant.cli\nprint('colorquant.dataset' in sys.modules)\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "False"


def test_quantize_examples_with_hugging_face_datasets() -> None:
    datasets = pytest.importorskip(
        "datasets", reason="needs the datasets extra: pip install 'colorquant[datasets]'"
    )
    images = [Image.fromarray(photo(i)) for i in range(4)]
    table = datasets.Dataset.from_dict(
        {"image": images, "label": [0, 1, 2, 3]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
    )
    mapped = table.map(quantize_examples, batched=True, batch_size=3, fn_kwargs={"n_colors": 8})
    assert set(mapped.column_names) == {"image", "label", "quantized", "palette"}
    assert mapped["label"] == [0, 1, 2, 3]
    for i, row in enumerate(mapped):
        quantized, palette = row["quantized"], np.array(row["palette"], np.uint8)
        assert quantized.mode == "P" and 1 <= len(palette) <= 8
        rgb = np.array(quantized.convert("RGB"))
        assert cq.psnr(photo(i), rgb) > 20.0
        assert np.array_equal(rgb, palette[np.array(quantized)])  # the palette column is its own
    shared = cq.Quantizer(8).fit([photo(0), photo(1)]).palette
    fixed = table.map(
        quantize_examples, batched=True, fn_kwargs={"palette": shared, "output_column": "q"}
    )
    colors = {tuple(c) for c in shared.tolist()}
    assert all({tuple(c) for c in row} <= colors for row in fixed["palette"])


def test_quantize_examples_names_a_bad_column() -> None:
    with pytest.raises(cq.InputError, match="image_column 'img'"):
        quantize_examples({"image": []}, image_column="img")


# -- seams: 256-row palettes meeting clear pixels, animations ----------------------------------


def clear_sprite(seed: int, height: int = 24, width: int = 32) -> np.ndarray:
    """An RGBA image of ``photo(seed)`` colors with its top rows fully transparent."""
    rgba = np.dstack([photo(seed, height, width), np.full((height, width), 255, np.uint8)])
    rgba[: height // 4, :, 3] = 0
    return rgba


def plte(path: Path | bytes) -> list[list[int]]:
    """A palette PNG's PLTE rows (RGB; the alpha of tRNS is left out)."""
    with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as image:
        raw = image.palette.tobytes() if image.palette is not None else b""
    return np.frombuffer(raw, np.uint8).reshape(-1, 3).tolist()


def errors_of(dst: Path) -> list[dict[str, Any]]:
    lines = (dst / "colorquant-errors.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_256_color_shared_palette_meeting_clear_pixels_is_an_item_error(tmp_path: Path) -> None:
    # The sample (a.png) is opaque: the shared palette has 256 RGB rows, and z.png's clear
    # pixels would need a 257th. That image is a recorded error naming it and the remedy;
    # the job goes on, and a rerun tries it again (it stopped the whole job before).
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(photo(3)).save(src / "b.png")
    Image.fromarray(clear_sprite(4)).save(src / "z.png")
    args = (src, dst, "--shared-palette", "--sample", 1, "--speed", 10, "--workers", 1, "--json")
    record = summary_of(run(*args))
    assert record["images"] == 2 and record["errors"] == 1 and record["processed"] == 3
    header = json.loads((dst / MANIFEST_NAME).read_text().splitlines()[0])
    assert np.array(header["palette"]).shape == (256, 3)
    assert plte(dst / "a.png") == plte(dst / "b.png") == header["palette"]
    assert not (dst / "z.png").exists()
    [error] = errors_of(dst)
    assert error["item"] == "z.png" and error["reason"].startswith("z.png: .png holds at most 256")
    assert "fully transparent" in error["reason"] and "-k 255" in error["reason"]
    again = summary_of(run(*args))
    assert again["done_before"] == 2 and again["processed"] == 1
    assert again["images"] == 2 and again["errors"] == 1 and len(errors_of(dst)) == 1
    # K = 255 leaves the clear row its place: everything is written, clear pixels stay clear.
    fixed = summary_of(run(*args[:-1], "-k", 255, "--restart", "--json"))
    assert fixed["images"] == 3 and fixed["errors"] == 0 and errors_of(dst) == []
    with Image.open(dst / "z.png") as image:
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
    np.testing.assert_array_equal(alpha == 0, clear_sprite(4)[..., 3] == 0)


def test_a_shared_palette_sampled_over_clear_pixels_has_its_transparent_row(
    tmp_path: Path,
) -> None:
    # When the sample sees transparency, the palette is RGBA and holds (0, 0, 0, 0) within
    # its 256 rows: no image needs a 257th.
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(clear_sprite(5)).save(src / "z.png")
    summary = quantize_dataset(src, dst, shared_palette=True, sample=2, speed=10, workers=1)
    assert summary.images == 2 and summary.errors == 0
    palette = json.loads((dst / MANIFEST_NAME).read_text().splitlines()[0])["palette"]
    assert len(palette) == 256 and [0, 0, 0, 0] in palette
    assert plte(dst / "a.png") == plte(dst / "z.png") == [c[:3] for c in palette]


def save_gif(path: Path, frames: list[np.ndarray], durations: list[int], loop: int) -> None:
    """An animated GIF (``loop``: Netscape count, repeats after the first play)."""
    images = [Image.fromarray(f).quantize(64) for f in frames]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=durations, loop=loop, disposal=1
    )


def moving(n: int, seed: int) -> list[np.ndarray]:
    """``n`` frames of one scene with a block that moves."""
    frames = []
    for t in range(n):
        frame = photo(seed).copy()
        frame[6:14, 4 + 5 * t : 10 + 5 * t] = (250, 240, 20)
        frames.append(frame)
    return frames


def check_animation(path: Path | bytes, original: Any, k: int = K) -> Any:
    """An APNG of ``original``'s frames, durations and loop, every frame close to its own."""
    got = load_animation_bytes(path if isinstance(path, bytes) else path.read_bytes(), "out")
    assert len(got.frames) == len(original.frames) > 1
    assert got.durations == original.durations and got.loop == original.loop
    for before, after in zip(original.frames, got.frames, strict=True):
        assert cq.psnr(before[..., :3], after[..., :3]) > PSNR_FLOOR - 4
        assert len(np.unique(after.reshape(-1, after.shape[2]), axis=0)) <= k
    with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as image:
        assert image.format == "PNG" and image.n_frames == len(original.frames)
    return got


def test_animated_inputs_are_written_whole_as_apng(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    save_gif(src / "clip.gif", moving(4, 1), [40, 60, 80, 120], loop=2)  # plays 3 times
    apng = [Image.fromarray(f) for f in moving(3, 2)]
    apng[0].save(src / "wave.png", save_all=True, append_images=apng[1:], duration=70, loop=0)
    Image.fromarray(photo(3)).save(src / "still.png")
    originals = {n: cq.load_animation(src / n) for n in ("clip.gif", "wave.png")}
    assert originals["clip.gif"].loop == 3 and originals["wave.png"].loop == 0

    record = summary_of(run(src, dst, "-k", K, "--workers", 2, "--json"))
    check_animation(dst / "clip.png", originals["clip.gif"])  # was its first frame alone
    check_animation(dst / "wave.png", originals["wave.png"])
    assert record["images"] == 3 and record["errors"] == 0
    assert record["animations"] == 2 and record["frames"] == 7
    check_palette_png(dst / "still.png", photo(3))
    frames = {r["item"]: r.get("frames") for r in manifest_records(dst)}
    assert frames == {"clip.gif": 4, "wave.png": 3, "still.png": None}
    again = summary_of(run(src, dst, "-k", K, "--workers", 1, "--json"))
    assert again["processed"] == 0 and again["animations"] == 2 and again["frames"] == 7
    human = run(src, dst, "-k", K, "--workers", 1).stdout.splitlines()[0]
    assert human.endswith(": 3 images (2 animations, 7 frames, as APNG), 0 errors"), human

    # With a shared palette: every frame of every output is in the job's palette, row for row.
    shared = tmp_path / "shared"
    summary_of(run(src, shared, "-k", K, "--shared-palette", "--workers", 1, "--json"))
    palette = json.loads((shared / MANIFEST_NAME).read_text().splitlines()[0])["palette"]
    for name in ("clip.png", "wave.png", "still.png"):
        assert plte(shared / name) == palette
    check_animation(shared / "clip.png", originals["clip.gif"])


def test_animated_members_of_a_shard_are_written_whole(tmp_path: Path) -> None:
    save_gif(tmp_path / "clip.gif", moving(3, 4), [50, 50, 90], loop=0)
    original = cq.load_animation(tmp_path / "clip.gif")
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        add_member(tar, "a.gif", (tmp_path / "clip.gif").read_bytes())
        add_member(tar, "a.txt", b"a caption")
        add_member(tar, "b.jpg", encode(photo(6), "JPEG"))
    summary = quantize_dataset(tmp_path / "s.tar", tmp_path / "out", K, workers=1)
    assert summary.images == 2 and summary.errors == 0
    assert summary.animations == 1 and summary.frames == 3
    members = dict(read_shard(tmp_path / "out" / "s.tar"))
    assert list(members) == ["a.png", "a.txt", "b.png"]
    check_animation(members["a.png"], original)
    check_palette_png(members["b.png"], None)


def test_a_bad_item_is_tried_again_by_the_rerun(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_folder(src, 2)
    (src / "late.png").write_bytes(encode(photo(7))[:150])  # truncated
    first = quantize_dataset(src, dst, 8, workers=1)
    assert first.images == 2 and first.errors == 1
    assert [e["item"] for e in errors_of(dst)] == ["late.png"]
    (src / "late.png").write_bytes(encode(photo(7)))  # fixed meanwhile
    second = quantize_dataset(src, dst, 8, workers=1)
    assert second.done_before == 2 and second.processed == 1
    assert second.images == 3 and second.errors == 0 and errors_of(dst) == []
    check_palette_png(dst / "late.png", photo(7), k=8)
    third = quantize_dataset(src, dst, 8, workers=1)
    assert third.done_before == 3 and third.processed == 0 and third.images == 3


def test_dataset_dither_fs_diffuses_the_whole_error_as_the_library(tmp_path: Path) -> None:
    # The README: the dataset command's --dither fs is the library's (strength 1 unless
    # --dither-strength says less), not quantize's 0.4.
    import colorquant as cq
    from colorquant.quantize import DATASET_SPEED

    src, dst = tmp_path / "src", tmp_path / "dst"
    pixels = make_folder(src, 2)
    summary_of(run(src, dst, "-k", 8, "--dither", "fs", "--workers", 1, "--json"))
    for rel, original in pixels.items():
        out = np.asarray(Image.open(dst / Path(rel).with_suffix(".png")).convert("RGB"))
        full = cq.quantize(original, 8, dither="fs", speed=DATASET_SPEED).to_numpy()
        part = cq.quantize(original, 8, dither="fs", dither_strength=0.4, speed=DATASET_SPEED)
        np.testing.assert_array_equal(out, full)
        assert not np.array_equal(out, part.to_numpy())
