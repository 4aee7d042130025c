"""Animation files: animated GIF, APNG and ``.npz`` in and out, durations and loop count kept.

Frames are read whole (each composited on the ones before, as a viewer shows it) and written
whole, with their durations and the loop count.

The loop count means the same in every format: ``loop`` is the number of times the animation
plays, ``0`` forever, ``None`` once (the file gives no count). A GIF stores plays - 1 in its
Netscape extension (0 there is forever, so one play is written as no extension at all); an APNG
stores the plays in ``acTL`` (``num_plays``, 0 forever). A GIF stores frame delays in 10 ms
units: each delay is rounded with the error carried to the next frame (a 33 ms clip becomes 30,
40, 30, ... ms, the same total) and is at least 10 ms (browsers show a 0 delay at about 100 ms).

Frames that share one palette (the same rows in the same order) are written with it as it is:
the APNG's ``PLTE``, the GIF's one global color table and the ``.npz``'s ``palette`` are its
rows in its order, and the indices the results' own. Other frames are written with the union of
their colors (a GIF with a local table per frame when that union passes 256 colors).
"""

from __future__ import annotations

import io
import itertools
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .._checks import InputError, as_pixels, check_int_range
from ..alpha import with_alpha
from .atomic import PathLike, atomic_write
from .image import DECODE_ERRORS, ImageFileError, file_size, is_animated, open_image
from .result import gif_transparency

if TYPE_CHECKING:
    from ..quantize import QuantizeResult

__all__ = [
    "ANIMATION_SUFFIXES",
    "DEFAULT_DURATION_MS",
    "MAX_GIF_DURATION_MS",
    "Animation",
    "animation_bytes",
    "is_animated",
    "load_animation",
    "load_animation_bytes",
    "save_animation",
]

#: Output suffixes of :func:`save_animation`: GIF, APNG (``.png`` or ``.apng``), and ``.npz``
#: (``indices`` ``(T, H, W)``, ``palette``, ``durations``).
ANIMATION_SUFFIXES = (".gif", ".png", ".apng", ".npz")
DEFAULT_DURATION_MS = 100
#: The longest frame a GIF holds: 65535 units of 10 ms.
MAX_GIF_DURATION_MS = 655_350
_NPZ_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Animation:
    """The frames of an animated file.

    Attributes:
        frames: ``(H, W, 3)`` uint8 frames, or ``(H, W, 4)`` RGBA when some frame has
            transparency (then all are RGBA), each the whole picture at that time.
        durations: milliseconds each frame shows.
        loop: times the animation plays: 0 forever, ``None`` once (the file gives no count:
            a GIF without a Netscape extension, a still image). A GIF's Netscape count ``n``
            (repeats) reads as ``n + 1`` plays, an APNG's ``num_plays`` as it is, so that
            :func:`save_animation` with this ``loop`` plays the same in either format.
        size_bytes: size of the file.
        path: where it was read from.
    """

    frames: list[np.ndarray]
    durations: list[int]
    loop: int | None
    size_bytes: int
    path: Path


def _frame_pixels(frame: Image.Image) -> np.ndarray:
    pixels = as_pixels(frame.convert("RGBA"), name="frame")
    return pixels if pixels.flags.writeable else pixels.copy()


def load_animation(path: PathLike) -> Animation:
    """Read every frame of an animated GIF, APNG or WebP (a still image gives one frame), or
    the ``.npz`` that :func:`save_animation` writes.

    Frames are decoded one after the other; all of them together may hold at most twice
    Pillow's decompression-bomb limit ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (frames x width x
    height), so that a file of absurdly many frames is refused instead of filling the memory.

    Raises:
        ImageFileError: no such file, not an image, a frame that cannot be decoded (the
            message names the frame), too many pixels, or a malformed ``.npz``. No other
            exception comes out of a file's content.
    """
    p = Path(path)
    return _load_animation(p, p, file_size(p), None)


def load_animation_bytes(data: bytes, name: str = "<stdin>") -> Animation:
    """:func:`load_animation` of a file's bytes (standard input); messages say ``name``."""
    return _load_animation(io.BytesIO(data), Path(name), len(data), data)


