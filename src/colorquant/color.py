"""Color-space conversions: sRGB <-> linear RGB <-> CIE XYZ <-> CIELAB, OKLab and DIN99b.

Layout: every function acts on the **last** dimension, a tensor of shape ``(..., 3)`` (points, the
layout the clustering works in); it may be a NumPy array or a torch tensor, and the result is of
the same kind. To convert an image ``(*, 3, H, W)``, move the channel last first
(``x.movedim(-3, -1)``), never ``x.view(-1, 3)``, which scrambles channels.

Ranges: sRGB and linear RGB in [0, 1]; XYZ with Y in [0, 1] (D65 white ``WHITE_D65``);
CIELAB with L* in [0, 100]; OKLab with L in [0, 1]. dtype and device follow the input, float32 and
float64 are both kept, and on tensors every function is differentiable (no NaN gradient at black).
Nothing here imports torch: the constants are NumPy arrays, moved to a tensor's dtype and device
when one comes.

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
import sys
from typing import Any, Literal

import numpy as np

from ._array import ArrayT, constant, is_tensor, namespace, stack_last
from ._checks import check_choice

__all__ = [
    "COLOR_SPACES",
    "DEFAULT_COLOR_SPACE",
    "DIN99_CONSTANTS",
    "HYBRID_DIN99_WEIGHT",
    "LMS_FROM_RGB",
    "OKLAB_FROM_LMS",
    "RGB_FROM_XYZ",
    "WHITE_D65",
    "XYZ_FROM_RGB",
    "ColorSpace",
    "decode_colors",
    "din99_to_lab",
    "embed",
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

ColorSpace = Literal["rgb", "lab", "oklab", "din99", "hybrid"]
COLOR_SPACES: tuple[ColorSpace, ...] = ("rgb", "lab", "oklab", "din99", "hybrid")
DEFAULT_COLOR_SPACE: ColorSpace = "hybrid"
"""The default: RGB and DIN99b together, better than libimagequant in PSNR and CIEDE2000 at once
(BENCHMARKS.md, "The default color space")."""

HYBRID_DIN99_WEIGHT = 1.5
"""Scale of the DIN99b coordinates in the ``hybrid`` space, whose squared distance is
``|ΔRGB|^2 + (1.5 |ΔDIN99b|)^2`` (RGB in 8-bit units). 0 is ``rgb`` (best PSNR); large values
approach ``din99`` (best CIEDE2000). 1.5 was chosen on Kodak (``benchmarks/spaces.py``): the
largest weight whose mean PSNR stays clearly above libimagequant's at K = 16, 64 and 256."""

# Linear sRGB -> XYZ (D65), Lindbloom / scikit-image values. The inverse is computed, not typed.
XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=np.float64,
)
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
# CIE 1931 2° D65 tristimulus values (CIE 15:2004), Y normalised to 1.
WHITE_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)

# Ottosson's OKLab: linear sRGB -> LMS cone response, then cube root, then LMS' -> Lab.
LMS_FROM_RGB = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ],
    dtype=np.float64,
)
RGB_FROM_LMS = np.linalg.inv(LMS_FROM_RGB)
OKLAB_FROM_LMS = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ],
    dtype=np.float64,
)
LMS_FROM_OKLAB = np.linalg.inv(OKLAB_FROM_LMS)

# DIN99b: lightness scale and log, hue rotation (degrees), b-axis squeeze, chroma scale and log.
DIN99_CONSTANTS = (303.67, 0.0039, 26.0, 0.83, 23.0, 0.075)

# CIELAB's piecewise cube root: linear below (6/29)^3 so that it has a finite slope at 0.
_LAB_DELTA = 6.0 / 29.0


def _apply(matrix: np.ndarray, x: ArrayT) -> ArrayT:
    """``matrix @ v`` for every 3-vector ``v`` along the last dimension of ``x``."""
    return x @ constant(matrix.T, x)


def _check_points(x: object, name: str = "input") -> None:
    if not isinstance(x, np.ndarray) and not is_tensor(x):
        raise TypeError(f"{name} must be a NumPy array or a torch.Tensor, got {type(x).__name__}")
    shape = tuple(x.shape)  # type: ignore[attr-defined]
    if len(shape) < 1 or shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got {shape}")
    floating = (
        np.issubdtype(x.dtype, np.floating) if isinstance(x, np.ndarray) else x.is_floating_point()  # type: ignore[attr-defined]
    )
    if not floating:
        raise TypeError(f"{name} must be floating point, got {x.dtype}")  # type: ignore[attr-defined]


