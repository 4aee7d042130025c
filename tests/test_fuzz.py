"""Hostile input: mutated PNG, APNG, GIF, JPEG, WebP and TIFF files, with a fixed seed.

Every mutation of a real file (bit flips, truncation, corrupted chunk and block lengths, image
and frame sizes set to 0, 1 or absurd values, with PNG checksums fixed so the decoder gets past
them) must end in the library's own error: :class:`colorquant.io.ImageFileError` (an
:class:`colorquant.InputError`, so a ``ValueError``), the one error the loaders raise for a
file's content. Nothing else may come out (no ``struct.error``, ``EOFError``, ``MemoryError``,
``SyntaxError``, ``IndexError``, ...). The command line, given such files, exits 0 or 1 with
one line on stderr for each bad file, no traceback, and leaves no temporary file (libtiff
alone, decoding a corrupt compressed TIFF, prints its own diagnostics to stderr from C).

The seeds come from ``fuzz/corpus.py``, which the atheris harness (``fuzz/``) shares.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import colorquant as cq
from colorquant.animation import animation_bytes, is_animated, load_animation_bytes
from colorquant.cli import main
from colorquant.io import ImageFileError, load_image_bytes, load_palette_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

from corpus import ANIMATED, IMAGE_SUFFIXES, npz_sample, palette_samples, samples

SEED = 20261206
#: Mutants of each sample: 12 samples x 80 x 3 loaders take about 2 s.
N_IMAGE = 80
N_PALETTE = 150
N_NPZ = 150
SAMPLES = samples()
PALETTES = palette_samples()

Mutation = Callable[[bytes, np.random.Generator], bytes]

# Values that break size and length fields: zero, one, the largest of each width, and near them.
EXTREMES = (0, 1, 2, 0x7F, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)


def _extreme(rng: np.random.Generator, bits: int) -> int:
    values = [v for v in EXTREMES if v < 1 << bits]
    if rng.random() < 0.3:
        return int(rng.integers(0, 1 << min(bits, 31)))
    return int(values[rng.integers(len(values))])


def flip_bits(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        bit = int(rng.integers(8 * len(out)))
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def overwrite_field(data: bytes, rng: np.random.Generator) -> bytes:
    """A 1-, 2- or 4-byte field anywhere set to an extreme value, either byte order."""
    width = int(rng.choice([1, 2, 4]))
    at = int(rng.integers(0, max(1, len(data) - width)))
    order = "<" if rng.random() < 0.5 else ">"
    code = {1: "B", 2: "H", 4: "I"}[width]
    field = struct.pack(order + code, _extreme(rng, 8 * width))
    return data[:at] + field + data[at + width :]


def _png_chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """``(offset, type, length)`` of each chunk of a PNG."""
    chunks, at = [], 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        chunks.append((at, kind, length))
        at += 12 + length
    return chunks


def _png_with(data: bytes, at: int, kind: bytes, body: bytes) -> bytes:
    """The PNG with the chunk at ``at`` given a new body, its length and CRC right."""
    old = struct.unpack(">I", data[at : at + 4])[0]
    crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    chunk = struct.pack(">I", len(body)) + kind + body + crc
    return data[:at] + chunk + data[at + 12 + old :]


def png_chunk_length(data: bytes, rng: np.random.Generator) -> bytes:
    """A chunk's length field set to an extreme (the chunk's bytes unchanged)."""
    chunks = _png_chunks(data)
    at, _, _ = chunks[int(rng.integers(len(chunks)))]
    return data[:at] + struct.pack(">I", _extreme(rng, 32)) + data[at + 4 :]


def png_sizes(data: bytes, rng: np.random.Generator) -> bytes:
    """IHDR's or an fcTL's width or height, acTL's frame count, or a chunk's body changed,
    with a valid CRC so that the decoder takes it."""
    chunks = [c for c in _png_chunks(data) if c[1] in (b"IHDR", b"fcTL", b"acTL", b"IDAT", b"fdAT")]
    at, kind, length = chunks[int(rng.integers(len(chunks)))]
    body = bytearray(data[at + 8 : at + 8 + length])
    if kind == b"IHDR":
        field = int(rng.integers(0, 3))  # width, height, or bit depth/color type/...
        if field < 2:
            body[4 * field : 4 * field + 4] = struct.pack(">I", _extreme(rng, 32))
        else:
            body[8 + int(rng.integers(0, 5))] = _extreme(rng, 8)
    elif kind == b"fcTL":
        field = int(rng.integers(1, 7))  # width, height, x, y, delay num/den
        if field <= 4:
            body[4 * field : 4 * field + 4] = struct.pack(">I", _extreme(rng, 32))
        else:
            at2 = 20 + 2 * (field - 5)
            body[at2 : at2 + 2] = struct.pack(">H", _extreme(rng, 16))
    elif kind == b"acTL":
        body[int(rng.integers(0, 2)) * 4 :][:4] = struct.pack(">I", _extreme(rng, 32))
        body = body[:8]
    else:  # image data: a bit flipped, or cut short, inside a well-formed chunk
        body = bytearray(
            flip_bits(bytes(body), rng) if rng.random() < 0.5 else truncate(bytes(body), rng)
        )
    return _png_with(data, at, kind, bytes(body))


def _gif_blocks(data: bytes) -> tuple[list[int], list[int]]:
    """Offsets of the GIF's image descriptors and of its sub-block length bytes."""
    flags, at = data[10], 13
    if flags & 0x80:
        at += 3 * (2 << (flags & 7))
    descriptors, lengths = [], []

    def skip(at: int) -> int:
        while at < len(data) and data[at]:
            lengths.append(at)
            at += 1 + data[at]
        return at + 1

    while at < len(data) and data[at] != 0x3B:
        if data[at] == 0x21:
            at = skip(at + 2)
        elif data[at] == 0x2C:
            descriptors.append(at)
            local = data[at + 9]
            at += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0)
            at = skip(at + 1)
        else:
            break
    return descriptors, lengths


