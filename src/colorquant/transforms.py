"""Transforms for data pipelines, in torchvision's calling conventions (torchvision not needed).

:class:`Quantize` takes a PIL image or a ``(3, H, W)`` tensor and returns the same kind: a PIL
image in mode ``"RGB"``, or a tensor of the input's dtype (uint8, or float in [0, 1]) and device.
Images with an alpha channel (a PIL image with alpha or a transparent color, a ``(4, H, W)``
tensor) are quantized in RGBA (:mod:`colorquant.alpha`) and come back as ``"RGBA"`` images or
``(4, H, W)`` tensors.
It is a plain picklable object, so it works in a ``torch.utils.data.DataLoader`` with worker
processes and inside a torchvision ``Compose``.

Example:
    >>> import numpy as np
    >>> from PIL import Image
    >>> t = Quantize(4, color_space="rgb")
    >>> out = t(Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)))
    >>> out.mode, len(np.unique(np.asarray(out).reshape(-1, 3), axis=0)) <= 4
    ('RGB', True)
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ._array import is_tensor
from ._checks import InputError, check_int_range
from .alpha import with_alpha
from .color import DEFAULT_COLOR_SPACE, ColorSpace
from .options import FitOptions
from .quantize import DEFAULT_COLORS, DEFAULT_SPEED, Quantizer, QuantizeResult, quantize
from .threads import get_num_threads, set_num_threads

__all__ = ["Quantize"]


def _in_dataloader_worker() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and torch.utils.data.get_worker_info() is not None


class Quantize:
    """Reduce an image to ``n_colors`` colors (its own palette), or map it to a given palette.

    Args:
        n_colors: palette size K fitted per image, 1..256 (ignored with ``palette``).
        palette: optional ``(K, 3)`` uint8-valued colors every image is mapped to.
        color_space: where distances are measured (see :class:`colorquant.Quantizer`).
        seed: seed of each fit: the same image gives the same result in every worker.
        speed: 1..10, as for :class:`colorquant.Quantizer`.

    In a DataLoader worker process the compiled kernels run on one thread: the workers are the
    parallelism, and more threads per worker would only compete for the same cores.

    Raises:
        InputError: a bad option (here) or input (when called), with the argument named.
    """

    def __init__(
        self,
        n_colors: int = DEFAULT_COLORS,
        *,
        palette: Any = None,
        color_space: ColorSpace = DEFAULT_COLOR_SPACE,
        seed: int = 0,
        speed: int = DEFAULT_SPEED,
    ) -> None:
        # The fit's settings, checked once.
        self.options = FitOptions(color_space=color_space, seed=seed, speed=speed)
        self.n_colors = check_int_range("n_colors", n_colors, 1, 256)
        self.color_space: ColorSpace = self.options.color_space
        self.seed, self.speed = self.options.seed, self.options.speed
        self.palette: np.ndarray | None = None
        if palette is not None:
            fixed = Quantizer.from_palette(palette, color_space=color_space, device="cpu")
            self.palette = fixed.palette

    def __repr__(self) -> str:
        what = (
            f"n_colors={self.n_colors}"
            if self.palette is None
            else f"palette=<{self.palette.shape[0]} colors>"
        )
        return f"{type(self).__name__}({what}, color_space={self.color_space!r})"

    def _quantize(self, image: Any, device: str) -> QuantizeResult:
        return quantize(
            image,
            self.n_colors,
            palette=self.palette,
            color_space=self.color_space,
            seed=self.seed,
            speed=self.speed,
            device=device,
        )

    def __call__(self, image: Any) -> Any:
        """Quantize one PIL image or ``(3, H, W)`` / ``(4, H, W)`` tensor; the same kind (and
        channels) comes back."""
        from PIL import Image

        if _in_dataloader_worker() and get_num_threads() > 1:
            set_num_threads(1)
        if isinstance(image, Image.Image):
            alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            pixels = self._quantize(image, "cpu").to_numpy()
            if alpha:
                return Image.fromarray(with_alpha(pixels), "RGBA")
            return Image.fromarray(pixels, "RGB")
        if not is_tensor(image):
            raise InputError(
                f"image must be a PIL image or a (3, H, W) tensor, got {type(image).__name__}"
            )
        import torch

        t: torch.Tensor = image
        if t.ndim != 3 or t.shape[0] not in (3, 4):
            raise InputError(
                f"image must be a (3, H, W) or (4, H, W) tensor, got shape {tuple(t.shape)}"
            )
        pixels = self._quantize(t, str(t.device)).to_numpy()
        if t.shape[0] == 4:
            pixels = with_alpha(pixels)
        out = torch.from_numpy(pixels).permute(2, 0, 1).to(t.device)
        if t.dtype == torch.uint8:
            return out.contiguous()
        return (out.to(t.dtype) / 255.0).contiguous()