def _safe_pow(x: ArrayT, exponent: float, floor: float) -> ArrayT:
    """``x ** exponent`` on ``x >= floor``; the other entries are never differentiated through."""
    xp = namespace(x)
    return xp.where(x >= floor, x, xp.full_like(x, floor)) ** exponent


def _signed_cbrt(x: ArrayT) -> ArrayT:
    """Real cube root that keeps the sign and has a finite gradient everywhere."""
    xp = namespace(x)
    tiny = 1e-30
    mag = abs(x)
    root = xp.where(mag > tiny, mag, xp.ones_like(mag)) ** (1.0 / 3.0)
    return xp.where(mag > tiny, xp.sign(x) * root, xp.zeros_like(x))


def srgb_to_linear(rgb: ArrayT) -> ArrayT:
    """Undo the sRGB transfer function (IEC 61966-2-1).

    Args:
        rgb: ``(..., 3)`` float sRGB in [0, 1].

    Returns:
        ``(..., 3)`` linear-light RGB, same kind, dtype and device.

    Example:
        >>> srgb_to_linear(np.array([[0.5, 0.5, 0.5]])).round(4).tolist()
        [[0.214, 0.214, 0.214]]
    """
    _check_points(rgb, "rgb")
    curve = _safe_pow((rgb + 0.055) / 1.055, 2.4, (0.04045 + 0.055) / 1.055)
    return namespace(rgb).where(rgb <= 0.04045, rgb / 12.92, curve)


def linear_to_srgb(linear: ArrayT) -> ArrayT:
    """Apply the sRGB transfer function; inverse of :func:`srgb_to_linear`.

    Args:
        linear: ``(..., 3)`` float linear RGB (values outside [0, 1] are extrapolated, not clipped).

    Returns:
        ``(..., 3)`` sRGB, same kind, dtype and device.
    """
    _check_points(linear, "linear")
    curve = 1.055 * _safe_pow(linear, 1.0 / 2.4, 0.0031308) - 0.055
    xp = namespace(linear)
    return xp.where(linear <= 0.0031308, 12.92 * linear, curve)


def rgb_to_xyz(rgb: ArrayT) -> ArrayT:
    """sRGB ``(..., 3)`` in [0, 1] to CIE XYZ (D65, Y of white = 1)."""
    return _apply(XYZ_FROM_RGB, srgb_to_linear(rgb))


def xyz_to_rgb(xyz: ArrayT) -> ArrayT:
    """CIE XYZ ``(..., 3)`` (D65) to sRGB; out-of-gamut colors fall outside [0, 1], unclipped."""
    _check_points(xyz, "xyz")
    return linear_to_srgb(_apply(RGB_FROM_XYZ, xyz))


def xyz_to_lab(xyz: ArrayT) -> ArrayT:
    """CIE XYZ ``(..., 3)`` to CIELAB (D65 white), L* in [0, 100]."""
    _check_points(xyz, "xyz")
    t = xyz / constant(WHITE_D65, xyz)
    cube = _safe_pow(t, 1.0 / 3.0, _LAB_DELTA**3)
    f = namespace(xyz).where(t > _LAB_DELTA**3, cube, t / (3 * _LAB_DELTA**2) + 4.0 / 29.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return stack_last((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)))


def lab_to_xyz(lab: ArrayT) -> ArrayT:
    """CIELAB ``(..., 3)`` (D65 white) to CIE XYZ; inverse of :func:`xyz_to_lab`."""
    _check_points(lab, "lab")
    light, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (light + 16.0) / 116.0
    f = stack_last((fy + a / 500.0, fy, fy - b / 200.0))
    t = namespace(lab).where(f > _LAB_DELTA, f**3, 3 * _LAB_DELTA**2 * (f - 4.0 / 29.0))
    return t * constant(WHITE_D65, lab)


def rgb_to_lab(rgb: ArrayT) -> ArrayT:
    """sRGB ``(..., 3)`` in [0, 1] to CIELAB (D65).

    Example:
        >>> np.allclose(rgb_to_lab(np.ones(3)), [100.0, 0.0, 0.0], atol=0.01)
        True
    """
    return xyz_to_lab(rgb_to_xyz(rgb))


