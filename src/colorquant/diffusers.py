"""Helpers for diffusers pipelines: animations with one palette, and outputs quantized in place.

:func:`export_to_gif` is called as ``diffusers.utils.export_to_gif`` is (the frames, an optional
path, ``fps``) and returns the path; where diffusers lets Pillow pick a new palette for every
frame (colors that do not move flicker, and every frame carries its own color table), this
fits one palette on all frames (:func:`colorquant.quantize_animation`): a still background stays
still. :func:`export_to_apng` writes the same as an APNG (one PLTE for the whole file).

:func:`quantize_output` takes what a pipeline returns, as it returns it, and gives it back in
the same form, quantized: ``output.images`` as a list of PIL images, a ``(B, H, W, 3)`` array
(``output_type="np"``) or a ``(B, 3, H, W)`` tensor (``output_type="pt"``, any float dtype and
device), video ``output.frames`` (a list of lists of PIL images, ``(B, T, H, W, 3)`` or
``(B, T, 3, H, W)``), or the output object itself.

diffusers is not imported here: these work on the images. ``pip install 'colorquant[diffusers]'``
installs a diffusers this module is tested with.

Example:
    >>> import numpy as np
    >>> frames = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    >>> out = quantize_output(frames, 8)
    >>> out.shape, out.dtype, len(np.unique(out.reshape(-1, 3), axis=0)) <= 8
    ((4, 16, 16, 3), dtype('float32'), True)
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

from ._array import is_tensor
from ._checks import InputError, check_int_range, check_positive
from ._extras import require
from .alpha import binary_alpha, with_alpha
from .animation import as_frames, quantize_animation, save_animation
from .color import DEFAULT_COLOR_SPACE, ColorSpace
from .quantize import DEFAULT_SPEED, BatchResult, Dither, quantize_batch

__all__ = ["export_to_apng", "export_to_gif", "quantize_output"]

PathLike = str | os.PathLike[str]


def frame_durations(n: int, fps: float) -> list[int]:
    """Milliseconds for ``n`` frames at ``fps``, the rounding carried (24 fps: 42, 41, 42, ...)
    so that the clip lasts ``n / fps`` seconds."""
    rate = check_positive("fps", fps)
    ends = [round(1000.0 * (t + 1) / rate) for t in range(n)]
    return [b - a for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def _frames_for_animation(image: Any) -> Any:
    """Frames as :func:`colorquant.quantize_animation` takes them (float tensors in float32)."""
    if sys.modules.get("torch") is None:
        return image  # no torch loaded: no tensors (PIL images and arrays go as they are)
    import torch

    if is_tensor(image):
        if image.is_floating_point() and image.dtype != torch.float32:
            return image.detach().to(torch.float32)
        return image.detach()
    if isinstance(image, (list, tuple)):
        return [
            f.detach().to(torch.float32) if is_tensor(f) and f.is_floating_point() else f
            for f in image
        ]
    return image


def _export(
    image: Any,
    path: PathLike | None,
    suffix: str,
    fps: float,
    *,
    n_colors: int,
    dither: Dither,
    dither_strength: float,
    color_space: ColorSpace,
    seed: int,
    loop: int | None,
    force: bool,
) -> str:
    """What :func:`export_to_gif` and :func:`export_to_apng` do, as ``suffix`` says."""
    check_int_range("n_colors", n_colors, 1, 256)
    frames_in = _frames_for_animation(image)
    if suffix == ".gif":
        # GIF has one fully transparent entry and no translucency: alpha is cut at 128, as the
        # command cuts it (an APNG keeps it).
        pixels = as_frames(frames_in)
        if pixels[0].shape[2] == 4:
            frames_in = [binary_alpha(f) for f in pixels]
            if any(f.shape[2] == 4 for f in frames_in):
                frames_in = [with_alpha(f) for f in frames_in]
    frames = quantize_animation(
        frames_in,
        n_colors,
        shared=True,
        dither=dither,
        dither_strength=dither_strength,
        color_space=color_space,
        seed=seed,
    )
    durations = frame_durations(len(frames), fps)
    if path is None:
        # A file of our own (diffusers names a temporary file and lets it be deleted).
        handle, name = tempfile.mkstemp(suffix=suffix)
        os.close(handle)
        path, force = name, True
    save_animation(frames, path, durations=durations, loop=loop, force=force)
    return os.fspath(path)


def export_to_gif(
    image: Any,
    output_gif_path: PathLike | None = None,
    fps: float = 10,
    *,
    n_colors: int = 256,
    dither: Dither = "none",
    dither_strength: float = 1.0,
    color_space: ColorSpace = DEFAULT_COLOR_SPACE,
    seed: int = 0,
    loop: int | None = 0,
    force: bool = False,
) -> str:
    """Write frames as an animated GIF with one palette for every frame; returns the path.

    The call of ``diffusers.utils.export_to_gif(image, output_gif_path=None, fps=10)``, with
    the same defaults (a temporary ``.gif`` when no path is given, plays forever); the options
    after ``fps`` are colorquant's.

    Args:
        image: the frames: a list of PIL images (``pipe(...).frames[0]``), of ``(H, W, 3)``
            arrays (uint8, or float in [0, 1]) or ``(3, H, W)`` tensors, a ``(T, H, W, 3)``
            array or a ``(T, 3, H, W)`` tensor (any float dtype). RGBA frames keep fully
            transparent pixels; GIF has no translucency, so alpha is cut at 128 (below it a
            pixel is transparent, as ``colorquant quantize`` writes GIFs): use
            :func:`export_to_apng` to keep it.
        output_gif_path: where to write; ``None``: a new temporary file.
        fps: frames per second (> 0); each frame lasts ``1000 / fps`` ms, the rounding carried.
        n_colors: palette size, 1..256, fitted on all frames together.
        dither: ``"none"`` (smallest, no flicker), ``"ordered"`` (the same pattern every frame:
            no crawling) or ``"fs"`` (Floyd-Steinberg, which can shimmer between frames).
        dither_strength: 0..1.
        color_space, seed: see :class:`colorquant.Quantizer`.
        loop: times to play, 0 = forever (as diffusers writes).
        force: replace an existing file (diffusers always does; colorquant never does unasked).

    Returns:
        The path of the written file, as a string.

    Raises:
        InputError: no frames, frames of different sizes, a bad option.
        FileExistsError: the file exists and ``force`` is false.
    """
    return _export(
        image,
        output_gif_path,
        ".gif",
        fps,
        n_colors=n_colors,
        dither=dither,
        dither_strength=dither_strength,
        color_space=color_space,
        seed=seed,
        loop=loop,
        force=force,
    )


def export_to_apng(
    image: Any,
    output_apng_path: PathLike | None = None,
    fps: float = 10,
    *,
    n_colors: int = 256,
    dither: Dither = "none",
    dither_strength: float = 1.0,
    color_space: ColorSpace = DEFAULT_COLOR_SPACE,
    seed: int = 0,
    loop: int | None = 0,
    force: bool = False,
) -> str:
    """:func:`export_to_gif` as an animated PNG (``.png``; one palette, and translucency)."""
    return _export(
        image,
        output_apng_path,
        ".png",
        fps,
        n_colors=n_colors,
        dither=dither,
        dither_strength=dither_strength,
        color_space=color_space,
        seed=seed,
        loop=loop,
        force=force,
    )


# -- pipeline outputs ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Form:
    """How the images came, to give them back the same way."""

    kind: str  # "pil", "numpy" or "torch"
    shape: tuple[int, ...]  # the leading dims: (B,) or (B, T)
    dtype: Any = None
    modes: tuple[str, ...] = ()


def _is_pil_list(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, Image.Image) for i in x)


def _to_batch(images: Any) -> tuple[torch.Tensor, _Form]:
    """Images in any supported form as one ``(N, C, H, W)`` tensor (uint8 or float32).

    Raises:
        MissingExtraError: torch is not installed (quantize_output works on tensors).
    """
    require("torch", "colorquant.diffusers.quantize_output")
    import torch

    floats = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    if _is_pil_list(images):
        modes = tuple(im.mode for im in images)
        arrays = [
            np.asarray(im if im.mode in ("RGB", "RGBA") else im.convert("RGB")) for im in images
        ]
        if len({a.shape for a in arrays}) > 1:
            raise InputError(
                f"images must all have one size and mode, got {sorted({a.shape for a in arrays})}"
            )
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        return batch, _Form("pil", (len(images),), modes=modes)
    if isinstance(images, (list, tuple)) and images and all(_is_pil_list(v) for v in images):
        lengths = {len(v) for v in images}
        if len(lengths) > 1:
            raise InputError(f"videos must have one number of frames, got {sorted(lengths)}")
        frames, form = _to_batch([f for video in images for f in video])
        return frames, _Form("pil", (len(images), lengths.pop()), modes=form.modes)
    if isinstance(images, np.ndarray):
        if images.ndim not in (4, 5) or images.shape[-1] not in (3, 4):
            raise InputError(
                "images array must be (B, H, W, 3), (B, H, W, 4) or video frames "
                f"(B, T, H, W, 3), got {images.shape}"
            )
        lead = images.shape[:-3]
        rows = images.reshape(-1, *images.shape[-3:])
        if rows.dtype == np.uint8:
            batch = torch.from_numpy(np.ascontiguousarray(rows))
        elif rows.dtype.kind == "f":
            batch = torch.from_numpy(rows.astype(np.float32))
        else:
            raise InputError(f"images array must be uint8 or float in [0, 1], got {rows.dtype}")
        return batch.permute(0, 3, 1, 2), _Form("numpy", lead, images.dtype)
    if isinstance(images, torch.Tensor):
        if images.ndim not in (4, 5) or images.shape[-3] not in (3, 4):
            raise InputError(
                "images tensor must be (B, 3, H, W), (B, 4, H, W) or video frames "
                f"(B, T, 3, H, W), got {tuple(images.shape)}"
            )
        if images.dtype != torch.uint8 and images.dtype not in floats:
            raise InputError(f"images tensor must be uint8 or float, got {images.dtype}")
        lead = tuple(images.shape[:-3])
        flat = images.detach().reshape(-1, *images.shape[-3:])
        if flat.is_floating_point():
            flat = flat.to(torch.float32)
        return flat, _Form("torch", lead, images.dtype)
    raise InputError(
        "images must be a list of PIL images (or a list of such lists, video frames), an "
        f"array or a tensor, or a pipeline output with .images or .frames; got "
        f"{type(images).__name__}"
    )


def _pil_image(indices: np.ndarray, palette: np.ndarray) -> Image.Image:
    image = Image.fromarray(np.ascontiguousarray(indices, dtype=np.uint8), mode="P")
    image.putpalette(np.ascontiguousarray(palette[:, :3], dtype=np.uint8).tobytes())
    if palette.shape[1] == 4 and (palette[:, 3] < 255).any():
        image.info["transparency"] = np.ascontiguousarray(palette[:, 3], dtype=np.uint8).tobytes()
    return image


def _from_batch(result: BatchResult, form: _Form, palette_images: bool) -> Any:
    image: torch.Tensor = result.image
    if form.kind == "torch":
        return image.to(form.dtype).reshape(*form.shape, *image.shape[1:])
    if form.kind == "numpy":
        x = image.permute(0, 2, 3, 1).cpu().numpy().astype(form.dtype, copy=False)
        return x.reshape(*form.shape, *x.shape[1:])
    pils: list[Image.Image] = []
    indices = result.indices.cpu().numpy()
    palettes = result.palettes.cpu().numpy()
    for b, mode in enumerate(form.modes):
        if palette_images:
            pils.append(_pil_image(indices[b], palettes[b]))
        else:
            pixels = image[b].permute(1, 2, 0).cpu().numpy()
            pils.append(Image.fromarray(pixels, "RGBA" if pixels.shape[2] == 4 else "RGB"))
            if mode not in ("RGB", "RGBA"):
                pils[-1] = pils[-1].convert("RGB")
    if len(form.shape) == 2:
        videos, frames = form.shape
        return [pils[v * frames : (v + 1) * frames] for v in range(videos)]
    return pils


def quantize_output(
    output: Any,
    n_colors: int = 256,
    *,
    shared: bool = True,
    palette: Any = None,
    dither: Dither = "none",
    dither_strength: float = 1.0,
    color_space: ColorSpace = DEFAULT_COLOR_SPACE,
    seed: int = 0,
    speed: int = DEFAULT_SPEED,
    palette_images: bool = False,
) -> Any:
    """A pipeline's images quantized, returned in the form they came in.

    Args:
        output: what a diffusers pipeline returns or one of its fields:

            - a pipeline output with ``.images`` or ``.frames`` (returned as the same class
              with that field quantized, the other fields as they were);
            - a list of PIL images (``output_type="pil"``): a list of PIL images of the same
              modes (``"P"`` palette images with ``palette_images``);
            - a ``(B, H, W, 3)`` float array in [0, 1] (``output_type="np"``) or uint8: the
              same shape and dtype;
            - a ``(B, 3, H, W)`` tensor (``output_type="pt"``), float16, bfloat16, float32,
              float64 or uint8, on any device: the same shape, dtype and device;
            - video frames: a list of lists of PIL images, a ``(B, T, H, W, 3)`` array or a
              ``(B, T, 3, H, W)`` tensor, each the same way.

            Four channels (RGBA) are kept (:mod:`colorquant.alpha`).
        n_colors: palette size K, 1..256 (ignored with ``palette``).
        shared: one palette for every image and frame (no flicker over a video, one index
            space over a batch); else a palette per image (per frame).
        palette: ``(K, 3)`` colors in 0..255 to map to instead of fitting.
        dither, dither_strength, color_space, seed, speed: as for
            :func:`colorquant.quantize_batch`.
        palette_images: PIL outputs as ``"P"`` images (their ``save`` writes palette PNGs).

    Returns:
        The quantized images in the form of ``output``.

    Raises:
        InputError: an unsupported form (the message says what came) or a bad option.
    """
    for field in ("images", "frames"):
        value = getattr(output, field, None) if not isinstance(output, (list, tuple)) else None
        if value is not None and not callable(value):
            done = quantize_output(
                value,
                n_colors,
                shared=shared,
                palette=palette,
                dither=dither,
                dither_strength=dither_strength,
                color_space=color_space,
                seed=seed,
                speed=speed,
                palette_images=palette_images,
            )
            if dataclasses.is_dataclass(output) and not isinstance(output, type):
                return dataclasses.replace(output, **{field: done})
            raise InputError(f"output: cannot rebuild a {type(output).__name__} with new {field}")
    batch, form = _to_batch(output)
    check_int_range("n_colors", n_colors, 1, 256)
    result = quantize_batch(
        batch,
        n_colors,
        shared=shared and palette is None,
        palette=palette,
        dither=dither,
        dither_strength=dither_strength,
        color_space=color_space,
        seed=seed,
        speed=speed,
    )
    return _from_batch(result, form, palette_images)
