"""Color-space conversions in PyTorch: sRGB <-> linear RGB <-> CIE XYZ <-> CIELAB, and OKLab.

Layout: every function acts on the **last** dimension, a tensor of shape ``(..., 3)`` (points, the
layout the clustering works in). To convert an image ``(*, 3, H, W)``, move the channel last first
(``x.movedim(-3, -1)``), never ``x.view(-1, 3)``, which scrambles channels.

Ranges: sRGB and linear RGB in [0, 1]; XYZ with Y in [0, 1] (D65 white ``WHITE_D65``);
CIELAB with L* in [0, 100]; OKLab with L in [0, 1]. dtype and device follow the input, float32 and
float64 are both kept, and every function is differentiable (no NaN gradient at black).

References:
    - IEC 61966-2-1:1999, the sRGB transfer function.
    - B. Lindbloom, "RGB/XYZ matrices", sRGB (D65): ``XYZ_FROM_RGB``; the same values as
      scikit-image's ``xyz_from_rgb``.
    - CIE 15:2004, D65 2° white point and the CIELAB definition.
    - B. Ottosson, "A perceptual color space for image processing" (2020): ``LMS_FROM_RGB``,
      ``OKLAB_FROM_LMS``.
    - G. Cui, M. R. Luo, B. Rigg, G. Roesler, K. Witt, "Uniform colour spaces based on the DIN99
      colour-difference formula", Color Res. Appl. 27 (2002): DIN99b (the constants of DIN
      6176's DIN99o), whose Euclidean distance approximates CIEDE2000: ``DIN99_CONSTANTS``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from ._checks import check_choice

__all__ = [
    "COLOR_SPACES",
    "DEFAULT_COLOR_SPACE",
    "DIN99_CONSTANTS",
    "LMS_FROM_RGB",
    "OKLAB_FROM_LMS",
    "RGB_FROM_XYZ",
    "WHITE_D65",
    "XYZ_FROM_RGB",
    "ColorSpace",
    "decode_colors",
    "din99_to_lab",
    "encode_colors",
    "lab_to_din99",
    "lab_to_rgb",
    "lab_to_xyz",
    "linear_to_srgb",
    "oklab_to_rgb",
    "rgb_to_lab",
    "rgb_to_oklab",
    "rgb_to_xyz",
    "srgb_to_linear",
    "xyz_to_lab",
    "xyz_to_rgb",
]

ColorSpace = Literal["rgb", "lab", "oklab", "din99"]
COLOR_SPACES: tuple[ColorSpace, ...] = ("rgb", "lab", "oklab", "din99")
DEFAULT_COLOR_SPACE: ColorSpace = "din99"
"""The default: K-means in DIN99b measured the lowest mean CIEDE2000 (BENCHMARKS.md)."""

# Linear sRGB -> XYZ (D65), Lindbloom / scikit-image values. The inverse is computed, not typed.
XYZ_FROM_RGB = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
RGB_FROM_XYZ = torch.linalg.inv(XYZ_FROM_RGB)
# CIE 1931 2° D65 tristimulus values (CIE 15:2004), Y normalised to 1.
WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)

# Ottosson's OKLab: linear sRGB -> LMS cone response, then cube root, then LMS' -> Lab.
LMS_FROM_RGB = torch.tensor(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ],
    dtype=torch.float64,
)
RGB_FROM_LMS = torch.linalg.inv(LMS_FROM_RGB)
OKLAB_FROM_LMS = torch.tensor(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ],
    dtype=torch.float64,
)
LMS_FROM_OKLAB = torch.linalg.inv(OKLAB_FROM_LMS)

# DIN99b: lightness scale and log, hue rotation (degrees), b-axis squeeze, chroma scale and log.
DIN99_CONSTANTS = (303.67, 0.0039, 26.0, 0.83, 23.0, 0.075)

# CIELAB's piecewise cube root: linear below (6/29)^3 so that it has a finite slope at 0.
_LAB_DELTA = 6.0 / 29.0


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix @ v`` for every 3-vector ``v`` along the last dimension of ``x``."""
    return x @ matrix.to(device=x.device, dtype=x.dtype).T


def _check_points(x: torch.Tensor, name: str = "input") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _safe_pow(x: torch.Tensor, exponent: float, floor: float) -> torch.Tensor:
    """``x ** exponent`` on ``x >= floor``; the other entries are never differentiated through."""
    return torch.where(x >= floor, x, torch.full_like(x, floor)).pow(exponent)


