"""The command's contract (issue 13, item 4): one default K, pngquant's --quality, one-line usage
errors in every command, a --json record per input, a closed pipe, and the small promises.

The pngquant tests run the real ``pngquant`` (PyPI ``pngquant-cli``, in the dev lock) on small
photo-like images built here.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import colorquant as cq
from colorquant.cli import main
from colorquant.cli.options import Quality
from conftest import needs_plot

PNGQUANT = Path(sys.executable).parent / "pngquant"
needs_pngquant = pytest.mark.skipif(
    not PNGQUANT.exists(), reason="pngquant is in the dev lock (pngquant-cli): make test"
)
# How far our quality may be from pngquant's own reading of the same colors: on Kodak the
# largest difference over its 20..99 range is 9.4, the RMS 2.6 (BENCHMARKS.md, "pngquant's
# quality scale"); libimagequant's error sees an image's tones and hues, the PSNR does not.
QUALITY_TOLERANCE = 10.0


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def photo_like(seed: int, height: int = 72, width: int = 96) -> np.ndarray:
    """A small photo-like image: smooth lighting over a few colored shapes, texture, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    sky = np.stack([0.35 + 0.3 * y, 0.55 + 0.25 * y, 0.9 - 0.2 * y], 2)
    image = sky.copy()
    for _ in range(4):
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.3)
        inside = (y - cy) ** 2 + (x - cx) ** 2 < r**2
        color = rng.uniform(0.05, 0.95, 3)
        shade = 0.6 + 0.4 * np.cos(6 * (x - cx) + 4 * (y - cy))
        image[inside] = (color * shade[..., None])[inside]
    grass = y > 0.75
    image[grass] = np.stack([0.2 + 0.1 * x, 0.45 + 0.2 * np.sin(40 * x), 0.15 + 0 * x], 2)[grass]
    image = image + rng.normal(0, 0.02 + 0.01 * seed, image.shape)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def write(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def assert_usage_line(result: Result, option: str) -> None:
    """Exit 2, exactly one stderr line starting 'colorquant: error:' and naming the option."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("colorquant: error: "), lines[0]
    assert option in lines[0], (option, lines[0])
    assert "Traceback" not in result.output and "Usage:" not in result.output


# -- every malformed option: exit 2, one line naming it -----------------------------------------

QUANTIZE_BAD = [
    (["-k", "0"], "-k/--colors"),
    (["-k", "300"], "-k/--colors"),
    (["-k", "abc"], "-k/--colors"),
    (["-k", "70000", "-d", "out", "--format", "npz"], "-k/--colors"),
    (["--quality", "90-10"], "--quality"),
    (["--quality", "abc"], "--quality"),
    (["--quality", "50-120"], "--quality"),
    (["--quality", "nan"], "--quality"),
    (["--fixed-colors", "red"], "--fixed-colors"),
    (["-k", "2", "--fixed-colors", "#000,#111,#222"], "--fixed-colors"),
    (["--fixed-colors", "#000", "--method", "adam"], "--fixed-colors"),
    (["--space", "hsv"], "--space"),
    (["--method", "lloyd"], "--method"),
    (["--init", "random-ish"], "--init"),
    (["--posterize", "9"], "--posterize"),
    (["--seed", "-1"], "--seed"),
    (["--speed", "11"], "--speed"),
    (["--device", "tpu"], "--device"),
    (["--dither", "atkinson"], "--dither"),
    (["--dither-strength", "2"], "--dither-strength"),
    (["--ext", "_x"], "--ext"),
    (["--ext", "a/b.png"], "--ext"),
    (["-o", "x.bmp"], "-o/--output"),
    (["--preview", "x.bmp"], "--preview"),
    (["-d", "out", "--format", "bmp"], "--format"),
    (["--keep-transparent-rgb", "-o", "x.gif"], "--keep-transparent-rgb"),
    (["--no-such-option"], "--no-such-option"),
]
ELBOW_BAD = [
    (["--max-k", "1"], "--max-k"),
    (["--max-k", "abc"], "--max-k"),
    (["-o", "x.txt"], "-o/--output"),
    (["--space", "hsv"], "--space"),
    (["--speed", "0"], "--speed"),
    (["--device", "gpu"], "--device"),
]
PLOT_BAD = [
    (["-k", "0"], "-k/--colors"),
    (["-k", "abc"], "-k/--colors"),
    (["--points", "0"], "--points"),
    (["-o", "x.txt"], "-o/--output"),
    (["--init", "x"], "--init"),
]
DATASET_BAD = [
    (["-k", "0"], "-k/--colors"),
    (["-k", "300"], "-k/--colors"),
    (["--space", "hsv"], "--space"),
    (["--dither", "x"], "--dither"),
    (["--dither-strength", "-1"], "--dither-strength"),
    (["--speed", "0"], "--speed"),
    (["--seed", "x"], "--seed"),
    (["--sample", "0"], "--sample"),
    (["--workers", "0"], "--workers"),
    (["--batch-size", "0"], "--batch-size"),
    (["--device", "tpu"], "--device"),
    (["--engine", "spark"], "--engine"),
]


@pytest.mark.parametrize(
    ("command", "args", "option"),
    [("quantize", a, o) for a, o in QUANTIZE_BAD]
    + [("elbow", a, o) for a, o in ELBOW_BAD]
    + [("plot", a, o) for a, o in PLOT_BAD]
    + [("dataset", a, o) for a, o in DATASET_BAD],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_malformed_option_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, args: list[str], option: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "in.png", photo_like(0, 16, 16))
    figure = [] if "-o" in args or command in ("quantize", "dataset") else ["-o", "f.png"]
    where = ["in.png", "dst"] if command == "dataset" else ["in.png"]
    assert_usage_line(run(command, *where, *args, *figure), option)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]  # nothing written


def test_no_api_names_in_messages(tmp_path: Path) -> None:
    # An image with both fully transparent and opaque pixels needs 2 entries: the library says
    # n_colors, the command -k/--colors.
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = (200, 10, 10, 255)
    src = write(tmp_path / "a.png", rgba)
    result = run("quantize", src, "-k", "1", "-o", tmp_path / "o.png")
    assert result.exit_code == 1
    assert "-k/--colors" in result.stderr and "n_colors" not in result.stderr
    (tmp_path / "o.png").write_bytes(b"old")
    result = run("quantize", src, "-o", tmp_path / "o.png")
    assert "--force" in result.stderr and "force=True" not in result.stderr


# -- one default K ------------------------------------------------------------------------------


def test_one_default_k_of_256() -> None:
    from colorquant import transforms
    from colorquant.dataset.hf import quantize_examples

    for function in (
        cq.quantize,
        cq.Quantizer,
        cq.quantize_batch,
        transforms.Quantize,
        quantize_examples,
    ):
        assert inspect.signature(function).parameters["n_colors"].default == 256, function
    help_text = " ".join(run("dataset", "--help").stdout.split())
    assert "[default: 256;" in help_text
    assert "[default: 256" in " ".join(run("quantize", "--help").stdout.split())


def test_command_default_k_is_256(tmp_path: Path) -> None:
    src = write(tmp_path / "a.png", photo_like(1, 64, 80))
    result = run("quantize", src, "-o", tmp_path / "o.png", "--nofs", "--json", "--speed", "10")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_colors"] == 256


def test_readme_quality_recipe_writes_on_photos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # README: colorquant quantize *.png --quality 60-85 --skip-if-larger
    monkeypatch.chdir(tmp_path)
    names = [write(Path(f"p{i}.png"), photo_like(i, 96, 128)).name for i in range(2)]
    result = run("quantize", *names, "--quality", "60-85", "--skip-if-larger", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in records] == ["written", "written"]
    for record in records:
        assert Path(record["output"]).exists()
        # pngquant's 60 is about 32.4 dB (BENCHMARKS.md); its 85 about 36.9 dB.
        assert record["psnr"] > 30


# -- pngquant's --quality -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values"),
    [("65-80", (65, 80)), ("-80", (0, 80)), ("60-", (60, 100)), ("80", (72, 80)), ("75", (67, 75))],
)
def test_quality_range_reads_as_pngquant_reads_it(text: str, values: tuple[int, int]) -> None:
    # pngquant: a single number N is the target, and 9/10 of it (rounded down) the minimum.
    assert Quality().convert(text, None, None) == values


def pngquant(*args: str | Path) -> tuple[int, str]:
    done = subprocess.run(
        [str(PNGQUANT), "--verbose", *map(str, args)], capture_output=True, text=True
    )
    return done.returncode, done.stdout + done.stderr


@needs_pngquant
@pytest.mark.parametrize("seed", [0, 2])
def test_quality_reads_as_pngquants(tmp_path: Path, seed: int) -> None:
    """For the very colors pngquant chose (its undithered mapping), our quality is its Q."""
    original = photo_like(seed)
    src = write(tmp_path / "in.png", original)
    checked = 0
    for k in (32, 64, 128, 256):
        out = tmp_path / f"pq{k}.png"
        code, text = pngquant(str(k), "--nofs", "--force", "-o", out, src)
        assert code == 0, text
        found = re.search(r"MSE=([0-9.]+) \(Q=(\d+)\)", text)
        assert found is not None, text
        theirs = int(found.group(2))
        ours = cq.quality_of(cq.psnr(original, np.asarray(Image.open(out).convert("RGB"))))
        if 20 <= theirs < 100:  # the calibrated range
            checked += 1
            assert abs(ours - (theirs + 0.5)) <= QUALITY_TOLERANCE, (k, ours, theirs)
    assert checked >= 2


@needs_pngquant
@pytest.mark.parametrize("seed", [0, 2])
def test_quality_writes_where_pngquant_writes(tmp_path: Path, seed: int) -> None:
    """Where pngquant writes, we write; where it exits 99, so do we, unless our mapping truly
    reaches the minimum (both dither, as by default; the quality is the undithered mapping's)."""
    original = photo_like(seed)
    src = write(tmp_path / "in.png", original)
    outcomes = []
    for low, high in ((40, 60), (65, 80), (80, 95), (97, 100)):
        quality = f"{low}-{high}"
        code, text = pngquant("--quality", quality, "--force", "-o", tmp_path / "pq.png", src)
        assert code in (0, 99), text
        out = tmp_path / f"cq{low}.png"
        result = run("quantize", src, "--quality", quality, "-o", out, "--json")
        (record,) = [json.loads(line) for line in result.stdout.splitlines()]
        outcomes.append((code, result.exit_code))
        if code == 0:
            assert result.exit_code == 0, (low, high, result.output)
        if result.exit_code == 0:
            assert record["status"] == "written" and out.exists()
            reached = cq.quality_of(cq.quantize(original, record["n_colors"]).psnr)
            assert reached >= low
            if record["n_colors"] < 256:
                assert reached >= high
        else:
            assert result.exit_code == 99 and code == 99, (low, high, result.output)
            assert record["status"] == "quality-too-low" and record["quality"] < low
            assert not out.exists()
            assert result.stderr.startswith(f"colorquant: error: {src}: quality ")
    # The ranges cover both outcomes of pngquant's.
    assert {code for code, _ in outcomes} == {0, 99}


# -- --json: one record per input ----------------------------------------------------------------


def test_json_one_record_per_input_with_its_status(tmp_path: Path) -> None:
    good = write(tmp_path / "good.png", photo_like(0, 48, 64))
    flat = np.zeros((32, 32, 3), np.uint8)
    small = write(tmp_path / "flat.png", flat)  # a tiny file: the output is no smaller
    missing = tmp_path / "missing.png"
    out = tmp_path / "out"
    args = ["--skip-if-larger", "--json", "-d", out]
    result = run("quantize", good, small, missing, *args)
    assert result.exit_code == 1  # an error first, as without --json
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["input"]).name for r in records] == ["good.png", "flat.png", "missing.png"]
    assert [r["status"] for r in records] == ["written", "skipped", "error"]
    assert "not smaller" in records[1]["reason"] and "no such file" in records[2]["reason"]
    assert all(r["output"].startswith(str(out)) for r in records)
    # Quality too low: exit 99, as without --json.
    result = run("quantize", good, "-k", "2", "--quality", "90-100", "--json", "-d", tmp_path / "q")
    assert result.exit_code == 99
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["status"] == "quality-too-low" and record["minimum"] == 90
    assert record["reason"].startswith(f"{good}: quality {record['quality']} with 2 colors")
    # A set-up failure: each input still gets its record.
    result = run(
        "quantize", good, small, "--palette", tmp_path / "no.gpl", "--json", "-d", tmp_path
    )
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in records] == ["error", "error"]


