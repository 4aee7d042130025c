"""Files in and out: Pillow images to 8-bit pixels, palettes, and palette images out.

This is the only module that touches image and palette files. Reading goes through
:func:`load_image` (any format Pillow decodes, fully decoded so that truncated files fail) and
:func:`load_palette` (GIMP ``.gpl``, a list of hex colors, or an image's distinct colors).
Writing goes through :func:`save_result` (palette PNG, GIF or ``.npz``) and, for figures and
JSON, :func:`atomic_write`, so that no half-written file is ever left under the final name.

Every error names the file: :class:`ImageFileError` (a :class:`colorquant.InputError`) for a file
that cannot be read as an image or a palette, :class:`FileExistsError` for an output that is
already there, :class:`WriteError` (an :class:`OSError`) for an output that cannot be written.

The library's own errors, for what a file holds: whatever the bytes, the loaders
(:func:`load_image`, :func:`load_image_bytes`, :func:`load_palette`, :func:`load_palette_bytes`,
and ``colorquant.load_animation``) raise :class:`ImageFileError` and nothing else, with a message
of one line; Pillow's own exceptions (``struct.error``, ``EOFError``, ``IndexError``, ...) and its
warnings about corrupt metadata never come out. ``tests/test_fuzz.py`` checks it on mutated files
of every format, ``fuzz/`` fuzzes it with atheris.

Pillow's global ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is never turned on here (the command-line
tool turns it off); while some other code has it on, Pillow pads truncated files silently.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import stat
import struct
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from ._checks import InputError, as_pixels

if TYPE_CHECKING:
    from .quantize import QuantizeResult

__all__ = [
    "MAX_COLORS_BY_SUFFIX",
    "RESULT_SUFFIXES",
    "ImageFileError",
    "LoadedImage",
    "NotSmallerError",
    "TooManyColorsError",
    "WriteError",
    "atomic_write",
    "check_colors",
    "check_output_path",
    "load_image",
    "load_image_bytes",
    "load_palette",
    "load_palette_bytes",
    "max_colors_for",
    "optimize_png",
    "parse_hex_colors",
    "result_bytes",
    "result_suffix",
    "save_result",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: Output suffixes of :func:`save_result` and the most palette colors each can hold.
MAX_COLORS_BY_SUFFIX: dict[str, int] = {".png": 256, ".gif": 256, ".npz": 65536}
RESULT_SUFFIXES: tuple[str, ...] = tuple(MAX_COLORS_BY_SUFFIX)
#: An image used as a palette may have at most this many distinct colors.
MAX_IMAGE_PALETTE = 256
#: A text palette may have at most this many colors (the largest palette the core accepts).
MAX_TEXT_PALETTE = 65536

# What Pillow raises on a file it identified but cannot decode (truncated, corrupt, unsupported).
# Its plugins also fail on hostile data with IndexError (a GIF cut inside a frame header),
# TypeError (a TIFF without dimensions), KeyError and OverflowError: found by tests/test_fuzz.py.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    EOFError,
    ValueError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    OverflowError,
)
_BOMB_RE = re.compile(r"\((\d+) pixels\)")


class ImageFileError(InputError):
    """A file could not be read as an image or a palette. The message names the file and why."""


class WriteError(OSError):
    """An output file could not be written. The message names the file and why."""


class NotSmallerError(Exception):
    """The output would not be smaller than allowed (``max_bytes``): nothing was written."""


class TooManyColorsError(InputError):
    """A result has more palette rows than its file format holds (PNG and GIF: 256)."""


# -- reading images ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image file.

    Attributes:
        pixels: ``(H, W, 3)`` uint8 sRGB, or ``(H, W, 4)`` RGBA when the file has transparency
            that some pixel uses; C-contiguous; upright (EXIF orientation applied), first
            frame of an animation or multi-page file.
        mode: the Pillow mode of the file as stored (``"RGB"``, ``"P"``, ``"I;16"``, ...).
        has_alpha: whether the file has transparency that some pixel uses (an alpha channel
            below 255, or a transparent palette entry or color key): ``pixels`` is RGBA.
        size_bytes: size of the file in bytes.
        path: the path it was read from.
        icc_profile: the embedded ICC color profile, if any (written back unless stripped).
        gamma: the file's gamma (PNG ``gAMA``), if any.
        text: the file's text chunks (PNG ``tEXt``, ``zTXt``, ``iTXt``) as (key, value) pairs.
    """

    pixels: np.ndarray
    mode: str
    has_alpha: bool
    size_bytes: int
    path: Path
    icc_profile: bytes | None = None
    gamma: float | None = None
    text: tuple[tuple[str, str], ...] = ()


