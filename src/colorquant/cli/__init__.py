"""The ``colorquant`` command: quantize images, quantize datasets, plot MSE against K, plot the
color cloud.

The commands live in their own modules (:mod:`~colorquant.cli.quantize`,
:mod:`~colorquant.cli.dataset`, :mod:`~colorquant.cli.figures`), their shared options in
:mod:`~colorquant.cli.options`, and what they print and how they end in
:mod:`~colorquant.cli.report`: a malformed option is one line and exit status 2, any other
expected failure one line and exit status 1, never a traceback. With several inputs, a failing
one is reported and the others are still processed. Outputs are written atomically, so a
failure never leaves a partial file. Anything else that escapes is a bug and shows its
traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
import warnings

import click
from PIL import Image, ImageFile

from .. import __version__
from .options import CONTEXT
from .quantize import quantize
from .report import PROG, OneLineErrors

__all__ = ["main"]

_LAZY_COMMANDS = {"dataset": "dataset", "elbow": "figures", "plot": "figures"}
"""The commands imported when run (or listed by ``--help``), by the module of
:mod:`colorquant.cli` that defines each: ``colorquant quantize``'s start-up never pays for them."""


class _Commands(OneLineErrors):
    """The command group: ``quantize`` imported with it, the others (:data:`_LAZY_COMMANDS`)
    only when named or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _LAZY_COMMANDS:
            module = importlib.import_module(f".{_LAZY_COMMANDS[cmd_name]}", __name__)
            self.add_command(getattr(module, cmd_name))
        return super().get_command(ctx, cmd_name)


def _configure_logging(verbose: int) -> None:
    logger = logging.getLogger("colorquant")
    for handler in [h for h in logger.handlers if getattr(h, "_colorquant_cli", False)]:
        logger.removeHandler(handler)
    if verbose <= 0:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(name)s: %(message)s"))
    handler._colorquant_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)


@click.group(cls=_Commands, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name=PROG)
@click.option("-v", "--verbose", count=True, help="Log the fit on stderr (-vv: more).")
def main(verbose: int) -> None:
    """Color quantization with PyTorch: reduce images to a K-color palette.

    Run 'colorquant COMMAND --help' for each command.
    """
    # This process's decoder must fail on truncated files, never pad them.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    # For the whole process (the loaders' own filters are not thread-safe): a bad file gets
    # one line, never Pillow's notes on its metadata, and a decompression bomb is an error.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    _configure_logging(verbose)


main.add_command(quantize)
