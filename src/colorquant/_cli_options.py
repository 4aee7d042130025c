"""What the commands share (``colorquant quantize``, ``elbow``, ``plot``, ``dataset``): the
options, one definition each, so that their names, checks and help agree; the one-line usage
errors; and output that ends quietly when its reader goes away.

The contract of a malformed option, in every command: exit status 2 and exactly one line on
stderr, ``colorquant: error: --space: 'hsv' is not one of 'hybrid', ...``, naming the option by
its command-line name (click's usage block is left out: ``--help`` shows it).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import IO, Any

import click

from ._checks import DEVICES
from .color import COLOR_SPACES, DEFAULT_COLOR_SPACE
from .init import INITS
from .quantize import DEFAULT_SPEED, METHODS

PROG = "colorquant"


# -- one-line usage errors --------------------------------------------------------------------


def usage_message(error: click.UsageError) -> str:
    """One line for a usage error: ``--option: what is wrong`` when an option is to blame."""
    if isinstance(error, click.BadParameter) and not isinstance(error, click.MissingParameter):
        param = error.param
        if error.param_hint is not None:
            hint = error.param_hint
            name = hint if isinstance(hint, str) else "/".join(hint)
        elif isinstance(param, click.Option):
            name = "/".join(param.opts)
        elif param is not None:
            name = param.human_readable_name
        else:
            name = ""
        text = f"{name}: {error.message}" if name else error.message
    else:
        text = error.format_message()
    return " ".join(text.split()).rstrip(".")


class UsageLine(click.UsageError):
    """A usage error shown as one line ``colorquant: error: <message>``; exit status 2."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"{PROG}: error: {self.format_message()}", file=file, err=file is None)


def one_line(error: click.UsageError) -> click.UsageError:
    """``error`` as a :class:`UsageLine` (a bare ``colorquant``, which shows help, stays as is)."""
    if isinstance(error, (UsageLine, click.exceptions.NoArgsIsHelpError)):
        return error
    return UsageLine(usage_message(error), error.ctx)


class OneLineErrors(click.Group):
    """A group whose usage errors, its own and its commands', are one line each."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            raise one_line(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise one_line(error) from None


# -- output that a closed pipe ends quietly ----------------------------------------------------

_STDOUT = {"closed": False}


def echo(line: str, *, err: bool = False) -> None:
    """Print one line; once standard output's reader has gone (``colorquant ... | head -1``),
    drop what would go there and carry on (figures and files are still written), quietly."""
    if not err and _STDOUT["closed"]:
        return
    try:
        click.echo(line, err=err)
    except BrokenPipeError:
        if not err:
            stdout_closed()


def stdout_closed() -> None:
    """Standard output's reader has gone: point it at /dev/null, so that nothing more (nor the
    flush at exit) fails on it (the recipe of Python's documentation, signal module)."""
    _STDOUT["closed"] = True
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


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
dither_strength_option = click.option(
    "--dither-strength",
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="How much of the dither, 0..1.",
)
