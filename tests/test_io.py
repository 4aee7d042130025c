"""colorquant.io: image and palette files in, palette PNG / GIF / npz out, atomic writes.

Every file is made here, in tmp_path, with NumPy and Pillow.
"""

from __future__ import annotations

import doctest
import importlib
import io
import os
import re
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFile

import colorquant as cq
from colorquant.cli import main
from colorquant.io import (
    ImageFileError,
    LoadedImage,
    TooManyColorsError,
    WriteError,
    atomic_write,
    check_output_path,
    load_image,
    load_palette,
    load_palette_bytes,
    max_colors_for,
    result_bytes,
    result_suffix,
    save_result,
)
from conftest import png_chunks

H, W = 24, 32


# -- helpers ----------------------------------------------------------------------------------


def noise(height: int = H, width: int = W, seed: int = 0) -> np.ndarray:
    """``(height, width, 3)`` uint8 random colors."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def distinct_palette(k: int, seed: int = 0) -> np.ndarray:
    """``(k, 3)`` uint8 distinct colors."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(1 << 24, size=k, replace=False)
    return np.stack(((codes >> 16) & 255, (codes >> 8) & 255, codes & 255), 1).astype(np.uint8)


def exact_result(k: int, seed: int = 0) -> tuple[np.ndarray, cq.QuantizeResult]:
    """An image made of exactly ``k`` colors and its (lossless) result: the palette is known."""
    palette = distinct_palette(k, seed)
    rng = np.random.default_rng(seed)
    size = max(H * W, k)
    index = np.concatenate([np.arange(k), rng.integers(0, k, size - k)])
    rng.shuffle(index)
    width = W if size == H * W else k
    image = palette[index.reshape(-1, width)]
    result = cq.quantize(image, palette=palette, color_space="rgb", device="cpu")
    assert result.n_colors == k and result.mse == 0.0
    return image, result


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def zero_size_png(width: int = 0, height: int = 5) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


# -- save_result ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "bits"), [(1, 1), (2, 1), (3, 2), (4, 2), (16, 4), (17, 8), (200, 8)]
)
def test_png_is_palette_mode_with_least_bit_depth_and_exact_palette(
    tmp_path: Path, k: int, bits: int
) -> None:
    _, result = exact_result(k)
    path = tmp_path / "out.png"
    size = save_result(result, path)
    data = path.read_bytes()
    assert size == len(data)
    chunks = png_chunks(data)
    width, height, depth, color_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, height) == (result.indices.shape[1], result.indices.shape[0])
    assert color_type == 3  # indexed color
    assert depth == bits
    assert chunks[b"PLTE"] == result.palette.tobytes()  # exactly the used colors, no padding
    with Image.open(path) as image:
        assert image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image), result.indices)
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), result.to_numpy())


def test_png_of_a_fitted_result_round_trips(tmp_path: Path) -> None:
    image = noise()
    result = cq.quantize(image, 8, device="cpu")
    save_result(result, tmp_path / "a.png")
    reread = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(reread.pixels, result.to_numpy())
    assert reread.mode == "P"


@pytest.mark.parametrize("k", [1, 2, 5, 200])
def test_gif_round_trip(tmp_path: Path, k: int) -> None:
    _, result = exact_result(k)
    save_result(result, tmp_path / "a.gif")
    with Image.open(tmp_path / "a.gif") as image:
        assert image.format == "GIF"
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), result.to_numpy())