def _signed_cbrt(x: torch.Tensor) -> torch.Tensor:
    """Real cube root that keeps the sign and has a finite gradient everywhere."""
    tiny = 1e-30
    mag = x.abs()
    root = torch.where(mag > tiny, mag, torch.ones_like(mag)).pow(1.0 / 3.0)
    return torch.where(mag > tiny, torch.sign(x) * root, torch.zeros_like(x))


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """Undo the sRGB transfer function (IEC 61966-2-1).

    Args:
        rgb: ``(..., 3)`` float sRGB in [0, 1].

    Returns:
        ``(..., 3)`` linear-light RGB, same dtype and device.

    Example:
        >>> srgb_to_linear(torch.tensor([[0.5, 0.5, 0.5]])).round(decimals=4)
        tensor([[0.2140, 0.2140, 0.2140]])
    """
    _check_points(rgb, "rgb")
    curve = _safe_pow((rgb + 0.055) / 1.055, 2.4, (0.04045 + 0.055) / 1.055)
    return torch.where(rgb <= 0.04045, rgb / 12.92, curve)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Apply the sRGB transfer function; inverse of :func:`srgb_to_linear`.

    Args:
        linear: ``(..., 3)`` float linear RGB (values outside [0, 1] are extrapolated, not clipped).

    Returns:
        ``(..., 3)`` sRGB, same dtype and device.
    """
    _check_points(linear, "linear")
    curve = 1.055 * _safe_pow(linear, 1.0 / 2.4, 0.0031308) - 0.055
    return torch.where(linear <= 0.0031308, 12.92 * linear, curve)


def rgb_to_xyz(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(..., 3)`` in [0, 1] to CIE XYZ (D65, Y of white = 1)."""
    return _apply(XYZ_FROM_RGB, srgb_to_linear(rgb))


def xyz_to_rgb(xyz: torch.Tensor) -> torch.Tensor:
    """CIE XYZ ``(..., 3)`` (D65) to sRGB; out-of-gamut colors fall outside [0, 1], unclipped."""
    _check_points(xyz, "xyz")
    return linear_to_srgb(_apply(RGB_FROM_XYZ, xyz))


