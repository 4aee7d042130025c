"""``python -m colorquant.cli``: the ``colorquant`` command."""

from __future__ import annotations

from . import main

if __name__ == "__main__":
    main(prog_name="colorquant")
