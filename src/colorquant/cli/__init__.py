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

import logging
import sys
import warnings

import click
from PIL import Image, ImageFile

from .. import __version__
from .dataset import dataset
from .figures import elbow, plot
from .options import CONTEXT
from .quantize import quantize
from .report import PROG, OneLineErrors

__all__ = ["main"]


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


@click.group(cls=OneLineErrors, context_settings=CONTEXT)
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
main.add_command(elbow)
main.add_command(plot)
main.add_command(dataset)