def gif_sizes(data: bytes, rng: np.random.Generator) -> bytes:
    """The screen's or a frame's size or position, a table size, a sub-block's length, or the
    LZW code size set to an extreme."""
    descriptors, lengths = _gif_blocks(data)
    out = bytearray(data)
    choice = int(rng.integers(0, 4))
    if choice == 0 or not descriptors:  # the logical screen: width, height, flags
        at = 6 + 2 * int(rng.integers(0, 3))
        out[at : at + 2] = struct.pack("<H", _extreme(rng, 16))
    elif choice == 1:  # a frame: left, top, width, height, flags
        at = descriptors[int(rng.integers(len(descriptors)))] + 1 + 2 * int(rng.integers(0, 5))
        out[at : at + 2] = struct.pack("<H", _extreme(rng, 16))
    elif choice == 2 and lengths:
        out[lengths[int(rng.integers(len(lengths)))]] = _extreme(rng, 8)
    else:  # the LZW minimum code size
        descriptor = descriptors[int(rng.integers(len(descriptors)))]
        local = data[descriptor + 9]
        at = descriptor + 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0)
        out[at] = _extreme(rng, 8)
    return bytes(out)


def jpeg_sizes(data: bytes, rng: np.random.Generator) -> bytes:
    """A segment's length, or the frame's height, width or component count, set to an extreme."""
    out = bytearray(data)
    markers = [
        i for i in range(2, len(data) - 4) if data[i] == 0xFF and 0xC0 <= data[i + 1] <= 0xFE
    ]
    at = markers[int(rng.integers(len(markers)))]
    if data[at + 1] == 0xC0 and rng.random() < 0.7:  # SOF0: length, precision, height, width
        field = at + 5 + 2 * int(rng.integers(0, 2))
        out[field : field + 2] = struct.pack(">H", _extreme(rng, 16))
    else:
        out[at + 2 : at + 4] = struct.pack(">H", _extreme(rng, 16))
    return bytes(out)


def tiff_tags(data: bytes, rng: np.random.Generator) -> bytes:
    """An IFD entry's type, count or value (width, height, strips, bits, ...) set to an extreme."""
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[ifd : ifd + 2])[0]
    entry = ifd + 2 + 12 * int(rng.integers(count))
    field = int(rng.choice([2, 4, 8]))  # type, count, value
    width = 2 if field == 2 else 4
    out = bytearray(data)
    out[entry + field : entry + field + width] = struct.pack(
        order + ("H" if width == 2 else "I"), _extreme(rng, 8 * width)
    )
    return bytes(out)


def riff_sizes(data: bytes, rng: np.random.Generator) -> bytes:
    """A WebP RIFF chunk's size, or a VP8X/ANMF canvas or frame size, set to an extreme."""
    chunks, at = [], 12
    while at + 8 <= len(data):
        kind, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        chunks.append((at, kind))
        at += 8 + size + (size & 1)
    out = bytearray(data)
    at, kind = chunks[int(rng.integers(len(chunks)))] if chunks else (0, b"RIFF")
    if kind in (b"VP8X", b"ANMF") and rng.random() < 0.7:
        field = at + 8 + (4 if kind == b"VP8X" else 6) + 3 * int(rng.integers(0, 2))
        out[field : field + 3] = _extreme(rng, 24).to_bytes(3, "little")
    else:
        out[at + 4 : at + 8] = struct.pack("<I", _extreme(rng, 32))
    return bytes(out)


