"""The fit setup of ``colorquant quantize``: how every input's pixels become a result.

:func:`setup_fit` checks what the flags need of the machine (extras, the device), then makes
the one :class:`Fitter` of the run: a given palette (``--palette``), one palette fitted on all
inputs (``--shared-palette``), or a palette fitted per image, with the settings of a
:class:`colorquant.FitOptions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._checks import InputError, resolve_device
from ..alpha import binary_alpha
from ..io import MAX_COLORS_BY_SUFFIX, is_animated, load_image, load_palette
from ..options import FitOptions
from ..quantize import Dither, Quantizer, QuantizeResult
from ..quantize import quantize as quantize_image
from .options import not_a_folder
from .report import needs_extra, progress

if TYPE_CHECKING:
    from .quantize import QuantizeOptions

__all__ = ["Fitter", "fit_settings", "pixels_for", "setup_fit"]


@dataclass(frozen=True)
class Fitter:
    """How the command turns pixels into results, set up once for every input.

    Attributes:
        image: ``(H, W, 3|4)`` uint8 pixels -> the image's result.
        frames: an animation's frames -> one result per frame.
    """

    image: Callable[[np.ndarray], QuantizeResult]
    frames: Callable[[list[np.ndarray]], list[QuantizeResult]]


def pixels_for(pixels: np.ndarray, fmt: str) -> np.ndarray:
    """The pixels to quantize for output format ``fmt``: a GIF has one transparent color and no
    translucency, so its alpha is cut at 128 first (:func:`colorquant.alpha.binary_alpha`)."""
    return binary_alpha(pixels) if fmt == "gif" and pixels.shape[2] == 4 else pixels


# -- fit setup --------------------------------------------------------------------------------


def _check_environment(options: QuantizeOptions) -> str:
    """What the flags need of this machine (extras, the device); the device to run on."""
    if options.preview is not None:
        needs_extra("--preview", "matplotlib")
    if options.method == "adam" and options.palette_file is None:
        needs_extra("--method adam", "torch")
    run_device = resolve_device(options.device)
    if options.optimize:
        import importlib.util

        if importlib.util.find_spec("oxipng") is None:
            raise InputError(
                "--optimize needs the optional pyoxipng package: pip install 'colorquant[optimize]'"
            )
    return run_device


def fit_settings(options: QuantizeOptions) -> FitOptions:
    """The fit's settings the flags give (checked flags: the checks cannot fail here)."""
    fixed = options.fixed_colors
    return FitOptions(
        color_space=options.color_space,
        method=options.method,
        init=options.init,
        speed=options.speed,
        seed=options.seed,
        fixed_colors=() if fixed is None else tuple((r, g, b) for r, g, b in fixed.tolist()),
        posterize=options.posterize,
        keep_transparent_rgb=options.keep_transparent_rgb,
    )


def _library_options(fit: FitOptions, device: str) -> dict[str, Any]:
    """``fit`` as the keyword arguments of :func:`colorquant.quantize` and :class:`Quantizer`."""
    return {
        "color_space": fit.color_space,
        "method": fit.method,
        "init": fit.init,
        "speed": fit.speed,
        "seed": fit.seed,
        "device": device,
        "fixed_colors": fit.fixed if fit.fixed_colors else None,
        "posterize": fit.posterize,
        "keep_transparent_rgb": fit.keep_transparent_rgb,
    }


def _apply_with(quantizer: Quantizer, options: QuantizeOptions) -> Fitter:
    """Every image and frame mapped to ``quantizer``'s palette (given or shared)."""
    dither, strength = options.dither or "none", options.strength

    def image(pixels: np.ndarray) -> QuantizeResult:
        return quantizer.apply(pixels, dither=dither, dither_strength=strength)

    def frames(all_frames: list[np.ndarray]) -> list[QuantizeResult]:
        return [image(frame) for frame in all_frames]

    return Fitter(image, frames)


def _given_palette(options: QuantizeOptions, palette_file: Path, device: str) -> Fitter:
    palette = load_palette(palette_file)
    limit = MAX_COLORS_BY_SUFFIX[options.suffix]
    if palette.shape[0] > limit:
        raise InputError(
            f"{palette_file}: {palette.shape[0]} colors, {options.suffix} output holds at most "
            f"{limit}"
        )
    given = Quantizer.from_palette(
        palette,
        color_space=options.color_space,
        device=device,
        keep_transparent_rgb=options.keep_transparent_rgb,
    )
    return _apply_with(given, options)


def _shared_palette(options: QuantizeOptions, library: dict[str, Any]) -> Fitter:
    """One palette for all: every input's colors merged (bounded memory), then fitted."""
    shared = Quantizer(options.k, **library)
    for source in progress(options.inputs, "image (palette)"):
        not_a_folder(source)
        if is_animated(source):
            from ..io.animation import load_animation

            for frame in load_animation(source).frames:
                shared.partial_fit(pixels_for(frame, options.output_format))
        else:
            shared.partial_fit(pixels_for(load_image(source).pixels, options.output_format))
    _ = shared.palette  # fitted here, once, before the files are mapped in threads
    return _apply_with(shared, options)


def _fit_each(options: QuantizeOptions, library: dict[str, Any]) -> Fitter:
    """A palette fitted per image (and per animation: one for all its frames, or per frame)."""
    k, quality = options.k, options.quality
    dither: Dither = options.dither or "none"
    strength = options.strength

    def image(pixels: np.ndarray) -> QuantizeResult:
        return quantize_image(
            pixels,
            k,
            dither=dither,
            dither_strength=strength,
            quality=quality,
            keep_hues=options.keep_hues,
            **library,
        )

    def frames(all_frames: list[np.ndarray]) -> list[QuantizeResult]:
        from ..animation import quantize_animation  # only animations need it

        k_frames = k
        if quality is not None:
            # The frames stacked have the frames' merged histogram: the fewest colors that
            # reach the target for all of them together.
            k_frames = quantize_image(
                np.concatenate(all_frames), k, quality=quality, **library
            ).n_colors
        return quantize_animation(
            all_frames,
            k_frames,
            shared=not options.per_frame_palette,
            dither=dither,
            dither_strength=strength,
            **library,
        )

    return Fitter(image, frames)


def setup_fit(options: QuantizeOptions) -> tuple[Fitter, str]:
    """Everything before the first image: the machine's extras and device, the palette file
    or the shared palette, the output folder. The fitter and the device it runs on.

    Raises:
        Exception: one of :func:`colorquant.cli.report.expected_errors` (exit 1).
    """
    run_device = _check_environment(options)
    fitter: Fitter
    if options.palette_file is not None:
        fitter = _given_palette(options, options.palette_file, run_device)
    else:
        library = _library_options(fit_settings(options), run_device)
        if options.shared_palette:
            fitter = _shared_palette(options, library)
        else:
            fitter = _fit_each(options, library)
    outdir = options.outdir
    if outdir is not None:
        if outdir.exists() and not outdir.is_dir():
            raise InputError(f"{outdir}: -d/--outdir is not a directory")
        outdir.mkdir(parents=True, exist_ok=True)
    return fitter, run_device
