"""ColorQuant nodes for ComfyUI: palette quantization, locked palettes and real palette PNGs.

ComfyUI loads this folder from ``custom_nodes/`` (a copy or a link) and reads the two mappings
below (the classic node API). The nodes are thin adapters over the ``colorquant`` library,
which must be installed in ComfyUI's Python: ``pip install 'colorquant[torch]'`` (ComfyUI
has torch already; the extra names it for pip).
"""

from __future__ import annotations

try:
    import colorquant  # noqa: F401  (checked here so that the error says what to install)
except ImportError as err:  # pragma: no cover - exercised only in a ComfyUI without colorquant
    raise ImportError(
        "the ColorQuant nodes need the colorquant package in ComfyUI's Python environment: "
        "pip install 'colorquant[torch]'"
    ) from err

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
