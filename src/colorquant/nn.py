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

import math
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

try:
    import torch
    from torch import nn
    from torch.nn.modules.lazy import LazyModuleMixin
    from torch.nn.parameter import UninitializedBuffer, UninitializedParameter
    from torch.utils.checkpoint import checkpoint
except ModuleNotFoundError as error:  # the light install: one line naming the extra
    from ._extras import is_missing, missing_extra

    if is_missing(error, "torch"):
        raise missing_extra("colorquant.nn", "torch") from None
    raise

from ._checks import InputError, check_choice, check_int_range
from ._torch.device import exact_dtype, exact_math
from ._torch.nearest import block_rows, nearest
from .color import DEFAULT_COLOR_SPACE, ColorSpace, embed
from .options import FitOptions
from .quantize import DEFAULT_SPEED, Quantizer

__all__ = ["MODES", "Mode", "PaletteQuantize", "palette_quantize"]

Mode = Literal["ste", "soft"]
MODES: tuple[Mode, ...] = ("ste", "soft")


def _as_palette(palette: Any) -> torch.Tensor:
    """A given palette as a ``(K, 3)`` float tensor in [0, 1].

    A float tensor keeps its dtype; anything else (integer colors in 0..255, divided by 255;
    NumPy arrays, lists) becomes the default float dtype (``torch.get_default_dtype()``,
    float32 unless changed), which every device holds (MPS has no float64).
    """
    t = palette if isinstance(palette, torch.Tensor) else torch.as_tensor(np.asarray(palette))
    if t.ndim != 2 or t.shape[1] != 3 or t.shape[0] < 1:
        raise InputError(f"palette must have shape (K, 3) with K >= 1, got {tuple(t.shape)}")
    if t.dtype == torch.bool or t.is_complex():
        raise InputError(f"palette must hold integers in 0..255 or floats in [0, 1], got {t.dtype}")
    if not t.is_floating_point():
        if t.min() < 0 or t.max() > 255:
            raise InputError("palette: integer colors must lie in 0..255")
        # Divided in float64, so that the 8-bit colors are as exact as the dtype allows.
        return (t.to(torch.float64) / 255.0).to(torch.get_default_dtype())
    if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
        raise InputError("palette: float colors must be finite and lie in [0, 1]")
    dtype = t.dtype if isinstance(palette, torch.Tensor) else torch.get_default_dtype()
    return t.detach().to(dtype=dtype, copy=True)


def _check_images(x: Any) -> torch.Tensor:
    """``x`` if it is a ``(*, 3, H, W)`` float tensor (any float dtype, bfloat16 included)."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 3 or x.shape[-3] != 3 or not x.is_floating_point():
        raise InputError(
            f"input must be a float tensor of shape (*, 3, H, W) in [0, 1], got "
            f"{x.dtype} of shape {tuple(x.shape)}"
        )
    return x


_is_compiling: Callable[[], bool] = getattr(torch.compiler, "is_compiling", lambda: False)


def _check_values(x: torch.Tensor) -> None:
    """Raise unless every value of ``x`` is in [0, 1] (no NaN): the check of every forward, given
    palette or fitted (one pass and one device sync; skipped inside a ``torch.compile`` graph)."""
    if x.numel() == 0 or _is_compiling():
        return
    with torch.no_grad():
        inside = bool(((x >= 0) & (x <= 1)).all())  # False for NaN as well
        if inside:
            return
        finite = x[torch.isfinite(x)]
        if finite.numel() < x.numel():
            raise InputError("input holds NaN or infinite values; it must lie in [0, 1]")
        raise InputError(
            f"input must lie in [0, 1], got values in [{float(finite.min()):.4g}, "
            f"{float(finite.max()):.4g}]"
        )


def _check_temperature(temperature: Any) -> float:
    """``temperature`` as a float if it is finite and > 0 (0 would divide by zero: NaN)."""
    try:
        value = float(temperature)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"temperature must be a finite number > 0, got {temperature!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"temperature must be a finite number > 0, got {temperature!r}")
    return value


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
        x: ``(*, 3, H, W)`` float images in [0, 1] (float16, bfloat16, float32 or float64).
        palette: ``(K, 3)`` float colors in [0, 1], on the device of ``x``.
        mode: ``"ste"`` (nearest color, straight-through gradient) or ``"soft"`` (softmax over
            ``-d^2 / temperature``).
        temperature: of ``"soft"``, in squared distance units of ``color_space``; finite, > 0.
        color_space: where distances are measured.

    Returns:
        ``(*, 3, H, W)`` in the dtype of ``x``; differentiable in ``x`` and ``palette``. 16-bit
        floats are compared in float32 (their 8 bits of mantissa cannot tell close colors apart).

    Raises:
        InputError: a bad shape, dtype, device, mode or temperature, or values of ``x`` outside
            [0, 1] or NaN.
    """
    _check_images(x)
    if palette.ndim != 2 or palette.shape[1] != 3 or palette.shape[0] < 1:
        raise InputError(f"palette must have shape (K, 3) with K >= 1, got {tuple(palette.shape)}")
    if palette.device != x.device:
        raise InputError(
            f"input is on {x.device} but the palette is on {palette.device}: move them together"
        )
    if mode not in MODES:
        raise InputError(f"mode must be one of 'ste', 'soft', got {mode!r}")
    if not isinstance(temperature, torch.Tensor) and not _is_compiling():
        # Eager only: compiled, an annealed temperature is a symbolic float (the layer's
        # property checks every value set).
        temperature = _check_temperature(temperature)
    _check_values(x)
    # 16-bit floats: distances in float32, the result cast back to x's dtype.
    work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    pixels = x.movedim(-3, -1)
    flat = pixels.reshape(-1, 3).to(work)
    colors = palette.to(work)
    # Autocast off: the colors are converted and compared in the dtypes chosen here, whatever
    # the caller's autocast (a bfloat16 matrix product would move every color).
    with exact_math(x.device):
        if mode == "ste":
            # Only the choice is needed here: no autograd graph for the color conversion.
            with torch.no_grad():
                centers = _embed(colors, color_space)
                step = 2**20  # pixels converted at a time (float64 coordinates)
                index = torch.cat(
                    [
                        nearest(_embed(flat[i : i + step], color_space), centers)[0]
                        for i in range(0, max(flat.shape[0], 1), step)
                    ]
                )
            out = colors[index] + (flat - flat.detach())
        else:
            out = _soft(flat, colors, temperature, color_space)
    return out.to(x.dtype).reshape(pixels.shape).movedim(-1, -3)


