"""Image files in: any format Pillow decodes, as 8-bit pixels.

:func:`load_image` decodes the whole file (so that a truncated one fails here) into ``(H, W, 3)``
uint8 sRGB, or ``(H, W, 4)`` RGBA when some pixel uses the file's transparency. Whatever the
bytes, the loaders raise :class:`ImageFileError` and nothing else, with a message of one line
naming the file; :func:`open_image` gives the other readers of the package (palettes,
animations) the same guarantee.

Pillow's global ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is never turned on here (the command-line
tool turns it off); while some other code has it on, Pillow pads truncated files silently.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import stat
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from .._checks import InputError, as_pixels
from .atomic import PathLike

__all__ = [
    "DECODE_ERRORS",
    "ImageFileError",
    "LoadedImage",
    "file_error",
    "file_size",
    "is_animated",
    "load_image",
    "load_image_bytes",
    "open_image",
]

# The name the messages of -v have always shown (the package's, not this module's).
log = logging.getLogger("colorquant.io")

# Its plugins also fail on hostile data with IndexError (a GIF cut inside a frame header),
# TypeError (a TIFF without dimensions), KeyError and OverflowError: found by tests/test_fuzz.py.
DECODE_ERRORS = (
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


def file_error(path: Path, err: OSError) -> ImageFileError:
    """An :class:`OSError` of reading ``path`` as one :class:`ImageFileError` line naming it."""
    if isinstance(err, FileNotFoundError):
        return ImageFileError(f"{path}: no such file")
    if isinstance(err, IsADirectoryError):
        return ImageFileError(f"{path}: is a directory, not a file")
    if isinstance(err, PermissionError):
        return ImageFileError(f"{path}: permission denied")
    return ImageFileError(f"{path}: cannot read: {err.strerror or err}")


def file_size(path: Path) -> int:
    """The size of file ``path`` in bytes; a missing file or a directory is an
    :class:`ImageFileError` (before anything is read)."""
    try:
        info = path.stat()
    except OSError as err:
        raise file_error(path, err) from None
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
            return file_error(path, err)
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
    from PIL import ImageOps  # only a rotated photo needs it: the command's start-up skips it

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
    return _load(p, p, file_size(p), None)


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
        raise file_error(p, err) from None
    except DECODE_ERRORS as err:
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


def is_animated(source: PathLike | bytes) -> bool:
    """Whether the file (or a file's bytes) holds more than one frame, without decoding them."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # load_image's to say
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, *DECODE_ERRORS):
        return False  # not an image, or too large: load_image reports it
    with image:
        try:
            # Pillow's is_animated looks for a second frame; n_frames would seek a GIF to its end.
            return bool(getattr(image, "is_animated", False))
        except DECODE_ERRORS:
            return True  # frames past the first are broken: load_animation names the frame