@pytest.mark.parametrize("k", [5, 300])
def test_npz_round_trip(tmp_path: Path, k: int) -> None:
    _, result = exact_result(k)
    save_result(result, tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as data:
        assert set(data.files) == {"indices", "palette"}
        np.testing.assert_array_equal(data["indices"], result.indices)
        np.testing.assert_array_equal(data["palette"], result.palette)
        assert data["indices"].dtype == (np.uint16 if k > 256 else np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_more_than_256_colors_refused_for_palette_images(tmp_path: Path, suffix: str) -> None:
    _, result = exact_result(300)
    with pytest.raises(cq.InputError, match="at most 256 colors"):
        save_result(result, tmp_path / f"a{suffix}")
    assert list(tmp_path.iterdir()) == []


def test_unknown_suffix_lists_the_valid_ones(tmp_path: Path) -> None:
    _, result = exact_result(4)
    with pytest.raises(cq.InputError, match=r"\.png, \.gif, \.npz"):
        save_result(result, tmp_path / "a.jpg")
    with pytest.raises(cq.InputError, match="no suffix"):
        result_suffix(tmp_path / "a")
    assert result_suffix("A.PNG") == ".png"
    assert (max_colors_for("x.gif"), max_colors_for("x.npz")) == (256, 65536)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_kept_without_force_replaced_with_force(tmp_path: Path) -> None:
    _, result = exact_result(4)
    path = tmp_path / "a.png"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="already exists"):
        save_result(result, path)
    assert path.read_bytes() == b"precious"
    save_result(result, path, force=True)
    with Image.open(path) as image:
        assert image.mode == "P"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


# -- atomic_write -----------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt(), OSError(28, "full")])
def test_atomic_write_leaves_no_temporary_file_on_error(
    tmp_path: Path, error: BaseException
) -> None:
    def writer(fh: object) -> None:
        fh.write(b"half of it")  # type: ignore[attr-defined]
        raise error

    expected = WriteError if isinstance(error, OSError) else type(error)
    with pytest.raises(expected):
        atomic_write(tmp_path / "a.json", writer)
    assert list(tmp_path.iterdir()) == []
    # An existing file survives a failed forced write untouched.
    (tmp_path / "a.json").write_text("old")
    with pytest.raises(expected):
        atomic_write(tmp_path / "a.json", writer, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert (tmp_path / "a.json").read_text() == "old"


def test_atomic_write_hidden_file_is_named_as_dataset_jobs_expect(tmp_path: Path) -> None:
    # colorquant dataset removes what a killed job left by this name: ".<name>.<8 chars>.tmp".
    seen: list[tuple[str, int]] = []

    def writer(fh: object) -> None:
        for p in tmp_path.iterdir():
            seen.append((p.name, stat.S_IMODE(p.stat().st_mode)))
        fh.write(b"x")  # type: ignore[attr-defined]

    for _ in range(3):
        atomic_write(tmp_path / "a.png", writer, force=True)
    hidden = [name for name, _ in seen if name != "a.png"]
    assert len(hidden) == 3 and len(set(hidden)) == 3  # a new random name each time
    for name, mode in seen:
        if name != "a.png":
            assert re.fullmatch(r"\.a\.png\.[a-z0-9_]{8}\.tmp", name) and mode == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_atomic_write_writes_and_returns_size(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    assert atomic_write(path, lambda fh: fh.write(b"12345")) == 5
    assert path.read_bytes() == b"12345"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not tempfile's 0o600
    with pytest.raises(FileExistsError):
        atomic_write(path, lambda fh: fh.write(b"other"))
    atomic_write(path, lambda fh: fh.write(b"other"), force=True)
    assert path.read_bytes() == b"other"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_never_replaces_a_file_made_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"

    def writer(fh: object) -> None:
        path.write_text("someone else")
        fh.write(b"mine")  # type: ignore[attr-defined]

    with pytest.raises(FileExistsError):
        atomic_write(path, writer)
    assert path.read_text() == "someone else"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_output_checks(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "a.png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match="not a directory"):
        check_output_path(tmp_path / "file" / "a.png")
    with pytest.raises(WriteError, match="is a directory"):
        check_output_path(tmp_path, force=True)
    assert check_output_path(str(tmp_path / "new.png")) == tmp_path / "new.png"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(WriteError, match="not writable"):
            atomic_write(locked / "a.txt", lambda fh: fh.write(b"x"))
    finally:
        locked.chmod(0o700)


# -- load_image: modes and formats ------------------------------------------------------------


def gray(height: int = H, width: int = W) -> np.ndarray:
    return noise(height, width)[..., 0]


def _mode_cases() -> dict[str, tuple[Image.Image, np.ndarray, str]]:
    """mode -> (image, expected (H, W, 3) pixels, file suffix)."""
    rgb = noise()
    g = gray()
    alpha = np.full((H, W), 255, np.uint8)
    palette = distinct_palette(7)
    index = np.random.default_rng(1).integers(0, 7, (H, W)).astype(np.uint8)
    p_image = Image.frombytes("P", (W, H), index.tobytes())
    p_image.putpalette(palette.tobytes())
    g3 = np.repeat(g[..., None], 3, axis=2)
    return {
        "L": (Image.fromarray(g), g3, ".png"),
        "LA": (Image.fromarray(np.stack([g, alpha], 2)), g3, ".png"),
        "RGB": (Image.fromarray(rgb), rgb, ".png"),
        "RGBA": (Image.fromarray(np.dstack([rgb, alpha])), rgb, ".png"),
        "P": (p_image, palette[index], ".png"),
        # 16-bit: v * 257 keeps v in its top 8 bits.
        "I;16": (Image.fromarray(g.astype(np.uint16) * 257), g3, ".png"),
        "I": (Image.fromarray(g.astype(np.int32) * 257), g3, ".tif"),
    }


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "I;16", "I"])
def test_load_every_mode(tmp_path: Path, mode: str) -> None:
    image, expected, suffix = _mode_cases()[mode]
    assert image.mode == mode
    path = tmp_path / f"a{suffix}"
    image.save(path)
    with Image.open(path) as reopened:
        stored_mode = reopened.mode
    loaded = load_image(path)
    assert isinstance(loaded, LoadedImage)
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.shape == (H, W, 3)
    np.testing.assert_array_equal(loaded.pixels, expected)
    assert loaded.mode == stored_mode
    assert not loaded.has_alpha  # alpha present but opaque everywhere
    assert loaded.size_bytes == path.stat().st_size
    assert loaded.path == path
    assert loaded.pixels.flags.writeable and loaded.pixels.flags.c_contiguous


@pytest.mark.parametrize(
    ("fmt", "suffix", "exact"),
    [
        ("PNG", ".png", True),
        ("JPEG", ".jpg", False),
        ("WEBP", ".webp", True),
        ("BMP", ".bmp", True),
        ("TIFF", ".tiff", True),
        ("GIF", ".gif", True),
    ],
)
def test_load_every_format(tmp_path: Path, fmt: str, suffix: str, exact: bool) -> None:
    # A smooth image with few colors: JPEG stays close, GIF holds it exactly.
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([x * 8, y * 10, (x + y) * 4], 2).astype(np.uint8) // 32 * 32
    path = tmp_path / f"a{suffix}"
    options = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(rgb).save(path, format=fmt, **options)
    loaded = load_image(path)
    assert loaded.pixels.shape == (H, W, 3)
    if exact:
        np.testing.assert_array_equal(loaded.pixels, rgb)
    else:
        assert np.abs(loaded.pixels.astype(int) - rgb).mean() < 8


def test_alpha_is_kept_when_used(tmp_path: Path) -> None:
    rgb = noise()
    alpha = np.full((H, W), 255, np.uint8)
    alpha[0, 0] = 0
    alpha[1, 1] = 77
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    assert loaded.has_alpha and loaded.mode == "RGBA"
    assert loaded.pixels.shape == (H, W, 4)
    np.testing.assert_array_equal(loaded.pixels[..., :3], rgb)  # color kept under alpha 0
    np.testing.assert_array_equal(loaded.pixels[..., 3], alpha)
    # A transparent palette entry counts too: its pixels have alpha 0, the others 255.
    index = (np.arange(H * W) % 3).astype(np.uint8)
    p_image = Image.frombytes("P", (W, H), index.tobytes())
    p_image.putpalette(bytes(range(9)))
    p_image.save(tmp_path / "p.png", transparency=1)
    loaded = load_image(tmp_path / "p.png")
    assert loaded.has_alpha and loaded.pixels.shape == (H, W, 4)
    np.testing.assert_array_equal(loaded.pixels[..., 3].ravel(), np.where(index == 1, 0, 255))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = noise()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(rgb).save(tmp_path / "a.png", exif=exif)
    loaded = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(loaded.pixels, np.rot90(rgb, k=-1))


# -- load_image: errors -----------------------------------------------------------------------


def test_truncated_images_are_not_allowed_globally() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match=r"nope\.png: no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageFileError, match="is a directory"):
        load_image(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"just some text\n", "not an image"),
        (b"", "empty file"),
        (zero_size_png(0, 5), r"zero-size image \(0x5 pixels\)"),
        (zero_size_png(7, 0), r"zero-size image \(7x0 pixels\)"),
        (png_bytes(noise())[:700], "truncated"),
        (png_bytes(noise())[:60], "truncated"),
    ],
    ids=["text", "empty", "zero-width", "zero-height", "truncated", "truncated-header"],
)
def test_bad_files_raise_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageFileError, match=message) as info:
        load_image(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text


@pytest.mark.parametrize("limit", [500, 300])  # a warning (768 > 500) and an error (768 > 2 * 300)
def test_decompression_bomb_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    Image.fromarray(noise()).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageFileError, match=f"768 pixels .* limit of {limit} pixels"):
        load_image(tmp_path / "a.png")


