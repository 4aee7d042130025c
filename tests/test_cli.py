"""The ``colorquant`` command end to end: click's CliRunner, and a few real subprocesses.

Every bad input must give exit status 1 (2 for a malformed option: tests/test_cli_contract.py),
exactly one line ``colorquant: error: ...`` on stderr, no traceback, and no output file.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image, ImageFile

import colorquant as cq
from colorquant.cli import main
from colorquant.cli.quantize import DEFAULT_FS_STRENGTH
from conftest import needs_optimize, needs_plot

H, W = 24, 32


# -- helpers ----------------------------------------------------------------------------------


def photo(seed: int = 0, height: int = H, width: int = W) -> np.ndarray:
    """A small smooth image with noise: many distinct colors."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([x / width * 220 + 20, y / height * 200 + 30, (x + y) * 2.0 + 40], 2)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def write_png(path: Path, array: np.ndarray | None = None, seed: int = 0) -> Path:
    Image.fromarray(photo(seed) if array is None else array).save(path)
    return path


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def assert_one_error(result: Result, *fragments: str) -> str:
    """Exit 1, one stderr line 'colorquant: error: ...' holding every fragment, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("colorquant: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output
    return lines[0]


def assert_usage_error(result: Result, *fragments: str) -> str:
    """Exit 2, one stderr line 'colorquant: error: ...' holding every fragment, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("colorquant: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output and "Usage:" not in result.output
    return lines[0]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return write_png(tmp_path / "in.png")


# -- quantize: success ------------------------------------------------------------------------


def test_quantize_one_image(tmp_path: Path, src: Path) -> None:
    result = run("quantize", src, "-k", "8", "-o", tmp_path / "out.png", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    with Image.open(tmp_path / "out.png") as image:
        assert image.mode == "P"
        assert len(image.getpalette() or []) // 3 <= 8
    (line,) = result.stdout.splitlines()
    for word in ("in.png", "out.png", "MSE", "PSNR", "dE00", "bytes", " s"):
        assert word in line


def test_json_matches_a_recomputation_from_the_written_file(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "out.png"
    result = run("quantize", src, "-k", "6", "-o", out, "--json", "--space", "lab", "--seed", "3")
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    record = json.loads(line)
    assert set(record) == {
        "input",
        "output",
        "status",
        "n_colors",
        "color_space",
        "method",
        "mse",
        "psnr",
        "delta_e",
        "bytes_in",
        "bytes_out",
        "seconds",
        "n_iter",
        "converged",
    }
    original = np.array(Image.open(src).convert("RGB"))
    with Image.open(out) as image:
        written = np.array(image.convert("RGB"))
        n_colors = len(image.getpalette() or []) // 3
    assert record["input"] == str(src) and record["output"] == str(out)
    assert record["n_colors"] == n_colors == len(np.unique(written.reshape(-1, 3), axis=0))
    assert record["color_space"] == "lab" and record["method"] == "kmeans"
    assert record["mse"] == pytest.approx(cq.mse(original, written), rel=1e-9)
    assert record["psnr"] == pytest.approx(cq.psnr(original, written), rel=1e-9)
    assert record["delta_e"] == pytest.approx(cq.mean_delta_e(original, written), rel=1e-6)
    assert record["bytes_in"] == src.stat().st_size
    assert record["bytes_out"] == out.stat().st_size
    assert record["seconds"] > 0 and record["n_iter"] >= 1
    assert isinstance(record["converged"], bool)


def test_lossless_psnr_is_null_in_json(tmp_path: Path) -> None:
    flat = np.zeros((H, W, 3), np.uint8)
    flat[:, W // 2 :] = (200, 10, 30)
    src = write_png(tmp_path / "flat.png", flat)
    result = run("quantize", src, "-k", "4", "-o", tmp_path / "o.png", "--json")
    record = json.loads(result.stdout)
    assert record["mse"] == 0.0 and record["psnr"] is None and record["n_colors"] == 2


def test_outdir_with_several_inputs_and_one_bad(tmp_path: Path) -> None:
    a = write_png(tmp_path / "a.png", seed=1)
    b = write_png(tmp_path / "b.png", seed=2)
    out = tmp_path / "out"  # created
    args = ["quantize", a, tmp_path / "missing.png", b, "-k", "4", "-d", out, "--json"]
    result = run(*args, "--format", "gif")
    assert_one_error(result, "missing.png", "no such file")
    assert files_in(out) == ["a.gif", "b.gif"]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["input"]).name for r in records] == ["a.png", "missing.png", "b.png"]
    assert [r["status"] for r in records] == ["written", "error", "written"]
    assert "no such file" in records[1]["reason"]
    for record in records[::2]:
        with Image.open(record["output"]) as image:
            assert image.format == "GIF"
    result = run("quantize", a, b, "-k", "300", "-d", out, "--format", "npz")
    assert result.exit_code == 0, result.output
    with np.load(out / "a.npz") as data:
        assert data["palette"].shape[0] > 256 and data["indices"].dtype == np.uint16


def test_fixed_palette_gives_only_those_colors(tmp_path: Path, src: Path) -> None:
    palette_file = tmp_path / "p.txt"
    palette_file.write_text("#000000 #ffffff\n#ff0000, #3366cc  # four colors\n")
    result = run("quantize", src, "--palette", palette_file, "-o", tmp_path / "o.png", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["method"] == "palette"
    written = np.asarray(Image.open(tmp_path / "o.png").convert("RGB")).reshape(-1, 3)
    allowed = {(0, 0, 0), (255, 255, 255), (255, 0, 0), (0x33, 0x66, 0xCC)}
    assert {tuple(c) for c in written.tolist()} <= allowed


@needs_plot
def test_previews_one_per_image(tmp_path: Path) -> None:
    a = write_png(tmp_path / "a.png", seed=1)
    b = write_png(tmp_path / "b.png", seed=2)
    result = run(
        "quantize", a, "-k", "4", "-o", tmp_path / "qa.png", "--preview", tmp_path / "f.png"
    )
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "f.png").size[0] > 100
    out = tmp_path / "out"
    result = run("quantize", a, b, "-k", "4", "-d", out, "--preview", tmp_path / "fig.svg")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig-a.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "fig-b.svg").exists()


def test_force_overwrites(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "o.png"
    out.write_bytes(b"old")
    assert_one_error(run("quantize", src, "-o", out), "o.png", "already exists")
    assert out.read_bytes() == b"old"
    assert run("quantize", src, "-o", out, "--force").exit_code == 0
    assert Image.open(out).mode == "P"


# -- quantize: bad input ----------------------------------------------------------------------


def zero_size_png() -> bytes:
    """A well-formed PNG whose IHDR says 0 x 5 pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _bad_png_files(tmp_path: Path) -> dict[str, Path]:
    good = (tmp_path / "good.png").read_bytes()
    files = {
        "text.png": b"this is not an image\n",
        "truncated.png": good[: len(good) // 2],
        "zero.png": zero_size_png(),
    }
    paths = {}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        paths[name] = tmp_path / name
    return paths


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.png", "no such file"),
        ("text.png", "not an image"),
        ("truncated.png", "truncated"),
        ("zero.png", "zero-size"),
    ],
)
def test_bad_input_files(tmp_path: Path, name: str, message: str) -> None:
    write_png(tmp_path / "good.png")
    _bad_png_files(tmp_path)
    before = files_in(tmp_path)
    result = run("quantize", tmp_path / name, "-o", tmp_path / "out.png")
    assert_one_error(result, name, message)
    assert files_in(tmp_path) == before


def test_truncated_fails_even_if_someone_turned_on_truncated_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_png(tmp_path / "good.png")
    bad = _bad_png_files(tmp_path)["truncated.png"]
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert_one_error(run("quantize", bad, "-o", tmp_path / "out.png"), "truncated")
    assert not (tmp_path / "out.png").exists()


def test_decompression_bomb(tmp_path: Path, src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    result = run("quantize", src, "-o", tmp_path / "out.png")
    assert_one_error(result, "in.png", f"{H * W} pixels", "limit of 100 pixels")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    ("k", "out", "message"),
    [
        ("0", "o.png", "-k/--colors: must be in 1..256 for .png output"),
        ("257", "o.png", "got 257"),
        ("257", "o.gif", "1..256 for .gif output"),
        ("70000", "o.npz", "1..65536 for .npz output"),
        ("4", "o.jpg", "unknown output format '.jpg', use one of .png, .gif, .npz"),
    ],
)
def test_bad_k_or_format(tmp_path: Path, src: Path, k: str, out: str, message: str) -> None:
    assert_usage_error(run("quantize", src, "-k", k, "-o", tmp_path / out), message)
    assert files_in(tmp_path) == ["in.png"]


def test_many_colors_allowed_for_npz(tmp_path: Path, src: Path) -> None:
    result = run("quantize", src, "-k", "400", "-o", tmp_path / "o.npz", "--speed", "10")
    assert result.exit_code == 0, result.output


def test_output_equal_to_input_refused_even_with_force(tmp_path: Path, src: Path) -> None:
    original = src.read_bytes()
    for out in (src, tmp_path / "sub" / ".." / "in.png"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        result = run("quantize", src, "-o", out, "--force")
        assert_one_error(result, "is the input", "never overwritten")
    result = run("quantize", src, "-d", tmp_path, "--force")  # tmp_path/in.png again
    assert_one_error(result, "is the input")
    assert src.read_bytes() == original
    assert files_in(tmp_path) == ["in.png", "sub"]


def test_unwritable_output_directory(tmp_path: Path, src: Path) -> None:
    assert_one_error(run("quantize", src, "-o", tmp_path / "no" / "o.png"), "does not exist")
    assert_one_error(run("quantize", src, "-o", src / "o.png"), "not a directory")
    assert run("quantize", src, "-d", src).exit_code == 2  # -d names a file: click's check
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            assert_one_error(run("quantize", src, "-o", locked / "o.png"), "not writable")
        finally:
            locked.chmod(0o700)


def test_malformed_palette_file(tmp_path: Path, src: Path) -> None:
    palette_file = tmp_path / "p.gpl"
    palette_file.write_text("GIMP Palette\n0 0 0\n12 x 7 broken\n")
    result = run("quantize", src, "--palette", palette_file, "-o", tmp_path / "o.png")
    assert_one_error(result, "p.gpl, line 3")
    big = tmp_path / "big.txt"
    big.write_text("\n".join(f"#{i:06x}" for i in range(300)))
    result = run("quantize", src, "--palette", big, "-o", tmp_path / "o.png")
    assert_one_error(result, "big.txt: 300 colors", "at most 256")
    assert not (tmp_path / "o.png").exists()


@needs_plot
def test_bad_device_and_preview(tmp_path: Path, src: Path) -> None:
    result = run("quantize", src, "-o", tmp_path / "o.png", "--device", "tpu")
    assert_usage_error(result, "--device: 'tpu'")
    result = run("quantize", src, "-o", tmp_path / "o.png", "--preview", tmp_path / "f.gif")
    assert_usage_error(result, "--preview", "f.gif", "unknown figure format")
    (tmp_path / "f.png").write_bytes(b"old")
    result = run("quantize", src, "-o", tmp_path / "o.png", "--preview", tmp_path / "f.png")
    assert_one_error(result, "f.png", "already exists")
    assert files_in(tmp_path) == ["f.png", "in.png"]


def test_two_inputs_with_one_name(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = write_png(tmp_path / "x" / "same.png", seed=1)
    b = write_png(tmp_path / "y" / "same.png", seed=2)
    result = run("quantize", a, b, "-k", "3", "-d", tmp_path / "out")
    assert_one_error(result, "written twice")
    assert files_in(tmp_path / "out") == ["same.png"]


@pytest.mark.parametrize(
    "args",
    [
        ["-k", "4", "-o", "a.png", "-d", "out"],
        ["-k", "4", "--format", "gif"],  # --format goes with -d
        ["-k", "4", "--speed", "11", "-o", "a.png"],
        ["-k", "4", "--space", "hsv", "-o", "a.png"],
        ["--palette", "p.gpl", "-k", "4", "-o", "a.png"],
    ],
)
def test_usage_errors_keep_exit_status_2(tmp_path: Path, src: Path, args: list[str]) -> None:
    result = run("quantize", src, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert files_in(tmp_path) == ["in.png"]


def test_help_defines_mse() -> None:
    result = run("quantize", "--help")
    assert result.exit_code == 0
    assert "mean, over all pixels and the 3 channels" in " ".join(result.output.split())


# -- elbow and plot ---------------------------------------------------------------------------


@needs_plot
def test_elbow(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "elbow.png"
    result = run("elbow", src, "--max-k", "12", "-o", out, "--json", "--speed", "8")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["k"] for r in records] == [2, 4, 8, 12]
    mses = [r["mse"] for r in records]
    assert mses == sorted(mses, reverse=True)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 100
    assert_one_error(run("elbow", src, "-o", out), "already exists")
    assert_one_error(run("elbow", src, "-o", src, "--force"), "is the input")
    assert_one_error(run("elbow", tmp_path / "nope.png", "-o", tmp_path / "e2.png"), "no such")


@needs_plot
def test_plot(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "cloud.png"
    result = run("plot", src, "-k", "5", "-o", out, "--space", "lab", "--points", "200")
    assert result.exit_code == 0, result.output
    assert "200 of" in result.stdout
    with Image.open(out) as image:
        assert image.format == "PNG"
    assert_usage_error(run("plot", src, "-k", "0", "-o", tmp_path / "c2.png"), "-k/--colors")
    assert_usage_error(run("plot", src, "-o", tmp_path / "c.txt"), "unknown figure format")
    assert files_in(tmp_path) == ["cloud.png", "in.png"]


# -- real processes ---------------------------------------------------------------------------


def run_process(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "colorquant.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)


def test_process_bad_inputs_one_line_no_traceback(tmp_path: Path, src: Path) -> None:
    write_png(tmp_path / "good.png")
    bad = _bad_png_files(tmp_path)
    done = run_process(
        "quantize",
        tmp_path / "missing.png",
        bad["truncated.png"],
        src,
        "-k",
        "4",
        "-d",
        tmp_path / "out",
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr  # one line per bad input
    assert all(line.startswith("colorquant: error: ") for line in lines)
    assert "missing.png: no such file" in lines[0] and "truncated.png" in lines[1]
    assert files_in(tmp_path / "out") == ["in.png"]
    assert "in.png -> " in done.stdout


def test_process_existing_output(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "o.png"
    out.write_bytes(b"old")
    done = run_process("quantize", src, "-o", out, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"colorquant: error: {out}: already exists (overwrite with --force)"
    ]
    assert out.read_bytes() == b"old"


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_init_option_reaches_the_fit(tmp_path: Path, src: Path, init: str) -> None:
    import colorquant as cq_api

    out = tmp_path / "out.png"
    result = run("quantize", src, "-k", "6", "-o", out, "--json", "--init", init, "--seed", "2")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    original = np.array(Image.open(src).convert("RGB"))
    # The command dithers by default (fs), as pngquant does.
    expected = cq_api.quantize(
        original,
        6,
        init=init,  # type: ignore[arg-type]
        seed=2,
        dither="fs",
        dither_strength=DEFAULT_FS_STRENGTH,
    )
    assert record["mse"] == pytest.approx(expected.mse, rel=1e-9)


def test_file_path_imports_neither_torch_nor_matplotlib(tmp_path: Path) -> None:
    # A script calls the command once per file: its start-up must not pay for torch (about 1 s),
    # matplotlib or tqdm. Run it in a fresh interpreter and look at what was imported.
    src = write_png(tmp_path / "in.png")
    out = tmp_path / "out.png"
    code = (
        "import sys\n"
        "from colorquant.cli import main\n"
        f"sys.argv = ['colorquant', 'quantize', {str(src)!r}, '-k', '8', '-o', {str(out)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'tqdm') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout
    assert Image.open(out).mode == "P"


# -- dithering, fixed colors, shared palettes -----------------------------------------------------


@pytest.mark.parametrize("dither", ["fs", "ordered"])
def test_dither_option_matches_the_library(tmp_path: Path, dither: str) -> None:
    src = write_png(tmp_path / "in.png")
    out = tmp_path / "out.png"
    result = run("quantize", src, "-k", "4", "-o", out, "--dither", dither, "--json")
    assert result.exit_code == 0, result.output
    strength = DEFAULT_FS_STRENGTH if dither == "fs" else 1.0  # the command's defaults
    expected = cq.quantize(photo(), 4, dither=dither, dither_strength=strength)  # type: ignore[arg-type]
    np.testing.assert_array_equal(np.asarray(Image.open(out).convert("RGB")), expected.to_numpy())
    assert json.loads(result.stdout)["mse"] == pytest.approx(expected.mse)


def test_fixed_colors_option(tmp_path: Path) -> None:
    src = write_png(tmp_path / "in.png")
    out = tmp_path / "out.png"
    result = run("quantize", src, "-k", "6", "-o", out, "--fixed-colors", "#00ff00, #fff")
    assert result.exit_code == 0, result.output
    palette = np.array(Image.open(out).getpalette()).reshape(-1, 3)[:6].tolist()
    assert [0, 255, 0] in palette and [255, 255, 255] in palette


def test_shared_palette_option(tmp_path: Path) -> None:
    a, b = write_png(tmp_path / "a.png", seed=1), write_png(tmp_path / "b.png", seed=2)
    out = tmp_path / "out"
    result = run("quantize", a, b, "-k", "8", "-d", out, "--shared-palette")
    assert result.exit_code == 0, result.output
    q = cq.Quantizer(8).fit([photo(1), photo(2)])
    for name, seed in (("a.png", 1), ("b.png", 2)):
        got = np.asarray(Image.open(out / name).convert("RGB"))
        expected = q.apply(photo(seed), dither="fs", dither_strength=DEFAULT_FS_STRENGTH)
        np.testing.assert_array_equal(got, expected.to_numpy())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--fixed-colors", "#12345g"], "--fixed-colors: '#12345g' is not a hex color"),
        (["--fixed-colors", ","], "--fixed-colors: no colors given"),
        (["-k", "2", "--fixed-colors", "#000,#111,#222"], "3 colors, more than -k/--colors (2)"),
        (["--fixed-colors", "#000,#000"], "--fixed-colors: a color is given twice"),
        (["--fixed-colors", "#000", "--method", "adam"], "--fixed-colors: works with --method"),
    ],
)
def test_bad_fixed_colors_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    src = write_png(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert_usage_error(run("quantize", src, "-o", out, *args), fragment)
    assert not out.exists()


def test_fs_strength_defaults_to_0_4_and_the_flag_wins(tmp_path: Path) -> None:
    src = write_png(tmp_path / "in.png")
    default, full = tmp_path / "default.png", tmp_path / "full.png"
    assert run("quantize", src, "-k", "8", "-o", default).exit_code == 0
    assert run("quantize", src, "-k", "8", "-o", full, "--dither-strength", "1").exit_code == 0
    half = cq.quantize(photo(), 8, dither="fs", dither_strength=0.4).to_numpy()
    whole = cq.quantize(photo(), 8, dither="fs", dither_strength=1.0).to_numpy()
    assert DEFAULT_FS_STRENGTH == 0.4 and not np.array_equal(half, whole)
    np.testing.assert_array_equal(np.asarray(Image.open(default).convert("RGB")), half)
    np.testing.assert_array_equal(np.asarray(Image.open(full).convert("RGB")), whole)


def test_dither_strength_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    src = write_png(tmp_path / "in.png")
    result = run("quantize", src, "-o", tmp_path / "o.png", "--dither-strength", "1.5")
    assert result.exit_code == 2 and "--dither-strength" in result.output
    result = run("quantize", src, "-o", tmp_path / "o.png", "--dither-strength", "nan")
    assert result.exit_code == 2 and not (tmp_path / "o.png").exists()
    assert "--dither-strength: nan is not a number in 0..1" in result.stderr
    for off in (["--nofs"], ["--dither", "none"]):
        result = run("quantize", src, "-o", tmp_path / "o.png", *off, "--dither-strength", "0.5")
        assert result.exit_code == 2 and not (tmp_path / "o.png").exists()
        assert f"--dither-strength scales a dither: not with {' '.join(off)}" in result.stderr
    result = run("quantize", src, "-o", tmp_path / "o.png", "--palette", src, "--shared-palette")
    assert result.exit_code == 2 and "--palette maps to given colors" in result.output


# -- the pngquant contract: default names, --skip-if-larger, --quality ----------------------------


def test_default_output_name_next_to_the_input(tmp_path: Path) -> None:
    src = write_png(tmp_path / "photo.png")
    result = run("quantize", src, "-k", "4")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path) == ["photo-cq.png", "photo.png"]
    assert Image.open(tmp_path / "photo-cq.png").mode == "P"
    result = run("quantize", src, "-k", "4", "--ext", ".small.gif")
    assert result.exit_code == 0 and Image.open(tmp_path / "photo.small.gif").format == "GIF"
    # Run again: the output exists, so nothing is overwritten without --force.
    assert_one_error(run("quantize", src, "-k", "4"), "photo-cq.png")


def test_skip_if_larger_exits_98_and_writes_nothing(tmp_path: Path) -> None:
    # A 2x2 RGB PNG (80 bytes): a palette PNG of it carries a PLTE chunk and is larger.
    src = tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (2, 2, 3), np.uint8)).save(src)
    out = tmp_path / "out.png"
    result = run("quantize", src, "-k", "4", "-o", out, "--skip-if-larger")
    assert result.exit_code == 98, result.output
    assert not out.exists() and files_in(tmp_path) == ["small.png"]
    assert "skipped" in result.stderr and "not smaller" in result.stderr
    # Without the flag it is written, and is indeed not smaller.
    assert run("quantize", src, "-k", "4", "-o", out).exit_code == 0
    assert out.stat().st_size >= src.stat().st_size


def test_quality_takes_the_fewest_colors_that_reach_max(tmp_path: Path) -> None:
    src = write_png(tmp_path / "in.png")
    out = tmp_path / "out.png"
    result = run("quantize", src, "-k", "256", "-o", out, "--quality", "10-60", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    n = record["n_colors"]
    assert 64 < n < 128
    # As pngquant's, the quality is that of the undithered mapping (the output is dithered).
    assert cq.quality_of(cq.quantize(photo(), n).psnr) >= 60
    assert cq.quality_of(cq.quantize(photo(), n - 1).psnr) < 60  # one fewer would not reach it
    # ... and the output is that palette's dithered mapping, at the command's strength.
    dithered = cq.quantize(photo(), n, dither="fs", dither_strength=DEFAULT_FS_STRENGTH)
    assert record["mse"] == pytest.approx(dithered.mse, rel=1e-9)
    assert record["mse"] != pytest.approx(cq.quantize(photo(), n).mse, rel=1e-3)


def test_quality_minimum_not_reached_exits_99(tmp_path: Path) -> None:
    src = write_png(tmp_path / "in.png")
    out = tmp_path / "out.png"
    result = run("quantize", src, "-k", "2", "-o", out, "--quality", "95-100")
    assert result.exit_code == 99, result.output
    assert result.stderr.startswith(f"colorquant: error: {src}: quality ")
    assert "with 2 colors is below 95" in result.stderr and not out.exists()


@pytest.mark.parametrize("text", ["high", "80-60", "-5-10", "50-120"])
def test_malformed_quality_one_line(tmp_path: Path, text: str) -> None:
    src = write_png(tmp_path / "in.png")
    result = run("quantize", src, "-o", tmp_path / "o.png", "--quality", text)
    assert_usage_error(result, "--quality")


def test_stdin_to_stdout_in_a_real_process(tmp_path: Path) -> None:
    # As scripts pipe pngquant: `colorquant quantize - < in.png > out.png`.
    src = write_png(tmp_path / "in.png")
    command = [sys.executable, "-m", "colorquant.cli", "quantize", "-", "-k", "6"]
    with open(src, "rb") as stdin:
        proc = subprocess.run(command, stdin=stdin, capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = Image.open(io.BytesIO(proc.stdout))
    assert out.format == "PNG" and out.mode == "P"
    expected = cq.quantize(photo(), 6, dither="fs", dither_strength=DEFAULT_FS_STRENGTH)
    np.testing.assert_array_equal(np.asarray(out.convert("RGB")), expected.to_numpy())
    assert b"<stdin> -> -: 6 colors" in proc.stderr  # the report goes to stderr
    assert files_in(tmp_path) == ["in.png"]


def test_stdin_errors_and_file_to_stdout(tmp_path: Path) -> None:
    src = write_png(tmp_path / "in.png")
    command = [sys.executable, "-m", "colorquant.cli", "quantize"]
    bad = subprocess.run(
        [*command, "-", "-k", "4"], input=b"not an image", capture_output=True, timeout=120
    )
    assert bad.returncode == 1 and bad.stdout == b""
    assert bad.stderr.decode().strip() == (
        "colorquant: error: <stdin>: not an image file, or a format Pillow cannot read"
    )
    gif = subprocess.run(
        [*command, str(src), "-k", "4", "-o", "-", "--format", "gif"], capture_output=True,
        timeout=120,
    )  # fmt: skip
    assert gif.returncode == 0 and Image.open(io.BytesIO(gif.stdout)).format == "GIF"
    assert run("quantize", "-", src, "-k", "4", "-d", tmp_path).exit_code == 2


def test_icc_profile_kept_unless_strip(tmp_path: Path) -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "in.png"
    Image.fromarray(photo()).save(src, icc_profile=icc)
    kept, stripped = tmp_path / "kept.png", tmp_path / "stripped.png"
    assert run("quantize", src, "-k", "8", "-o", kept).exit_code == 0
    assert run("quantize", src, "-k", "8", "-o", stripped, "--strip").exit_code == 0
    assert Image.open(kept).info.get("icc_profile") == icc
    assert "icc_profile" not in Image.open(stripped).info
    assert cq.load_image(kept).icc_profile == icc


def test_gamma_and_text_kept_unless_strip(tmp_path: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Title", "a photo")
    info.add_itxt("Author", "Zoë Ångström")
    info.add(b"gAMA", (45455).to_bytes(4, "big"))
    src = tmp_path / "in.png"
    Image.fromarray(photo()).save(src, pnginfo=info)
    loaded = cq.load_image(src)
    assert loaded.gamma == pytest.approx(0.45455)
    assert dict(loaded.text) == {"Title": "a photo", "Author": "Zoë Ångström"}
    kept, stripped = tmp_path / "kept.png", tmp_path / "stripped.png"
    assert run("quantize", src, "-k", "8", "-o", kept).exit_code == 0
    assert run("quantize", src, "-k", "8", "-o", stripped, "--strip").exit_code == 0
    with Image.open(kept) as image:
        assert image.info["gamma"] == pytest.approx(0.45455)
        assert image.text == {"Title": "a photo", "Author": "Zoë Ångström"}  # type: ignore[attr-defined]
    with Image.open(stripped) as image:
        assert "gamma" not in image.info and not image.text  # type: ignore[attr-defined]


def test_posterize_option(tmp_path: Path) -> None:
    src = write_png(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert run("quantize", src, "-k", "8", "-o", out, "--posterize", "2").exit_code == 0
    colors = set(np.asarray(Image.open(out).convert("RGB")).ravel().tolist())
    assert colors <= {0, 85, 170, 255}
    assert run("quantize", src, "-o", out, "--force", "--posterize", "9").exit_code == 2


def test_default_dither_is_fs_and_nofs_turns_it_off(tmp_path: Path) -> None:
    src = write_png(tmp_path / "in.png")
    outs = {}
    for name, args in (("default", []), ("fs", ["--dither", "fs"]), ("nofs", ["--nofs"])):
        out = tmp_path / f"{name}.png"
        assert run("quantize", src, "-k", "6", "-o", out, *args).exit_code == 0
        outs[name] = np.asarray(Image.open(out).convert("RGB"))
    np.testing.assert_array_equal(outs["default"], outs["fs"])
    np.testing.assert_array_equal(outs["nofs"], cq.quantize(photo(), 6).to_numpy())
    assert not np.array_equal(outs["nofs"], outs["fs"])
    bad = run("quantize", src, "--nofs", "--dither", "ordered", "-o", tmp_path / "x.png")
    assert bad.exit_code == 2 and "contradict" in bad.stderr


@needs_optimize
def test_optimize_is_lossless_and_smaller(tmp_path: Path) -> None:
    src = write_png(tmp_path / "in.png", photo(0, 128, 160))
    plain, small = tmp_path / "plain.png", tmp_path / "small.png"
    assert run("quantize", src, "-k", "64", "-o", plain).exit_code == 0
    assert run("quantize", src, "-k", "64", "-o", small, "--optimize").exit_code == 0
    assert small.stat().st_size < plain.stat().st_size
    with Image.open(plain) as a, Image.open(small) as b:
        np.testing.assert_array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


def test_optimize_without_pyoxipng(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "oxipng" else real(name, *a)
    )
    src = write_png(tmp_path / "in.png")
    result = run("quantize", src, "--optimize", "-o", tmp_path / "o.png")
    assert_one_error(result, "needs the optional pyoxipng", "colorquant[optimize]")
    assert not (tmp_path / "o.png").exists()


def test_verbose_logs_the_fit(tmp_path: Path) -> None:
    src = write_png(tmp_path / "a.png")
    proc = run_process("-v", "quantize", src, "-k", "8", "-o", tmp_path / "b.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "fit: " in proc.stderr and "iterations" in proc.stderr
    quiet = run_process("quantize", src, "-k", "8", "-o", tmp_path / "c.png", cwd=tmp_path)
    assert "fit: " not in quiet.stderr


@pytest.mark.slow
def test_ctrl_c_ends_with_status_130_and_no_partial_file(tmp_path: Path) -> None:
    import signal
    import time

    sources = [write_png(tmp_path / f"in{i:02d}.png", photo(i, 256, 256), i) for i in range(16)]
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "colorquant.cli", "quantize", *map(str, sources)]
    command += ["-k", "256", "--speed", "1", "-d", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(out.glob("*.png")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    written = sorted(p.name for p in out.iterdir())
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith(
        "colorquant: error: interrupted"
    )
    assert 0 < len(written) < 16 and all(n.endswith(".png") for n in written)  # no temp file
    for name in written:  # every file there is whole
        with Image.open(out / name) as im:
            im.load()


def test_a_folder_as_output_points_at_outdir(tmp_path: Path) -> None:
    src = write_png(tmp_path / "a.png")
    (tmp_path / "odir").mkdir()
    result = run("quantize", src, "-o", tmp_path / "odir")
    assert result.exit_code == 2
    assert "odir is a folder: -d/--outdir writes into one" in result.output
    assert list((tmp_path / "odir").iterdir()) == []


def test_a_missing_device_is_named_as_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = run(
        "quantize", write_png(tmp_path / "a.png"), "--device", "cuda", "-o", tmp_path / "b.png"
    )
    assert result.exit_code == 1
    assert "--device cuda was asked for, but no CUDA device is available" in result.output
