"""Command-line options that several commands share (``colorquant quantize``, ``elbow``,
``plot``, ``dataset``): one definition each, so that their names, checks and help agree."""

from __future__ import annotations

from pathlib import Path

import click

from ._checks import DEVICES
from .color import COLOR_SPACES, DEFAULT_COLOR_SPACE
from .init import INITS
from .quantize import DEFAULT_SPEED, METHODS

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
dither_strength_option = click.option(
    "--dither-strength",
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="How much of the dither, 0..1.",
)