# -- load_palette -----------------------------------------------------------------------------

GPL = """GIMP Palette
Name: test
Columns: 4
#
# a comment
  0   0   0\tBlack
255 255 255 White

 18  52 86 Dark blue with spaces in its name
"""


def test_gpl(tmp_path: Path) -> None:
    path = tmp_path / "p.gpl"
    path.write_text(GPL)
    expected = [[0, 0, 0], [255, 255, 255], [18, 52, 86]]
    palette = load_palette(path)
    assert palette.dtype == np.uint8 and palette.tolist() == expected
    # The header tells, not the suffix; RGBA rows lose their alpha.
    (tmp_path / "p.txt").write_text("GIMP Palette\nChannels: RGBA\n1 2 3 4 x\n5 6 7 255\n")
    assert load_palette(tmp_path / "p.txt").tolist() == [[1, 2, 3], [5, 6, 7]]


def test_hex_list(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("# my colors\n#FF0000, 00ff00\t#00f  # blue\n\n  #123456,#\n")
    expected = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [0x12, 0x34, 0x56]]
    assert load_palette(path).tolist() == expected


def test_image_palette_in_order_of_first_appearance(tmp_path: Path) -> None:
    strip = np.array([[[9, 9, 9], [200, 0, 0], [9, 9, 9], [0, 0, 200]]], np.uint8)
    Image.fromarray(strip).save(tmp_path / "p.png")
    assert load_palette(tmp_path / "p.png").tolist() == [[9, 9, 9], [200, 0, 0], [0, 0, 200]]