def lab_to_rgb(lab: ArrayT) -> ArrayT:
    """CIELAB ``(..., 3)`` (D65) to sRGB; out-of-gamut colors fall outside [0, 1], unclipped."""
    return xyz_to_rgb(lab_to_xyz(lab))


def rgb_to_oklab(rgb: ArrayT) -> ArrayT:
    """sRGB ``(..., 3)`` in [0, 1] to OKLab (Ottosson 2020), L in [0, 1].

    Example:
        >>> rgb_to_oklab(np.ones(3)).round(4).tolist()
        [1.0, 0.0, 0.0]
    """
    lms = _apply(LMS_FROM_RGB, srgb_to_linear(rgb))
    return _apply(OKLAB_FROM_LMS, _signed_cbrt(lms))


def oklab_to_rgb(oklab: ArrayT) -> ArrayT:
    """OKLab ``(..., 3)`` to sRGB; inverse of :func:`rgb_to_oklab`, unclipped."""
    _check_points(oklab, "oklab")
    lms = _apply(LMS_FROM_OKLAB, oklab) ** 3
    return linear_to_srgb(_apply(RGB_FROM_LMS, lms))


def lab_to_din99(lab: ArrayT) -> ArrayT:
    """CIELAB ``(..., 3)`` to DIN99b ``(L99, a99, b99)``, a space where Euclidean distance
    approximates CIEDE2000 (Cui et al. 2002; ``DIN99_CONSTANTS``).

    Example:
        >>> lab_to_din99(np.array([100.0, 0.0, 0.0])).round(2).tolist()
        [100.0, 0.0, 0.0]
    """
    _check_points(lab, "lab")
    c1, c2, angle, squeeze, c5, c6 = DIN99_CONSTANTS
    theta = math.radians(angle)
    light, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    e = a * cos_t + b * sin_t
    f = squeeze * (b * cos_t - a * sin_t)
    # (a99, b99) = C99 / G * rotate((e, f), theta) with G = |(e, f)|: the ratio C99 / G is smooth
    # (-> c5 * c6 at G = 0), so neutral colors get a finite gradient (no atan2 or |.| at 0).
    ratio = _log1p_ratio(e * e + f * f, c5, c6)
    return stack_last(
        (
            c1 * namespace(lab).log1p(c2 * light),
            ratio * (e * cos_t - f * sin_t),
            ratio * (f * cos_t + e * sin_t),
        )
    )


def _log1p_ratio(g2: ArrayT, c5: float, c6: float) -> ArrayT:
    """``c5 * log1p(c6 * g) / g`` for ``g = sqrt(g2)``, with its limit ``c5 * c6`` at 0."""
    xp = namespace(g2)
    tiny = 1e-24
    safe = xp.sqrt(xp.where(g2 > tiny, g2, xp.ones_like(g2)))
    limit = xp.full_like(g2, c5 * c6)
    return xp.where(g2 > tiny, c5 * xp.log1p(c6 * safe) / safe, limit)


def _expm1_ratio(c2: ArrayT, c5: float, c6: float) -> ArrayT:
    """``expm1(c / c5) / (c6 * c)`` for ``c = sqrt(c2)``, with its limit ``1 / (c5 c6)`` at 0."""
    xp = namespace(c2)
    tiny = 1e-24
    safe = xp.sqrt(xp.where(c2 > tiny, c2, xp.ones_like(c2)))
    limit = xp.full_like(c2, 1.0 / (c5 * c6))
    return xp.where(c2 > tiny, xp.expm1(safe / c5) / (c6 * safe), limit)


def din99_to_lab(din: ArrayT) -> ArrayT:
    """DIN99b ``(..., 3)`` to CIELAB; inverse of :func:`lab_to_din99`."""
    _check_points(din, "din")
    c1, c2, angle, squeeze, c5, c6 = DIN99_CONSTANTS
    theta = math.radians(angle)
    light99, a99, b99 = din[..., 0], din[..., 1], din[..., 2]
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    # (e, f) = G / C99 * rotate((a99, b99), -theta); G / C99 is smooth at C99 = 0.
    ratio = _expm1_ratio(a99 * a99 + b99 * b99, c5, c6)
    e = ratio * (a99 * cos_t + b99 * sin_t)
    f = ratio * (b99 * cos_t - a99 * sin_t) / squeeze
    light = namespace(din).expm1(light99 / c1) / c2
    return stack_last((light, e * cos_t - f * sin_t, e * sin_t + f * cos_t))


