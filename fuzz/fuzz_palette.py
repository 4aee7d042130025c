"""atheris target: the palette-file parser ``colorquant.io.load_palette_bytes`` (GIMP ``.gpl``,
hex lists, images) on any bytes; the first byte picks the file name's suffix (see
fuzz/README.md)."""

from __future__ import annotations

import atheris
from _harness import run

with atheris.instrument_imports(include=["colorquant"]):
    from colorquant.io import load_palette_bytes

SUFFIXES = (".gpl", ".txt", ".png")


def target(data: bytes) -> None:
    suffix = SUFFIXES[data[0] % len(SUFFIXES)] if data else ".txt"
    load_palette_bytes(data[1:], f"fuzz{suffix}")


if __name__ == "__main__":
    run(target)