@pytest.mark.parametrize("width", [3, 4])
def test_image_palette_with_alpha_keeps_the_colors(tmp_path: Path, width: int) -> None:
    # An RGBA image as a palette: its RGBA colors, not its 4 channels read 3 at a time (which
    # scrambled them, or failed with a ValueError when 4 * H * W was not a multiple of 3), and
    # not its RGB with the alpha dropped (a clear pixel became a black row).
    colors = [[9, 9, 9, 0], [200, 0, 0, 255], [0, 0, 200, 128], [1, 2, 3, 255]][:width]
    Image.fromarray(np.array([colors], np.uint8), "RGBA").save(tmp_path / "p.png")
    expected = [[0, 0, 0, 0], *colors[1:]]  # fully transparent: one (0, 0, 0, 0) row
    assert load_palette(tmp_path / "p.png").tolist() == expected
    same = load_palette_bytes((tmp_path / "p.png").read_bytes(), "p.png")
    assert same.tolist() == expected


def test_image_palette_with_transparency_is_rgba(tmp_path: Path) -> None:
    swatch = [(255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 128), (0, 0, 0, 0)]
    pixels = np.array([swatch * 2 + [(7, 8, 9, 0)]], np.uint8)  # another clear pixel, other RGB
    Image.fromarray(pixels, "RGBA").save(tmp_path / "swatch.png")
    palette = load_palette(tmp_path / "swatch.png")
    assert palette.dtype == np.uint8 and palette.shape == (4, 4)
    assert palette.tolist() == [list(c) for c in swatch]
    # An RGBA image whose alpha is all 255 is opaque: (K, 3).
    opaque = pixels.copy()
    opaque[..., 3] = 255
    Image.fromarray(opaque, "RGBA").save(tmp_path / "opaque.png")
    assert load_palette(tmp_path / "opaque.png").tolist() == [
        [255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0], [7, 8, 9]
    ]  # fmt: skip
    # from_palette takes it as it is: the result's palette is the swatch, clear stays clear.
    sprite = np.zeros((4, 6, 4), np.uint8)
    sprite[1:3, 1:5] = (250, 10, 10, 255)
    sprite[0, :] = (10, 10, 240, 120)
    result = cq.Quantizer.from_palette(palette).apply(sprite)
    np.testing.assert_array_equal(result.palette, palette)
    back = result.to_numpy()
    np.testing.assert_array_equal(back[..., 3] == 0, sprite[..., 3] == 0)
    assert (back[1:3, 1:5] == (255, 0, 0, 255)).all() and (back[0, :, 3] == 128).all()


