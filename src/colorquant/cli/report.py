"""What every command says and how it ends: one-line errors, exit statuses, JSON records.

The contract, in every command (``quantize``, ``elbow``, ``plot``, ``dataset``):

- a malformed option (an unknown name, a bad choice, a K the output format cannot hold, a
  malformed ``--quality``, ...) is one line ``colorquant: error: --option: what is wrong`` on
  stderr with exit status 2 (:data:`EXIT_USAGE`), naming the option by its command-line name
  (click's usage block is left out: ``--help`` shows it);
- every other expected failure (a missing or broken input, an output that exists, a bad
  palette file, ...) is one line ``colorquant: error: <message>`` with exit status 1
  (:data:`EXIT_FAILED`) and no traceback; ``quantize`` also ends with 99 (:data:`EXIT_QUALITY`)
  and 98 (:data:`EXIT_SKIPPED`), ``dataset`` with 130 when interrupted;
- standard output whose reader goes away (``| head -1``) ends quietly.

Anything else that escapes is a bug and shows its traceback. This is the only module of the
command that prints.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click
from PIL import Image

from .._checks import InputError
from .._extras import has as has_module
from .._extras import missing_extra
from ..io import ImageFileError

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_QUALITY",
    "EXIT_SKIPPED",
    "EXIT_USAGE",
    "PROG",
    "STDIO",
    "OneLineErrors",
    "UsageLine",
    "echo",
    "error",
    "expected_errors",
    "fail",
    "fatal_errors",
    "json_number",
    "message",
    "named_option",
    "needs_extra",
    "one_line",
    "plain_message",
    "progress",
    "shown",
    "status_record",
    "stdout_closed",
    "usage_message",
    "warn",
]

PROG = "colorquant"
STDIO = Path("-")
"""``-`` as IN reads the image from standard input; as ``-o`` writes it to standard output."""

EXIT_FAILED = 1
"""An input or the environment failed (one line said why)."""
EXIT_USAGE = 2
"""A malformed option or a contradiction between options (click's own status for them)."""
EXIT_SKIPPED = 98
"""``quantize --skip-if-larger`` skipped an input (pngquant's status)."""
EXIT_QUALITY = 99
"""``quantize --quality``: an input stayed below the minimum (pngquant's status)."""
EXIT_INTERRUPTED = 130
"""``dataset`` interrupted (Ctrl-C); rerunning the same command resumes it."""

# Failures of the input or the environment, reported in one line. Anything else is a bug.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    InputError,
    OSError,
    ValueError,
    Image.DecompressionBombError,
    MemoryError,
)


class _OutOfMemory(Exception):
    """Stands for ``torch.cuda.OutOfMemoryError`` until torch is imported (the file path never)."""


