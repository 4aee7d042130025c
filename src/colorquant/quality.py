"""pngquant's quality scale: :func:`quality_of` a result, and the error of a result below a
minimum quality (:class:`QualityTooLowError`).

:func:`colorquant.quantize`'s ``quality=(min, max)`` and the command's ``--quality MIN-MAX`` read
qualities on this scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from ._checks import InputError
from .result import QuantizeResult

__all__ = [
    "LIQ_MSE_POWER",
    "LIQ_MSE_SCALE",
    "QualityTooLowError",
    "fewest_colors",
    "liq_error",
    "quality_of",
]

FitT = TypeVar("FitT")

# pngquant's quality scale. libimagequant (pngquant's library, src/quant.rs: quality_to_mse and
# mse_to_quality) maps a quality q in 0..100 to the largest error it accepts, in its own units
# (the "MSE" pngquant's --verbose prints: 0..255 channels, but measured after a gamma of 0.57
# and with channel weights):
#     e(q) = 65536/6 (max(0, 0.016 / (q + 0.001) - 0.001) + 2.5 (100.1 - q) / (100 (210 + q)^1.2)),
# strictly decreasing from e(0) = 174,000 to e(100) = 0.028 (q = 100 means lossless to it). Its
# reported quality is the largest whole q with error <= e(q), so pngquant writes an image when
# its error is at most e(MIN). Our error is the plain 8-bit sRGB MSE: on the 24 Kodak photos
# (pngquant 3.0.3 --nofs at K = 2..256, benchmarks/quality_calibration.py, BENCHMARKS.md
# "pngquant's quality scale") its error is LIQ_MSE_SCALE * MSE ** LIQ_MSE_POWER, fitted by least
# squares in log space.
LIQ_MSE_SCALE = 0.297
LIQ_MSE_POWER = 1.05


def liq_error(quality: float) -> float:
    """The error libimagequant allows at ``quality`` (0..100), in its MSE units."""
    fudge = max(0.0, 0.016 / (quality + 0.001) - 0.001)  # steeper below quality 16
    slope = 2.5 * (100.1 - quality) / (100.0 * float((210.0 + quality) ** 1.2))
    return 65536.0 / 6.0 * (fudge + slope)


def quality_of(psnr: float) -> float:
    """pngquant's quality (0..100) of a result with this PSNR: the scale of ``quality=`` and
    ``--quality``, calibrated on Kodak so that ``--quality MIN-MAX`` means what it means to
    pngquant.

    The PSNR's MSE (8-bit sRGB) is turned into libimagequant's error (see ``LIQ_MSE_SCALE``),
    and the quality is where libimagequant's curve e(q) meets it, as a real number: pngquant
    prints ``floor(quality_of(psnr))``, and an image reaches a minimum ``m`` when
    ``quality_of(psnr) >= m``. Strictly increasing in the PSNR up to 100, reached at an MSE of
    0.105 (57.9 dB) and above (lossless included); some anchors: quality 60 at 32.4 dB, 65 at
    33.1, 80 at 35.6, 90 at 38.7, 95 at 41.6. On Kodak it is within 2.6 (RMS) of pngquant's
    own reading of the same colors (BENCHMARKS.md): libimagequant's error also depends on an
    image's tones and hues, which the PSNR does not see.

    Example:
        >>> round(quality_of(30.0)), round(quality_of(40.0)), quality_of(float("inf"))
        (36, 93, 100.0)
    """
    psnr = float(psnr)
    if math.isnan(psnr):
        raise InputError("psnr must be a number, got nan")
    if psnr == math.inf:
        return 100.0
    error = LIQ_MSE_SCALE * (255.0**2 * 10.0 ** (-psnr / 10.0)) ** LIQ_MSE_POWER
    if error <= liq_error(100.0):
        return 100.0
    if error >= liq_error(0.0):
        return 0.0
    low, high = 0.0, 100.0  # liq_error(low) > error >= liq_error(high)
    for _ in range(48):  # to 100 / 2^48: far below any quality that matters
        middle = 0.5 * (low + high)
        if liq_error(middle) > error:
            low = middle
        else:
            high = middle
    return high


class QualityTooLowError(ValueError):
    """Even the most colors allowed do not reach the minimum quality.

    Attributes:
        result: that try (the most colors allowed).
        quality: its quality (:func:`quality_of`), below ``minimum``.
        minimum: the minimum asked for.
    """

    def __init__(
        self, message: str, result: QuantizeResult, quality: float = 0.0, minimum: float = 0.0
    ) -> None:
        super().__init__(message)
        self.result = result
        self.quality = quality
        self.minimum = minimum


def fewest_colors(
    most: int,
    fewest: int,
    target: tuple[float, float],
    attempt: Callable[[int], tuple[FitT, QuantizeResult]],
    final: Callable[[FitT, QuantizeResult], QuantizeResult],
) -> QuantizeResult:
    """:func:`colorquant.quantize`'s ``quality=(min, max)``: the fewest colors, in
    ``fewest..most``, whose plain mapping reaches ``max`` (bisection); ``most`` if none does;
    QualityTooLowError if even ``most`` stays below ``min``.

    As pngquant's, the quality is that of the plain mapping (each pixel its nearest color):
    a dither adds error on purpose, and is applied (``final``) once K is chosen.

    Args:
        most: the most colors allowed (``n_colors``).
        fewest: the fewest worth trying (the fixed colors; at least 1).
        target: ``(min, max)`` on :func:`quality_of`'s scale.
        attempt: K -> the fit with K colors and its plain result.
        final: the fit chosen and its plain result -> the result returned.
    """
    low, high = target
    best_fit, best = attempt(most)
    reached = quality_of(best.psnr)
    if reached < low:
        raise QualityTooLowError(
            f"quality {math.floor(reached)} with {most} colors is below {low:g}",
            final(best_fit, best),
            reached,
            low,
        )
    lo, hi = max(1, fewest), most  # hi reaches `high` (or is the most allowed)
    while lo < hi and reached >= high:
        mid = (lo + hi) // 2
        trial_fit, trial = attempt(mid)
        if quality_of(trial.psnr) >= high:
            hi, best_fit, best = mid, trial_fit, trial
        else:
            lo = mid + 1
    return final(best_fit, best)