def _max_animation_pixels() -> int | None:
    """Twice ``PIL.Image.MAX_IMAGE_PIXELS`` (read now: it may be changed), ``None``: no limit."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def _too_many_pixels(p: Path, what: str, limit: int) -> ImageFileError:
    return ImageFileError(
        f"{p}: {what} is over the decompression-bomb limit of {limit:,} pixels for an animation "
        "(twice PIL.Image.MAX_IMAGE_PIXELS)"
    )


def _duration_ms(value: Any) -> int:
    """A frame's duration from Pillow's info, in whole milliseconds (0 when absent or absurd)."""
    try:
        ms = float(value or 0)
    except (TypeError, ValueError):
        return 0
    return round(ms) if np.isfinite(ms) and 0 <= ms < 2**31 else 0


def _plays(loop: Any, image_format: str | None) -> int | None:
    """Pillow's ``info["loop"]`` as the number of plays (0: forever, ``None``: once)."""
    if not isinstance(loop, (int, np.integer)) or loop < 0:
        return None
    if image_format == "GIF":  # the Netscape count is repeats after the first play
        return 0 if loop == 0 else int(loop) + 1
    return int(loop)


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_NPZ_MAGIC))
    except OSError:
        return b""  # open_image says why


def _frame_error(p: Path, number: int, err: BaseException) -> ImageFileError:
    return ImageFileError(
        f"{p}: frame {number + 1} cannot be decoded (truncated or corrupt file?): {err}"
    )


def _load_animation(source: Path | io.BytesIO, p: Path, size: int, data: bytes | None) -> Animation:
    head = data[: len(_NPZ_MAGIC)] if data is not None else _head(p)
    if head == _NPZ_MAGIC:
        return _load_npz(source, p, size)
    frames: list[np.ndarray] = []
    durations: list[int] = []
    limit = _max_animation_pixels()
    with open_image(source, p, data) as opened:
        loop = _plays(opened.info.get("loop"), opened.format)
        width, height = opened.size
        if width == 0 or height == 0:
            raise ImageFileError(f"{p}: zero-size image ({width}x{height} pixels)")
        for number in itertools.count():
            try:
                opened.seek(number)
            except EOFError:
                break  # no more frames
            except DECODE_ERRORS as err:
                raise _frame_error(p, number, err) from None
            if limit is not None and (number + 1) * width * height > limit:
                raise _too_many_pixels(p, f"frame {number + 1} of {width}x{height} pixels", limit)
            try:
                opened.load()
                frames.append(_frame_pixels(opened))
            except DECODE_ERRORS as err:
                raise _frame_error(p, number, err) from None
            durations.append(_duration_ms(opened.info.get("duration")))
    if any(f.shape[2] == 4 for f in frames):
        frames = [with_alpha(f) for f in frames]
    return Animation(frames, durations, loop, size, p)


# What reading a malformed .npz raises (zipfile, zlib and numpy.lib.format).
_NPZ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,  # an unknown compression method
    RuntimeError,  # an encrypted member
    EOFError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
    OverflowError,
    struct.error,
    zlib.error,
)


def _npz_array(archive: zipfile.ZipFile, name: str, p: Path, limit: int | None) -> np.ndarray:
    """Member ``name`` of an ``.npz``; its header is checked before any data is decompressed."""
    member = f"{name}.npy"
    if member not in archive.namelist():
        raise ImageFileError(f"{p}: not an animation .npz: no {name!r} array")
    with archive.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    if dtype.hasobject or dtype.kind not in "biu":
        raise ImageFileError(f"{p}: {name!r} must hold integers, got {dtype}")
    count = int(np.prod(shape, dtype=np.float64))
    if limit is not None and count > limit:
        raise _too_many_pixels(p, f"{name!r} of shape {tuple(shape)}", limit)
    with archive.open(member) as fh:
        array: np.ndarray = np.lib.format.read_array(fh, allow_pickle=False)
    return array