@contextlib.contextmanager
def _decompression_bombs_are_errors() -> Iterator[None]:
    """Pillow warns above ``MAX_IMAGE_PIXELS`` and raises only above twice that: raise at once.

    Pillow's own notes on a corrupt file (``UserWarning``: a TIFF tag skipped, corrupt EXIF)
    are not shown: the file either loads or fails with one :class:`ImageFileError`.
    ``warnings.catch_warnings`` is process-wide, not per thread, so :func:`_check_pixels`
    checks the size again after opening.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _check_pixels(image: Image.Image, path: Path) -> None:
    """Refuse an image (or frame) over ``PIL.Image.MAX_IMAGE_PIXELS`` before it is decoded."""
    limit = Image.MAX_IMAGE_PIXELS
    pixels = image.width * image.height
    if limit is not None and pixels > limit:
        raise _bomb_error(path, Image.DecompressionBombError(f"({pixels} pixels)"))


def _bomb_error(path: Path, err: Exception) -> ImageFileError:
    limit = Image.MAX_IMAGE_PIXELS
    match = _BOMB_RE.search(str(err))
    count = f"{int(match.group(1)):,} pixels" if match else "its pixel count"
    return ImageFileError(
        f"{path}: {count} is over the decompression-bomb limit of {limit:,} pixels "
        "(PIL.Image.MAX_IMAGE_PIXELS)"
    )


def _file_error(path: Path, err: OSError) -> ImageFileError:
    if isinstance(err, FileNotFoundError):
        return ImageFileError(f"{path}: no such file")
    if isinstance(err, IsADirectoryError):
        return ImageFileError(f"{path}: is a directory, not a file")
    if isinstance(err, PermissionError):
        return ImageFileError(f"{path}: permission denied")
    return ImageFileError(f"{path}: cannot read: {err.strerror or err}")


def _file_size(path: Path) -> int:
    try:
        info = path.stat()
    except OSError as err:
        raise _file_error(path, err) from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageFileError(f"{path}: is a directory, not a file")
    return info.st_size


def _zero_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG, GIF or BMP header when one of them is 0, else ``None``.

    Pillow refuses such files as "cannot identify"; this lets the message say what is wrong.
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
    elif head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
    elif head[:2] == b"BM" and len(head) >= 26 and struct.unpack("<I", head[14:18])[0] >= 40:
        width, height = struct.unpack("<ii", head[18:26])
    else:
        return None
    return (int(width), abs(int(height))) if width == 0 or height == 0 else None


def _unidentified_error(path: Path, data: bytes | None = None) -> ImageFileError:
    if data is not None:
        head = data[:32]
    else:
        try:
            with open(path, "rb") as fh:
                head = fh.read(32)
        except OSError as err:
            return _file_error(path, err)
    if not head:
        return ImageFileError(f"{path}: empty file, not an image")
    zero = _zero_size(head)
    if zero is not None:
        return ImageFileError(f"{path}: zero-size image ({zero[0]}x{zero[1]} pixels)")
    return ImageFileError(f"{path}: not an image file, or a format Pillow cannot read")


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag, as viewers do: the output carries no EXIF."""
    if image.getexif().get(0x0112, 1) in (0, 1):  # 0x0112: Orientation; 1: as stored
        return image
    return ImageOps.exif_transpose(image)


