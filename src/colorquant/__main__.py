"""``python -m colorquant``: the ``colorquant`` command, for environments without its script."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main(prog_name="colorquant")