def xyz_to_lab(xyz: torch.Tensor) -> torch.Tensor:
    """CIE XYZ ``(..., 3)`` to CIELAB (D65 white), L* in [0, 100]."""
    _check_points(xyz, "xyz")
    t = xyz / WHITE_D65.to(device=xyz.device, dtype=xyz.dtype)
    cube = _safe_pow(t, 1.0 / 3.0, _LAB_DELTA**3)
    f = torch.where(t > _LAB_DELTA**3, cube, t / (3 * _LAB_DELTA**2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(-1)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-1)


def lab_to_xyz(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB ``(..., 3)`` (D65 white) to CIE XYZ; inverse of :func:`xyz_to_lab`."""
    _check_points(lab, "lab")
    light, a, b = lab.unbind(-1)
    fy = (light + 16.0) / 116.0
    f = torch.stack((fy + a / 500.0, fy, fy - b / 200.0), dim=-1)
    t = torch.where(f > _LAB_DELTA, f.pow(3), 3 * _LAB_DELTA**2 * (f - 4.0 / 29.0))
    return t * WHITE_D65.to(device=lab.device, dtype=lab.dtype)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(..., 3)`` in [0, 1] to CIELAB (D65).

    Example:
        >>> white = rgb_to_lab(torch.ones(3, dtype=torch.float64))
        >>> torch.allclose(white, torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64), atol=0.01)
        True
    """
    return xyz_to_lab(rgb_to_xyz(rgb))


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB ``(..., 3)`` (D65) to sRGB; out-of-gamut colors fall outside [0, 1], unclipped."""
    return xyz_to_rgb(lab_to_xyz(lab))


def rgb_to_oklab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(..., 3)`` in [0, 1] to OKLab (Ottosson 2020), L in [0, 1].

    Example:
        >>> white = rgb_to_oklab(torch.ones(3, dtype=torch.float64))
        >>> torch.allclose(white, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-4)
        True
    """
    lms = _apply(LMS_FROM_RGB, srgb_to_linear(rgb))
    return _apply(OKLAB_FROM_LMS, _signed_cbrt(lms))


def oklab_to_rgb(oklab: torch.Tensor) -> torch.Tensor:
    """OKLab ``(..., 3)`` to sRGB; inverse of :func:`rgb_to_oklab`, unclipped."""
    _check_points(oklab, "oklab")
    lms = _apply(LMS_FROM_OKLAB, oklab).pow(3)
    return linear_to_srgb(_apply(RGB_FROM_LMS, lms))


def lab_to_din99(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB ``(..., 3)`` to DIN99b ``(L99, a99, b99)``, a space where Euclidean distance
    approximates CIEDE2000 (Cui et al. 2002; ``DIN99_CONSTANTS``).

    Example:
        >>> white = lab_to_din99(torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64))
        >>> [round(v, 2) for v in white.tolist()]
        [100.0, 0.0, 0.0]
    """
    _check_points(lab, "lab")
    c1, c2, angle, squeeze, c5, c6 = DIN99_CONSTANTS
    theta = math.radians(angle)
    light, a, b = lab.unbind(-1)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    e = a * cos_t + b * sin_t
    f = squeeze * (b * cos_t - a * sin_t)
    # (a99, b99) = C99 / G * rotate((e, f), theta) with G = |(e, f)|: the ratio C99 / G is smooth
    # (-> c5 * c6 at G = 0), so neutral colors get a finite gradient (no atan2 or |.| at 0).
    ratio = _log1p_ratio(e * e + f * f, c5, c6)
    return torch.stack(
        (
            c1 * torch.log1p(c2 * light),
            ratio * (e * cos_t - f * sin_t),
            ratio * (f * cos_t + e * sin_t),
        ),
        dim=-1,
    )


def _log1p_ratio(g2: torch.Tensor, c5: float, c6: float) -> torch.Tensor:
    """``c5 * log1p(c6 * g) / g`` for ``g = sqrt(g2)``, with its limit ``c5 * c6`` at 0."""
    tiny = 1e-24
    safe = torch.where(g2 > tiny, g2, torch.ones_like(g2)).sqrt()
    return torch.where(g2 > tiny, c5 * torch.log1p(c6 * safe) / safe, torch.full_like(g2, c5 * c6))


def _expm1_ratio(c2: torch.Tensor, c5: float, c6: float) -> torch.Tensor:
    """``expm1(c / c5) / (c6 * c)`` for ``c = sqrt(c2)``, with its limit ``1 / (c5 c6)`` at 0."""
    tiny = 1e-24
    safe = torch.where(c2 > tiny, c2, torch.ones_like(c2)).sqrt()
    limit = torch.full_like(c2, 1.0 / (c5 * c6))
    return torch.where(c2 > tiny, torch.expm1(safe / c5) / (c6 * safe), limit)


def din99_to_lab(din: torch.Tensor) -> torch.Tensor:
    """DIN99b ``(..., 3)`` to CIELAB; inverse of :func:`lab_to_din99`."""
    _check_points(din, "din")
    c1, c2, angle, squeeze, c5, c6 = DIN99_CONSTANTS
    theta = math.radians(angle)
    light99, a99, b99 = din.unbind(-1)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    # (e, f) = G / C99 * rotate((a99, b99), -theta); G / C99 is smooth at C99 = 0.
    ratio = _expm1_ratio(a99 * a99 + b99 * b99, c5, c6)
    e = ratio * (a99 * cos_t + b99 * sin_t)
    f = ratio * (b99 * cos_t - a99 * sin_t) / squeeze
    light = torch.expm1(light99 / c1) / c2
    return torch.stack((light, e * cos_t - f * sin_t, e * sin_t + f * cos_t), dim=-1)


def encode_colors(
    colors: torch.Tensor, space: ColorSpace, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """8-bit sRGB colors to the coordinates the clustering works in.

    ``rgb`` keeps the 0..255 scale (so distances are exact integers in float32 and the objective
    is in 8-bit units); ``lab`` is CIELAB; ``oklab`` is OKLab; ``din99`` is DIN99b.

    Args:
        colors: ``(..., 3)`` uint8 sRGB.
        space: one of ``COLOR_SPACES``.
        dtype: float dtype of the result.

    Returns:
        ``(..., 3)`` float tensor on ``colors.device``.
    """
    check_choice("color_space", space, COLOR_SPACES)
    x = colors.to(dtype)
    if space == "rgb":
        return x
    # Convert in float64 then cast: cheap (colors are distinct colors, not pixels) and exact.
    rgb = colors.to(torch.float64) / 255.0
    if space == "oklab":
        out = rgb_to_oklab(rgb)
    else:
        out = rgb_to_lab(rgb)
        if space == "din99":
            out = lab_to_din99(out)
    return out.to(dtype)


def decode_colors(points: torch.Tensor, space: ColorSpace) -> torch.Tensor:
    """Coordinates of ``space`` back to 8-bit sRGB: the nearest representable color, clipped.

    Args:
        points: ``(..., 3)`` float tensor in the coordinates of :func:`encode_colors`.
        space: one of ``COLOR_SPACES``.

    Returns:
        ``(..., 3)`` uint8 tensor.
    """
    check_choice("color_space", space, COLOR_SPACES)
    x = points.detach().to(torch.float64)
    if space == "oklab":
        x = oklab_to_rgb(x) * 255.0
    elif space != "rgb":
        x = lab_to_rgb(din99_to_lab(x) if space == "din99" else x) * 255.0
    return x.round().clamp(0, 255).to(torch.uint8)