def test_transparent_gif_as_a_palette_gives_back_its_palette(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    sprite = np.zeros((16, 16, 4), np.uint8)
    sprite[..., :3] = rng.integers(0, 256, (16, 16, 3))
    sprite[..., 3] = 255
    sprite[:4] = 0  # clear rows
    result = cq.quantize(sprite, 8, color_space="rgb")
    save_result(result, tmp_path / "s.gif")
    palette = load_palette(tmp_path / "s.gif")
    assert palette.shape == (result.palette.shape[0], 4)
    assert {tuple(c) for c in palette.tolist()} == {tuple(c) for c in result.palette.tolist()}
    assert [0, 0, 0, 0] in palette.tolist()
    # Used as --palette: the sprite maps onto it with its clear pixels clear.
    out = tmp_path / "again.png"
    ran = CliRunner().invoke(
        main,
        ["quantize", str(tmp_path / "s.gif"), "-o", str(out), "--palette", str(tmp_path / "s.gif")],
    )
    assert ran.exit_code == 0, ran.output
    with Image.open(out) as image:
        back = np.asarray(image.convert("RGBA"))
    np.testing.assert_array_equal(back[..., 3] == 0, sprite[..., 3] == 0)


def test_a_256_row_palette_meeting_clear_pixels_cannot_be_a_png(tmp_path: Path) -> None:
    # Fitted on opaque images, K = 256, no transparent row; an image with clear pixels gets
    # (0, 0, 0, 0) as row 257: .npz holds it, PNG and GIF refuse it in one line naming the
    # file and the way out, and write nothing.
    rng = np.random.default_rng(0)
    opaque = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    q = cq.Quantizer(256, color_space="rgb", speed=10).fit([opaque])
    assert q.palette.shape == (256, 3)
    sprite = np.dstack([opaque, np.full((32, 32), 255, np.uint8)])
    sprite[:8, :, 3] = 0
    result = q.apply(sprite)
    assert result.palette.shape == (257, 4) and result.palette[256].tolist() == [0, 0, 0, 0]
    assert (result.to_numpy()[:8, :, 3] == 0).all()
    for suffix in (".png", ".gif"):
        target = tmp_path / f"out{suffix}"
        with pytest.raises(TooManyColorsError) as caught:
            save_result(result, target)
        message = str(caught.value)
        assert message.startswith(
            f"{target}: {suffix} holds at most 256 colors, the result has 257"
        )
        assert "fully transparent" in message and "-k 255" in message and "\n" not in message
        assert not target.exists() and list(tmp_path.iterdir()) == []
        with pytest.raises(TooManyColorsError, match=r"^sprite\.png: "):
            result_bytes(result, suffix, name="sprite.png")
    save_result(result, tmp_path / "out.npz")
    with np.load(tmp_path / "out.npz") as saved:
        assert saved["palette"].shape == (257, 4)
    # A palette with a transparent entry, or K = 255, fits.
    q255 = cq.Quantizer(255, color_space="rgb", speed=10).fit([opaque])
    assert save_result(q255.apply(sprite), tmp_path / "ok.png") > 0


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.txt", "", "no colors"),
        ("p.txt", "# only a comment\n", "no colors"),
        ("p.txt", "#ff0000\n#ff00zz\n", r"line 2: '#ff00zz' is not a hex color"),
        ("p.txt", "#ff0000 #comment-without-space\n", "line 1: '#comment-without-space'"),
        ("p.gpl", "GIMP Palette\n1 2 3\n1 2\n", r"line 3: expected 'R G B \[name\]'"),
        ("p.gpl", "GIMP Palette\n1 2 300 too bright\n", "line 2: .* 0..255"),
        ("p.gpl", "not the header\n1 2 3\n", "line 1: expected the header 'GIMP Palette'"),
        ("p.gpl", "GIMP Palette\nName: empty\n", "no colors"),
        ("p.gpl", "GIMP Palette\nColumns: many\n", "line 2: Columns"),
        ("p.gpl", "\n\nGIMP Palette\n1 2 3\n4 5\n", "line 5: expected"),
    ],
)
def test_malformed_palettes(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ImageFileError, match=message) as info:
        load_palette(path)
    assert str(info.value).startswith(str(path))


