"""A palette quantization layer for PyTorch models (imports torch).

:class:`PaletteQuantize` maps images to their nearest palette color, measured in any of
colorquant's color spaces, with a gradient: straight through the choice (``mode="ste"``), or
through a softmax over the palette (``mode="soft"``). Its palette is given, learnable, or fitted
by colorquant's K-means on the first batch the layer sees.

Example:
    >>> import torch
    >>> from colorquant.nn import PaletteQuantize
    >>> layer = PaletteQuantize(palette=torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    >>> layer(torch.full((1, 3, 2, 2), 0.8)).unique().tolist()
    [1.0]
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from ._checks import InputError, check_choice, check_int_range, check_positive
from ._torch.nearest import nearest
from .color import COLOR_SPACES, DEFAULT_COLOR_SPACE, ColorSpace, embed
from .quantize import DEFAULT_SPEED, Quantizer

__all__ = ["MODES", "Mode", "PaletteQuantize", "palette_quantize"]

Mode = Literal["ste", "soft"]
MODES: tuple[Mode, ...] = ("ste", "soft")


def _as_palette(palette: Any) -> torch.Tensor:
    """A given palette as a ``(K, 3)`` float tensor in [0, 1]; integer colors are divided by 255
    in float64 (so that a float64 forward gives the exact 8-bit values)."""
    t = palette if isinstance(palette, torch.Tensor) else torch.as_tensor(np.asarray(palette))
    if t.ndim != 2 or t.shape[1] != 3 or t.shape[0] < 1:
        raise InputError(f"palette must have shape (K, 3) with K >= 1, got {tuple(t.shape)}")
    if not t.is_floating_point():
        if t.min() < 0 or t.max() > 255:
            raise InputError("palette: integer colors must lie in 0..255")
        return t.to(torch.float64) / 255.0
    if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
        raise InputError("palette: float colors must be finite and lie in [0, 1]")
    return t.detach().clone()


def _check_images(x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 3 or x.shape[-3] != 3 or not x.is_floating_point():
        raise InputError(
            f"input must be a float tensor of shape (*, 3, H, W) in [0, 1], got "
            f"{x.dtype} of shape {tuple(x.shape)}"
        )
    return x


def palette_quantize(
    x: torch.Tensor,
    palette: torch.Tensor,
    *,
    mode: Mode = "ste",
    temperature: float = 1.0,
    color_space: ColorSpace = DEFAULT_COLOR_SPACE,
) -> torch.Tensor:
    """The function behind :class:`PaletteQuantize`: every pixel to a palette color.

    Args:
        x: ``(*, 3, H, W)`` float images in [0, 1].
        palette: ``(K, 3)`` float colors in [0, 1], on the device of ``x``.
        mode: ``"ste"`` (nearest color, straight-through gradient) or ``"soft"`` (softmax over
            ``-d^2 / temperature``).
        temperature: of ``"soft"``, in squared distance units of ``color_space``.
        color_space: where distances are measured.

    Returns:
        ``(*, 3, H, W)`` in the dtype of ``x``; differentiable in ``x`` and ``palette``.
    """
    _check_images(x)
    if palette.ndim != 2 or palette.shape[1] != 3 or palette.shape[0] < 1:
        raise InputError(f"palette must have shape (K, 3) with K >= 1, got {tuple(palette.shape)}")
    if palette.device != x.device:
        raise InputError(
            f"input is on {x.device} but the palette is on {palette.device}: move them together"
        )
    pixels = x.movedim(-3, -1)
    flat = pixels.reshape(-1, 3)
    colors = palette.to(x.dtype)
    if mode == "ste":
        # Only the choice is needed here: no autograd graph for the color conversion.
        with torch.no_grad():
            index, _ = nearest(embed(flat, color_space), embed(colors, color_space))
        out = colors[index] + (flat - flat.detach())
    elif mode == "soft":
        points, centers = embed(flat, color_space), embed(colors, color_space)
        # |x|^2 - 2 x.c + |c|^2: smooth everywhere (cdist's gradient is not at distance 0).
        d2 = (
            (points * points).sum(1, keepdim=True)
            - 2.0 * points @ centers.T
            + (centers * centers).sum(1)
        ).clamp_min(0.0)
        out = torch.softmax(-d2 / temperature, dim=1) @ colors
    else:
        raise InputError(f"mode must be one of 'ste', 'soft', got {mode!r}")
    return out.reshape(pixels.shape).movedim(-1, -3)


class PaletteQuantize(LazyModuleMixin, nn.Module):
    """Nearest-palette-color quantization of images, as a differentiable layer.

    The forward pass takes ``(*, 3, H, W)`` float images in [0, 1] (any leading dimensions,
    channels third from last, as torchvision lays images out) and returns the same shape, dtype
    and device, every pixel replaced by a palette color:

    - ``mode="ste"``: the nearest palette color in ``color_space`` (exactly as colorquant maps
      pixels, ties to the lowest index). The gradient passes straight through to the input
      (identity) and, through the choice, into the chosen palette colors.
    - ``mode="soft"``: ``sum_k softmax(-d_k^2 / temperature)_k * palette_k``, ``d_k`` the
      distance to palette color ``k`` in ``color_space``: smooth in the input and the palette;
      as ``temperature`` goes to 0 it becomes the hard choice. ``temperature`` is an attribute,
      so it can be annealed during training. It uses ``N x K`` memory for ``N`` pixels.

    Args:
        n_colors: palette size K to fit by K-means (colorquant's ``Quantizer``, on the CPU) on
            the first batch the forward pass sees; give this or ``palette``.
        palette: ``(K, 3)`` colors, float in [0, 1] or integers in 0..255.
        learnable: make the palette an ``nn.Parameter`` (trained by any optimizer; it is not
            clamped to [0, 1]); otherwise it is a buffer.
        mode: ``"ste"`` or ``"soft"``.
        temperature: of ``"soft"``, in squared distance units of ``color_space`` (8-bit RGB
            units for ``rgb`` and ``hybrid``: 10..100 is smooth, 1 is nearly hard).
        color_space: where distances are measured, one of ``colorquant.COLOR_SPACES``.
        seed: seed of the K-means fit.
        speed: speed of the K-means fit (1..10).

    Raises:
        InputError: neither or both of ``n_colors`` and ``palette``, a bad palette, option or
            input (the message names it).

    Example:
        >>> layer = PaletteQuantize(8, mode="soft", temperature=20.0)
        >>> y = layer(torch.rand(2, 3, 16, 16))  # fits 8 colors on this first batch
        >>> y.shape, layer.palette.shape
        (torch.Size([2, 3, 16, 16]), torch.Size([8, 3]))
    """

    cls_to_become = None
    palette: torch.Tensor

    def __init__(
        self,
        n_colors: int | None = None,
        *,
        palette: Any = None,
        learnable: bool = False,
        mode: Mode = "ste",
        temperature: float = 1.0,
        color_space: ColorSpace = DEFAULT_COLOR_SPACE,
        seed: int = 0,
        speed: int = DEFAULT_SPEED,
    ) -> None:
        super().__init__()
        if (n_colors is None) == (palette is None):
            raise InputError("give n_colors (a palette to fit) or palette (a given one), not both")
        self.mode: Mode = check_choice("mode", mode, MODES)
        self.temperature = check_positive("temperature", temperature)
        self.color_space: ColorSpace = check_choice("color_space", color_space, COLOR_SPACES)
        self.learnable = bool(learnable)
        self.seed = check_int_range("seed", seed, 0)
        self.speed = check_int_range("speed", speed, 1, 10)
        self.n_colors = None if n_colors is None else check_int_range("n_colors", n_colors, 1, 256)
        if palette is not None:
            colors = _as_palette(palette)
            if self.learnable:
                self.palette = nn.Parameter(colors)
            else:
                self.register_buffer("palette", colors)
        elif self.learnable:
            self.palette = UninitializedParameter()
        else:
            self.register_buffer("palette", UninitializedBuffer())

    def extra_repr(self) -> str:
        k = self.n_colors if self.has_uninitialized_params() else self.palette.shape[0]
        return (
            f"n_colors={k}, mode={self.mode!r}, color_space={self.color_space!r}, "
            f"learnable={self.learnable}, temperature={self.temperature:g}"
        )

    def initialize_parameters(self, x: torch.Tensor) -> None:
        """Fit the palette on the first batch (LazyModuleMixin calls this before ``forward``)."""

        if not self.has_uninitialized_params():
            return  # a given palette: nothing to fit
        images = _check_images(x).detach().reshape(-1, *x.shape[-3:])
        assert self.n_colors is not None
        q = Quantizer(
            self.n_colors, color_space=self.color_space, seed=self.seed, speed=self.speed,
            device="cpu",
        )  # fmt: skip
        q.fit(list(images.cpu()))
        colors = torch.from_numpy(q.palette).to(device=x.device, dtype=x.dtype) / 255.0
        uninitialized: Any = self.palette
        with torch.no_grad():
            uninitialized.materialize(colors.shape, device=x.device, dtype=x.dtype)
            self.palette.copy_(colors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize ``(*, 3, H, W)`` images; see the class docstring."""
        return palette_quantize(
            x,
            self.palette,
            mode=self.mode,
            temperature=self.temperature,
            color_space=self.color_space,
        )
