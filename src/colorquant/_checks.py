"""The one place that validates public inputs and turns them into the library's layouts.

Every public entry point calls into this module first, so an error message always names the
argument, what was expected and what came.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from ._array import is_tensor, to_numpy

__all__ = [
    "InputError",
    "as_batch",
    "as_pixels",
    "as_rgb8",
    "check_batch_palettes",
    "check_choice",
    "check_fixed",
    "check_int_range",
    "check_palette",
    "check_positive",
    "check_quality",
    "check_strength",
    "resolve_device",
]

T = TypeVar("T", bound=str)


class InputError(ValueError):
    """A public input was of the wrong kind, shape or range. The message says which and why."""


def check_choice(name: str, value: Any, choices: Sequence[T]) -> T:
    """Return ``value`` if it is one of ``choices``, else raise listing the valid ones."""
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise InputError(f"{name} must be one of {valid}, got {value!r}")
    return value  # type: ignore[no-any-return]


def check_int_range(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int if ``low <= value <= high`` (``high=None``: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    out = int(value)
    if out < low or (high is not None and out > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise InputError(f"{name} must be in {span}, got {out}")
    return out


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite number > 0."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(out) or out <= 0:
        raise InputError(f"{name} must be a positive number, got {value!r}")
    return out


def check_strength(value: Any) -> float:
    """``dither_strength`` as a float in [0, 1], else InputError."""
    strength = float(value)
    if not 0.0 <= strength <= 1.0:
        raise InputError(f"dither_strength must be in [0, 1], got {value!r}")
    return strength


def check_quality(value: Any) -> tuple[float, float]:
    """``quality`` as ``(min, max)`` with ``0 <= min <= max <= 100`` (numbers), else InputError."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"quality must be (min, max) in 0..100, got {value!r}") from None
    if not 0.0 <= low <= high <= 100.0:  # NaN fails too
        raise InputError(f"quality must be (min, max) with 0 <= min <= max <= 100, got {value!r}")
    return low, high


