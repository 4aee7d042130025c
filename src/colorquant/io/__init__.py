"""Files in and out: images, palettes and animations; every write atomic.

This is the only package that touches image, palette and animation files:

- :mod:`colorquant.io.image`: :func:`load_image` (any format Pillow decodes, fully decoded so
  that truncated files fail);
- :mod:`colorquant.io.palette`: :func:`load_palette` (GIMP ``.gpl``, a list of hex colors, or an
  image's distinct colors);
- :mod:`colorquant.io.result`: :func:`save_result` (palette PNG, GIF or ``.npz``);
- :mod:`colorquant.io.animation`: :func:`load_animation`, :func:`save_animation` (animated GIF,
  APNG, ``.npz``);
- :mod:`colorquant.io.atomic`: :func:`atomic_write`, through which every output (figures and
  JSON too) is written, so that no half-written file is ever left under the final name.

Every error names the file: :class:`ImageFileError` (a :class:`colorquant.InputError`) for a file
that cannot be read as an image or a palette, :class:`FileExistsError` for an output that is
already there, :class:`WriteError` (an :class:`OSError`) for an output that cannot be written.

The library's own errors, for what a file holds: whatever the bytes, the loaders
(:func:`load_image`, :func:`load_image_bytes`, :func:`load_palette`, :func:`load_palette_bytes`,
:func:`load_animation`, :func:`load_animation_bytes`) raise :class:`ImageFileError` and nothing
else, with a message of one line; Pillow's own exceptions (``struct.error``, ``EOFError``,
``IndexError``, ...) and its warnings about corrupt metadata never come out.
``tests/test_fuzz.py`` checks it on mutated files of every format, ``fuzz/`` fuzzes it with
atheris.

Pillow's global ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is never turned on here (the command-line
tool turns it off); while some other code has it on, Pillow pads truncated files silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .atomic import NotSmallerError, PathLike, WriteError, atomic_write, check_output_path
from .image import (
    ImageFileError,
    LoadedImage,
    is_animated,
    load_image,
    load_image_bytes,
    open_image,
)
from .palette import (
    MAX_IMAGE_PALETTE,
    MAX_TEXT_PALETTE,
    load_palette,
    load_palette_bytes,
    parse_hex_colors,
)
from .result import (
    MAX_COLORS_BY_SUFFIX,
    RESULT_SUFFIXES,
    TooManyColorsError,
    check_colors,
    check_palette_colors,
    max_colors_for,
    optimize_png,
    result_bytes,
    result_suffix,
    save_result,
)

__all__ = [
    "ANIMATION_SUFFIXES",
    "MAX_COLORS_BY_SUFFIX",
    "MAX_IMAGE_PALETTE",
    "MAX_TEXT_PALETTE",
    "RESULT_SUFFIXES",
    "Animation",
    "ImageFileError",
    "LoadedImage",
    "NotSmallerError",
    "PathLike",
    "TooManyColorsError",
    "WriteError",
    "animation_bytes",
    "atomic_write",
    "check_colors",
    "check_output_path",
    "check_palette_colors",
    "is_animated",
    "load_animation",
    "load_animation_bytes",
    "load_image",
    "load_image_bytes",
    "load_palette",
    "load_palette_bytes",
    "max_colors_for",
    "open_image",
    "optimize_png",
    "parse_hex_colors",
    "result_bytes",
    "result_suffix",
    "save_animation",
    "save_result",
]

if TYPE_CHECKING:
    from .animation import (
        ANIMATION_SUFFIXES,
        Animation,
        animation_bytes,
        load_animation,
        load_animation_bytes,
        save_animation,
    )

_ANIMATION_NAMES = frozenset(
    (
        "ANIMATION_SUFFIXES",
        "Animation",
        "animation_bytes",
        "load_animation",
        "load_animation_bytes",
        "save_animation",
    )
)
"""Names of :mod:`colorquant.io.animation`, imported on first use: a still image never needs
that module (nor :mod:`zipfile`), and the command's start-up pays for every import."""


def __getattr__(name: str) -> Any:
    if name in _ANIMATION_NAMES:
        from . import animation

        return getattr(animation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
