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

from ._array import is_tensor

__all__ = [
    "InputError",
    "as_pixels",
    "as_rgb8",
    "check_choice",
    "check_int_range",
    "check_positive",
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
