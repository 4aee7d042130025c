"""Animations: animated GIF and APNG in and out, one palette for every frame.

A palette fitted on every frame at once (their merged color histogram) maps each frame: colors
do not flicker from frame to frame as they do with a palette per frame, and ordered dithering
(the same pattern on every frame) does not crawl. ``shared=False`` fits a palette per frame
(GIF only: APNG frames share the file's one palette).

Frames are read whole (each composited on the ones before, as a viewer shows it) and written
whole, with their durations and the loop count.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from ._array import is_tensor
from ._checks import InputError, as_pixels
from .alpha import with_alpha
from .io import _DECODE_ERRORS, ImageFileError, _file_size, atomic_write, open_image
from .quantize import Dither, Quantizer, QuantizeResult, quantize

__all__ = [
    "ANIMATION_SUFFIXES",
    "Animation",
    "animation_bytes",
    "is_animated",
    "load_animation",
    "load_animation_bytes",
    "quantize_animation",
    "save_animation",
]

PathLike = str | os.PathLike[str]

#: Output suffixes of :func:`save_animation`: GIF, APNG (``.png`` or ``.apng``), and ``.npz``
#: (``indices`` ``(T, H, W)``, ``palette``, ``durations``).
ANIMATION_SUFFIXES = (".gif", ".png", ".apng", ".npz")
DEFAULT_DURATION_MS = 100


@dataclass(frozen=True)
class Animation:
    """The frames of an animated file.

    Attributes:
        frames: ``(H, W, 3)`` uint8 frames, or ``(H, W, 4)`` RGBA when some frame has
            transparency (then all are RGBA), each the whole picture at that time.
        durations: milliseconds each frame shows.
        loop: times to play (0: forever; ``None``: once, the file said nothing).
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
    """Read every frame of an animated GIF, APNG or WebP (a still image gives one frame).

    Raises:
        ImageFileError: no such file, not an image, or a frame that cannot be decoded (the
            message names the frame).
    """
    p = Path(path)
    return _load_animation(p, p, _file_size(p), None)


def load_animation_bytes(data: bytes, name: str = "<stdin>") -> Animation:
    """:func:`load_animation` of a file's bytes (standard input); messages say ``name``."""
    return _load_animation(io.BytesIO(data), Path(name), len(data), data)


def _load_animation(source: Path | io.BytesIO, p: Path, size: int, data: bytes | None) -> Animation:
    frames: list[np.ndarray] = []
    durations: list[int] = []
    loop: int | None = None
    with open_image(source, p, data) as opened:
        loop = opened.info.get("loop")
        for number, frame in enumerate(ImageSequence.Iterator(opened)):
            try:
                frame.load()
                frames.append(_frame_pixels(frame))
            except _DECODE_ERRORS as err:
                raise ImageFileError(
                    f"{p}: frame {number + 1} cannot be decoded (truncated or corrupt file?): {err}"
                ) from None
            durations.append(round(float(frame.info.get("duration", 0) or 0)))
    if any(f.shape[2] == 4 for f in frames):
        frames = [with_alpha(f) for f in frames]
    return Animation(frames, durations, None if loop is None else int(loop), size, p)


def _as_frames(frames: Any) -> list[np.ndarray]:
    """A ``(T, C, H, W)`` tensor, a ``(T, H, W, C)`` array or a sequence of images as a list of
    ``(H, W, 3)`` or (all) ``(H, W, 4)`` uint8 frames of one size."""
    if is_tensor(frames):
        if frames.ndim != 4 or frames.shape[1] not in (3, 4):
            raise InputError(
                f"frames tensor must be (T, 3, H, W) or (T, 4, H, W), got {tuple(frames.shape)}"
            )
        items: Sequence[Any] = list(frames.unbind(0))
    elif isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[3] not in (3, 4):
            raise InputError(
                f"frames array must be (T, H, W, 3) or (T, H, W, 4), got {frames.shape}"
            )
        items = list(frames)
    elif isinstance(frames, (list, tuple)):
        items = frames
    else:
        raise InputError(
            f"frames must be a tensor, an array or a list of images, got {type(frames).__name__}"
        )
    if not items:
        raise InputError("frames is empty: an animation needs at least one frame")
    out = [as_pixels(f, f"frames[{t}]") for t, f in enumerate(items)]
    sizes = {f.shape[:2] for f in out}
    if len(sizes) > 1:
        raise InputError(f"frames must all have one size, got {sorted(sizes)}")
    if any(f.shape[2] == 4 for f in out):
        out = [with_alpha(f) for f in out]
    return out


