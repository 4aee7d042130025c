"""colorquant: PyTorch-native color quantization.

Reduces an image to K colors by weighted K-means on its color histogram, in the hybrid default
space (RGB and DIN99b together), RGB, CIELAB, OKLab or DIN99b; writes real palette images (PNG,
GIF, APNG). One image (:func:`quantize`), a palette fitted once and applied to many
(:class:`Quantizer`), a batch of tensors on any device (:func:`quantize_batch`); the fit's
settings in one :class:`FitOptions`. ``colorquant.nn`` (a palette layer) and
``colorquant.transforms`` load torch on first use; ``colorquant.threads`` sets the compiled
core's threads.

Example:
    >>> import colorquant as cq
    >>> import numpy as np
    >>> res = cq.quantize(np.zeros((8, 8, 3), np.uint8), n_colors=4)
    >>> res.n_colors, res.psnr
    (1, inf)
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import TYPE_CHECKING

# The CPU hot loops run in NumPy between torch operations; torch's OpenMP workers, left
# spinning after each parallel torch op, then take the cores NumPy needs (measured: 2.5x slower
# with 2 threads). Sleeping workers cost torch nothing measurable here. Only a default: an
# explicit OMP_WAIT_POLICY wins, and it has no effect if torch was imported first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# The command's NumPy work needs no BLAS threads: its matrix products are (N, 3) @ (3, 3) color
# transforms and weighted sums, and its hot loops have their own threads (colorquant.threads).
# NumPy's OpenBLAS would start one thread per core at import and leave them spinning after each
# product, competing with those loops: measured on 2 cores, 50 ms of CPU at import and a third
# of the CPU time of each 512x512 image (BENCHMARKS.md, "Start-up and per-call cost"). Only in
# the process of the colorquant command (its script, python -m colorquant, python -m
# colorquant.cli), which is its own; only a default (an explicit OPENBLAS_NUM_THREADS wins); no
# effect if NumPy was imported first.
os.environ.update(
    {"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    if os.path.basename(sys.argv[0] if sys.argv else "") in ("colorquant", "colorquant.exe")
    or any(
        a == "-m" and b in ("colorquant", "colorquant.cli")
        for a, b in itertools.pairwise(getattr(sys, "orig_argv", ()))
    )
    else {}
)

from . import threads
from ._checks import InputError
from .color import COLOR_SPACES, DEFAULT_COLOR_SPACE, ColorSpace
from .io import LoadedImage, load_image, load_palette, save_result
from .kmeans import KMeansResult, fit_adam, weighted_kmeans
from .metrics import ciede2000, mean_delta_e, mse, psnr
from .options import FitOptions
from .quantize import (
    DEFAULT_SPEED,
    BatchResult,
    QualityTooLowError,
    Quantizer,
    QuantizeResult,
    quality_of,
    quantize,
    quantize_batch,
)

__all__ = [
    "COLOR_SPACES",
    "DEFAULT_COLOR_SPACE",
    "DEFAULT_SPEED",
    "Animation",
    "BatchResult",
    "ColorSpace",
    "FitOptions",
    "InputError",
    "KMeansResult",
    "LoadedImage",
    "QualityTooLowError",
    "QuantizeResult",
    "Quantizer",
    "__version__",
    "ciede2000",
    "fit_adam",
    "load_animation",
    "load_image",
    "load_palette",
    "mean_delta_e",
    "mse",
    "psnr",
    "quality_of",
    "quantize",
    "quantize_animation",
    "quantize_batch",
    "save_animation",
    "save_result",
    "threads",
    "weighted_kmeans",
]

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .animation import Animation, load_animation, quantize_animation, save_animation

_LAZY_MODULES = ("nn", "transforms")
"""Submodules reached as ``colorquant.nn`` on first use: ``nn`` imports torch, which ``import
colorquant`` never does."""

_ANIMATION_NAMES = ("Animation", "load_animation", "quantize_animation", "save_animation")
"""Names of :mod:`colorquant.animation`, imported on first use: a still image never needs it
(nor :mod:`colorquant.io.animation`), and every command's start-up pays for what it imports."""


def __getattr__(name: str) -> object:
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in _ANIMATION_NAMES:
        from . import animation

        return getattr(animation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names (``__all__`` and the submodules loaded on first use), for ``dir()`` and
    completion."""
    return sorted([*__all__, *_LAZY_MODULES])