def load_image(path: PathLike) -> LoadedImage:
    """Read an image file into ``(H, W, 3)`` uint8 sRGB pixels (``(H, W, 4)`` with alpha).

    Any format Pillow reads (PNG, JPEG, WebP, BMP, TIFF, GIF, ...) and mode: ``L``, ``LA``,
    ``RGB``, ``RGBA``, ``P``, ``CMYK``, 16-bit grayscale ``I;16`` and ``I`` (top 8 of 16 bits,
    rounded). The whole file is decoded, so a truncated one fails here, not later. An alpha
    channel or transparent color that some pixel uses is kept: the pixels are then RGBA.

    Args:
        path: the image file.

    Returns:
        A :class:`LoadedImage`; ``pixels`` is ``(H, W, 3)`` or ``(H, W, 4)`` uint8.

    Raises:
        ImageFileError: no such file, a directory, not an image, truncated or corrupt data, a
            zero-size image, or more pixels than Pillow's decompression-bomb limit
            ``PIL.Image.MAX_IMAGE_PIXELS`` (checked before decoding).

    Example:
        >>> import numpy as np, tempfile, os
        >>> from PIL import Image
        >>> name = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(name)
        >>> img = load_image(name)
        >>> img.pixels.shape, img.pixels.dtype.name, img.mode, img.has_alpha
        ((2, 3, 3), 'uint8', 'RGB', False)
    """
    p = Path(path)
    return _load(p, p, _file_size(p), None)


def load_image_bytes(data: bytes, name: str = "<stdin>") -> LoadedImage:
    """:func:`load_image` of an image file's bytes (standard input); messages say ``name``."""
    return _load(io.BytesIO(data), Path(name), len(data), data)


@contextlib.contextmanager
def open_image(
    source: Path | io.BytesIO, p: Path, data: bytes | None = None
) -> Iterator[Image.Image]:
    """``Image.open`` for reading (decompression bombs refused before decoding); whatever fails
    inside, opening or decoding, comes out as one :class:`ImageFileError` naming ``p``.

    ``data``: the file's bytes when ``source`` holds them (to say why it is not an image).
    """
    try:
        with _decompression_bombs_are_errors(), Image.open(source) as opened:
            _check_pixels(opened, p)
            yield opened
    except UnidentifiedImageError:
        raise _unidentified_error(p, data) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _bomb_error(p, err) from None
    except ImageFileError:
        raise
    except InputError as err:
        raise ImageFileError(f"{p}: {err}") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        raise _file_error(p, err) from None
    except _DECODE_ERRORS as err:
        raise ImageFileError(f"{p}: cannot decode (truncated or corrupt file?): {err}") from None


def _load(source: Path | io.BytesIO, p: Path, size: int, data: bytes | None) -> LoadedImage:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        log.warning("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on: truncated files load padded")
    with open_image(source, p, data) as opened:
        opened.load()
        if opened.width == 0 or opened.height == 0:
            raise ImageFileError(f"{p}: zero-size image ({opened.width}x{opened.height} pixels)")
        mode = opened.mode
        icc = opened.info.get("icc_profile") or None
        gamma = opened.info.get("gamma")
        text = tuple(
            (str(key), str(value))
            for key, value in (getattr(opened, "text", None) or {}).items()
            if isinstance(value, str)
        )
        image = _upright(opened)
        pixels = as_pixels(image, name="image")
        has_alpha = pixels.shape[2] == 4
        if not pixels.flags.writeable:
            # A view of Pillow's buffer; torch.from_numpy warns on read-only arrays.
            pixels = pixels.copy()
    return LoadedImage(
        pixels=pixels,
        mode=mode,
        has_alpha=has_alpha,
        size_bytes=size,
        path=p,
        icc_profile=icc if isinstance(icc, bytes) else None,
        gamma=float(gamma) if isinstance(gamma, (int, float)) and gamma > 0 else None,
        text=text,
    )


# -- reading palettes -------------------------------------------------------------------------

_HEX_COLOR = re.compile(r"#?([0-9a-fA-F]{6})|#([0-9a-fA-F]{3})")
_COMMENT = re.compile(r"#(?=\s|$)")  # "#" followed by white space or the end: a comment
_GPL_KEY = re.compile(r"(Name|Columns|Channels)\s*:(.*)$", re.IGNORECASE)