def check_fixed(fixed_colors: Any, n_colors: int, method: str) -> np.ndarray:
    """``fixed_colors`` as a ``(F, 3)`` uint8 array (``F = 0`` for None), checked: distinct
    integers in 0..255, ``1 <= F <= n_colors``, with ``method="kmeans"``."""
    if fixed_colors is None:
        return np.zeros((0, 3), np.uint8)
    arr = to_numpy(fixed_colors)
    if arr.ndim != 2 or arr.shape[1] != 3 or not 1 <= arr.shape[0] <= n_colors:
        raise InputError(
            f"fixed_colors must be (F, 3) with 1 <= F <= n_colors ({n_colors}), got {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
        raise InputError("fixed_colors must be integers in 0..255")
    if len(np.unique(arr, axis=0)) != len(arr):
        raise InputError("fixed_colors must be distinct colors")
    if method != "kmeans":
        raise InputError(f"fixed_colors work with method='kmeans', got method={method!r}")
    return arr.astype(np.uint8)


def check_palette(palette: Any, max_colors: int) -> np.ndarray:
    """A given palette as ``(K, 3)`` or ``(K, 4)`` uint8, ``1 <= K <= max_colors``, else
    InputError."""
    arr = to_numpy(palette)
    if arr.ndim != 2 or arr.shape[1] not in (3, 4) or not 1 <= arr.shape[0] <= max_colors:
        raise InputError(
            f"palette must be (K, 3) or (K, 4) with 1 <= K <= {max_colors}, got {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
        raise InputError("palette colors must be integers in 0..255")
    return arr.astype(np.uint8)


def as_batch(x: Any) -> tuple[list[Any], bool]:
    """``x`` as a list of ``(C, H, W)`` tensors (C = 3, or 4 with alpha), and whether it was
    one ``(B, C, H, W)`` tensor."""
    expected = "a (B, 3 or 4, H, W) tensor or a non-empty list of (3 or 4, H, W) tensors"
    if is_tensor(x):
        if x.ndim != 4 or x.shape[1] not in (3, 4) or x.shape[0] < 1:
            raise InputError(f"x must be {expected}, got a tensor of shape {tuple(x.shape)}")
        return list(x.unbind(0)), True
    if isinstance(x, (list, tuple)) and x and all(is_tensor(t) for t in x):
        bad = [tuple(t.shape) for t in x if t.ndim != 3 or t.shape[0] not in (3, 4)]
        if bad:
            raise InputError(f"x must be {expected}, got a list holding shape {bad[0]}")
        if len({t.device for t in x}) > 1:
            raise InputError("x: every tensor of the list must be on one device")
        return list(x), False
    raise InputError(f"x must be {expected}, got {type(x).__name__}")


def check_batch_palettes(palette: Any, batch: int, like: Any) -> list[np.ndarray]:
    """A given ``(K, C)`` or ``(B, K, C)`` palette (C = 3, or 4 with alpha) as one uint8
    ``(K, C)`` array per image."""
    if is_tensor(palette) and palette.device != like.device:
        raise InputError(f"palette is on {palette.device}, x on {like.device}: use one device")
    arr = to_numpy(palette)
    given = tuple(arr.shape)
    if arr.ndim == 2 and arr.shape[1] in (3, 4):
        arr = np.broadcast_to(arr, (batch, *arr.shape))
    if arr.ndim != 3 or arr.shape[0] != batch or arr.shape[2] not in (3, 4) or arr.shape[1] < 1:
        raise InputError(f"palette must be (K, C) or ({batch}, K, C), C = 3 or 4, got {given}")
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
        raise InputError("palette colors must be integers in 0..255")
    return [np.ascontiguousarray(p, dtype=np.uint8) for p in arr]


DEVICES = ("auto", "cpu", "cuda", "mps")


def _gpu_may_exist() -> bool:
    """Whether a GPU could be here at all, decided without importing torch (about 1 s)."""
    if sys.platform == "darwin":
        return True  # Apple silicon: mps
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")


def resolve_device(device: Any, like: Any = None) -> str:
    """Turn a device name into the one the work runs on: ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``.

    ``"auto"`` is the device of ``like`` when that is a tensor; otherwise cuda, then mps, then
    cpu. On a machine with no GPU driver, ``"auto"`` and ``"cpu"`` never import torch; without
    torch installed, ``"auto"`` is ``"cpu"``.

    Raises:
        InputError: the name is unknown, or names a device this machine does not have (a
            ``MissingExtraError`` naming the ``torch`` extra for cuda or mps without torch).
    """
    name = str(device)
    base = name.split(":")[0]
    check_choice("device", base, DEVICES)
    if base == "cpu":
        return "cpu"
    if base == "auto":
        if is_tensor(like):
            return str(like.device)
        if not _gpu_may_exist() or importlib.util.find_spec("torch") is None:
            return "cpu"  # no GPU here, or no torch to run on one: the NumPy path
        import torch

        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if importlib.util.find_spec("torch") is None:
        from ._extras import missing_extra

        raise missing_extra(f"device {name!r}", "torch")
    import torch

    if base == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for, but no CUDA device is available")
    if base == "mps" and not torch.backends.mps.is_available():
        raise InputError("device 'mps' was asked for, but no MPS device is available")
    return name


def _float_to_uint8(x: np.ndarray, name: str) -> np.ndarray:
    if x.size == 0:
        return np.zeros(x.shape, dtype=np.uint8)  # the caller reports the empty image
    if not np.isfinite(x).all():
        raise InputError(f"{name} holds NaN or infinite values")
    if x.min() < 0.0 or x.max() > 1.0:
        raise InputError(
            f"{name} is floating point, so it must lie in [0, 1], got values in "
            f"[{x.min():.4g}, {x.max():.4g}]"
        )
    return np.rint(x * 255.0).astype(np.uint8)


def _tensor_array(t: Any) -> np.ndarray:
    """A tensor's values as a NumPy array on the host, for every dtype a float image may have.

    NumPy has no bfloat16: it becomes float32, which holds every bfloat16 value exactly (float16,
    float32 and float64 convert as they are). The one place tensors cross into NumPy here, so
    every entry point that takes a tensor image takes all four float dtypes.
    """
    import torch

    host = t.detach().cpu()
    if host.is_floating_point() and host.dtype not in (torch.float16, torch.float32, torch.float64):
        host = host.to(torch.float32)  # bfloat16 (and any other float): exact in float32
    out: np.ndarray = host.numpy()
    return out


def _pil_to_rgb8(image: Any) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grayscale: keep the top 8 of 16 bits, rounded.
        wide = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode != "RGB":
        # L, LA, P, PA, RGBA, CMYK, YCbCr, 1, ...: Pillow's own conversion; alpha is dropped.
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def as_rgb8(image: Any, name: str = "image") -> np.ndarray:
    """Any supported image to a ``(H, W, 3)`` uint8 sRGB array (a copy or a read-only view).

    Accepted:
        - a PIL image of any mode (alpha is dropped; 16-bit grayscale keeps its top 8 bits);
        - a NumPy array ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``, uint8, or float
          in [0, 1] (float16, float32 or float64; rounded to 8 bits: ``rint(255 x)`` in
          float64); a 4th (alpha) channel is dropped;
        - a torch tensor ``(3, H, W)``, ``(1, H, W)`` or ``(1, 3, H, W)`` (a batch of one), uint8
          or float in [0, 1] (float16, bfloat16, float32 or float64); channels first, as
          torchvision has them.

    Raises:
        InputError: wrong type, shape, dtype or range, or an empty image.
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        arr = _pil_to_rgb8(image)
    elif is_tensor(image):
        t = image.detach()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim == 3 and t.shape[0] == 4:
            t = t[:3]  # alpha dropped (as_pixels keeps it)
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise InputError(
                f"{name} tensor must be (3, H, W), (4, H, W) (RGBA), (1, H, W) or (1, 3, H, W), "
                f"got {tuple(t.shape)}"
            )
        hwc = _tensor_array(t.movedim(0, -1))
        arr = hwc if hwc.dtype == np.uint8 else _float_to_uint8(_float_array(hwc, name), name)
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
    elif isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise InputError(
                f"{name} array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                f"got {tuple(image.shape)}"
            )
        arr = arr[..., :3] if arr.shape[2] == 4 else arr
        if arr.dtype != np.uint8:
            arr = _float_to_uint8(_float_array(arr, name), name)
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
    else:
        raise InputError(
            f"{name} must be a PIL image, a NumPy array or a torch tensor, "
            f"got {type(image).__name__}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name} is empty: {arr.shape[0]}x{arr.shape[1]} pixels")
    return np.ascontiguousarray(arr)


def _float_array(arr: np.ndarray, name: str) -> np.ndarray:
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{name} must be uint8 or floating point in [0, 1], got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


_PIL_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _alpha_of(image: Any, name: str) -> np.ndarray | None:
    """The ``(H, W)`` uint8 alpha channel of a 4-channel array or tensor, else ``None``."""
    if is_tensor(image):
        t = image.detach()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3 or t.shape[0] != 4:
            return None
        a = _tensor_array(t[3])
    elif isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 4:
        a = image[..., 3]
    else:
        return None
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    return _float_to_uint8(_float_array(a, name), name)


def _pil_rgba(image: Any) -> np.ndarray | None:
    """A PIL image with an alpha channel or a transparent color as ``(H, W, 4)`` uint8, once
    converted (Pillow also warns when a palette image with transparency goes to RGB); ``None``
    for other images and modes Pillow cannot convert to RGBA."""
    if image.mode not in _PIL_ALPHA_MODES and "transparency" not in image.info:
        return None
    try:
        return np.asarray(image.convert("RGBA"), dtype=np.uint8)
    except ValueError:
        return None


def as_pixels(image: Any, name: str = "image") -> np.ndarray:
    """Any supported image to ``(H, W, 3)`` uint8 sRGB, or ``(H, W, 4)`` RGBA if it has alpha.

    As :func:`as_rgb8`, and also a ``(4, H, W)`` tensor (or ``(1, 4, H, W)``): the alpha
    channel (of a PIL image with an alpha channel or a transparent color, a 4-channel array or
    tensor) is kept when some pixel uses it (is below 255); a fully opaque image gives RGB.
    A path (``str`` or ``os.PathLike``) is read as the command reads a file
    (:func:`colorquant.io.load_image`).
    """
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        from .io import load_image  # the one image-file reader (io depends on this module)

        return load_image(image).pixels
    if isinstance(image, Image.Image):
        rgba = _pil_rgba(image)
        if rgba is None:
            return as_rgb8(image, name)
        if rgba.size == 0:
            as_rgb8(rgba[..., :3], name)  # says the image is empty
        if rgba[..., 3].min() == 255:
            return np.ascontiguousarray(rgba[..., :3])
        return rgba
    alpha = _alpha_of(image, name)
    if alpha is None:
        return as_rgb8(image, name)
    rgb = as_rgb8(image.detach()[..., :3, :, :] if is_tensor(image) else image, name)
    if alpha.min() == 255:
        return rgb
    return np.ascontiguousarray(np.concatenate([rgb, alpha[..., None]], axis=2))
