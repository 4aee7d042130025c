"""How far a quantized image is from its original: MSE, PSNR and CIEDE2000.

Definitions (the numbers the CLI and the benchmarks print):

- **MSE**: mean over every pixel and each of the three channels of the squared difference of the
  8-bit sRGB values (0..255). Alpha is not counted.
- **PSNR**: ``10 log10(255^2 / MSE)`` in dB; infinite for a lossless result.
- **ΔE00**: the mean over pixels of the CIEDE2000 color difference (Sharma, Wu & Dalal 2005) of
  the CIELAB (D65) values.

Every function takes an optional ``weights`` so that a histogram (distinct colors with pixel
counts) gives exactly the same number as the full image.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._array import ArrayT, namespace, to_numpy
from .color import rgb_to_lab

__all__ = ["ciede2000", "mean_delta_e", "mse", "psnr", "psnr_from_mse"]


def _pair(original: Any, quantized: Any, weights: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = to_numpy(original)
    b = to_numpy(quantized)
    if a.shape != b.shape or a.shape[-1] != 3:
        raise ValueError(
            f"original and quantized must have the same (..., 3) shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )
    a64 = a.reshape(-1, 3).astype(np.float64)
    b64 = b.reshape(-1, 3).astype(np.float64)
    if weights is None:
        w = np.ones(a64.shape[0])
    else:
        w = to_numpy(weights).reshape(-1).astype(np.float64)
        if w.shape[0] != a64.shape[0]:
            raise ValueError(f"weights must have {a64.shape[0]} entries, got {w.shape[0]}")
    return a64, b64, w


def mse(original: Any, quantized: Any, *, weights: Any = None) -> float:
    """Mean squared error in 8-bit units, over pixels and channels.

    Args:
        original: ``(..., 3)`` uint8 (or float on the 0..255 scale) sRGB, array or tensor.
        quantized: same shape.
        weights: optional ``(...)`` pixel counts of each entry.

    Example:
        >>> mse(np.array([[0, 0, 0]], np.uint8), np.array([[3, 0, 0]], np.uint8))
        3.0
    """
    a, b, w = _pair(original, quantized, weights)
    return float(w @ np.square(a - b).sum(1) / (3.0 * w.sum()))


def psnr_from_mse(error: float, peak: float = 255.0) -> float:
    """``10 log10(peak^2 / error)``; ``inf`` when ``error`` is 0."""
    return math.inf if error <= 0 else 10.0 * math.log10(peak * peak / error)


def psnr(original: Any, quantized: Any, *, weights: Any = None) -> float:
    """Peak signal-to-noise ratio in dB of 8-bit sRGB images (see :func:`mse`)."""
    return psnr_from_mse(mse(original, quantized, weights=weights))


def ciede2000(lab1: ArrayT, lab2: ArrayT) -> ArrayT:
    """CIEDE2000 color difference (kL = kC = kH = 1).

    Args:
        lab1: ``(..., 3)`` CIELAB, a NumPy array or a tensor (then differentiable).
        lab2: ``(..., 3)`` CIELAB, broadcastable with ``lab1``.

    Returns:
        ``(...)`` ΔE00, dtype of the inputs.

    References:
        G. Sharma, W. Wu, E. N. Dalal, "The CIEDE2000 color-difference formula: implementation
        notes, supplementary test data, and mathematical observations", Color Res. Appl. 30 (2005).
    """
    xp = namespace(lab1)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = 0.5 * (xp.hypot(a1, b1) + xp.hypot(a2, b2))
    c7 = c_bar**7
    g = 0.5 * (1.0 - xp.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = xp.hypot(a1p, b1), xp.hypot(a2p, b2)
    h1p = xp.remainder(xp.rad2deg(xp.arctan2(b1, a1p)), 360.0)
    h2p = xp.remainder(xp.rad2deg(xp.arctan2(b2, a2p)), 360.0)
    chroma_zero = (c1p * c2p) == 0

    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = xp.where(dh > 180.0, dh - 360.0, xp.where(dh < -180.0, dh + 360.0, dh))
    dh = xp.where(chroma_zero, xp.zeros_like(dh), dh)
    d_big_h = 2.0 * xp.sqrt(c1p * c2p) * xp.sin(xp.deg2rad(dh) / 2.0)

    l_bar = 0.5 * (l1 + l2)
    cp_bar = 0.5 * (c1p + c2p)
    h_sum = h1p + h2p
    far = abs(h1p - h2p) > 180.0
    h_bar = xp.where(far, xp.where(h_sum < 360.0, h_sum + 360.0, h_sum - 360.0), h_sum) / 2.0
    h_bar = xp.where(chroma_zero, h_sum, h_bar)

    t = (
        1.0
        - 0.17 * xp.cos(xp.deg2rad(h_bar - 30.0))
        + 0.24 * xp.cos(xp.deg2rad(2.0 * h_bar))
        + 0.32 * xp.cos(xp.deg2rad(3.0 * h_bar + 6.0))
        - 0.20 * xp.cos(xp.deg2rad(4.0 * h_bar - 63.0))
    )
    d_theta = 30.0 * xp.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    cp7 = cp_bar**7
    r_c = 2.0 * xp.sqrt(cp7 / (cp7 + 25.0**7))
    l50 = (l_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / xp.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -xp.sin(xp.deg2rad(2.0 * d_theta)) * r_c
    tl, tc, th = dl / s_l, dc / s_c, d_big_h / s_h
    return xp.sqrt(tl * tl + tc * tc + th * th + r_t * tc * th)


def mean_delta_e(original: Any, quantized: Any, *, weights: Any = None) -> float:
    """Mean CIEDE2000 between two 8-bit sRGB images (or weighted color lists).

    Args:
        original: ``(..., 3)`` uint8 sRGB.
        quantized: same shape.
        weights: optional ``(...)`` pixel counts of each entry.
    """
    a, b, w = _pair(original, quantized, weights)
    de = ciede2000(rgb_to_lab(a / 255.0), rgb_to_lab(b / 255.0))
    return float(w @ de / w.sum())