def embed(rgb: ArrayT, space: ColorSpace) -> ArrayT:
    """sRGB floats in [0, 1] to the coordinates the clustering works in (differentiable).

    ``rgb`` is the 0..255 scale (distances in 8-bit units); ``lab`` is CIELAB; ``oklab`` is
    OKLab; ``din99`` is DIN99b; ``hybrid`` is six coordinates, the ``rgb`` ones followed by
    ``HYBRID_DIN99_WEIGHT`` times the ``din99`` ones.

    Args:
        rgb: ``(..., 3)`` float sRGB in [0, 1], a NumPy array or a tensor (dtype and device are
            kept; on tensors the result is differentiable, finite gradients included at black).
        space: one of ``COLOR_SPACES``.

    Returns:
        ``(..., 3)`` (``(..., 6)`` for ``hybrid``) coordinates of the input's kind.

    Example:
        >>> embed(np.array([0.0, 0.5, 1.0]), "rgb").tolist()
        [0.0, 127.5, 255.0]
    """
    check_choice("color_space", space, COLOR_SPACES)
    _check_points(rgb, "rgb")
    if space == "rgb":
        return rgb * 255.0
    if space == "oklab":
        return rgb_to_oklab(rgb)
    lab = rgb_to_lab(rgb)
    if space == "lab":
        return lab
    din = lab_to_din99(lab)
    if space == "din99":
        return din
    if isinstance(rgb, np.ndarray):
        return np.concatenate((rgb * 255.0, din * HYBRID_DIN99_WEIGHT), axis=-1)
    return namespace(rgb).cat((rgb * 255.0, din * HYBRID_DIN99_WEIGHT), dim=-1)


def encode_colors(colors: ArrayT, space: ColorSpace, dtype: Any = None) -> ArrayT:
    """8-bit sRGB colors to the coordinates the clustering works in: :func:`embed` of
    ``colors / 255``, computed in float64 (the RGB coordinates are exact integers).

    Args:
        colors: ``(..., 3)`` uint8 sRGB, a NumPy array or a tensor.
        space: one of ``COLOR_SPACES``.
        dtype: float dtype of the result, of the input's kind; default float64 for NumPy (what
            the compiled CPU kernels take), float32 for tensors.

    Returns:
        ``(..., 3)`` float array (``(..., 6)`` for ``hybrid``) of the input's kind, on its device.
    """
    check_choice("color_space", space, COLOR_SPACES)
    if dtype is None:
        dtype = sys.modules["torch"].float32 if is_tensor(colors) else np.float64
    if space == "rgb":
        return colors.astype(dtype) if isinstance(colors, np.ndarray) else colors.to(dtype)
    # Convert in float64 then cast: cheap (colors are distinct colors, not pixels) and exact.
    if isinstance(colors, np.ndarray):
        out = embed(colors.astype(np.float64) / 255.0, space)
        return out.astype(dtype, copy=False)
    return embed(colors.to(sys.modules["torch"].float64) / 255.0, space).to(dtype)


def decode_colors(points: ArrayT, space: ColorSpace) -> ArrayT:
    """Coordinates of ``space`` back to 8-bit sRGB: the nearest representable color, clipped.

    ``hybrid`` decodes its RGB coordinates: a K-means centroid's are the mean RGB of its
    colors, the color that minimises their squared RGB error (PSNR).

    Args:
        points: ``(..., 3)`` (``(..., 6)`` for ``hybrid``) float array or tensor in the
            coordinates of :func:`encode_colors`.
        space: one of ``COLOR_SPACES``.

    Returns:
        ``(..., 3)`` uint8, of the input's kind and on its device.
    """
    check_choice("color_space", space, COLOR_SPACES)
    if space == "hybrid":
        return decode_colors(points[..., :3], "rgb")
    if isinstance(points, np.ndarray):
        x = points.astype(np.float64)
    else:
        x = points.detach().to(sys.modules["torch"].float64)
    if space == "oklab":
        x = oklab_to_rgb(x) * 255.0
    elif space != "rgb":
        x = lab_to_rgb(din99_to_lab(x) if space == "din99" else x) * 255.0
    if isinstance(x, np.ndarray):
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return x.round().clamp(0, 255).to(sys.modules["torch"].uint8)
