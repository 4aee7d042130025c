"""atheris target: ``colorquant.load_animation`` (of bytes) and ``is_animated`` on any bytes:
GIF, APNG, WebP and the ``.npz`` of ``save_animation`` (see fuzz/README.md)."""

from __future__ import annotations

import atheris
from _harness import run

with atheris.instrument_imports(include=["colorquant"]):
    from colorquant.animation import is_animated, load_animation_bytes


def target(data: bytes) -> None:
    is_animated(data)  # never raises
    load_animation_bytes(data, "fuzz")


if __name__ == "__main__":
    run(target)
