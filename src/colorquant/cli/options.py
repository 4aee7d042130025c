"""What the commands share (``colorquant quantize``, ``elbow``, ``plot``, ``dataset``): the
options, one definition each, so that their names, checks and help agree, and the checks of
option values and paths that more than one command makes.

A value an option cannot take is a usage error: one line naming the option, exit status 2
(:mod:`colorquant.cli.report`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

from .._checks import DEVICES, InputError
from ..color import COLOR_SPACES, DEFAULT_COLOR_SPACE
from ..init import INITS
from ..io import MAX_COLORS_BY_SUFFIX, parse_hex_colors
from ..quantize import DEFAULT_SPEED, MAX_COLORS, METHODS
from .report import STDIO, message

__all__ = [
    "CONTEXT",
    "MSE_HELP",
    "Quality",
    "check_colors",
    "check_device",
    "check_ext",
    "check_fixed_colors",
    "check_strength",
    "device_option",
    "dither_strength_option",
    "figure_option",
    "fit_options",
    "force_option",
    "init_option",
    "method_option",
    "not_a_folder",
    "parse_fixed_colors",
    "refuse_input",
    "seed_option",
    "space_option",
    "speed_option",
]

CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
MSE_HELP = (
    "MSE is the mean, over all pixels and the 3 channels, of the squared difference of the "
    "8-bit sRGB values (0..255); PSNR = 10 log10(255^2 / MSE) dB; dE00 is the mean CIEDE2000 "
    "color difference over pixels."
)


# -- options ----------------------------------------------------------------------------------

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A device name as ``--device`` takes it (that the machine has it is checked later)."""
    if _DEVICE.fullmatch(value) is None:
        raise click.BadParameter(
            f"{value!r} is not one of {', '.join(DEVICES)} (cuda:N for a GPU by index)"
        )
    return value


space_option = click.option(
    "--space",
    "color_space",
    type=click.Choice(COLOR_SPACES),
    default=DEFAULT_COLOR_SPACE,
    show_default=True,
    help="Color space the distances are measured in: hybrid (RGB + DIN99b, beats libimagequant "
    "on PSNR and CIEDE2000), rgb (best PSNR), din99 (best CIEDE2000), lab, oklab.",
)
method_option = click.option(
    "--method",
    type=click.Choice(METHODS),
    default="kmeans",
    show_default=True,
    help="Palette fit: Lloyd's k-means, or gradient descent (Adam) on the same objective.",
)
init_option = click.option(
    "--init",
    type=click.Choice(INITS),
    default="k-means++",
    show_default=True,
    help="Seeding of the fit: greedy k-means++, or colors drawn at random by pixel count.",
)
seed_option = click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed."
)
speed_option = click.option(
    "--speed",
    type=click.IntRange(1, 10),
    default=DEFAULT_SPEED,
    show_default=True,
    help="1 (slowest, best) .. 10 (fastest).",
)
device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    callback=check_device,
    help=f"One of {', '.join(DEVICES)} (auto: cuda, then mps, then cpu).",
)
force_option = click.option("--force", is_flag=True, help="Overwrite existing output files.")
figure_option = click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Figure file (.png, .pdf, .svg).",
)


def check_strength(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """``--dither-strength``: a number in 0..1 (click's range lets ``nan`` through)."""
    if value is not None and math.isnan(value):
        raise click.BadParameter("nan is not a number in 0..1", ctx, param)
    return value


dither_strength_option = click.option(
    "--dither-strength",
    type=click.FloatRange(0.0, 1.0),
    callback=check_strength,
    default=1.0,
    show_default=True,
    help="How much of the dither, 0..1.",
)


def fit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The fit options elbow and plot share: space, method, init, seed, speed, device."""
    options = (device_option, speed_option, seed_option, init_option, method_option)
    for option in (*options, space_option):
        command = option(command)
    return command


# -- values of options ------------------------------------------------------------------------


class Quality(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 on
    """``--quality MIN-MAX`` as pngquant reads it: ``"60-80"`` -> (60, 80); ``"-80"`` -> (0, 80);
    ``"60-"`` -> (60, 100); ``"80"`` alone -> (72, 80) (its minimum is 9/10 of it, rounded
    down)."""

    name = "MIN-MAX"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        low, sep, high = text.partition("-")
        try:
            if sep:
                values = (float(low or 0), float(high or 100))
            else:
                values = (math.floor(float(low) * 9 / 10), float(low))
        except (ValueError, OverflowError):
            self.fail(f"{text!r} is not MIN-MAX or MAX, numbers in 0..100", param, ctx)
        if not all(math.isfinite(v) for v in values) or not 0 <= values[0] <= values[1] <= 100:
            self.fail(f"{text!r}: MIN-MAX must have 0 <= MIN <= MAX <= 100", param, ctx)
        return values


def parse_fixed_colors(ctx: click.Context, param: click.Parameter, text: str | None) -> Any:
    """``--fixed-colors`` parsed to ``(F, 3)`` uint8 colors, or a usage error."""
    if text is None:
        return None
    try:
        return parse_hex_colors(text, "--fixed-colors")
    except InputError as error:
        raise click.UsageError(message(error)) from None


def check_ext(ctx: click.Context, param: click.Parameter, text: str) -> str:
    """``--ext``: the ending of an output named after its input, with a known suffix."""
    suffix = Path(f"x{text}").suffix.lower()
    if os.sep in text or "/" in text or suffix not in MAX_COLORS_BY_SUFFIX:
        raise click.UsageError(
            f"--ext: {text!r} is not a file-name ending in {', '.join(MAX_COLORS_BY_SUFFIX)} "
            "(such as -cq.png)"
        )
    return text


def check_colors(n_colors: int, limit: int, where: str) -> None:
    """``-k/--colors`` in 1..``limit`` for ``where`` (an output format, or a figure)."""
    if not 1 <= n_colors <= limit:
        hint = f" (up to {MAX_COLORS} for .npz)" if limit < MAX_COLORS else ""
        raise click.UsageError(
            f"-k/--colors: must be in 1..{limit} for {where}{hint}, got {n_colors}"
        )


def check_fixed_colors(colors: np.ndarray, n_colors: int, method: str) -> None:
    """``--fixed-colors`` against -k and --method (the library would name its arguments)."""
    if colors.shape[0] > n_colors:
        raise click.UsageError(
            f"--fixed-colors: {colors.shape[0]} colors, more than -k/--colors ({n_colors})"
        )
    if len({tuple(c) for c in colors.tolist()}) < colors.shape[0]:
        raise click.UsageError("--fixed-colors: a color is given twice")
    if method != "kmeans":
        raise click.UsageError(f"--fixed-colors: works with --method kmeans, not {method}")


# -- paths ------------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (resolved, or the same inode when both exist)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def refuse_input(output: Path, inputs: Sequence[Path]) -> None:
    """An output that is one of the inputs is refused, even with ``--force``."""
    for source in inputs:
        if _same_file(output, source):
            raise InputError(
                f"{output}: is the input {source}; an input is never overwritten, even with --force"
            )


def not_a_folder(source: Path) -> None:
    """A folder is no image: say which command takes one."""
    if source != STDIO and source.is_dir():
        raise InputError(
            f"{source}: is a directory; to quantize a folder (recursively, resumably) use "
            f"colorquant dataset {source} OUTDIR"
        )
