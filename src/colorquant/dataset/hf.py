"""Hugging Face ``datasets``: quantize an image column inside ``Dataset.map(batched=True)``.

Nothing here imports ``datasets`` (``pip install 'colorquant[datasets]'`` installs it): the
function receives the batch as the dict of lists that ``Dataset.map`` passes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import InputError
from ..color import DEFAULT_COLOR_SPACE, ColorSpace
from ..io import load_image, load_image_bytes
from ..options import FitOptions
from ..quantize import DATASET_SPEED, DEFAULT_COLORS, Dither, Quantizer, quantize

__all__ = ["quantize_examples"]


def _pixels(value: Any, where: str) -> Any:
    """An image cell as something :func:`colorquant.quantize` takes."""
    if isinstance(value, dict):  # an Image feature with decode=False: {"bytes", "path"}
        if value.get("bytes") is not None:
            return load_image_bytes(value["bytes"], value.get("path") or where).pixels
        if value.get("path"):
            return load_image(value["path"]).pixels
        raise InputError(f"{where}: an image cell with neither bytes nor path")
    if isinstance(value, list):
        return np.asarray(value, dtype=np.uint8)
    return value


def quantize_examples(
    batch: dict[str, list[Any]],
    n_colors: int = DEFAULT_COLORS,
    *,
    image_column: str = "image",
    output_column: str = "quantized",
    palette_column: str = "palette",
    color_space: ColorSpace = DEFAULT_COLOR_SPACE,
    dither: Dither = "none",
    dither_strength: float = 1.0,
    speed: int = DATASET_SPEED,
    seed: int = 0,
    palette: Any = None,
) -> dict[str, list[Any]]:
    """Quantize a batch of a ``datasets.Dataset``: adds the palette image and its palette.

    Use with ``Dataset.map(quantize_examples, batched=True, fn_kwargs={"n_colors": 64})``. Each
    cell of ``image_column`` may be a PIL image (an ``Image`` feature), ``{"bytes", "path"}``
    (``Image(decode=False)``), an ``(H, W, 3)`` array or nested lists of uint8.

    Args:
        batch: the batch ``Dataset.map`` passes (column name -> list of cells).
        n_colors: palette size K, 1..256 (ignored with ``palette``).
        image_column: the column to read.
        output_column: the new column of palette-mode (``"P"``) PIL images, which ``datasets``
            stores as PNG.
        palette_column: the new column of palettes, each ``K`` rows ``[r, g, b]`` (the used
            colors, most used first; row ``i`` is index ``i`` of the image).
        color_space, dither, dither_strength, speed, seed: as for :func:`colorquant.quantize`
            (but ``speed`` is ``DATASET_SPEED``, 7, unless given).
        palette: ``(K, 3)`` colors to map every image to instead of fitting one per image (a
            shared palette, e.g. ``Quantizer.palette`` after ``partial_fit`` over the dataset).

    Returns:
        ``{output_column: [...], palette_column: [...]}``, one entry per row of the batch.

    Raises:
        InputError: ``image_column`` is missing, or a cell is not an image; the message names
            the column and row.

    Example:
        >>> import numpy as np
        >>> out = quantize_examples({"image": [np.zeros((2, 2, 3), np.uint8)]}, 4)
        >>> out["quantized"][0].mode, out["palette"]
        ('P', [[[0, 0, 0]]])
    """
    if image_column not in batch:
        raise InputError(
            f"image_column {image_column!r} is not in the batch (columns: {sorted(batch)})"
        )
    fit = FitOptions(color_space=color_space, speed=speed, seed=seed)  # checked once
    given = (
        None
        if palette is None
        else Quantizer.from_palette(np.asarray(palette), color_space=fit.color_space, device="cpu")
    )
    images: list[Any] = []
    palettes: list[list[list[int]]] = []
    for row, cell in enumerate(batch[image_column]):
        where = f"{image_column}[{row}]"
        pixels = _pixels(cell, where)
        try:
            if given is not None:
                result = given.apply(pixels, dither=dither, dither_strength=dither_strength)
            else:
                result = quantize(
                    pixels,
                    n_colors,
                    dither=dither,
                    dither_strength=dither_strength,
                    device="cpu",
                    options=fit,
                )
        except InputError as err:
            raise InputError(f"{where}: {err}") from None
        images.append(result.to_pil())
        palettes.append(result.palette.tolist())
    return {output_column: images, palette_column: palettes}