def quantize_animation(
    frames: Any,
    n_colors: int = 256,
    *,
    shared: bool = True,
    dither: Dither = "none",
    dither_strength: float = 1.0,
    **options: Any,
) -> list[QuantizeResult]:
    """Quantize the frames of an animation: one palette for all (default) or one per frame.

    Args:
        frames: ``(T, 3, H, W)`` or ``(T, 4, H, W)`` tensor, ``(T, H, W, 3|4)`` array, or a
            list of images of one size (anything :func:`colorquant.quantize` takes).
        n_colors: palette size K.
        shared: one palette fitted on every frame's colors, applied to each; else a palette
            per frame.
        dither: ``"none"``, ``"ordered"`` (the same pattern on every frame: no crawling) or
            ``"fs"``.
        dither_strength: 0..1.
        options: other :class:`colorquant.Quantizer` options (``color_space``, ``seed``,
            ``speed``, ``fixed_colors``, ``keep_transparent_rgb``, ...).

    Returns:
        One :class:`colorquant.QuantizeResult` per frame; with ``shared``, every frame's
        palette is the one fitted palette, all its rows in one order (README, "Palettes and
        indices").
    """
    pixels = _as_frames(frames)
    if not shared:
        return [
            quantize(f, n_colors, dither=dither, dither_strength=dither_strength, **options)
            for f in pixels
        ]
    quantizer = Quantizer(n_colors, **options).fit(pixels)
    return [quantizer.apply(f, dither=dither, dither_strength=dither_strength) for f in pixels]


def _common_palette(results: Sequence[QuantizeResult]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One palette holding every frame's colors, and each frame's indices into it."""
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


def animation_bytes(
    results: Sequence[QuantizeResult],
    suffix: str = ".gif",
    *,
    durations: int | Sequence[int] | None = None,
    loop: int | None = 0,
) -> bytes:
    """The file :func:`save_animation` would write, as bytes."""
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
    extra: dict[str, Any] = {} if loop is None else {"loop": int(loop)}
    if suffix == ".gif":
        from .io import _gif_transparency

        images = []
        for r in results:  # each frame its own palette (a GIF's local color tables)
            image = _p_image(r.indices.astype(np.uint8), r.palette)
            clear = _gif_transparency(r.palette, name)
            if clear is not None:
                image.info["transparency"] = clear
            images.append(image)

        def write_gif(fh: IO[bytes]) -> None:
            images[0].save(
                fh,
                format="GIF",
                save_all=True,
                append_images=images[1:],
                duration=times,
                disposal=2,  # each frame is whole: clear before the next (transparency)
                optimize=False,
                **extra,
            )

        return write_gif
    palette, indices = _common_palette(results)
    if suffix == ".npz":

        def write_npz(fh: IO[bytes]) -> None:
            np.savez_compressed(
                fh, indices=np.stack(indices), palette=palette, durations=np.array(times)
            )

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
            **extra,
        )

    return write_png


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
        results: one :class:`colorquant.QuantizeResult` per frame (:func:`quantize_animation`).
        path: the output file; its suffix picks the format.
        durations: milliseconds per frame: one number for all, or one per frame (default 100).
        loop: times to play, 0 = forever (default); ``None`` writes no loop count (play once).
        force: allow replacing an existing file.
        max_bytes: write nothing unless the file is smaller than this.

    Returns:
        The size in bytes of the written file (written atomically).

    Raises:
        InputError: unknown suffix, bad durations, or (APNG) more than 256 colors over all
            frames; a GIF frame with translucent colors.
        FileExistsError: the file exists and ``force`` is false.
        WriteError: the file cannot be written.

    Example:
        >>> import numpy as np, tempfile, os
        >>> video = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
        >>> frames = quantize_animation(video, 8, color_space="rgb")
        >>> name = os.path.join(tempfile.mkdtemp(), "a.gif")
        >>> save_animation(frames, name, durations=40) > 0
        True
    """
    suffix = Path(path).suffix.lower()
    writer = _animation_writer(results, suffix, path, durations, loop)
    return atomic_write(path, writer, force=force, max_bytes=max_bytes)


def is_animated(source: PathLike | bytes) -> bool:
    """Whether the file (or a file's bytes) holds more than one frame, without decoding them."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # load_image's to say
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, *_DECODE_ERRORS):
        return False  # not an image, or too large: load_image reports it
    with image:
        try:
            return int(getattr(image, "n_frames", 1)) > 1
        except _DECODE_ERRORS:
            return True  # frames past the first are broken: load_animation names the frame
