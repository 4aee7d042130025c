"""What the atheris targets share: instrumentation, Pillow's pixel limit, the one allowed error."""

from __future__ import annotations

import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["PIL", "colorquant"]):
    from PIL import Image

    from colorquant.io import ImageFileError

# Each input should take milliseconds: sizes past 2^22 pixels meet the decompression-bomb refusal
# (what matters is that they are refused, not at which size).
Image.MAX_IMAGE_PIXELS = 1 << 22


def run(target: Callable[[bytes], object]) -> None:
    """Fuzz ``target``: only :class:`ImageFileError` may come out of it, anything else is a
    finding (atheris then writes the input as ``crash-<sha1>`` and stops)."""

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except ImageFileError as err:
            if "\n" in str(err):
                raise AssertionError(f"a message of several lines: {err!r}") from None

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