def _load_npz(source: Path | io.BytesIO, p: Path, size: int) -> Animation:
    """The ``.npz`` of :func:`save_animation`: ``indices`` ``(T, H, W)``, ``palette`` ``(K, 3|4)``
    uint8, ``durations`` ``(T,)`` and, when the animation does not play once, ``loop``."""
    limit = _max_animation_pixels()
    try:
        with zipfile.ZipFile(source) as archive:
            indices = _npz_array(archive, "indices", p, limit)
            palette = _npz_array(archive, "palette", p, limit)
            durations = _npz_array(archive, "durations", p, limit)
            names = archive.namelist()
            loop = _npz_array(archive, "loop", p, limit) if "loop.npy" in names else None
    except ImageFileError:
        raise
    except FileNotFoundError:
        raise ImageFileError(f"{p}: no such file") from None
    except _NPZ_ERRORS as err:
        raise ImageFileError(f"{p}: cannot read the .npz (truncated or corrupt?): {err}") from None
    if indices.ndim != 3 or 0 in indices.shape:
        raise ImageFileError(f"{p}: 'indices' must have shape (T, H, W), got {indices.shape}")
    if palette.ndim != 2 or palette.shape[1] not in (3, 4) or not 1 <= palette.shape[0] <= 65536:
        raise ImageFileError(
            f"{p}: 'palette' must have shape (K, 3) or (K, 4), K in 1..65536, got {palette.shape}"
        )
    if palette.min() < 0 or palette.max() > 255:
        raise ImageFileError(f"{p}: 'palette' colors must lie in 0..255")
    if indices.min() < 0 or indices.max() >= len(palette):
        raise ImageFileError(
            f"{p}: 'indices' must lie in 0..{len(palette) - 1} (the palette's rows), got "
            f"{indices.min()}..{indices.max()}"
        )
    if durations.shape != indices.shape[:1] or durations.min() < 0:
        raise ImageFileError(
            f"{p}: 'durations' must be {indices.shape[0]} milliseconds >= 0 (one per frame)"
        )
    plays = None
    if loop is not None:
        if loop.shape != () or loop < 0:
            raise ImageFileError(f"{p}: 'loop' must be one number >= 0, got {loop.tolist()!r}")
        plays = int(loop)
    colors = palette.astype(np.uint8)
    frames = [colors[i] for i in indices]
    return Animation(frames, [int(d) for d in durations], plays, size, p)