def test_palette_errors_for_images_and_missing_files(tmp_path: Path) -> None:
    Image.fromarray(noise()).save(tmp_path / "many.png")
    with pytest.raises(ImageFileError, match=r"at most 256 distinct colors, this one has 7\d\d"):
        load_palette(tmp_path / "many.png")
    with pytest.raises(ImageFileError, match="no such file"):
        load_palette(tmp_path / "nope.gpl")
    (tmp_path / "broken.png").write_bytes(png_bytes(noise(4, 4))[:50])
    with pytest.raises(ImageFileError, match="truncated"):
        load_palette(tmp_path / "broken.png")


def test_save_result_max_bytes_writes_nothing(tmp_path: Path) -> None:
    from colorquant.io import NotSmallerError

    res = cq.quantize(np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8), 8)
    out = tmp_path / "o.png"
    with pytest.raises(NotSmallerError, match="not smaller than 10"):
        cq.save_result(res, out, max_bytes=10)
    assert list(tmp_path.iterdir()) == []
    size = cq.save_result(res, out, max_bytes=10**6)
    assert out.stat().st_size == size < 10**6


def test_cli_a_256_color_palette_file_meeting_clear_pixels(tmp_path: Path) -> None:
    # --palette with 256 opaque colors: the sprite's clear pixels need a 257th row. One line
    # naming the input, exit 1, and the other input is still written.
    (tmp_path / "p256.txt").write_text(
        "\n".join(f"#{r:02x}{g:02x}{b:02x}" for r, g, b in distinct_palette(256).tolist())
    )
    sprite = np.dstack([noise(), np.full((H, W), 255, np.uint8)])
    sprite[:5, :, 3] = 0
    Image.fromarray(sprite).save(tmp_path / "sprite.png")
    Image.fromarray(noise(seed=1)).save(tmp_path / "opaque.png")
    out = tmp_path / "out"
    out.mkdir()
    ran = CliRunner().invoke(
        main,
        [
            "quantize",
            str(tmp_path / "sprite.png"),
            str(tmp_path / "opaque.png"),
            "-d",
            str(out),
            "--palette",
            str(tmp_path / "p256.txt"),
        ],
    )
    assert ran.exit_code == 1, ran.output
    lines = ran.stderr.splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith(f"colorquant: error: {tmp_path / 'sprite.png'} -> ")
    assert "257" in lines[0] and "fully transparent" in lines[0] and "-k 255" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["opaque.png"]
    with Image.open(out / "opaque.png") as image:
        assert len(image.getpalette() or []) == 3 * 256


@pytest.mark.parametrize(
    ("module", "examples"),
    [("image", True), ("palette", True), ("result", False), ("atomic", False), ("animation", True)],
)
def test_io_modules_examples_run(module: str, examples: bool) -> None:
    # The package's modules, one per kind of file: their docstring examples run and pass.
    found = importlib.import_module(f"colorquant.io.{module}")
    result = doctest.testmod(found, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert (result.attempted > 0) == examples


@pytest.mark.parametrize("k", [2, 4, 16])
def test_low_k_png_rows_are_unfiltered_and_smaller(k: int) -> None:
    from conftest import make_photo_like

    img = make_photo_like(96, 128, seed=3)
    res = cq.quantize(img, k, dither="fs", seed=1)
    data = result_bytes(res, ".png", text=[("Comment", "kept")])
    with Image.open(io.BytesIO(data)) as got:
        assert got.mode == "P" and got.info["Comment"] == "kept"
        np.testing.assert_array_equal(np.asarray(got), res.indices)
        assert got.getpalette()[: 3 * len(res.palette)] == res.palette.ravel().tolist()
    chunks = png_chunks(data)
    depth = chunks[b"IHDR"][8]
    assert depth == {2: 1, 4: 2, 16: 4}[k]
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + (128 * depth + 7) // 8
    assert len(raw) == 96 * stride and raw[::stride] == bytes(96)  # filter 0 on every row
    # Pillow's own encoding (every row filtered) of the same image is larger.
    pillow = io.BytesIO()
    res.to_pil().save(pillow, format="PNG", compress_level=7)
    assert len(data) < len(pillow.getvalue())


def test_eight_bit_png_is_pillows_own() -> None:
    from conftest import make_photo_like

    res = cq.quantize(make_photo_like(48, 64, seed=2), 64, seed=1)
    pillow = io.BytesIO()
    res.to_pil().save(pillow, format="PNG", compress_level=7)
    assert result_bytes(res, ".png") == pillow.getvalue()
