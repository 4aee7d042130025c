"""Palette files in: GIMP ``.gpl``, a list of hex colors, or an image's distinct colors.

:func:`load_palette` tells the kind from the content and returns ``(K, 3)`` uint8 sRGB colors
(``(K, 4)`` RGBA for an image with transparency); :func:`parse_hex_colors` reads a list of hex
colors given on a command line. A malformed file is one :class:`ImageFileError` naming the file
and the line.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .._checks import InputError
from .atomic import PathLike
from .image import ImageFileError, file_error, file_size, load_image_bytes

__all__ = [
    "MAX_IMAGE_PALETTE",
    "MAX_TEXT_PALETTE",
    "load_palette",
    "load_palette_bytes",
    "parse_hex_colors",
]

#: An image used as a palette may have at most this many distinct colors.
MAX_IMAGE_PALETTE = 256
#: A text palette may have at most this many colors (the largest palette the core accepts).
MAX_TEXT_PALETTE = 65536

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
    file_size(p)  # a directory or a missing file: one clear message
    try:
        data = p.read_bytes()
    except OSError as err:
        raise file_error(p, err) from None
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