# -- a closed pipe ------------------------------------------------------------------------------


@needs_plot
def test_closed_pipe_ends_quietly_and_writes_the_figure(tmp_path: Path) -> None:
    src = write(tmp_path / "in.png", photo_like(3, 160, 200))
    figure = tmp_path / "elbow.png"
    command = [sys.executable, "-m", "colorquant.cli", "elbow", str(src), "--json"]
    process = subprocess.Popen(
        [*command, "--max-k", "256", "-o", str(figure)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()  # as `| head -1`
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, stderr
    assert json.loads(first)["k"] == 2
    assert stderr == ""
    assert figure.exists() and figure.stat().st_size > 0


# -- the small promises -------------------------------------------------------------------------


def test_a_folder_input_points_to_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    result = run("quantize", folder, "-d", tmp_path / "out")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"colorquant: error: {folder}: is a directory")
    assert "colorquant dataset" in line


@pytest.mark.parametrize("kind", [str, Path])
def test_quantize_takes_a_path(tmp_path: Path, kind: Any) -> None:
    array = photo_like(4, 24, 32)
    path = write(tmp_path / "photo.png", array)
    from_path = cq.quantize(kind(path), 8)
    from_array = cq.quantize(array, 8)
    np.testing.assert_array_equal(from_path.palette, from_array.palette)
    np.testing.assert_array_equal(from_path.indices, from_array.indices)
    with pytest.raises(cq.InputError, match=r"nope\.png"):
        cq.quantize(kind(tmp_path / "nope.png"), 8)


@needs_plot
def test_elbow_says_it_measures_the_undithered_mapping(tmp_path: Path) -> None:
    assert "undithered" in " ".join(run("elbow", "--help").stdout.split())
    src = write(tmp_path / "in.png", photo_like(0, 16, 16))
    # An SVG figure keeps its texts (as comments beside the glyphs): the title is there.
    result = run("elbow", src, "--max-k", "4", "-o", tmp_path / "e.svg")
    assert result.exit_code == 0, result.output
    assert "undithered" in result.stdout.splitlines()[0]
    title = re.search(r"<!-- (.*undithered.*) -->", (tmp_path / "e.svg").read_text())
    assert title is not None and title.group(1) == result.stdout.splitlines()[0].split(": ")[1]
    result = run("elbow", src, "--max-k", "4", "-o", tmp_path / "e2.png", "--json")
    assert {json.loads(line)["dither"] for line in result.stdout.splitlines()} == {"none"}


def test_standard_input_is_named_alike_everywhere(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(photo_like(31)).save(src)
    data = src.read_bytes()
    runner = CliRunner()
    written = runner.invoke(main, ["quantize", "-", "-k", "8", "--json"], input=data)
    assert written.exit_code == 0
    assert json.loads(written.stderr)["input"] == "<stdin>"
    low = runner.invoke(main, ["quantize", "-", "--quality", "99-100", "--json"], input=data)
    assert low.exit_code == 99
    record = json.loads(low.stderr.strip().splitlines()[-1])
    assert record["input"] == "<stdin>" and record["reason"].startswith("<stdin>: quality")


def test_per_frame_palette_needs_gif_output(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(photo_like(32)).save(src)
    for out in ("x.png", "x.npz"):
        result = run("quantize", src, "-o", tmp_path / out, "--per-frame-palette")
        assert result.exit_code == 2
        assert result.stderr.strip().splitlines() == [
            f"colorquant: error: --per-frame-palette needs GIF output: .{out[2:]} holds one "
            "palette for all frames"
        ]
    assert run("quantize", src, "-o", tmp_path / "x.gif", "--per-frame-palette").exit_code == 0