def _embed(rgb: torch.Tensor, space: ColorSpace) -> torch.Tensor:
    """``embed`` computed in the exact dtype (float64; float32 on MPS), returned in ``rgb``'s:
    the 3x3 color matrices never meet TF32 or a 16-bit product."""
    if space == "rgb":
        return rgb * 255.0
    return embed(rgb.to(exact_dtype(rgb.device)), space).to(rgb.dtype)


def _soft_rows(
    flat: torch.Tensor, colors: torch.Tensor, temperature: Any, space: ColorSpace
) -> torch.Tensor:
    """``softmax(-d^2 / temperature) . colors`` of some pixels, by direct differences.

    ``|x - c|^2`` summed coordinate by coordinate and the mix as a weighted sum: elementwise
    operations only (smooth at distance 0, exact under TF32).
    """
    points, centers = _embed(flat, space), _embed(colors, space)
    d2 = (points[:, None, 0] - centers[None, :, 0]).square()
    for j in range(1, points.shape[1]):
        d2 = d2 + (points[:, None, j] - centers[None, :, j]).square()
    weights = torch.softmax(-d2 / temperature, dim=1)
    return (weights[:, :, None] * colors[None]).sum(1)


def _soft(
    flat: torch.Tensor, colors: torch.Tensor, temperature: Any, space: ColorSpace
) -> torch.Tensor:
    """:func:`_soft_rows` over every pixel in chunks of rows, so that no ``(N, K)`` block
    larger than the memory budget lives: with gradients, each chunk is recomputed in the
    backward pass (activation checkpointing) instead of keeping its ``(rows, K)`` weights."""
    rows = block_rows(1, 4 * colors.shape[0], flat.device)
    if flat.shape[0] <= rows:
        return _soft_rows(flat, colors, temperature, space)
    grad = torch.is_grad_enabled() and (flat.requires_grad or colors.requires_grad)
    parts = []
    for start in range(0, flat.shape[0], rows):
        part = flat[start : start + rows]
        if grad:
            out = checkpoint(_soft_rows, part, colors, temperature, space, use_reentrant=False)
            assert isinstance(out, torch.Tensor)
            parts.append(out)
        else:
            parts.append(_soft_rows(part, colors, temperature, space))
    return torch.cat(parts)


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
      as ``temperature`` goes to 0 it becomes the hard choice. ``temperature`` is a property,
      so it can be annealed during training (each value is checked: finite and > 0). The
      pixels go in chunks under the memory budget (``colorquant._torch.nearest``), each
      recomputed in the backward pass: no ``N x K`` block for ``N`` pixels.

    Colors are converted and compared exactly whatever the caller's autocast or TF32 settings
    (autocast is off inside the layer, distances are direct differences).

    Every forward checks that the input lies in [0, 1] without NaN, with a given palette as
    with a fitted one (one pass over the input; skipped inside a ``torch.compile`` graph).
    Inputs of every float dtype are accepted (bfloat16 included) and come back in it.

    The palette is a float buffer (or parameter) that follows the module's dtype and device
    (``.to(...)``, ``.half()``, ``.double()``): a given float tensor keeps its dtype, integer
    colors (0..255), NumPy arrays and lists become the default float dtype (float32); a fitted
    palette is made in the module's dtype. A first batch with fewer distinct colors than
    ``n_colors`` fits fewer rows, with a warning naming the count; the layer works with them.
    ``load_state_dict`` refuses a palette with another number of rows than the layer's (a lazy
    layer not yet fitted takes 1..``n_colors`` rows, as its own fit could leave).

    Args:
        n_colors: palette size K to fit by K-means (colorquant's ``Quantizer``, on the CPU) on
            the first batch the forward pass sees; give this or ``palette``.
        palette: ``(K, 3)`` colors, float in [0, 1] or integers in 0..255.
        learnable: make the palette an ``nn.Parameter`` (trained by any optimizer; it is not
            clamped to [0, 1]); otherwise it is a buffer.
        mode: ``"ste"`` or ``"soft"``.
        temperature: of ``"soft"``, in squared distance units of ``color_space`` (8-bit RGB
            units for ``rgb`` and ``hybrid``: 10..100 is smooth, 1 is nearly hard); finite, > 0.
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
        self.temperature = temperature
        # The fit's settings, checked once: the color space also measures the forward's
        # distances.
        self.options = FitOptions(color_space=color_space, seed=seed, speed=speed)
        self.color_space: ColorSpace = self.options.color_space
        self.learnable = bool(learnable)
        self.seed, self.speed = self.options.seed, self.options.speed
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

    @property
    def temperature(self) -> float:
        """Of ``mode="soft"``: a finite number > 0 (checked on every assignment)."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._temperature = _check_temperature(value)

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
        _check_values(images)  # as every forward checks, with the same message
        assert self.n_colors is not None
        opts = self.options
        q = Quantizer(
            self.n_colors, color_space=opts.color_space, seed=opts.seed, speed=opts.speed,
            device="cpu",
        )  # fmt: skip
        # float32 on the CPU: the fit rounds to 8 bits anyway, and takes any float dtype so.
        q.fit(list(images.to(device="cpu", dtype=torch.float32)))
        rows = int(q.palette.shape[0])
        if rows < self.n_colors:
            warnings.warn(
                f"PaletteQuantize: the first batch has {rows} distinct colors, fewer than "
                f"n_colors={self.n_colors}: the palette has {rows} rows",
                UserWarning,
                stacklevel=4,
            )
        uninitialized: Any = self.palette
        dtype = uninitialized.dtype  # the module's: follows .to(dtype), .half(), ...
        colors = (torch.from_numpy(q.palette).to(torch.float64) / 255.0).to(dtype)
        with torch.no_grad():
            uninitialized.materialize(colors.shape, device=x.device, dtype=dtype)
            self.palette.copy_(colors)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """Refuse a saved palette of another shape (K rows) than this layer's, in one line."""
        saved = state_dict.get(prefix + "palette")
        if isinstance(saved, torch.Tensor):
            rows = int(saved.shape[0]) if saved.ndim == 2 else -1
            lazy = self.has_uninitialized_params()
            assert self.n_colors is not None or not lazy
            k = self.n_colors if lazy else int(self.palette.shape[0])
            assert k is not None
            fits = 1 <= rows <= k if lazy else rows == k
            if saved.ndim != 2 or saved.shape[1] != 3 or not fits:
                want = f"(K, 3) with K in 1..{k}" if lazy else f"({k}, 3)"
                raise InputError(
                    f"load_state_dict: {prefix}palette must have shape {want} for this "
                    f"PaletteQuantize, got {tuple(saved.shape)} (make the layer with that K)"
                )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize ``(*, 3, H, W)`` images; see the class docstring."""
        return palette_quantize(
            x,
            self.palette,
            mode=self.mode,
            temperature=self.temperature,
            color_space=self.color_space,
        )
