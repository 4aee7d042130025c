"""atheris target: ``colorquant.io.load_image_bytes`` on any bytes (see fuzz/README.md)."""

from __future__ import annotations

import atheris
from _harness import run

with atheris.instrument_imports(include=["colorquant"]):
    from colorquant.io import load_image_bytes

if __name__ == "__main__":
    run(lambda data: load_image_bytes(data, "fuzz"))