GENERIC: tuple[Mutation, ...] = (flip_bits, truncate, overwrite_field)
BY_FORMAT: dict[str, tuple[Mutation, ...]] = {
    ".png": (png_chunk_length, png_sizes, png_sizes),
    ".gif": (gif_sizes, gif_sizes),
    ".jpg": (jpeg_sizes,),
    ".tif": (tiff_tags, tiff_tags),
    ".webp": (riff_sizes, riff_sizes),
}


def mutants(
    name: str, data: bytes, count: int, seed: int, mutations: Sequence[Mutation] | None = None
) -> Iterator[tuple[str, bytes]]:
    """``count`` mutations of ``data`` (one to three stacked), each with a name to reproduce it:
    ``mutants(name, data, count, seed)`` gives the same bytes every time."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if mutations is None:
        mutations = GENERIC + BY_FORMAT.get(IMAGE_SUFFIXES.get(name, ""), ())
    for case in range(count):
        out = data
        steps = []
        for _ in range(int(rng.integers(1, 4))):
            mutation = mutations[int(rng.integers(len(mutations)))]
            try:
                out = mutation(out, rng)
            except (IndexError, ValueError, struct.error):
                continue  # the file is already too broken for this structure-aware mutation
            steps.append(mutation.__name__)
        yield f"{name}#{case} ({'+'.join(steps)})", out


# Tokens that break a text palette's lines: out of range, not numbers, odd keys and bytes.
TEXT_TOKENS = (
    "-1", "256", "1e400", "nan", "99999999999999999999999", "#gg0000", "#12345", "#", "\x00",
    "Channels: RGBA", "Channels: XYZ", "Columns: x", "Columns: 99999999999999999999",
    "GIMP Palette", "\ufeff", "é", "\r", "\n" * 3, " " * 40,
)  # fmt: skip


def text_tokens(data: bytes, rng: np.random.Generator) -> bytes:
    """A token inserted into, or replacing a word of, the text."""
    words = data.split(b" ")
    at = int(rng.integers(len(words)))
    token = TEXT_TOKENS[int(rng.integers(len(TEXT_TOKENS)))].encode()
    if rng.random() < 0.5:
        words[at] = token
    else:
        words.insert(at, token)
    return b" ".join(words)


def many_lines(data: bytes, rng: np.random.Generator) -> bytes:
    """The last color line repeated past the most colors a palette holds."""
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return data + (last + b"\n") * int(rng.choice([70_000, 3]))


def check_only_image_file_errors(
    call: Callable[[bytes], object],
    cases: list[tuple[str, bytes]],
    allowed: tuple[type[Exception], ...] = (ImageFileError,),
) -> list[str]:
    """Run ``call`` on every case; the cases that raised anything but ``allowed`` (a one-line
    ImageFileError by default; ``()``: nothing may be raised)."""
    escaped = []
    for case, data in cases:
        try:
            call(data)
        except allowed as err:
            assert "\n" not in str(err), f"{case}: a message of several lines: {err!r}"
        except Exception as err:
            escaped.append(f"{case}: {type(err).__name__}: {err}")
    return escaped


@pytest.fixture(autouse=True)
def small_bomb_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutated sizes under Pillow's default limit (89 M pixels) would take seconds and gigabytes
    each: with a limit of 2^20 pixels the test stays quick, and absurd sizes meet the refusal."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1 << 20)


def test_the_seeds_are_valid_files() -> None:
    assert {".png", ".gif", ".jpg", ".tif"} <= {IMAGE_SUFFIXES[n] for n in SAMPLES}
    for name, data in SAMPLES.items():
        assert load_image_bytes(data, name).pixels.shape[:2] == (12, 16), name
        frames = load_animation_bytes(data, name).frames
        assert len(frames) == (3 if name in ANIMATED else 1), name
    for name, data in PALETTES.items():
        assert len(load_palette_bytes(data, f"{name}.txt")) >= 2


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_mutated_images_raise_only_image_file_errors(name: str) -> None:
    cases = list(mutants(name, SAMPLES[name], N_IMAGE, SEED))
    escaped = check_only_image_file_errors(lambda d: load_image_bytes(d, name), cases)
    escaped += check_only_image_file_errors(lambda d: load_animation_bytes(d, name), cases)
    escaped += check_only_image_file_errors(is_animated, cases, allowed=())
    assert not escaped, f"{len(escaped)} escaped:\n" + "\n".join(escaped[:10])
    # The mutants reach the decoders: many are refused, for several reasons.
    reasons = set()
    for _, data in cases:
        try:
            load_image_bytes(data, name)
        except ImageFileError as err:
            reasons.add(str(err).split(":")[1].strip()[:20])
    assert len(reasons) >= 2, reasons


@pytest.mark.parametrize("name", sorted(PALETTES))
def test_mutated_palette_files_raise_only_image_file_errors(name: str) -> None:
    mutations = (*GENERIC, text_tokens, text_tokens, text_tokens, many_lines)
    cases = list(mutants(name, PALETTES[name], N_PALETTE, SEED, mutations))
    suffix = ".txt" if name == "hex" else ".gpl"
    escaped = check_only_image_file_errors(lambda d: load_palette_bytes(d, name + suffix), cases)
    assert not escaped, f"{len(escaped)} escaped:\n" + "\n".join(escaped[:10])


def test_mutated_image_palette_files_raise_only_image_file_errors() -> None:
    # An image as a palette file goes through the image loader (a PNG with transparency here).
    png = SAMPLES["png_palette"]
    cases = list(mutants("png_palette", png, N_PALETTE // 3, SEED + 1))
    escaped = check_only_image_file_errors(lambda d: load_palette_bytes(d, "p.png"), cases)
    assert not escaped, f"{len(escaped)} escaped:\n" + "\n".join(escaped[:10])


def test_mutated_npz_raises_only_image_file_errors() -> None:
    frames = np.stack([f[..., :3] for f in load_animation_bytes(SAMPLES["gif_anim"]).frames])
    results = cq.quantize_animation(frames, 8)
    compressed = animation_bytes(results, ".npz", durations=[30, 40, 50], loop=2)
    with np.load(io.BytesIO(compressed)) as arrays:
        buffer = io.BytesIO()
        np.savez(buffer, **dict(arrays))  # stored, not deflated: flips reach the arrays
    cases = [
        *mutants("npz", compressed, N_NPZ // 2, SEED),
        *mutants("npz_stored", buffer.getvalue(), N_NPZ // 2, SEED),
    ]
    escaped = check_only_image_file_errors(lambda d: load_animation_bytes(d, "a.npz"), cases)
    assert not escaped, f"{len(escaped)} escaped:\n" + "\n".join(escaped[:10])
    # The harness's npz seed is a valid animation.
    animation = load_animation_bytes(npz_sample(), "seed.npz")
    assert len(animation.frames) == 3 and animation.loop == 2
    assert animation.frames[0].shape == (12, 16, 4)


def _cli_inputs(folder: Path, per_sample: int) -> list[Path]:
    folder.mkdir()
    paths = []
    for name, data in SAMPLES.items():
        for case, (_, bad) in enumerate(mutants(name, data, per_sample, SEED + 2)):
            path = folder / f"{name}-{case}{IMAGE_SUFFIXES[name]}"
            path.write_bytes(bad)
            paths.append(path)
    return paths


def test_cli_on_mutated_files_one_line_each_no_traceback_no_temporary_file(
    tmp_path: Path,
) -> None:
    inputs = _cli_inputs(tmp_path / "in", 3)
    out = tmp_path / "out"
    args = ["quantize", *map(str, inputs), "-d", str(out), "-k", "4", "--dither", "none"]
    result = CliRunner().invoke(main, [*args, "--speed", "10"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert all(line.startswith("colorquant: error: ") for line in lines), lines
    failed = 0
    for path in inputs:
        written = (out / f"{path.stem}.png").exists()
        naming = [line for line in lines if f"{path}:" in line]
        assert len(naming) == (0 if written else 1), (path.name, naming)
        failed += not written
    assert len(lines) == failed and 0 < failed < len(inputs)
    assert result.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{p.stem}.png" for p in inputs if (out / f"{p.stem}.png").exists()
    )  # nothing else: no temporary file


def test_cli_process_on_broken_files(tmp_path: Path) -> None:
    # A real process (its own stderr, no click runner): one line a file, exit 1, no traceback.
    # Not TIFF: libtiff prints its own diagnostics to stderr from C, past Python's reach.
    broken = []
    for path in _cli_inputs(tmp_path / "in", 6):
        if path.suffix == ".tif":
            continue
        try:
            load_animation_bytes(path.read_bytes(), path.name)
        except ImageFileError as err:
            if "decompression-bomb" not in str(err):  # the process has Pillow's own limit
                broken.append(path)
    assert len(broken) >= 10
    out = tmp_path / "out"
    code = "import sys; from colorquant.cli import main; sys.exit(main())"
    args = ["quantize", *map(str, broken), "-d", str(out), "-k", "4", "--speed", "10"]
    run = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    lines = run.stderr.splitlines()
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert len(lines) == len(broken), lines
    assert all(line.startswith("colorquant: error: ") for line in lines)
    assert not out.exists() or not any(out.iterdir())
