"""Images in: the pipeline's pixels and color histogram of an image, a list or a batch.

    image (PIL, array, tensor, path) -> ``(H, W, 3)`` uint8, or ``(H, W, 4)`` RGBA prepared
    (:func:`pipeline_pixels`) -> color histogram on the work's device (:func:`image_histogram`)

The first stage of :mod:`colorquant.quantize`'s pipeline; a shared palette is fitted on the
merged histogram of its images (:func:`merged_histogram`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._array import is_tensor
from ._checks import InputError, as_pixels
from .alpha import prepare_rgba, rgba_histogram, with_alpha
from .histogram import ColorHistogram, color_histogram, merge_histograms

__all__ = ["image_histogram", "merged_histogram", "pipeline_pixels"]


def pipeline_pixels(image: Any, keep_rgb: bool = False, rgba: bool = False) -> np.ndarray:
    """An image as the pipeline takes it: ``(H, W, 3)`` uint8, or ``(H, W, 4)`` RGBA for an
    image with transparency (or any image, with ``rgba``), fully transparent pixels zeroed
    unless ``keep_rgb`` (:func:`colorquant.alpha.prepare_rgba`)."""
    pixels = as_pixels(image)
    if rgba or pixels.shape[2] == 4:
        pixels = prepare_rgba(with_alpha(pixels), keep_rgb)
    return pixels


def image_histogram(pixels: np.ndarray, device: str) -> tuple[ColorHistogram, tuple[int, int]]:
    """The color histogram of :func:`pipeline_pixels` pixels, and their ``(H, W)``: RGBA in NumPy
    whatever the device; RGB on ``device``."""
    height, width = pixels.shape[:2]
    if pixels.shape[2] == 4:
        return ColorHistogram(*rgba_histogram(pixels.reshape(-1, 4))), (height, width)
    flat = pixels.reshape(-1, 3)
    if device == "cpu":
        return color_histogram(flat), (height, width)
    import torch

    # torch wants writable memory; Pillow's arrays are read-only views.
    tensor = torch.from_numpy(flat if flat.flags.writeable else flat.copy()).to(device)
    return color_histogram(tensor), (height, width)


def merged_histogram(images: Any, name: str, keep_rgb: bool, device: str) -> ColorHistogram:
    """The merged color histogram of an image, a list/tuple of images or a ``(B, C, H, W)``
    tensor batch (``name``: the caller, for the error of an empty list).

    One image with transparency makes it RGBA (:func:`colorquant.histogram.merge_histograms`).
    """
    if isinstance(images, (list, tuple)):
        batch = list(images)
    elif is_tensor(images) and images.ndim == 4:
        batch = list(images.unbind(0))
    else:
        batch = [images]
    if not batch:
        raise InputError(f"{name} needs at least one image")
    hists = [image_histogram(pipeline_pixels(img, keep_rgb), device)[0] for img in batch]
    return merge_histograms(hists)
