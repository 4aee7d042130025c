"""``colorquant elbow`` and ``colorquant plot``: figures to choose K and to see the colors.

matplotlib is imported only when a figure is drawn (:mod:`colorquant.viz`); without it, each
command says in one line which extra to install.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

from .._checks import resolve_device
from ..color import ColorSpace
from ..histogram import color_histogram
from ..init import InitMethod
from ..io import check_output_path, load_image
from ..options import FitOptions
from ..quantize import MAX_COLORS, Method
from ..quantize import quantize as quantize_image
from ..viz import cloud_figure, elbow_figure, figure_suffix, save_figure
from .options import (
    CONTEXT,
    MSE_HELP,
    check_colors,
    figure_option,
    fit_options,
    force_option,
    refuse_input,
)
from .report import (
    echo,
    fatal_errors,
    json_number,
    named_option,
    needs_extra,
    progress,
    warn,
)

__all__ = ["ELBOW_TITLE", "PLOT_COLORS", "elbow", "plot"]

PLOT_COLORS = 16
"""``colorquant plot``'s K: the palette centers drawn among the colors (256 would hide them)."""


def _figure_source(
    command: str, source: Path, output: Path, device: str, force: bool
) -> tuple[np.ndarray, str]:
    """What a figure command does before its work: the extra it needs, the device, ``output``
    checked (no input, no existing file without --force), ``source`` decoded. Its ``(H, W, 3)``
    uint8 colors (alpha dropped, with a warning) and the device."""
    needs_extra(f"colorquant {command}", "matplotlib")
    run_device = resolve_device(device)
    refuse_input(output, [source])
    check_output_path(output, force=force)
    loaded = load_image(source)
    if loaded.has_alpha:
        warn(f"{source}: alpha channel ignored (this figure shows colors)")
    return loaded.pixels[..., :3], run_device


# -- elbow ------------------------------------------------------------------------------------


ELBOW_TITLE = "error of the undithered mapping against palette size K"


def _elbow_ks(max_k: int) -> list[int]:
    """2, 4, 8, ... up to ``max_k``, and ``max_k`` itself."""
    ks = [1 << e for e in range(1, max_k.bit_length()) if 1 << e <= max_k]
    return ks if ks[-1] == max_k else [*ks, max_k]


@click.command(context_settings=CONTEXT, epilog=MSE_HELP)
@click.argument("source", metavar="IN", type=click.Path(path_type=Path))
@click.option(
    "--max-k",
    type=click.IntRange(2, MAX_COLORS),
    default=64,
    show_default=True,
    help="Largest K; K = 2, 4, 8, ... up to it.",
)
@figure_option
@fit_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per K on stdout.")
@force_option
def elbow(
    source: Path,
    max_k: int,
    output: Path,
    color_space: ColorSpace,
    method: Method,
    init: InitMethod,
    seed: int,
    speed: int,
    device: str,
    as_json: bool,
    force: bool,
) -> None:
    """Plot MSE (and PSNR) against K for image IN, to choose K.

    Quantizes IN with K = 2, 4, 8, ... up to --max-k and measures the undithered mapping (each
    pixel its nearest palette color; a dither, as colorquant quantize's default, adds error on
    purpose and would hide the fit's). Prints one line per K (K, colors used, MSE, PSNR, dE00,
    seconds; or JSON with --json, "dither": "none") and writes the figure to -o.
    """
    with named_option("-o/--output"):
        figure_suffix(output)
    with fatal_errors():
        pixels, run_device = _figure_source("elbow", source, output, device, force)
        fit = FitOptions(color_space=color_space, method=method, init=init, speed=speed, seed=seed)
        ks = _elbow_ks(max_k)
        if not as_json:
            echo(f"{source}: {ELBOW_TITLE}")
        mses: list[float] = []
        for k in progress(ks, "K"):
            start = time.perf_counter()
            result = quantize_image(pixels, k, options=fit, device=run_device)
            seconds = time.perf_counter() - start
            mses.append(result.mse)
            record = {
                "input": str(source),
                "k": k,
                "dither": "none",
                "n_colors": result.n_colors,
                "mse": result.mse,
                "psnr": json_number(result.psnr),
                "delta_e": result.delta_e,
                "seconds": round(seconds, 6),
                "n_iter": result.n_iter,
                "converged": result.converged,
            }
            line = (
                f"K={k:<5d} {result.n_colors:>5d} colors  MSE {result.mse:9.2f}  "
                f"PSNR {result.psnr:6.2f} dB  dE00 {result.delta_e:6.2f}  {seconds:.2f} s"
            )
            echo(json.dumps(record) if as_json else line)
        figure = elbow_figure(ks, mses)
        figure.axes[0].set_title(ELBOW_TITLE)
        save_figure(figure, output, force=force)
    if not as_json:
        echo(f"wrote {output}")


# -- plot -------------------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@click.argument("source", metavar="IN", type=click.Path(path_type=Path))
@click.option(
    "-k",
    "--colors",
    "n_colors",
    type=int,
    default=PLOT_COLORS,
    show_default=True,
    metavar="K",
    help=f"Palette size, 1..{MAX_COLORS} (the centers drawn).",
)
@figure_option
@fit_options
@click.option(
    "--points",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Most colors drawn (sampled by pixel count).",
)
@force_option
def plot(
    source: Path,
    n_colors: int,
    output: Path,
    color_space: ColorSpace,
    method: Method,
    init: InitMethod,
    seed: int,
    speed: int,
    device: str,
    points: int,
    force: bool,
) -> None:
    """Plot the colors of image IN as a 3-D cloud with the K palette centers.

    Coordinates are those of --space (R, G, B; or a, b, L with lightness vertical); each color
    is drawn in itself, palette centers as large black-edged markers.
    """
    check_colors(n_colors, MAX_COLORS, "plot")
    with named_option("-o/--output"):
        figure_suffix(output)
    with fatal_errors():
        pixels, run_device = _figure_source("plot", source, output, device, force)
        fit = FitOptions(color_space=color_space, method=method, init=init, speed=speed, seed=seed)
        result = quantize_image(pixels, n_colors, options=fit, device=run_device)
        hist = color_histogram(np.ascontiguousarray(pixels).reshape(-1, 3))
        colors, counts = np.asarray(hist.colors), np.asarray(hist.counts)
        cloud_figure(
            colors,
            counts,
            result.palette,
            color_space,
            max_points=points,
            seed=seed,
            path=output,
            force=force,
        )
    echo(
        f"wrote {output}: {min(points, len(colors)):,} of {len(colors):,} colors, "
        f"{result.n_colors} palette centers ({color_space})"
    )