def _common_palette(results: Sequence[QuantizeResult]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One palette holding every frame's colors, and each frame's indices into it.

    Frames that share one palette (the same rows in the same order) keep it as it is, so the
    file's indices are the results' own. Otherwise the union of the frames' colors, sorted,
    translucent rows first (a short ``tRNS``).
    """
    first = results[0].palette
    if all(r.palette.shape == first.shape and np.array_equal(r.palette, first) for r in results):
        return first, [r.indices for r in results]
    channels = max(r.palette.shape[1] for r in results)
    palettes = [
        with_alpha(r.palette) if r.palette.shape[1] < channels else r.palette for r in results
    ]
    colors, inverse = np.unique(np.concatenate(palettes), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    if channels == 4:  # translucent entries first: a short tRNS chunk
        order = np.argsort(colors[:, 3] == 255, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        colors, inverse = colors[order], rank[inverse]
    indices = []
    start = 0
    for r, p in zip(results, palettes, strict=True):
        rows = inverse[start : start + len(p)]
        indices.append(rows[r.indices].astype(np.uint8 if len(colors) <= 256 else np.uint16))
        start += len(p)
    return colors, indices


def _p_image(indices: np.ndarray, palette: np.ndarray) -> Image.Image:
    height, width = indices.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(indices, np.uint8).tobytes())
    image.putpalette(np.ascontiguousarray(palette[:, :3], np.uint8).tobytes(), rawmode="RGB")
    return image


def _durations(durations: int | Sequence[int] | None, n: int) -> list[int]:
    if durations is None:
        return [DEFAULT_DURATION_MS] * n
    if isinstance(durations, (int, np.integer)):
        values = [int(durations)] * n
    else:
        values = [int(d) for d in durations]
        if len(values) != n:
            raise InputError(f"durations must have one value per frame ({n}), got {len(values)}")
    if any(d < 0 for d in values):
        raise InputError(f"durations must be >= 0 milliseconds, got {min(values)}")
    return values


def _gif_delays(times: Sequence[int]) -> list[int]:
    """Millisecond durations as a GIF holds them: multiples of 10 ms, each at least 10 ms.

    Each is rounded to 10 ms with the error carried to the next frame, so that every frame
    starts within 5 ms of its time and the total is kept (a 33 ms clip: 30, 40, 30, 30, 40,
    ...). No frame gets 0: browsers show a 0 delay at about 100 ms.
    """
    delays: list[int] = []
    target = written = 0
    for ms in times:
        target += ms
        step = max(10, (target - written + 5) // 10 * 10)
        delays.append(step)
        written += step
    return delays


def _check_loop(loop: Any, suffix: str) -> int | None:
    """``loop``: plays, 0 forever, ``None`` once; a GIF holds at most 65536 plays."""
    if loop is None:
        return None
    return check_int_range("loop", loop, 0, 65536 if suffix == ".gif" else 2**31 - 1)


def _gif_color_table(
    results: Sequence[QuantizeResult],
) -> tuple[np.ndarray, list[np.ndarray], int | None] | None:
    """One color table for every GIF frame: ``(K, 3)`` colors, each frame's indices into it
    and its transparent row; ``None`` when the frames use more than 256 colors together.

    A GIF holds one transparent row, and it shows nothing whatever its color: the frames'
    transparent rows (of different colors) become the first of them. A shared palette keeps
    its order. The frames are checked first (:func:`gif_transparency`).
    """
    palette, frame_indices = _common_palette(results)
    clear = None
    indices = [i.astype(np.intp) for i in frame_indices]
    if palette.shape[1] == 4:
        clear_rows = np.flatnonzero(palette[:, 3] == 0)
        if clear_rows.size:
            keep = np.ones(len(palette), bool)
            keep[clear_rows[1:]] = False
            new_row = np.cumsum(keep) - 1  # each kept row's place in the table
            new_row[clear_rows] = new_row[clear_rows[0]]
            palette = palette[keep]
            indices = [new_row[i] for i in indices]
            clear = int(new_row[clear_rows[0]])
    if len(palette) > 256:
        return None
    return np.ascontiguousarray(palette[:, :3]), [i.astype(np.uint8) for i in indices], clear


def animation_bytes(
    results: Sequence[QuantizeResult],
    suffix: str = ".gif",
    *,
    durations: int | Sequence[int] | None = None,
    loop: int | None = 0,
) -> bytes:
    """The file :func:`save_animation` would write, as bytes (``suffix`` picks the format)."""
    buffer = io.BytesIO()
    _animation_writer(results, suffix, suffix, durations, loop)(buffer)
    return buffer.getvalue()


def _animation_writer(
    results: Sequence[QuantizeResult],
    suffix: str,
    name: PathLike,
    durations: int | Sequence[int] | None,
    loop: int | None,
) -> Any:
    if suffix not in ANIMATION_SUFFIXES:
        raise InputError(
            f"{name}: an animation is written as {', '.join(ANIMATION_SUFFIXES)}, got "
            f"{suffix or 'no suffix'}"
        )
    if not results:
        raise InputError("results is empty: an animation needs at least one frame")
    times = _durations(durations, len(results))
    plays = _check_loop(loop, suffix)
    if suffix == ".gif":
        return _gif_writer(results, name, times, plays)
    palette, indices = _common_palette(results)
    if suffix == ".npz":
        arrays = {"indices": np.stack(indices), "palette": palette, "durations": np.array(times)}
        if plays is not None:  # absent: plays once
            arrays["loop"] = np.array(plays)

        def write_npz(fh: IO[bytes]) -> None:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]

        return write_npz
    if len(palette) > 256:
        raise InputError(
            f"{name}: an APNG has one palette of at most 256 colors for every frame, these "
            f"frames use {len(palette)} (share one palette, or write a GIF)"
        )
    images = [_p_image(i, palette) for i in indices]
    if palette.shape[1] == 4 and (palette[:, 3] < 255).any():
        last = int(np.flatnonzero(palette[:, 3] < 255)[-1])
        for image in images:
            image.info["transparency"] = palette[: last + 1, 3].tobytes()

    def write_png(fh: IO[bytes]) -> None:
        images[0].save(
            fh,
            format="PNG",
            save_all=True,
            append_images=images[1:],
            duration=times,
            disposal=0,  # APNG_DISPOSE_OP_NONE, with
            blend=0,  # APNG_BLEND_OP_SOURCE: each frame's pixels replace the last ones
            compress_level=7,
            loop=1 if plays is None else plays,  # acTL num_plays: 0 forever
        )

    return write_png


def _gif_writer(
    results: Sequence[QuantizeResult], name: PathLike, times: list[int], plays: int | None
) -> Any:
    """What writes an animated GIF: one global color table when the frames' colors fit in 256
    (no local tables), else a local table per frame."""
    if max(times) > MAX_GIF_DURATION_MS:
        raise InputError(
            f"{name}: a GIF frame shows at most {MAX_GIF_DURATION_MS} ms, got {max(times)}"
        )
    # The Netscape count is repeats after the first play, 0 forever: one play is no count.
    extra: dict[str, Any] = {} if plays in (None, 1) else {"loop": 0 if plays == 0 else plays - 1}
    # Each frame: at most one clear row, no translucency (checked once, in frame order).
    clears = [gif_transparency(r.palette, name) for r in results]
    table = _gif_color_table(results)
    images = []
    if table is not None:
        palette, indices, clear = table
        extra["palette"] = palette.tobytes()  # the global table; Pillow then writes no local one
        for i in indices:
            image = _p_image(i, palette)
            if clear is not None:
                image.info["transparency"] = clear
            images.append(image)
    else:
        for r, own in zip(results, clears, strict=True):  # each its own palette (local tables)
            image = _p_image(r.indices.astype(np.uint8), r.palette)
            if own is not None:
                image.info["transparency"] = own
            images.append(image)

    def write_gif(fh: IO[bytes]) -> None:
        images[0].save(
            fh,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=_gif_delays(times),
            disposal=2,  # each frame is whole: clear before the next (transparency)
            optimize=False,
            **extra,
        )

    return write_gif


def save_animation(
    results: Sequence[QuantizeResult],
    path: PathLike,
    *,
    durations: int | Sequence[int] | None = None,
    loop: int | None = 0,
    force: bool = False,
    max_bytes: int | None = None,
) -> int:
    """Write quantized frames as an animated GIF (``.gif``) or APNG (``.png``, ``.apng``).

    Args:
        results: one :class:`colorquant.QuantizeResult` per frame
            (:func:`colorquant.quantize_animation`).
        path: the output file; its suffix picks the format.
        durations: milliseconds per frame: one number for all, or one per frame (default 100).
            A GIF stores 10 ms units: rounded with the error carried, at least 10 ms a frame.
        loop: times the animation plays, 0 = forever (default), ``None`` = once; the same in
            every format (a GIF's Netscape count is plays - 1, an APNG's ``num_plays`` the
            plays). ``.npz`` keeps it as ``loop`` (absent for ``None``).
        force: allow replacing an existing file.
        max_bytes: write nothing unless the file is smaller than this.

    Returns:
        The size in bytes of the written file (written atomically).

    Raises:
        InputError: unknown suffix, bad durations or loop, or (APNG) more than 256 colors over
            all frames; a GIF frame with translucent colors.
        FileExistsError: the file exists and ``force`` is false.
        WriteError: the file cannot be written.

    Example:
        >>> import numpy as np, tempfile, os
        >>> video = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
        >>> from colorquant import quantize_animation
        >>> frames = quantize_animation(video, 8, color_space="rgb")
        >>> name = os.path.join(tempfile.mkdtemp(), "a.gif")
        >>> save_animation(frames, name, durations=40) > 0
        True
    """
    suffix = Path(path).suffix.lower()
    writer = _animation_writer(results, suffix, path, durations, loop)
    return atomic_write(path, writer, force=force, max_bytes=max_bytes)