def _torch_oom() -> type[BaseException]:
    torch = sys.modules.get("torch")
    return torch.cuda.OutOfMemoryError if torch is not None else _OutOfMemory


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a command reports in one line (a GPU's out-of-memory once torch is in)."""
    return (*EXPECTED_ERRORS, _torch_oom())


# -- one-line usage errors (exit status 2) ----------------------------------------------------


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


@contextmanager
def named_option(name: str) -> Iterator[None]:
    """An InputError from checking option ``name`` (``-o/--output``) is a usage error naming it."""
    try:
        yield
    except InputError as error:
        raise click.UsageError(f"{name}: {message(error)}") from None


# -- output that a closed pipe ends quietly ----------------------------------------------------

_STDOUT = {"closed": False}


def _plain_echo(line: str, *, err: bool = False) -> None:
    if not err and _STDOUT["closed"]:
        return
    try:
        click.echo(line, err=err)
    except BrokenPipeError:
        if not err:
            stdout_closed()


def echo(line: str, *, err: bool = False) -> None:
    """Print one line, clearing and redrawing any progress bar around it; once standard output's
    reader has gone (``colorquant ... | head -1``), drop what would go there and carry on
    (figures and files are still written), quietly."""
    stream = sys.stderr if err else sys.stdout
    tqdm_module = sys.modules.get("tqdm")  # imported only when a bar was shown
    if tqdm_module is None:
        _plain_echo(line, err=err)
        return
    with tqdm_module.tqdm.external_write_mode(file=stream):
        _plain_echo(line, err=err)


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


def progress(items: Sequence[Any], unit: str) -> Any:
    """A tqdm bar on stderr for more than one item; tqdm turns it off when stderr is no TTY."""
    if len(items) <= 1:
        return items  # one file, as scripts call it: no bar, and no import of tqdm (25 ms)
    from tqdm import tqdm

    return tqdm(items, unit=unit, file=sys.stderr, disable=None)


# -- one-line errors (exit status 1) ----------------------------------------------------------

# Library messages name the Python API's arguments; the command names its options.
_CLI_NAMES = (
    ("overwrite with force=True or --force", "overwrite with --force"),
    ("fixed_colors", "--fixed-colors"),
    ("n_colors", "-k/--colors"),
    ("dither_strength", "--dither-strength"),
    ("keep_transparent_rgb", "--keep-transparent-rgb"),
    ("keep_hues", "--keep-hues"),
    ("posterize", "--posterize"),
    ("method='kmeans'", "--method kmeans"),
    ("method='adam'", "--method adam"),
    ("device 'cuda' was asked for", "--device cuda was asked for"),
    ("device 'mps' was asked for", "--device mps was asked for"),
)


def _cli_names(text: str) -> str:
    """A library message with the API's argument names replaced by the command's options."""
    for api, cli in _CLI_NAMES:
        text = re.sub(rf"(?<![\w-]){re.escape(api)}(?!\w)", cli, text)
    return text


def plain_message(error: BaseException) -> str:
    """An error's own message on one line (its type's name when it has none)."""
    return " ".join((str(error) or type(error).__name__).split())


def message(error: BaseException) -> str:
    """One line for an expected error of ``quantize``, ``elbow`` or ``plot``: its message, the
    file named if the error has one, the library's argument names as the command's options."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.filename}: {error.strerror}"
    elif isinstance(error, (MemoryError, _torch_oom())):
        text = f"out of memory ({error})" if str(error) else "out of memory"
    else:
        text = str(error) or type(error).__name__
        if isinstance(error, FileExistsError):
            text = text.replace(*_CLI_NAMES[0])
        elif isinstance(error, InputError) and not isinstance(error, ImageFileError):
            text = _cli_names(text)  # (a file's message names paths, not arguments)
    return " ".join(text.split())  # one line, whatever the message held


def error(text: str) -> None:
    """The line ``colorquant: error: <text>`` on stderr."""
    echo(f"{PROG}: error: {text}", err=True)


def warn(text: str) -> None:
    """The line ``colorquant: warning: <text>`` on stderr."""
    echo(f"{PROG}: warning: {text}", err=True)


def fail(text: str, status: int = EXIT_FAILED) -> click.exceptions.Exit:
    """Say ``colorquant: error: <text>`` (on one line) and give the exit to raise."""
    error(" ".join(text.split()))
    return click.exceptions.Exit(status)


def needs_extra(what: str, module: str) -> None:
    """Before any work: one line naming the extra when ``what`` needs ``module`` and it is not
    installed (``--preview needs matplotlib: pip install 'colorquant[plot]'``)."""
    if not has_module(module):
        raise missing_extra(what, module)


# -- JSON records -----------------------------------------------------------------------------


def shown(source: Path) -> str:
    """An input as messages and ``--json`` records name it: ``<stdin>`` for ``-``."""
    return "<stdin>" if source == STDIO else str(source)


def json_number(x: float) -> float | None:
    """JSON has no infinity: a lossless PSNR is written as null."""
    return x if math.isfinite(x) else None


def status_record(
    source: Path, output: Path | None, status: str, reason: str, **more: Any
) -> dict[str, Any]:
    """The ``--json`` record of an input that was not written: ``status`` says what happened
    (``skipped``, ``quality-too-low``, ``error``) and ``reason`` why, in the line's words."""
    record: dict[str, Any] = {"input": shown(source)}
    if output is not None:
        record["output"] = str(output)
    return {**record, "status": status, "reason": reason, **more}


@contextmanager
def fatal_errors(json_inputs: Sequence[Path] = ()) -> Iterator[None]:
    """Turn an expected error of the set-up (before any image) into one line and exit 1; with
    ``json_inputs`` (``--json``), also an ``error`` record for each of them on stdout."""
    try:
        yield
    except expected_errors() as caught:
        error(message(caught))
        for source in json_inputs:
            import json  # only --json needs it

            echo(json.dumps(status_record(source, None, "error", message(caught))))
        raise click.exceptions.Exit(EXIT_FAILED) from None