def _as_text(data: bytes) -> str | None:
    """``data`` as text if it is UTF-8 without NUL bytes (images never are), else ``None``."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _check_palette_size(path: Path, colors: list[tuple[int, ...]], limit: int) -> np.ndarray:
    if not colors:
        raise ImageFileError(f"{path}: no colors found in the palette file")
    if len(colors) > limit:
        raise ImageFileError(f"{path}: {len(colors)} colors, a palette holds at most {limit}")
    return np.array(colors, dtype=np.uint8).reshape(-1, 3)


def _parse_gpl(text: str, path: Path) -> np.ndarray:
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    header = lines[first].strip() if first < len(lines) else ""
    if header != "GIMP Palette":
        raise ImageFileError(
            f"{path}, line {first + 1}: expected the header 'GIMP Palette', got {header!r}"
        )
    channels = 3
    colors: list[tuple[int, ...]] = []
    for lineno, raw in enumerate(lines[first + 1 :], start=first + 2):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key = _GPL_KEY.match(line)
        if key:
            name, value = key.group(1).lower(), key.group(2).strip()
            if name == "channels":
                if value.upper() not in ("RGB", "RGBA"):
                    raise ImageFileError(
                        f"{path}, line {lineno}: Channels must be RGB or RGBA, got {value!r}"
                    )
                channels = len(value)
            elif name == "columns" and not value.isdigit():
                raise ImageFileError(
                    f"{path}, line {lineno}: Columns must be a whole number, got {value!r}"
                )
            continue
        fields = line.split(None, channels)[:channels]
        shape = " ".join("RGBA"[:channels])
        try:
            values = tuple(int(f) for f in fields)
        except ValueError:
            values = ()
        if len(values) != channels or not all(0 <= v <= 255 for v in values):
            raise ImageFileError(
                f"{path}, line {lineno}: expected '{shape} [name]' with integers in 0..255, "
                f"got {line!r}"
            )
        colors.append(values[:3])  # a GIMP palette's alpha column, if any, is dropped
    return _check_palette_size(path, colors, MAX_TEXT_PALETTE)


def _hex_colors(line: str) -> tuple[list[tuple[int, ...]], str | None]:
    """The hex colors of one line (comma or space separated), and the first bad token."""
    colors: list[tuple[int, ...]] = []
    for token in re.split(r"[\s,]+", line.strip()):
        if not token:
            continue
        match = _HEX_COLOR.fullmatch(token)
        if match is None:
            return colors, token
        digits = match.group(1) or "".join(2 * c for c in match.group(2))
        colors.append(tuple(bytes.fromhex(digits)))
    return colors, None


def parse_hex_colors(text: str, name: str) -> np.ndarray:
    """``"#ff0000,#fff 00ff00"`` -> ``(N, 3)`` uint8 colors, ``N >= 1``.

    Raises:
        InputError: a token is not a hex color, or there is none; the message names ``name``.
    """
    colors, bad = _hex_colors(text)
    if bad is not None:
        raise InputError(f"{name}: {bad!r} is not a hex color (#rrggbb, rrggbb or #rgb)")
    if not colors:
        raise InputError(f"{name}: no colors given")
    return np.array(colors, dtype=np.uint8)


def _parse_hex(text: str, path: Path) -> np.ndarray:
    colors: list[tuple[int, ...]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        comment = _COMMENT.search(raw)
        found, bad = _hex_colors(raw[: comment.start()] if comment else raw)
        if bad is not None:
            raise ImageFileError(
                f"{path}, line {lineno}: {bad!r} is not a hex color "
                "(#rrggbb, rrggbb or #rgb; a comment is '#' then a space)"
            )
        colors += found
    return _check_palette_size(path, colors, MAX_TEXT_PALETTE)


def _image_palette(data: bytes, path: Path) -> np.ndarray:
    """An image's distinct colors in order of first appearance: ``(K, 3)``, or ``(K, 4)`` RGBA
    when some pixel uses its alpha (every fully transparent pixel then one ``(0, 0, 0, 0)``)."""
    pixels = load_image_bytes(data, str(path)).pixels
    channels = pixels.shape[2]
    flat = pixels.reshape(-1, channels)
    if channels == 4:
        flat = flat.copy()
        flat[flat[:, 3] == 0] = 0  # what lies under a clear pixel is no color of the palette
    colors, first = np.unique(flat, axis=0, return_index=True)
    if colors.shape[0] > MAX_IMAGE_PALETTE:
        raise ImageFileError(
            f"{path}: an image used as a palette may have at most {MAX_IMAGE_PALETTE} distinct "
            f"colors, this one has {colors.shape[0]}"
        )
    return np.ascontiguousarray(colors[np.argsort(first)], dtype=np.uint8)


def load_palette(path: PathLike) -> np.ndarray:
    """Read a palette file: GIMP ``.gpl``, a text file of hex colors, or an image.

    The kind is told from the content: a first line ``GIMP Palette`` (or the suffix ``.gpl``)
    is a GIMP palette (``Name:``, ``Columns:``, ``Channels:`` lines and ``#`` comments allowed,
    then rows ``R G B [name]``, alpha of ``RGBA`` rows dropped); other text is a list of hex
    colors ``#rrggbb``, ``rrggbb`` or ``#rgb`` separated by white space, commas or new lines, where
    ``#`` followed by a space (or the end of the line) starts a comment; a binary file is an image,
    whose distinct colors (at most 256) are the palette, in order of first appearance: RGBA when
    some pixel uses the image's alpha (an alpha channel, or a transparent palette entry as in a
    transparent GIF or PNG), every fully transparent pixel counting as one ``(0, 0, 0, 0)``;
    else RGB. A text palette's colors are kept in file order, duplicates included.

    Args:
        path: the palette file.

    Returns:
        ``(K, 3)`` uint8 sRGB colors, K >= 1; ``(K, 4)`` RGBA for an image with transparency
        (what :meth:`colorquant.Quantizer.from_palette` and ``--palette`` take as they are).

    Raises:
        ImageFileError: no such file, empty or malformed (the message gives the line number),
            too many colors, or an unreadable image.

    Example:
        >>> import tempfile
        >>> name = Path(tempfile.mkdtemp()) / "p.txt"
        >>> _ = name.write_text("#ff0000, 00ff00  # green\\n#00f\\n")
        >>> load_palette(name).tolist()
        [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    """
    p = Path(path)
    _file_size(p)  # a directory or a missing file: one clear message
    try:
        data = p.read_bytes()
    except OSError as err:
        raise _file_error(p, err) from None
    return load_palette_bytes(data, str(p))


def load_palette_bytes(data: bytes, name: str = "<palette>") -> np.ndarray:
    """:func:`load_palette` of a palette file's bytes; messages say ``name`` (its suffix
    ``.gpl`` also makes a GIMP palette).

    Raises:
        ImageFileError: as :func:`load_palette`; nothing else comes out of the bytes.
    """
    p = Path(name)
    text = _as_text(data)
    if text is None:
        return _image_palette(data, p)
    if p.suffix.lower() == ".gpl" or text.lstrip().startswith("GIMP Palette"):
        return _parse_gpl(text, p)
    return _parse_hex(text, p)


# -- writing ----------------------------------------------------------------------------------


def result_suffix(path: PathLike) -> str:
    """The lower-case suffix of an output path of :func:`save_result`.

    Raises:
        InputError: the suffix is not one of ``RESULT_SUFFIXES``; the message lists them.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in MAX_COLORS_BY_SUFFIX:
        valid = ", ".join(RESULT_SUFFIXES)
        shown = repr(suffix) if suffix else "(no suffix)"
        raise InputError(f"{path}: unknown output format {shown}, use one of {valid}")
    return suffix


