"""Quantized images out: a :class:`colorquant.QuantizeResult` as a palette PNG, a GIF or ``.npz``.

:func:`save_result` writes the file atomically (:func:`colorquant.io.atomic_write`),
:func:`result_bytes` gives the same bytes (for standard output). The palette is written as it
is, every row in its order, and the indices unchanged (README, "Palettes and indices").
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from PIL.PngImagePlugin import PngInfo

from .._checks import InputError
from .atomic import PathLike, atomic_write

if TYPE_CHECKING:
    from ..quantize import QuantizeResult

__all__ = [
    "MAX_COLORS_BY_SUFFIX",
    "RESULT_SUFFIXES",
    "TooManyColorsError",
    "check_colors",
    "check_palette_colors",
    "gif_transparency",
    "max_colors_for",
    "optimize_png",
    "result_bytes",
    "result_suffix",
    "save_result",
]

#: Output suffixes of :func:`save_result` and the most palette colors each can hold.
MAX_COLORS_BY_SUFFIX: dict[str, int] = {".png": 256, ".gif": 256, ".npz": 65536}
RESULT_SUFFIXES: tuple[str, ...] = tuple(MAX_COLORS_BY_SUFFIX)


class TooManyColorsError(InputError):
    """A result has more palette rows than its file format holds (PNG and GIF: 256)."""


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


def gif_transparency(palette: np.ndarray, path: PathLike) -> int | None:
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


def _unfiltered_png(png: bytes, indices: np.ndarray) -> bytes:
    """``png``, a palette PNG of ``indices`` as Pillow writes it, with its pixel data stored
    unfiltered (zlib level 7, as the rest) when it packs fewer than 8 bits per index.

    Pillow filters every row of a palette PNG with fewer than 8 bits per index (K <= 16), which
    only disturbs the runs zlib finds in packed indices: the same indices with every row
    unfiltered took 16.7% fewer bytes at K = 16, dithered, on 8 Kodak crops
    (``benchmarks/lowk_dither.py``; BENCHMARKS.md, "Low-K dithering"), and fewer on every
    photo measured. 8-bit PNGs, which Pillow does not filter, are returned as they are. Every
    chunk but the pixel data (``IDAT``) is kept in place.

    Args:
        png: the file's bytes (non-interlaced, color type 3).
        indices: ``(H, W)`` uint8 palette index of every pixel, the image ``png`` holds.

    Returns:
        The file with unfiltered pixel data (``png`` itself at 8 bits per index).
    """
    depth = png[24]
    if depth >= 8 or png[25] != 3 or png[28] != 0:  # 8 bits, not palette, or interlaced
        return png
    per_byte = 8 // depth
    height, width = indices.shape
    padded = np.zeros((height, -(-width // per_byte) * per_byte), np.uint8)
    padded[:, :width] = indices
    shifts = np.arange(8 - depth, -1, -depth, dtype=np.uint8)  # first pixel in the high bits
    rows = (padded.reshape(height, -1, per_byte) << shifts).sum(axis=2, dtype=np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)  # filter 0: none
    body = zlib.compress(raw.tobytes(), 7)
    chunks: list[bytes] = []
    pos, placed = 8, False
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        chunk = png[pos : pos + 12 + length]
        pos += 12 + length
        if kind != b"IDAT":
            chunks.append(chunk)
            continue
        if not placed:  # one IDAT where the first one was
            crc = zlib.crc32(b"IDAT" + body)
            chunks.append(struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", crc))
            placed = True
    return png[:8] + b"".join(chunks)


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
    check_palette_colors(result.palette, suffix, name)


def check_palette_colors(palette: np.ndarray, suffix: str, path: PathLike) -> None:
    """Refuse a palette longer than ``suffix`` holds, in one line naming ``path`` and the way out.

    The common case is a given or shared palette of 256 rows without a fully transparent
    entry, met by an image with fully transparent pixels: the library adds ``(0, 0, 0, 0)``
    as row 257 so that those pixels stay exactly clear, and PNG and GIF cannot hold it.

    Args:
        palette: ``(K, 3)`` or ``(K, 4)`` uint8 colors.
        suffix: ``".png"``, ``".gif"`` or ``".npz"`` (:func:`result_suffix`).
        path: what the message names.

    Raises:
        TooManyColorsError: ``K`` is over what ``suffix`` holds.
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
    check_palette_colors(result.palette, suffix, path)
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

            # At most 16 colors Pillow packs 1, 2 or 4 bits per index and filters every row;
            # the pixel data is then written again, unfiltered (_unfiltered_png): Pillow's own
            # is only a placeholder, compressed fast.
            level = 1 if len(result.palette) <= 16 else 7

            def writer(fh: IO[bytes]) -> None:
                buffer = io.BytesIO()
                image.save(buffer, format="PNG", compress_level=level, **extra)
                data = _unfiltered_png(buffer.getvalue(), result.indices)
                fh.write(optimize_png(data) if optimize else data)

        else:
            gif = {"transparency": gif_transparency(result.palette, path)}

            # optimize=False: keep the indices and palette order as they are.
            def writer(fh: IO[bytes]) -> None:
                image.save(fh, format="GIF", optimize=False, **gif)

    return writer