def max_colors_for(path: PathLike) -> int:
    """The most palette colors an output at ``path`` can hold (256 for PNG/GIF, 65536 for npz)."""
    return MAX_COLORS_BY_SUFFIX[result_suffix(path)]


def _exists_error(path: Path) -> FileExistsError:
    return FileExistsError(f"{path}: already exists (overwrite with force=True or --force)")


def check_output_path(path: PathLike, *, force: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written as a new file (or replaced with force).

    Args:
        path: the output file.
        force: allow replacing an existing file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FileExistsError: the file exists and ``force`` is false.
        WriteError: ``path`` is a directory, or its directory is missing or not writable.
    """
    p = Path(path)
    parent = p.parent
    if p.is_dir():
        raise WriteError(f"{p}: is a directory")
    if (p.exists() or p.is_symlink()) and not force:
        raise _exists_error(p)
    if not parent.exists():
        raise WriteError(f"{p}: directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise WriteError(f"{p}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WriteError(f"{p}: directory {str(parent)!r} is not writable")
    return p


def _new_file_mode(target: Path) -> int:
    """Permissions for the new file: the replaced file's, else 0o666 less the umask."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0o022)  # the only way to read the umask; restored at once
    os.umask(umask)
    return 0o666 & ~umask


def _commit(tmp: str, target: Path, force: bool) -> None:
    """Move the finished temporary file to ``target``; without ``force``, never replace one."""
    if force:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # atomic and fails if target exists, even one made meanwhile
    except FileExistsError:
        raise _exists_error(target) from None
    except OSError:  # no hard links on this file system: check, then rename
        if target.exists() or target.is_symlink():
            raise _exists_error(target) from None
        os.replace(tmp, target)
        return
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _fsync_directory(directory: Path) -> None:
    """Make the new directory entry durable (POSIX); a no-op where directories can't be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(
    path: PathLike,
    writer: Callable[[IO[bytes]], Any],
    *,
    force: bool = False,
    max_bytes: int | None = None,
) -> int:
    """Write a file all or nothing: ``writer`` fills a temporary file that then takes the name.

    The temporary file lies in the same directory (so the rename is atomic), hidden
    (``.<name>.<random>.tmp``); it is flushed and fsynced before the rename, and removed on any
    error, including an exception raised by ``writer`` or a KeyboardInterrupt. Without ``force``
    an existing file is never replaced, even one created while ``writer`` ran.

    Args:
        path: the final file name.
        writer: called once with the temporary file, open for binary writing.
        force: allow replacing an existing file.
        max_bytes: write nothing unless the file is smaller than this.

    Returns:
        The size in bytes of the written file.

    Raises:
        NotSmallerError: the file would have ``max_bytes`` or more (nothing is written).
        FileExistsError: the file exists and ``force`` is false.
        WriteError: the directory is missing or not writable, or writing failed (disk full...).
        Exception: whatever ``writer`` raises, other than :class:`OSError`, passes through.
    """
    target = check_output_path(path, force=force)
    tmp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            mode="w+b", delete=False, dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        ) as fh:
            tmp_name = fh.name
            writer(fh)
            size = fh.tell()
            if max_bytes is not None and size >= max_bytes:
                raise NotSmallerError(
                    f"{target}: would be {size:,} bytes, not smaller than {max_bytes:,}; "
                    "nothing written"
                )
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, _new_file_mode(target))
        _commit(tmp_name, target, force)
        tmp_name = None
    except FileExistsError:
        raise
    except OSError as err:
        raise WriteError(f"{target}: cannot write: {err.strerror or err}") from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    _fsync_directory(target.parent)
    return target.stat().st_size


def save_result(
    result: QuantizeResult,
    path: PathLike,
    *,
    force: bool = False,
    max_bytes: int | None = None,
    icc_profile: bytes | None = None,
    gamma: float | None = None,
    text: Sequence[tuple[str, str]] = (),
    optimize: bool = False,
) -> int:
    """Write a quantized image, the format chosen by the suffix of ``path``.

    - ``.png``: a palette-mode PNG whose ``PLTE`` is exactly ``result.palette``, every row in
      its order (a given or shared palette whole, unused rows included: README, "Palettes
      and indices"), whose indices are ``result.indices`` unchanged, and whose bit depth is
      the least that holds all the rows: 1 bit for 2 colors, 2 for 4, 4 for 16, else 8; with
      alpha, ``tRNS`` holds the alpha of the rows up to the last translucent one;
    - ``.gif``: a GIF with the same indices (GIF pads its palette to a power of two);
    - ``.npz``: ``numpy.savez_compressed`` with ``indices`` ``(H, W)`` uint8/uint16 and
      ``palette`` ``(K, 3)`` uint8; the only format for K > 256.

    The write is atomic (:func:`atomic_write`).

    Args:
        result: a :class:`colorquant.QuantizeResult`.
        path: the output file; its suffix picks the format.
        force: allow replacing an existing file.
        max_bytes: write nothing unless the file is smaller than this (``--skip-if-larger``).
        icc_profile: an ICC color profile to embed (PNG only; the input's, to keep its colors).
        gamma: a gamma to record (PNG ``gAMA``; the input's).
        text: text chunks to write (PNG; ``tEXt``, or ``iTXt`` for text beyond Latin-1).
        optimize: recompress a PNG with oxipng (:func:`optimize_png`, optional dependency).

    Returns:
        The size in bytes of the written file.

    Raises:
        NotSmallerError: the file would have ``max_bytes`` or more (nothing is written).
        InputError: unknown suffix (the message lists the valid ones), or
            :class:`TooManyColorsError`: more colors than the format holds (a 256-row given or
            shared palette without a fully transparent entry, meeting fully transparent pixels,
            gets a 257th row: the message says so and what to do instead).
        FileExistsError: the file exists and ``force`` is false.
        WriteError: the file cannot be written.
    """
    writer = _writer(result, result_suffix(path), path, icc_profile, gamma, text, optimize)
    return atomic_write(path, writer, force=force, max_bytes=max_bytes)


def result_bytes(
    result: QuantizeResult,
    suffix: str = ".png",
    icc_profile: bytes | None = None,
    gamma: float | None = None,
    text: Sequence[tuple[str, str]] = (),
    optimize: bool = False,
    *,
    name: str = "<stdout>",
) -> bytes:
    """The file :func:`save_result` would write, as bytes (for standard output).

    Args:
        result: a :class:`colorquant.QuantizeResult`.
        suffix: ``".png"``, ``".gif"`` or ``".npz"``.
        icc_profile, gamma, text, optimize: as for :func:`save_result`.
        name: what error messages call the output.

    Raises:
        InputError: as :func:`save_result` (:class:`TooManyColorsError`: more colors than the
            format holds, the message naming ``name``).
    """
    buffer = io.BytesIO()
    kind = result_suffix(Path(f"out{suffix}"))
    _writer(result, kind, name, icc_profile, gamma, text, optimize)(buffer)
    data: bytes = buffer.getvalue()
    return data


def _gif_transparency(palette: np.ndarray, path: PathLike) -> int | None:
    """The one fully transparent palette row a GIF may have, or ``None`` when opaque."""
    if palette.shape[1] != 4:
        return None
    alpha = palette[:, 3]
    if ((alpha > 0) & (alpha < 255)).any():
        raise InputError(
            f"{path}: GIF has no translucency, and the result has translucent colors "
            "(write a PNG, or make the alpha 0 or 255 first)"
        )
    clear = np.flatnonzero(alpha == 0)
    if clear.size > 1:
        raise InputError(
            f"{path}: GIF holds one transparent color, the result has {clear.size} "
            "(write a PNG to keep the colors under transparent pixels)"
        )
    return int(clear[0]) if clear.size else None


def optimize_png(data: bytes) -> bytes:
    """A PNG file recompressed by oxipng (the optional ``pyoxipng`` package), losslessly.

    On Kodak at K = 256 it saves about 5% of the bytes of our PNGs, at about 0.2 s an image
    (BENCHMARKS.md). Chunks (ICC profile, gamma, text, transparency) are kept, and so are the
    palette, its order and the bit depth: oxipng only recompresses (its palette, bit depth and
    color type reductions would drop a given palette's unused rows, reorder the rest or turn a
    gray palette into a grayscale image; keeping them costs 0.3% of the bytes on 6 Kodak
    photos at K = 256).

    Raises:
        InputError: ``pyoxipng`` is not installed (``pip install colorquant[optimize]``).
    """
    try:
        import oxipng
    except ImportError:
        raise InputError(
            "optimizing PNGs needs the optional pyoxipng package: "
            "pip install 'colorquant[optimize]'"
        ) from None
    out: bytes = oxipng.optimize_from_memory(
        data,
        level=2,
        palette_reduction=False,
        bit_depth_reduction=False,
        color_type_reduction=False,
        grayscale_reduction=False,
    )
    return out


def _png_info(gamma: float | None, text: Sequence[tuple[str, str]]) -> PngInfo:
    """PNG chunks to write: ``gAMA`` (gamma times 100000) and the text chunks."""
    info = PngInfo()
    if gamma is not None:
        info.add(b"gAMA", struct.pack(">I", round(gamma * 100000)))
    for key, value in text:
        try:
            value.encode("latin-1")
            key.encode("latin-1")
        except UnicodeEncodeError:
            info.add_itxt(key, value)
        else:
            info.add_text(key, value)
    return info


def check_colors(result: QuantizeResult, suffix: str, name: PathLike) -> None:
    """Refuse, before writing, a result with more colors than the format of ``suffix`` holds.

    Args:
        result: a :class:`colorquant.QuantizeResult`.
        suffix: ``".png"``, ``".gif"`` or ``".npz"`` (:func:`result_suffix`).
        name: what the message names (the output, or ``"input -> output"``).

    Raises:
        TooManyColorsError: one line naming ``name`` and what to do instead.
    """
    _check_colors(result.palette, suffix, name)


def _check_colors(palette: np.ndarray, suffix: str, path: PathLike) -> None:
    """Refuse a palette longer than ``suffix`` holds, in one line naming ``path`` and the way out.

    The common case is a given or shared palette of 256 rows without a fully transparent
    entry, met by an image with fully transparent pixels: the library adds ``(0, 0, 0, 0)``
    as row 257 so that those pixels stay exactly clear, and PNG and GIF cannot hold it.
    """
    limit = MAX_COLORS_BY_SUFFIX[suffix]
    n_colors = int(palette.shape[0])
    if n_colors <= limit:
        return
    clear = palette.shape[1] == 4 and n_colors == limit + 1 and not palette[-1].any()
    if clear and not (palette[:-1, 3] == 0).any():
        raise TooManyColorsError(
            f"{path}: {suffix} holds at most {limit} colors, the result has {n_colors}: the "
            f"palette's {limit} and a fully transparent one added for the image's clear pixels; "
            "use a palette with a fully transparent entry, or at most "
            f"{limit - 1} colors (-k {limit - 1}); .npz holds {n_colors}"
        )
    raise TooManyColorsError(
        f"{path}: {suffix} holds at most {limit} colors, the result has {n_colors} "
        "(use .npz for more)"
    )


def _writer(
    result: QuantizeResult,
    suffix: str,
    path: PathLike,
    icc_profile: bytes | None = None,
    gamma: float | None = None,
    text: Sequence[tuple[str, str]] = (),
    optimize: bool = False,
) -> Callable[[IO[bytes]], Any]:
    """What writes ``result`` in the format of ``suffix`` (``path`` only names it in errors)."""
    _check_colors(result.palette, suffix, path)
    writer: Callable[[IO[bytes]], Any]
    if suffix == ".npz":

        def writer(fh: IO[bytes]) -> None:
            np.savez_compressed(fh, indices=result.indices, palette=result.palette)

    else:
        image = result.to_pil()
        if suffix == ".png":
            # Pillow picks the bit depth from the palette length. zlib level 7: on Kodak at
            # K = 256 files are 0.02% larger than at level 9 and written 30% faster.
            extra: dict[str, Any] = {"icc_profile": icc_profile} if icc_profile else {}
            if gamma is not None or text:
                extra["pnginfo"] = _png_info(gamma, text)

            def writer(fh: IO[bytes]) -> None:
                if not optimize:
                    image.save(fh, format="PNG", compress_level=7, **extra)
                    return
                buffer = io.BytesIO()
                image.save(buffer, format="PNG", compress_level=7, **extra)
                fh.write(optimize_png(buffer.getvalue()))

        else:
            gif = {"transparency": _gif_transparency(result.palette, path)}

            # optimize=False: keep the indices and palette order as they are.
            def writer(fh: IO[bytes]) -> None:
                image.save(fh, format="GIF", optimize=False, **gif)

    return writer
