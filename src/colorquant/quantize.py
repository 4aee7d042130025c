"""The orchestrator: the only module that knows the order of the stages.

    image -> 8-bit pixels -> color histogram -> [coarse cells -> seed -> Lloyd] -> Lloyd on the
    exact histogram -> 8-bit palette -> exact nearest color of every distinct color -> indices

Quantizing one image is fitting a palette on its histogram and applying it; a palette shared by a
dataset is fitted on the merged histogram of its images and applied to each one. Every path
(:func:`quantize`, :class:`Quantizer`, the CLI) runs the same two methods,
``Quantizer._fit_histogram`` and ``Quantizer._apply_histogram``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from . import _cpu
from ._array import Array, is_tensor, to_numpy
from ._checks import (
    InputError,
    as_pixels,
    check_choice,
    check_int_range,
    check_positive,
    resolve_device,
)
from .alpha import (
    OPAQUE,
    TRANSLUCENT,
    bin_rgba,
    decode_rgba,
    eligible_rows,
    encode_rgba,
    kind_of,
    mse_rgba,
    nearest_of_kind,
    pack_rgba,
    prepare_rgba,
    refine_kinds,
    rgba_histogram,
    transparent_points,
    with_alpha,
)
from .color import COLOR_SPACES, DEFAULT_COLOR_SPACE, ColorSpace, encode_colors, rgb_to_lab
from .color import decode_colors as _decode
from .histogram import (
    ColorHistogram,
    bin_colors,
    cell_means,
    color_histogram,
    merge_histograms,
    pack_rgb,
)
from .init import INITS, InitMethod, initial_centroids
from .kmeans import KMeansResult, _weighted_kmeans, fit_adam, inherit_bounds
from .metrics import ciede2000, mse, psnr_from_mse
from .nearest import nearest

if TYPE_CHECKING:
    import torch

__all__ = [
    "DATASET_SPEED",
    "DEFAULT_SPEED",
    "DITHERS",
    "METHODS",
    "BatchResult",
    "Dither",
    "FitSettings",
    "Method",
    "QualityTooLowError",
    "QuantizeResult",
    "Quantizer",
    "quality_of",
    "quantize",
    "quantize_batch",
    "settings_for_speed",
]

log = logging.getLogger(__name__)

Method = Literal["kmeans", "adam"]
METHODS: tuple[Method, ...] = ("kmeans", "adam")
MAX_COLORS = 65536
DEFAULT_COLORS = 256
"""The default palette size K of the library and of the commands (``colorquant quantize``,
``colorquant dataset``): 256, as pngquant, ffmpeg's palettegen and GIF use, the most a PNG or
GIF palette holds; ``quality=`` / ``--quality`` then picks fewer where fewer reach its maximum."""
DEFAULT_SPEED = 4
DATASET_SPEED = 7
"""The fit speed of dataset jobs (``--speed``): on the 24 Kodak photos at K = 256, one thread,
the fit takes 46-50 ms against 73 at the library's default (speed 4) for 0.21 dB less PSNR,
still 0.72 dB above ``pngquant 256 --nofs`` (BENCHMARKS.md, "Datasets"): at dataset scale
throughput comes first."""
ADAM_STEPS = 100
"""Optimiser steps of ``method="adam"`` unless ``max_iter`` says otherwise."""


@dataclass(frozen=True)
class FitSettings:
    """What one ``speed`` value sets (libimagequant's one-knob idea).

    Attributes:
        levels: bits per channel of the RGB cells of the coarse stages, coarsest first. The
            seeding and the first Lloyd runs work on the weighted means of the cells of the
            first level that has enough cells; each later level starts from the centroids of the
            one before; the exact histogram comes last.
        seed_ratio: the seeding level is the first of ``levels`` with at least
            ``seed_ratio * K`` cells (coarser levels are skipped): enough cells per centroid
            for k-means++ to see the image's structure, few enough to be cheap.
        n_init: seedings tried at K <= 64 (fewer above, down to 1 at K >= 256); the lowest
            objective is kept.
        coarse_iter: Lloyd iterations at most on each coarse level.
        coarse_tol: relative tolerance of the coarse levels.
        max_iter: Lloyd iterations at most on the exact histogram.
        tol: relative tolerance of the exact histogram.
    """

    levels: tuple[int, ...]
    seed_ratio: int
    n_init: int
    coarse_iter: int
    coarse_tol: float
    max_iter: int
    tol: float


def settings_for_speed(speed: int) -> FitSettings:
    """Fit settings for ``speed`` in 1 (slowest, best) .. 10 (fastest).

    The default, ``DEFAULT_SPEED``, was chosen by ``benchmarks/compare.py`` (BENCHMARKS.md).
    """
    speed = check_int_range("speed", speed, 1, 10)
    table = {
        1: FitSettings((), 0, 8, 300, 1e-6, 300, 1e-6),
        2: FitSettings((6,), 0, 4, 100, 1e-6, 50, 1e-6),
        3: FitSettings((5, 6), 32, 4, 60, 1e-5, 10, 1e-5),
        4: FitSettings((4, 5, 6), 16, 4, 40, 1e-4, 5, 1e-4),
        5: FitSettings((4, 5, 6), 32, 2, 30, 1e-4, 3, 1e-4),
        6: FitSettings((4, 5, 6), 16, 2, 30, 1e-4, 2, 1e-4),
        7: FitSettings((4, 5), 16, 1, 30, 1e-4, 2, 1e-3),
        8: FitSettings((4, 5), 8, 1, 20, 1e-3, 1, 1e-3),
        9: FitSettings((4, 5), 4, 1, 10, 1e-3, 1, 1e-3),
        10: FitSettings((4,), 4, 1, 10, 1e-3, 1, 1e-3),
    }
    return table[speed]


@dataclass(frozen=True)
class QuantizeResult:
    """A quantized image: indices into a palette, with the fit's record and metrics.

    Attributes:
        palette: ``(K, 3)`` uint8 sRGB; ``(K, 4)`` RGBA for an image with transparency. For a
            palette fitted to this image alone (:func:`quantize` without ``palette``),
            exactly the colors used, most used first (with alpha, the translucent entries
            first, as a PNG's ``tRNS`` chunk wants them). For a given or shared palette
            (``palette=``, :meth:`Quantizer.from_palette`, :meth:`Quantizer.fit` or
            :meth:`Quantizer.partial_fit` then :meth:`Quantizer.apply`), that palette itself:
            all its rows, in its order, used or not (README, "Palettes and indices").
        indices: ``(H, W)`` uint8 (uint16 when K > 256) index of every pixel into ``palette``.
        counts: ``(K,)`` int64 pixels per palette row (0 for an unused row of a given or
            shared palette).
        mse: mean squared error over pixels and channels, 8-bit units (see :mod:`metrics`);
            with transparency, over the 4 channels of premultiplied RGBA
            (:func:`colorquant.alpha.mse_rgba`).
        psnr: ``10 log10(255^2 / mse)`` in dB.
        delta_e: mean CIEDE2000 over pixels (computed on first access); with transparency,
            weighted by each pixel's alpha.
        history: fit objective after each iteration (weighted mean squared distance in the
            fit's color space); empty for a given palette.
        n_iter: iterations the fit ran.
        converged: whether the fit met its tolerance.
        color_space: the space colors were compared in.
        method: ``"kmeans"``, ``"adam"`` or ``"palette"`` (a given palette).
        seconds: wall time of fit + map (not of decoding the image).
    """

    palette: np.ndarray
    indices: np.ndarray
    counts: np.ndarray
    mse: float
    psnr: float
    history: tuple[float, ...]
    n_iter: int
    converged: bool
    color_space: ColorSpace
    method: str
    seconds: float
    # (distinct colors, the palette row of each, pixel counts): what delta_e is computed from;
    # or a function that makes them, when that costs more than a histogram lookup (dithering).
    _mapping: Any = field(repr=False, compare=False)

    @cached_property
    def delta_e(self) -> float:
        """Mean CIEDE2000 over pixels, from the distinct colors (same number as per pixel)."""
        mapping = self._mapping() if callable(self._mapping) else self._mapping
        colors, color_index, weights = mapping
        if colors.shape[1] == 4:  # how much a color shows: its alpha
            weights = weights * (colors[:, 3] / 255.0)
            colors = colors[:, :3]
        if weights.sum() == 0:
            return 0.0  # nothing visible
        # CIELAB of the K palette colors, gathered, rather than of M mapped colors.
        lab = rgb_to_lab(self.palette[:, :3] / 255.0)[color_index]
        return float(weights @ ciede2000(rgb_to_lab(colors / 255.0), lab) / weights.sum())

    @property
    def n_colors(self) -> int:
        """Number of palette rows: the colors used, or every row of a given or shared palette."""
        return int(self.palette.shape[0])

    @property
    def has_alpha(self) -> bool:
        """Whether the palette has an alpha channel (the image had transparency)."""
        return int(self.palette.shape[1]) == 4

    def to_numpy(self) -> np.ndarray:
        """The quantized image as ``(H, W, 3)`` uint8 sRGB (``(H, W, 4)`` RGBA with alpha)."""
        out: np.ndarray = self.palette[self.indices]
        return out

    def to_tensor(self) -> torch.Tensor:
        """The quantized image as a ``(3, H, W)`` float32 tensor in [0, 1] (``(4, H, W)`` with
        alpha; imports torch)."""
        import torch

        return torch.from_numpy(self.to_numpy()).permute(2, 0, 1).float().div_(255.0)

    def to_pil(self) -> Any:
        """A palette-mode (``"P"``) PIL image whose palette is exactly :attr:`palette`, in order.

        With alpha, ``info["transparency"]`` holds the alpha of the palette entries up to the
        last translucent one (what PNG's ``tRNS`` chunk stores).

        Raises:
            ValueError: more than 256 colors, which a ``"P"`` image cannot hold.
        """
        from PIL import Image

        if self.n_colors > 256:
            raise ValueError(
                f"a palette image holds at most 256 colors, this one has {self.n_colors}"
            )
        height, width = self.indices.shape
        data = np.ascontiguousarray(self.indices, dtype=np.uint8).tobytes()
        image = Image.frombytes("P", (width, height), data)
        image.putpalette(
            np.ascontiguousarray(self.palette[:, :3], dtype=np.uint8).tobytes(), rawmode="RGB"
        )
        if self.has_alpha:
            alpha = self.palette[:, 3]
            clear = np.flatnonzero(alpha < 255)
            if clear.size:
                image.info["transparency"] = alpha[: clear[-1] + 1].astype(np.uint8).tobytes()
        return image


@dataclass(frozen=True)
class _Fit:
    palette: Any  # (K, 3) uint8: NumPy on the CPU, a tensor on other devices; (K, 4) NumPy RGBA
    history: tuple[float, ...] = ()
    n_iter: int = 0
    converged: bool = True
    method: str = "palette"
    n_fixed: int = 0  # the first rows are fixed colors: kept in every result palette
    # A given or shared palette: every result lists all its rows, in its order (index space).
    pinned: bool = False


def _pixels_of(image: Any, keep_rgb: bool = False, rgba: bool = False) -> np.ndarray:
    """An image as the pipeline takes it: ``(H, W, 3)`` uint8, or ``(H, W, 4)`` RGBA for an
    image with transparency (or any image, with ``rgba``), fully transparent pixels zeroed
    unless ``keep_rgb`` (:func:`colorquant.alpha.prepare_rgba`)."""
    pixels = as_pixels(image)
    if rgba or pixels.shape[2] == 4:
        pixels = prepare_rgba(with_alpha(pixels), keep_rgb)
    return pixels


def _histogram_of(pixels: np.ndarray, device: str) -> tuple[ColorHistogram, tuple[int, int]]:
    """The color histogram of :func:`_pixels_of` pixels, and their ``(H, W)``: RGBA in NumPy
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


def _on_device(array: np.ndarray, device: str) -> Array:
    if device == "cpu":
        return array
    import torch

    return torch.from_numpy(array).to(device)


def _as_dtype(x: Any, like: Any) -> Any:
    return x.astype(like.dtype) if isinstance(x, np.ndarray) else x.to(like.dtype)


def _rows_in(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: which ``(N, C)`` uint8 rows occur in the ``(M, C)`` uint8 ``table``."""
    if len(table) == 0:
        return np.zeros(len(rows), dtype=bool)
    pack = pack_rgba if rows.shape[1] == 4 else pack_rgb
    return np.isin(pack(rows), pack(table))


def _encode(colors: Any, space: ColorSpace) -> Any:
    """Clustering coordinates of ``(M, 3)`` colors, or of ``(M, 4)`` RGBA (premultiplied:
    :func:`colorquant.alpha.encode_rgba`)."""
    if colors.shape[1] == 4:
        return encode_rgba(to_numpy(colors), space)
    return encode_colors(colors, space)


def _concat_rows(first: Any, second: Any) -> Any:
    if isinstance(first, np.ndarray):
        return np.concatenate([first, second])
    import torch

    return torch.cat([first, second])


def _arange(n: int, like: Array) -> Array:
    if isinstance(like, np.ndarray):
        return np.arange(n)
    import torch

    return torch.arange(n, device=like.device)


def _used_colors(
    counts: np.ndarray, keep: int = 0, palette: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The used palette rows, most used first (ties: lower row first), and old row -> new row.

    The first ``keep`` rows (fixed colors) are kept even when unused, after the used ones. An
    RGBA ``palette`` puts its translucent rows first (for a short ``tRNS`` chunk).
    """
    if palette is not None and palette.shape[1] == 4:
        opaque = palette[:, 3] == 255
        order = np.lexsort((np.arange(counts.size), -counts, opaque))
    else:
        order = np.argsort(-counts, kind="stable")
    used = order[(counts[order] > 0) | (order < keep)]
    remap = np.full(counts.shape[0], -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    return used, remap


def _nearest_rows(colors: Any, points: Any, palette: Any, palette_points: Any) -> np.ndarray:
    """The palette row each histogram color maps to: ``(M,)`` int64 on the host.

    With an RGBA palette, each color among the rows of its kind (:func:`alpha.kind_of`: opaque
    colors on opaque rows, fully transparent ones on transparent rows); else the nearest row.
    ``points`` and ``palette_points`` are ``colors`` and ``palette`` encoded.
    """
    if palette.shape[1] == 4:
        kinds = kind_of(to_numpy(colors)[:, 3])
        rows = kind_of(to_numpy(palette)[:, 3])
        return nearest_of_kind(to_numpy(points), kinds, to_numpy(palette_points), rows)[0]
    return to_numpy(nearest(points, palette_points)[0])


def _listed_rows(fit: _Fit, counts: np.ndarray, full: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``full`` a result lists, in its order, and row -> listed row: every row in
    place for a given or shared (``pinned``) palette, else :func:`_used_colors`."""
    if fit.pinned:
        rows = np.arange(counts.shape[0])
        return rows, rows
    return _used_colors(counts, keep=fit.n_fixed, palette=full)


def _groups_kept(points: np.ndarray, run: KMeansResult[Any], space: ColorSpace) -> bool:
    """Whether every point's centroid lies in the point's group (transparent or visible)."""
    mine = transparent_points(points, space)
    theirs = transparent_points(to_numpy(run.centroids), space)[to_numpy(run.labels)]
    return bool(np.array_equal(mine, theirs))


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


def _liq_error(quality: float) -> float:
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
    if error <= _liq_error(100.0):
        return 100.0
    if error >= _liq_error(0.0):
        return 0.0
    low, high = 0.0, 100.0  # _liq_error(low) > error >= _liq_error(high)
    for _ in range(48):  # to 100 / 2^48: far below any quality that matters
        middle = 0.5 * (low + high)
        if _liq_error(middle) > error:
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


def _check_quality(value: Any) -> tuple[float, float]:
    """``(min, max)`` with ``0 <= min <= max <= 100`` (numbers), else InputError."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"quality must be (min, max) in 0..100, got {value!r}") from None
    if not 0.0 <= low <= high <= 100.0:  # NaN fails too
        raise InputError(f"quality must be (min, max) with 0 <= min <= max <= 100, got {value!r}")
    return low, high


def _check_strength(value: Any) -> float:
    strength = float(value)
    if not 0.0 <= strength <= 1.0:
        raise InputError(f"dither_strength must be in [0, 1], got {value!r}")
    return strength


def _restarts(settings: FitSettings, k: int) -> int:
    """Seedings tried: ``settings.n_init`` up to K = 64, fewer above, one from K = 256 on."""
    return max(1, min(settings.n_init, settings.n_init * 64 // k))


def _check_fixed(fixed_colors: Any, n_colors: int, method: str) -> np.ndarray:
    """``fixed_colors`` as a ``(F, 3)`` uint8 array (``F = 0`` for None), checked."""
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


#: Held while a quantizer fits lazily (:meth:`Quantizer._fitted`); module-wide, so that a
#: quantizer stays picklable (dataset workers receive one).
_LAZY_FIT_LOCK = threading.RLock()


class Quantizer:
    """Two-phase quantizer: fit a palette once, then apply it to any number of images.

    Args:
        n_colors: palette size K, 1..65536 (palette images hold at most 256).
        color_space: where distances are measured: ``"hybrid"`` (the default: RGB and DIN99b
            together, see :data:`colorquant.color.HYBRID_DIN99_WEIGHT`), ``"rgb"`` (best
            PSNR), ``"lab"`` (CIELAB), ``"oklab"`` or ``"din99"`` (DIN99b, whose distances
            approximate CIEDE2000: best mean ΔE00).
        method: ``"kmeans"`` (Lloyd) or ``"adam"`` (gradient descent on the same objective).
        init: ``"k-means++"`` (greedy, weighted) or ``"random"``.
        speed: 1 (slowest, best) .. 10 (fastest); sets stages and iterations
            (:func:`settings_for_speed`).
        max_iter: override the exact stage's iteration cap (Adam: the number of steps,
            default ``ADAM_STEPS``).
        tol: override the exact stage's relative tolerance.
        seed: the only source of randomness: the same seed gives the same palette.
        device: ``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"`` or ``"mps"``.
        fixed_colors: ``(F, 3)`` distinct 8-bit colors, ``F <= n_colors``, kept in every
            fitted palette (K-means never moves them; the other ``n_colors - F`` are fitted
            around them), and listed in every result's palette even where no pixel uses them.
        posterize: bits per channel, 1..8, of the fitted colors (the fixed ones excepted), for
            displays of lower depth: each is rounded to the nearest value with that many bits
            (replicated to 8), and pixels are mapped to the rounded palette (alpha is kept).
        keep_transparent_rgb: keep the RGB under fully transparent pixels (texture padding):
            it is clustered too, into palette entries of alpha 0. By default those pixels are
            one color, ``(0, 0, 0, 0)``, and share one entry.

    Images with transparency (an alpha channel that some pixel uses) are clustered on their
    RGBA colors, premultiplied (:mod:`colorquant.alpha`), on the CPU; the palette is then
    ``(K, 4)``. A fully transparent pixel never becomes visible, nor the reverse.

    Example:
        >>> import numpy as np
        >>> img = np.zeros((4, 4, 3), np.uint8); img[:, 2:] = 200
        >>> q = Quantizer(n_colors=2, color_space="rgb").fit(img)
        >>> sorted(map(tuple, q.palette.tolist()))
        [(0, 0, 0), (200, 200, 200)]
        >>> q.apply(img).mse
        0.0
    """

    def __init__(
        self,
        n_colors: int = DEFAULT_COLORS,
        *,
        color_space: ColorSpace = DEFAULT_COLOR_SPACE,
        method: Method = "kmeans",
        init: InitMethod = "k-means++",
        speed: int = DEFAULT_SPEED,
        max_iter: int | None = None,
        tol: float | None = None,
        seed: int = 0,
        device: str = "auto",
        fixed_colors: Any = None,
        posterize: int | None = None,
        keep_transparent_rgb: bool = False,
    ) -> None:
        self.keep_transparent_rgb = bool(keep_transparent_rgb)
        self.n_colors = check_int_range("n_colors", n_colors, 1, MAX_COLORS)
        self.posterize = (
            None if posterize is None else check_int_range("posterize", posterize, 1, 8)
        )
        self.color_space: ColorSpace = check_choice("color_space", color_space, COLOR_SPACES)
        self.method: Method = check_choice("method", method, METHODS)
        self.init: InitMethod = check_choice("init", init, INITS)
        self.settings = settings_for_speed(speed)
        self.speed = speed
        self.max_iter = None if max_iter is None else check_int_range("max_iter", max_iter, 1)
        self.tol = None if tol is None else check_positive("tol", tol)
        self.seed = check_int_range("seed", seed, 0)
        self.device = resolve_device(device)
        self.fixed = _check_fixed(fixed_colors, self.n_colors, self.method)
        self._fit: _Fit | None = None
        # partial_fit's merged histogram, and whether the palette is older than it.
        self._seen: ColorHistogram | None = None
        self._stale = False

    # -- public -----------------------------------------------------------------------------

    @classmethod
    def from_palette(
        cls,
        palette: np.ndarray | torch.Tensor | Sequence[Sequence[int]],
        *,
        color_space: ColorSpace = DEFAULT_COLOR_SPACE,
        device: str = "auto",
        keep_transparent_rgb: bool = False,
    ) -> Quantizer:
        """A quantizer that maps to the given colors instead of fitting.

        Args:
            palette: ``(K, 3)`` uint8-valued sRGB colors, or ``(K, 4)`` RGBA, 1 <= K <= 65536.
                Every result's palette is this one, all K rows in this order (indices point
                into it). An image with fully transparent pixels mapped to a palette without a
                fully transparent entry gets one more, ``(0, 0, 0, 0)``, as row K.
            color_space: where nearest colors are measured.
            device, keep_transparent_rgb: as for the constructor.
        """
        arr = to_numpy(palette)
        if arr.ndim != 2 or arr.shape[1] not in (3, 4) or not 1 <= arr.shape[0] <= MAX_COLORS:
            raise InputError(
                f"palette must be (K, 3) or (K, 4) with 1 <= K <= {MAX_COLORS}, got {arr.shape}"
            )
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
            raise InputError("palette colors must be integers in 0..255")
        q = cls(
            n_colors=arr.shape[0],
            color_space=color_space,
            device=device,
            keep_transparent_rgb=keep_transparent_rgb,
        )
        colors = arr.astype(np.uint8)
        q._fit = _Fit(colors if arr.shape[1] == 4 else _on_device(colors, q.device), pinned=True)
        return q

    def fit(self, images: Any) -> Quantizer:
        """Fit the palette to one image, or one palette shared by a sequence of images.

        Args:
            images: an image (see :func:`colorquant._checks.as_rgb8` for the accepted kinds), a
                list/tuple of images or a ``(B, 3, H, W)`` tensor batch, whose pixels are pooled.

        Returns:
            ``self``, fitted.
        """
        self._seen, self._stale = None, False
        self._fit_shared(self._merged(images, "fit"))
        return self

    def partial_fit(self, images: Any) -> Quantizer:
        """Add images to the colors the palette is fitted on; fit when the palette is next used.

        Every call merges the images' color histograms into one (at most one entry per distinct
        color: bounded memory, however many images). The palette is fitted on everything seen so
        far when it is next needed (:attr:`palette`, :meth:`apply`), and equals what :meth:`fit`
        on all those images at once gives with the same seed. A later :meth:`fit` starts over.

        Args:
            images: an image, a list/tuple of images, or a ``(B, 3, H, W)`` tensor batch.

        Returns:
            ``self``.

        Example:
            >>> import numpy as np
            >>> a, b = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 200, np.uint8)
            >>> q = Quantizer(2, color_space="rgb").partial_fit(a).partial_fit(b)
            >>> q.palette.tolist()
            [[0, 0, 0], [200, 200, 200]]
        """
        new = self._merged(images, "partial_fit")
        if self._seen is not None:
            new = merge_histograms([self._seen, new])
        self._seen, self._stale = ColorHistogram(new.colors, new.counts, None), True
        return self

    def _merged(self, images: Any, name: str) -> ColorHistogram:
        """The merged color histogram of an image, a list of images or a tensor batch."""
        if isinstance(images, (list, tuple)):
            batch = list(images)
        elif is_tensor(images) and images.ndim == 4:
            batch = list(images.unbind(0))
        else:
            batch = [images]
        if not batch:
            raise InputError(f"{name} needs at least one image")
        # One image with transparency makes the shared palette RGBA (merge_histograms).
        keep = self.keep_transparent_rgb
        hists = [_histogram_of(_pixels_of(img, keep), self.device)[0] for img in batch]
        return merge_histograms(hists)

    def apply(
        self, image: Any, *, dither: Dither = "none", dither_strength: float = 1.0
    ) -> QuantizeResult:
        """Map an image to the palette: the result's palette is :attr:`palette` itself, all its
        rows in its order (used or not), and its indices point into it, so every image applied
        shares one index space.

        Args:
            image: any image :func:`quantize` takes.
            dither: ``"none"`` (every pixel its nearest color in ``color_space``, exactly),
                ``"fs"`` (Floyd-Steinberg error diffusion, serpentine, in 8-bit RGB, less at
                edges and in noise) or ``"ordered"`` (8x8 Bayer offsets, the same on every
                frame): :mod:`colorquant.dither`.
            dither_strength: 0..1, how much of the dither.
        """
        start = time.perf_counter()
        check_choice("dither", dither, DITHERS)
        strength = _check_strength(dither_strength)
        rgba = self._fitted().palette.shape[1] == 4  # an RGBA palette: the image as RGBA
        pixels = _pixels_of(image, self.keep_transparent_rgb, rgba)
        if dither != "none":
            return self._apply_pixels(pixels, start, dither, strength)
        hist, shape = _histogram_of(pixels, self.device)
        return self._apply_histogram(hist, shape, start)

    @property
    def palette(self) -> np.ndarray:
        """``(K, 3)`` uint8 palette (unused and duplicate colors included); ``(K, 4)`` RGBA when
        fitted on an image with transparency. Every :meth:`apply` result lists exactly these
        rows in this order: a given palette in its own order; a fitted one with the fixed
        colors first, then the others by the pixels of the fitted images they take, most
        first (with alpha, the translucent rows before the opaque ones)."""
        return to_numpy(self._fitted().palette)

    @property
    def history(self) -> tuple[float, ...]:
        """Objective after each iteration of the last fit."""
        return self._fitted().history

    def with_colors(self, n_colors: int) -> Quantizer:
        """A new, unfitted quantizer with the same options and another palette size."""
        return Quantizer(
            n_colors,
            color_space=self.color_space,
            method=self.method,
            init=self.init,
            speed=self.speed,
            max_iter=self.max_iter,
            tol=self.tol,
            seed=self.seed,
            device=self.device,
            fixed_colors=self.fixed if len(self.fixed) else None,
            posterize=self.posterize,
            keep_transparent_rgb=self.keep_transparent_rgb,
        )

    # -- the pipeline -----------------------------------------------------------------------

    def _fitted(self) -> _Fit:
        if self._stale and self._seen is not None:
            # Threads applying one quantizer at once (the command's files) fit it once: the
            # others wait, and none sees the fit half done (unordered rows).
            with _LAZY_FIT_LOCK:
                if self._stale and self._seen is not None:
                    self._fit_shared(self._seen)
                    self._stale = False
        if self._fit is None:
            raise RuntimeError(
                "this Quantizer has no palette yet: call fit(), partial_fit() or from_palette()"
            )
        return self._fit

    def _fit_shared(self, hist: ColorHistogram) -> None:
        """Fit the palette every later :meth:`apply` shares (:meth:`fit`, :meth:`partial_fit`).

        Its rows get one order, decided on the fitted colors: the fixed colors first, as given;
        then the others by the pixels of ``hist`` they take, most first, the lower row first on
        ties (with an alpha channel, the translucent rows before the opaque ones: a short
        ``tRNS`` chunk). Every result then lists them all, in this order (``pinned``).
        """
        space = self.color_space
        points = _encode(hist.colors, space)  # once, for the fit and the count
        self._fit_histogram(hist, points)
        fit = self._fit
        assert fit is not None
        index = _nearest_rows(hist.colors, points, fit.palette, _encode(fit.palette, space))
        palette = to_numpy(fit.palette)
        counts = np.bincount(index, weights=to_numpy(hist.counts), minlength=len(palette))
        rank = np.arange(len(palette))
        first = rank < fit.n_fixed  # fixed colors keep their place, at the front
        keys: tuple[np.ndarray, ...] = (rank, np.where(first, 0.0, -counts))
        if palette.shape[1] == 4:
            keys = (*keys, palette[:, 3] == 255)
        order = np.lexsort((*keys, ~first))
        self._fit = replace(fit, palette=self._place(palette[order]), pinned=True)

    def _fit_histogram(self, hist: ColorHistogram, points: Any = None) -> None:
        """Fit the palette to ``hist`` (``points``: its colors encoded, when already known)."""
        self._fit_colors(hist, points)
        if self.posterize is not None and self._fit is not None:
            palette = to_numpy(self._fit.palette).copy()
            free = palette[self._fit.n_fixed :, :3]  # alpha is kept
            levels = (1 << self.posterize) - 1
            free[:] = np.rint(np.rint(free * (levels / 255.0)) * (255.0 / levels)).astype(np.uint8)
            if palette.shape[1] == 4:
                self._fit = replace(self._fit, palette=palette)
            else:
                self._fit = replace(self._fit, palette=_on_device(palette, self.device))

    def _place(self, colors: np.ndarray) -> Any:
        """Palette colors where the fit keeps them: RGBA on the host, RGB on the device."""
        return colors if colors.shape[1] == 4 else _on_device(colors, self.device)

    def _decode(self, points: Any, rgba: bool) -> Any:
        if rgba:
            return decode_rgba(to_numpy(points), self.color_space, self.keep_transparent_rgb)
        return _decode(points, self.color_space)

    def _fit_colors(self, hist: ColorHistogram, points: Any) -> None:
        k = self.n_colors
        rgba = hist.colors.shape[1] == 4
        fixed = with_alpha(self.fixed) if rgba else self.fixed
        n_fixed = len(fixed)
        if len(hist) <= k:
            # At most K distinct colors: the palette is the colors themselves, lossless (the
            # fixed colors first, when they fit beside them).
            colors = to_numpy(hist.colors)
            extra = colors[~_rows_in(colors, fixed)]
            if n_fixed + len(extra) <= k:
                both = np.concatenate([fixed, extra])
                palette = self._place(both) if n_fixed or rgba else hist.colors[:]
                self._fit = _Fit(palette, (0.0,), 0, True, self.method, n_fixed)
                return
        if rgba:
            clear = to_numpy(hist.colors)[:, 3] == 0
            if clear.any() and not clear.all() and k < 2:
                raise InputError(
                    "n_colors must be at least 2 for an image with both fully transparent and "
                    "visible pixels (one entry each), got 1"
                )
            if clear.any() and n_fixed >= k:
                raise InputError(
                    f"fixed_colors take all {k} palette entries: none is left for the fully "
                    "transparent pixels (use fewer fixed colors or a larger n_colors)"
                )
        s = self.settings
        # -- torch route (issue 17): the batched torch fit, a batch of one -------------------
        if is_tensor(hist.colors) and not rgba and (self.method, self.init) == ("kmeans", INITS[0]):
            from ._torch.pipeline import fit_histogram

            stages = replace(s, max_iter=self.max_iter or s.max_iter, tol=self.tol or s.tol)
            on_device = self._place(fixed) if n_fixed else None
            palette, n_iter, objective = fit_histogram(
                hist.colors, hist.counts, k, self.color_space, stages,
                n_init=_restarts(s, k), seed=self.seed, fixed8=on_device,
            )  # fmt: skip
            self._fit = _Fit(palette, (objective,), n_iter, True, self.method, n_fixed)
            return
        # -- end of the torch route -----------------------------------------------------------
        if points is None:
            points = _encode(hist.colors, self.color_space)
        weights = _as_dtype(hist.counts, points)
        fixed8: Any = self._place(fixed)
        fixed_points = _as_dtype(_encode(fixed8, self.color_space), points)
        generator = np.random.default_rng(self.seed)
        if self.method == "adam":
            # Adam from the seeds alone, no Lloyd step anywhere: the two fits compare cleanly.
            start = initial_centroids(self.init, points, weights, k, seed=generator)
            steps = self.max_iter if self.max_iter is not None else ADAM_STEPS
            adam = fit_adam(points, weights, start, max_iter=steps, tol=self.tol or 1e-5)
            palette = self._decode(adam.centroids, rgba)
            self._fit = _Fit(palette, adam.history, adam.n_iter, adam.converged, self.method)
            return
        history: list[float] = []
        n_iter = 0
        # Coarse-to-fine: Lloyd on the means of ever finer RGB cells, each level starting from
        # the centroids, labels and bounds of the one before; a level with too few cells for K
        # (or hardly fewer than the exact histogram) is skipped.
        parent: tuple[Any, Any, Any, Any] | None = None
        run: KMeansResult[Any] | None = None
        for bits in s.levels:
            cell, n_cells = bin_rgba(hist.colors, bits) if rgba else bin_colors(hist.colors, bits)
            if n_cells * 2 > len(hist):
                break  # hardly fewer points than the exact histogram: go straight there
            if n_cells < 4 * k:
                continue  # too few cells to place K centroids in
            if run is None and n_cells < s.seed_ratio * k and bits != s.levels[-1]:
                continue  # seed on a finer level, unless this is the last coarse one
            cell_points, cell_weight, scatter = cell_means(points, weights, cell, n_cells)
            if parent is None or run is None:
                run, lower = self._best_seeded_run(
                    cell_points, cell_weight, fixed_points, generator
                )
            else:
                run, lower = _weighted_kmeans(
                    cell_points,
                    cell_weight,
                    run.centroids,
                    max_iter=s.coarse_iter,
                    tol=s.coarse_tol,
                    warm=inherit_bounds(parent, cell, n_cells, cell_points),
                    n_fixed=n_fixed,
                )
            parent = (cell, cell_points, run.labels, lower)
            # A cell's colors share one label at this level, so the objective on the exact
            # histogram is the cell-mean objective plus the constant scatter inside the cells:
            # adding it keeps the history in one unit, non-increasing into the next level.
            history.extend(j + scatter for j in run.history)
            n_iter += run.n_iter
        max_iter = self.max_iter if self.max_iter is not None else s.max_iter
        tol = self.tol if self.tol is not None else s.tol
        if run is None:
            run, _ = self._best_seeded_run(points, weights, fixed_points, generator)
            history.extend(run.history)
            n_iter += run.n_iter
            parent = None
        everything = _arange(len(hist), points)
        warm = None if parent is None else inherit_bounds(parent, everything, len(hist), points)
        result, _ = _weighted_kmeans(
            points, weights, run.centroids, max_iter=max_iter, tol=tol, warm=warm, n_fixed=n_fixed
        )
        history.extend(result.history)
        n_iter += result.n_iter
        if rgba and not _groups_kept(points, result, self.color_space):
            self._fit_groups_apart(hist, points)
            return
        centroids = result.centroids
        if rgba:  # opaque pixels only on opaque entries: a constrained Lloyd from the fit
            centroids, _ = refine_kinds(
                points,
                to_numpy(weights),
                kind_of(to_numpy(hist.colors)[:, 3]),
                to_numpy(centroids),
                self.color_space,
                max_iter=max_iter + 1,
                tol=tol,
            )
        palette = self._decode(centroids, rgba)
        if n_fixed:
            palette[:n_fixed] = self._place(fixed)  # exact, whatever the space
        self._fit = _Fit(palette, tuple(history), n_iter, result.converged, self.method, n_fixed)
        log.debug("fit: %d distinct colors, %d iterations, J=%.6g", len(hist), n_iter, history[-1])

    def _fit_groups_apart(self, hist: ColorHistogram, points: np.ndarray) -> None:
        """Fit the visible colors with ``n_colors - 1`` centroids, the transparent ones with one.

        The joint fit keeps the two groups apart whenever its seeding gave each a centroid
        (they lie so far apart that it nearly always does); this is the fallback.
        """
        peel = transparent_points(points, self.color_space)
        colors, counts = to_numpy(hist.colors), to_numpy(hist.counts)
        rest = self.with_colors(self.n_colors - 1)
        rest.posterize = None  # posterized once, on the whole palette, by the caller
        rest._fit_colors(ColorHistogram(colors[~peel], counts[~peel], None), None)
        fit = rest._fitted()
        w = counts[peel].astype(np.float64)
        mean = (w @ points[peel] / w.sum())[None, :]
        palette = np.concatenate([to_numpy(fit.palette), self._decode(mean, True)])
        self._fit = replace(fit, palette=palette)

    def _best_seeded_run(
        self, points: Any, weights: Any, fixed_points: Any, generator: np.random.Generator
    ) -> tuple[KMeansResult[Any], Any]:
        """Seed several times (``n_init`` at K <= 64, fewer above), keep the lowest objective.

        The fixed colors' points come first in every start; the seeding places the others.
        """
        s = self.settings
        n_init = _restarts(s, self.n_colors)
        n_fixed = len(self.fixed)
        best: tuple[KMeansResult[Any], Any] | None = None
        for _ in range(n_init):
            seed = fixed_points
            if self.n_colors > n_fixed:
                free = initial_centroids(
                    self.init, points, weights, self.n_colors - n_fixed, seed=generator
                )
                seed = _concat_rows(fixed_points, free)
            run = _weighted_kmeans(
                points, weights, seed, max_iter=s.coarse_iter, tol=s.coarse_tol, n_fixed=n_fixed
            )
            if best is None or run[0].inertia < best[0].inertia:
                best = run
        assert best is not None
        return best

    def _apply_histogram(
        self, hist: ColorHistogram, shape: tuple[int, int], start: float, points: Any = None
    ) -> QuantizeResult:
        """Map the image of ``hist`` to the palette (``points`` as for ``_fit_histogram``)."""
        fit = self._fitted()
        assert hist.inverse is not None
        full = self._palette_for(hist.colors)
        palette_points = _encode(full, self.color_space)
        if points is None:
            points = _encode(hist.colors, self.color_space)
        # The search runs where the histogram is; the small bookkeeping after it on the host.
        index = _nearest_rows(hist.colors, points, full, palette_points)
        hist_counts = to_numpy(hist.counts)
        k = full.shape[0]
        counts = np.bincount(index, weights=hist_counts, minlength=k).astype(np.int64)
        full = to_numpy(full)
        used, remap = _listed_rows(fit, counts, full)
        color_index = remap[index]
        palette = full[used]
        small = np.uint8 if used.size <= 256 else np.uint16
        # Gather in the small dtype: one byte a pixel, not eight, for a 24 MP image.
        indices = color_index.astype(small)[to_numpy(hist.inverse)].reshape(shape)
        seconds = time.perf_counter() - start
        colors = to_numpy(hist.colors)
        measure = mse_rgba if colors.shape[1] == 4 else mse
        error = measure(colors, palette[color_index], weights=hist_counts)
        mapping = (colors, color_index, hist_counts.astype(np.float64))
        return self._result(fit, palette, indices, counts[used], error, seconds, mapping)

    def _palette_for(self, colors: Any) -> Any:
        """The fitted palette in the layout of an image's ``colors``: RGB, or RGBA.

        An RGB palette meets an RGBA image as opaque colors, plus ``(0, 0, 0, 0)`` when the
        image has fully transparent pixels and the palette no entry for them.
        """
        palette = self._fitted().palette
        if colors.shape[1] == palette.shape[1] == 3:
            return palette
        rgba = with_alpha(to_numpy(palette))
        clear = to_numpy(colors)[:, 3] == 0
        if clear.any():
            rgba = _with_clear_entry(rgba)
        if not clear.all() and (rgba[:, 3] == 0).all():
            raise InputError("palette has only fully transparent colors: none for visible pixels")
        return rgba

    def _apply_pixels(
        self,
        pixels: np.ndarray,
        start: float,
        dither: Dither,
        strength: float,
    ) -> QuantizeResult:
        """Map every pixel through a dither (positions matter: no histogram shortcut).

        ``pixels``: ``(H, W, 3)`` uint8, or ``(H, W, 4)`` RGBA prepared as the histogram is.
        """
        fit = self._fitted()
        channels = pixels.shape[2]
        flat = pixels.reshape(-1, channels)
        full = to_numpy(self._palette_for(flat))
        index = _map_pixels(pixels, full, self.color_space, dither, strength)
        counts = np.bincount(index.ravel(), minlength=full.shape[0]).astype(np.int64)
        used, remap = _listed_rows(fit, counts, full)
        palette = full[used]
        color_index = remap[index]
        small = np.uint8 if used.size <= 256 else np.uint16
        seconds = time.perf_counter() - start
        if channels == 4:
            error = mse_rgba(flat, palette[color_index].reshape(-1, 4))
        else:  # the mse, exactly (integers), without a float copy of the image
            error = _cpu.squared_error(flat, full, index.ravel()) / (3.0 * index.size)

        def pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            # The distinct (color, palette row) pairs with their pixel counts, for ΔE00.
            pack = pack_rgba if channels == 4 else pack_rgb
            keys = pack(flat).astype(np.int64) * used.size
            found, weights = np.unique(keys + color_index.ravel(), return_counts=True)
            shifts = np.array([24, 16, 8, 0] if channels == 4 else [16, 8, 0])
            colors = (found // used.size)[:, None] >> shifts & 255
            return colors.astype(np.uint8), found % used.size, weights.astype(np.float64)

        indices = color_index.astype(small)
        return self._result(fit, palette, indices, counts[used], error, seconds, pairs)

    def _result(
        self,
        fit: _Fit,
        palette: np.ndarray,
        indices: np.ndarray,
        counts: np.ndarray,
        error: float,
        seconds: float,
        mapping: Any,
    ) -> QuantizeResult:
        return QuantizeResult(
            palette=palette,
            indices=indices,
            counts=counts,
            mse=error,
            psnr=psnr_from_mse(error),
            history=fit.history,
            n_iter=fit.n_iter,
            converged=fit.converged,
            color_space=self.color_space,
            method=fit.method,
            seconds=seconds,
            _mapping=mapping,
        )


def quantize(
    image: Any,
    n_colors: int = DEFAULT_COLORS,
    *,
    color_space: ColorSpace = DEFAULT_COLOR_SPACE,
    method: Method = "kmeans",
    init: InitMethod = "k-means++",
    speed: int = DEFAULT_SPEED,
    max_iter: int | None = None,
    tol: float | None = None,
    seed: int = 0,
    device: str = "auto",
    palette: np.ndarray | torch.Tensor | None = None,
    fixed_colors: Any = None,
    dither: Dither = "none",
    dither_strength: float = 1.0,
    quality: tuple[float, float] | None = None,
    posterize: int | None = None,
    keep_transparent_rgb: bool = False,
) -> QuantizeResult:
    """Reduce an image to at most ``n_colors`` colors.

    Fits a palette by weighted K-means on the image's color histogram (or takes ``palette``),
    then maps every pixel to its nearest palette color in ``color_space``.

    An image with transparency (a PIL image with alpha or a transparent color, an
    ``(H, W, 4)`` array, a ``(4, H, W)`` tensor, some pixel below alpha 255) is quantized in
    RGBA: see :class:`Quantizer` and :mod:`colorquant.alpha`.

    Args:
        image: PIL image, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 / float [0, 1] ndarray, or
            ``(3, H, W)`` or ``(4, H, W)`` tensor (uint8 or float in [0, 1]).
        n_colors: palette size K (ignored with ``palette``).
        palette: optional ``(K, 3)`` (or RGBA ``(K, 4)``) uint8 colors to map to instead of
            fitting; the result's palette is then this one, all K rows in its order.
        fixed_colors: ``(F, 3)`` colors every fitted palette keeps (see :class:`Quantizer`).
        dither: ``"none"``, ``"fs"`` or ``"ordered"``; ``dither_strength``: 0..1 (see
            :meth:`Quantizer.apply`).
        quality: ``(min, max)`` on pngquant's scale (:func:`quality_of`, 0..100): use the
            fewest colors, at most ``n_colors``, whose result reaches ``max`` (found by
            bisection); if none does, ``n_colors``; if even that is below ``min``, raise. As
            pngquant's, the quality is that of the mapping without dithering (the dither, if
            asked, is applied to the colors chosen).
        posterize: bits per channel of the fitted colors (see :class:`Quantizer`).
        keep_transparent_rgb: keep the RGB under fully transparent pixels (see
            :class:`Quantizer`).
        Others: see :class:`Quantizer`.

    Returns:
        A :class:`QuantizeResult`.

    Raises:
        QualityTooLowError: with ``quality``, ``n_colors`` colors stay below ``min`` (the error
            carries that result).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>> res = quantize(img, n_colors=8, color_space="rgb", seed=0)
        >>> res.palette.shape, res.indices.shape, res.n_colors <= 8
        ((8, 3), (32, 32), True)
    """
    start = time.perf_counter()
    device = resolve_device(device, like=image)
    if palette is not None and fixed_colors is not None:
        raise InputError("give palette (map to it) or fixed_colors (fit around them), not both")
    if palette is not None:
        q = Quantizer.from_palette(
            palette,
            color_space=color_space,
            device=device,
            keep_transparent_rgb=keep_transparent_rgb,
        )
    else:
        q = Quantizer(
            n_colors,
            color_space=color_space,
            method=method,
            init=init,
            speed=speed,
            max_iter=max_iter,
            tol=tol,
            seed=seed,
            device=device,
            fixed_colors=fixed_colors,
            posterize=posterize,
            keep_transparent_rgb=keep_transparent_rgb,
        )
    check_choice("dither", dither, DITHERS)
    strength = _check_strength(dither_strength)
    target = None if quality is None else _check_quality(quality)
    # The image converted once, for the histogram and a dithered map (which needs the pixels);
    # with a given RGBA palette, as RGBA.
    rgba = q._fit is not None and q._fit.palette.shape[1] == 4
    pixels = _pixels_of(image, q.keep_transparent_rgb, rgba)
    hist, shape = _histogram_of(pixels, q.device)
    points = _encode(hist.colors, q.color_space)  # once, for every fit and map

    def run(quantizer: Quantizer) -> QuantizeResult:
        if palette is None:
            quantizer._fit_histogram(hist, points)
        if dither != "none":
            return quantizer._apply_pixels(pixels, start, dither, strength)
        return quantizer._apply_histogram(hist, shape, start, points)

    if target is None or palette is not None:
        return run(q)
    # The fewest colors that reach the maximum quality; the most if only the minimum is reached.
    # As pngquant's, the quality is that of the plain mapping (each pixel its nearest color): a
    # dither adds error on purpose, and is applied once K is chosen.

    def mapped(quantizer: Quantizer) -> QuantizeResult:
        quantizer._fit_histogram(hist, points)
        return quantizer._apply_histogram(hist, shape, start, points)

    def final(quantizer: Quantizer, plain: QuantizeResult) -> QuantizeResult:
        if dither == "none":
            return plain
        return quantizer._apply_pixels(pixels, start, dither, strength)

    low, high = target
    best_q, best = q, mapped(q)
    reached = quality_of(best.psnr)
    if reached < low:
        raise QualityTooLowError(
            f"quality {math.floor(reached)} with {n_colors} colors is below {low:g}",
            final(q, best),
            reached,
            low,
        )
    lo, hi = max(1, len(q.fixed)), n_colors  # hi reaches `high` (or is the most allowed)
    while lo < hi and reached >= high:
        mid = (lo + hi) // 2
        trial_q = q.with_colors(mid)
        trial = mapped(trial_q)
        if quality_of(trial.psnr) >= high:
            hi, best_q, best = mid, trial_q, trial
        else:
            lo = mid + 1
    return final(best_q, best)


# -- batches of tensors -----------------------------------------------------------------------

Dither = Literal["none", "ordered", "fs"]
DITHERS: tuple[Dither, ...] = ("none", "ordered", "fs")
Backend = Literal["auto", "torch"]
BACKENDS: tuple[Backend, ...] = ("auto", "torch")


@dataclass(frozen=True)
class BatchResult:
    """A quantized batch (tensors on the input's device).

    Attributes:
        palettes: ``(B, K, 3)`` uint8 (``(B, K, 4)`` RGBA with alpha). A palette fitted per
            image lists its rows ``0 .. n_colors[b] - 1``, most used first (rows past them
            repeat its last color, so there is never an empty or NaN one). A given or shared
            palette is every image's, whole: all K rows, in its order, used or not.
        indices: ``(B, H, W)`` int64 row of every pixel in its image's palette; a list of
            ``(H, W)`` tensors for a list input.
        image: the quantized batch in the input's layout, dtype and device (uint8, or float in
            [0, 1]); a list for a list input.
        n_colors: ``(B,)`` int64 palette rows each image lists (K for a given or shared one).
        mse: ``(B,)`` float64 MSE of each image (8-bit units, as :func:`colorquant.mse`;
            float32 on MPS).
        psnr: ``(B,)`` float64 PSNR in dB (``inf`` when lossless).
        color_space: the space colors were compared in.

    ``result[b]`` (or :meth:`results`) gives image ``b``'s :class:`QuantizeResult`.
    """

    palettes: torch.Tensor
    indices: Any
    image: Any
    n_colors: torch.Tensor
    mse: torch.Tensor
    psnr: torch.Tensor
    color_space: ColorSpace = DEFAULT_COLOR_SPACE
    # The (H, W, C) uint8 input images, for delta_e (references, not copies).
    _pixels: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.n_colors.shape[0])

    def __getitem__(self, b: int) -> QuantizeResult:
        """Image ``b``'s :class:`QuantizeResult`, on the host: its listed palette rows, its
        indices (uint8, uint16 past 256 rows), pixels per row, MSE and PSNR. A batch keeps no
        fit record: ``history`` is empty, ``n_iter`` 0, ``seconds`` 0."""
        if not -len(self) <= b < len(self):
            raise IndexError(f"image index {b} out of range for a batch of {len(self)}")
        b %= len(self)
        n = int(self.n_colors[b])
        palette = np.ascontiguousarray(to_numpy(self.palettes[b, :n]))
        index = to_numpy(self.indices[b]).astype(np.int64)
        counts = np.bincount(index.ravel(), minlength=n).astype(np.int64)
        pixels = None if self._pixels is None else self._pixels[b]

        def pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if pixels is None:
                raise RuntimeError("this BatchResult holds no input images: no delta_e")
            flat = to_numpy(pixels).reshape(-1, pixels.shape[-1])
            rows = np.concatenate([flat.astype(np.int64), index.reshape(-1, 1)], axis=1)
            found, weights = np.unique(rows, axis=0, return_counts=True)
            return found[:, :-1].astype(np.uint8), found[:, -1], weights.astype(np.float64)

        return QuantizeResult(
            palette=palette,
            indices=index.astype(np.uint8 if n <= 256 else np.uint16),
            counts=counts,
            mse=float(self.mse[b]),
            psnr=float(self.psnr[b]),
            history=(),
            n_iter=0,
            converged=True,
            color_space=self.color_space,
            method="kmeans",
            seconds=0.0,
            _mapping=pairs,
        )

    def results(self) -> list[QuantizeResult]:
        """Every image's :class:`QuantizeResult` (``[result[b] for b in range(B)]``)."""
        return [self[b] for b in range(len(self))]


def _batch_images(x: Any) -> tuple[list[torch.Tensor], bool]:
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


def _batch_palettes(palette: Any, batch: int, like: torch.Tensor) -> list[np.ndarray]:
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


def _with_clear_entry(palette: np.ndarray) -> np.ndarray:
    """An RGBA ``(K, 4)`` palette with a fully transparent entry: itself if it has one, else
    with ``(0, 0, 0, 0)`` after its rows (as :meth:`Quantizer.apply` adds it)."""
    if (palette[:, 3] == 0).any():
        return palette
    return np.concatenate([palette, np.zeros((1, 4), np.uint8)])


def _map_pixels(
    rgb8: np.ndarray,
    palette: np.ndarray,
    space: ColorSpace,
    dither: Dither,
    strength: float,
) -> np.ndarray:
    """Every pixel's palette row through a dither (``"ordered"`` or ``"fs"``): ``(H, W)``.

    ``rgb8``: ``(H, W, 3)`` uint8, or ``(H, W, 4)`` RGBA with a ``(K, 4)`` palette.
    """
    from .dither import diffusion_strength, dither_spread, ordered_amplitude, ordered_map

    if rgb8.shape[2] == 4:
        return _map_rgba_pixels(rgb8, palette, space, dither, strength)
    spread = dither_spread(palette)
    if dither == "fs":
        pal = palette.astype(np.float64)
        return _cpu.dither_fs(rgb8, pal, diffusion_strength(rgb8, strength), spread)
    return ordered_map(rgb8, palette, space, ordered_amplitude(spread, strength))


def _map_rgba_pixels(
    rgba8: np.ndarray,
    palette: np.ndarray,
    space: ColorSpace,
    dither: Dither,
    strength: float,
) -> np.ndarray:
    """:func:`_map_pixels` of an RGBA image: the dither moves the colors of visible pixels;
    each pixel then takes its nearest palette entry of its own group (visible, transparent)."""
    from .alpha import premultiply
    from .color import embed
    from .dither import dither_spread, ordered_amplitude, ordered_offsets

    height, width = rgba8.shape[:2]
    visible_rows = palette[:, 3] > 0
    spread = dither_spread(palette[visible_rows, :3]) if visible_rows.any() else 0.0
    if dither == "fs":
        return _diffuse_rgba(rgba8, palette, space, strength, spread)
    rgb = rgba8[..., :3].astype(np.float64)
    visible = rgba8[..., 3] > 0
    offsets = ordered_offsets(np.empty(0), height, width, ordered_amplitude(spread, strength))
    shifted = np.where(visible[..., None], np.clip(rgb + offsets[..., None], 0.0, 255.0), rgb)
    alpha8 = rgba8[..., 3].reshape(-1)
    points = premultiply(embed(shifted.reshape(-1, 3) / 255.0, space), alpha8 / 255.0, space)
    rows = kind_of(palette[:, 3])
    index = nearest_of_kind(points, kind_of(alpha8), encode_rgba(palette, space), rows)[0]
    return index.reshape(height, width)


def _diffuse_rgba(
    rgba8: np.ndarray,
    palette: np.ndarray,
    space: ColorSpace,
    strength: float,
    spread: float,
) -> np.ndarray:
    """Floyd-Steinberg of an RGBA image in premultiplied 8-bit RGBA (alpha weighing as three
    channels, as in :mod:`colorquant.alpha`): visible pixels search the visible rows (opaque
    ones take no alpha error), fully transparent pixels keep their own nearest row and take and
    pass no error."""
    from .alpha import premultiplied
    from .dither import diffusion_strength

    height, width = rgba8.shape[:2]
    flat = rgba8.reshape(-1, 4)
    # The fully transparent pixels' rows: their nearest (transparent) ones, not dithered.
    clear = flat[:, 3] == 0
    fixed = np.zeros(flat.shape[0], np.int32)
    if clear.any():
        near = nearest(encode_rgba(flat[clear], space), encode_rgba(palette, space))[0]
        fixed[clear] = to_numpy(near)
    # Groups are the kinds of alpha.kind_of: translucent pixels (1) take any visible row,
    # opaque ones (2) only opaque rows, and no alpha error: the dither keeps them opaque.
    eligible = eligible_rows(kind_of(palette[:, 3]))
    entry_group = (eligible[TRANSLUCENT] << TRANSLUCENT | eligible[OPAQUE] << OPAQUE).astype(
        np.int8
    )
    pixel_group = np.where(clear, -1, kind_of(flat[:, 3])).astype(np.int8)
    pixels = premultiplied(flat).reshape(height, width, 4)
    shown = np.rint(pixels[..., :3]).astype(np.uint8)
    index = _cpu.dither_fs_groups(
        pixels,
        premultiplied(palette),
        np.array([1.0, 1.0, 1.0, 3.0]),
        pixel_group.reshape(height, width),
        entry_group,
        fixed.reshape(height, width),
        diffusion_strength(shown, strength),
        spread,
    )
    return index.astype(np.int64)


def _batch_on_device(
    x: torch.Tensor,
    n_colors: int,
    color_space: ColorSpace,
    seed: int,
    speed: int,
    dither_strength: float | None,
    fixed: np.ndarray | None = None,
    given: np.ndarray | None = None,
) -> BatchResult:
    """quantize_batch in torch: every stage batched over the images (:mod:`._torch.pipeline`).

    ``fixed``: ``(F, 3)`` uint8 colors every palette keeps; ``given``: ``(B, K, 3)`` uint8
    palettes to map to (no fit).
    """
    import torch

    from ._torch.pipeline import quantize_images

    if x.dtype == torch.uint8:
        x8 = x
    else:
        if not x.is_floating_point():
            raise InputError(f"x must be uint8 or float in [0, 1], got {x.dtype}")
        if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
            raise InputError("x must hold finite values in [0, 1] (float input)")
        # 255 x of a float16 or bfloat16 value is exact in float32, not in its own dtype.
        wide = x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)
        x8 = (wide * 255.0).round_().to(torch.uint8)
    s = settings_for_speed(speed)
    out = quantize_images(
        x8,
        n_colors,
        color_space,
        s,
        n_init=_restarts(s, n_colors),
        seed=seed,
        dither_strength=dither_strength,
        fixed8=None if fixed is None or not len(fixed) else torch.from_numpy(fixed).to(x.device),
        given8=None if given is None else torch.from_numpy(given).to(x.device),
    )
    rows = torch.arange(x.shape[0], device=x.device)[:, None, None]
    quantized8 = out.palettes[rows, out.indices].permute(0, 3, 1, 2)
    wide_dtype = torch.float32 if x.device.type == "mps" else torch.float64
    error = out.sq_error.to(wide_dtype) / (3.0 * x.shape[2] * x.shape[3])
    psnr = torch.where(error > 0, 10 * torch.log10(255.0**2 / error), torch.inf)
    image = quantized8 if x.dtype == torch.uint8 else quantized8.to(x.dtype) / 255.0
    pixels = x8.permute(0, 2, 3, 1)
    return BatchResult(
        out.palettes, out.indices, image, out.n_colors, error, psnr, color_space, pixels
    )


def quantize_batch(
    x: Any,
    n_colors: int = DEFAULT_COLORS,
    *,
    color_space: ColorSpace = DEFAULT_COLOR_SPACE,
    palette: Any = None,
    shared: bool = False,
    dither: Dither = "none",
    dither_strength: float = 1.0,
    fixed_colors: Any = None,
    seed: int = 0,
    speed: int = DEFAULT_SPEED,
    device: str = "auto",
    backend: Backend = "auto",
) -> BatchResult:
    """Quantize a batch of images: a palette per image, one shared palette, or a given one.

    On the CPU every image goes through the pipeline of :func:`quantize` (a batch of one gives
    exactly what :func:`quantize` gives), the images in parallel, one per core, each on the
    compiled kernels. On a GPU (or with ``backend="torch"``) a ``(B, 3, H, W)`` batch is fitted
    and mapped all at once by the torch stages (:mod:`colorquant._torch.pipeline`: the same
    coarse-to-fine fit and meaning of ``speed`` as :func:`quantize`, every image stopping on
    its own objective, exact integer sums: an image gives the same result alone as inside any
    batch, whatever autocast or TF32 settings are on), given palettes and fixed colors
    included; a list of images of different sizes takes them one after another there.

    A batch with an alpha channel, ``(B, 4, H, W)``, is quantized in RGBA image by image on
    the CPU (:mod:`colorquant.alpha`; its results come back to the input's device).

    Args:
        x: ``(B, 3, H, W)`` or ``(B, 4, H, W)`` (RGBA) tensor, uint8 or float in [0, 1], on any
            device; or a list of ``(3, H, W)`` or ``(4, H, W)`` tensors of different sizes. Not
            modified.
        n_colors: palette size K, 1..256 (ignored with ``palette``).
        color_space: where distances are measured (see :class:`Quantizer`).
        palette: ``(K, C)`` or ``(B, K, C)`` integer colors in 0..255 to map to instead of
            fitting (e.g. ``Quantizer.palette`` after ``partial_fit`` over a dataset): each
            image's palette is then its given one, all K rows in order.
        shared: fit one palette on the whole batch (its merged histogram) and map every image
            to it; the same seed gives the same palette, in the same order, as
            ``Quantizer(...).fit(list).palette``, and every image lists all of it. Not with
            ``palette``.
        dither: ``"none"``, ``"ordered"`` (an 8x8 Bayer pattern, the same on every frame) or
            ``"fs"`` (Floyd-Steinberg error diffusion, on the CPU): :mod:`colorquant.dither`.
        dither_strength: 0..1, how much of the dither.
        fixed_colors: ``(F, 3)`` colors kept in every fitted palette (K-means never moves
            them; each image's palette lists them, used or not).
        seed: the only randomness.
        speed: 1..10, as for :class:`Quantizer`.
        device: ``"auto"`` (the device of ``x``), ``"cpu"``, ``"cuda"`` or ``"mps"``.
        backend: ``"auto"`` (the compiled kernels on the CPU, the torch stages elsewhere) or
            ``"torch"``: the torch stages (:mod:`colorquant._torch.pipeline`) on any device,
            CPU tensors included (for tests, and machines without the compiled core). Either
            way an RGBA batch or palette, and ``dither="fs"``, take the CPU pipeline.

    Returns:
        A :class:`BatchResult`.

    Raises:
        InputError: a bad batch, palette or option; the message names it.

    Example:
        >>> import torch
        >>> x = torch.rand(4, 3, 16, 16)
        >>> out = quantize_batch(x, 8, color_space="rgb")
        >>> out.image.shape, out.palettes.shape, bool((out.n_colors <= 8).all())
        (torch.Size([4, 3, 16, 16]), torch.Size([4, 8, 3]), True)
    """
    import torch

    images, uniform = _batch_images(x)
    check_int_range("n_colors", n_colors, 1, 256)
    check_choice("dither", dither, DITHERS)
    strength = _check_strength(dither_strength)
    run_device = resolve_device(device, like=images[0])
    torch_stages = check_choice("backend", backend, BACKENDS) == "torch" or run_device != "cpu"
    options: dict[str, Any] = {
        "color_space": color_space,
        "seed": seed,
        "speed": speed,
        "device": run_device,
        "fixed_colors": fixed_colors,
    }
    given: list[np.ndarray] | None = None
    if palette is not None and fixed_colors is not None:
        raise InputError("give palette (map to it) or fixed_colors (fit around them), not both")
    if palette is not None and shared:
        raise InputError("give palette (map to it) or shared=True (fit one), not both")
    if palette is not None:
        given = _batch_palettes(palette, len(images), images[0])
    elif shared:
        q = Quantizer(n_colors, **options).fit(images)
        given = [q.palette] * len(images)
    alpha = any(img.shape[0] == 4 for img in images)
    rgba_palette = given is not None and given[0].shape[1] == 4
    # Error diffusion is sequential; RGBA (images or palette) runs the CPU pipeline: both image
    # by image.
    if torch_stages and uniform and dither != "fs" and not alpha and not rgba_palette:
        return _batch_on_device(
            x,
            n_colors,
            color_space,
            seed,
            speed,
            None if dither == "none" else strength,
            fixed=_check_fixed(fixed_colors, n_colors, "kmeans"),
            given=None if given is None else np.stack([to_numpy(g) for g in given]),
        )
    pixels = [as_pixels(img, f"x[{b}]") for b, img in enumerate(images)]
    if given is not None and alpha:
        # One palette for every image, in index space: the entry for fully transparent pixels
        # that an image with some would get (Quantizer.from_palette) is every image's.
        clear = any(p.shape[2] == 4 and bool((p[..., 3] == 0).any()) for p in pixels)
        given = [_with_clear_entry(with_alpha(g)) if clear else g for g in given]

    def one(b: int) -> tuple[np.ndarray, np.ndarray, float]:
        if given is None:
            res = quantize(pixels[b], n_colors, dither=dither, dither_strength=strength, **options)
        else:
            fixed = Quantizer.from_palette(given[b], color_space=color_space, device=run_device)
            res = fixed.apply(pixels[b], dither=dither, dither_strength=strength)
        palette = with_alpha(res.palette) if alpha or rgba_palette else res.palette
        return palette, res.indices.astype(np.int64), res.mse

    parallel = len(images) if run_device == "cpu" else 1
    with _cpu.shared_threads(parallel) as workers, ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, range(len(images))))
    outputs = [(p, i) for p, i, _ in results]

    k_max = max(p.shape[0] for p, _ in outputs)
    palettes = np.stack(
        [np.concatenate([p, np.repeat(p[-1:], k_max - len(p), 0)]) for p, _ in outputs]
    )
    errors = np.array([e for _, _, e in results])
    dev = images[0].device
    indices = [torch.from_numpy(i).to(dev) for _, i in outputs]
    quantized = []
    for img, (p, i) in zip(images, outputs, strict=True):
        # Each image keeps its own channels: an RGB one stays RGB beside RGBA ones, or with an
        # RGBA palette (its opaque pixels took opaque entries: alpha.kind_of).
        q8 = torch.from_numpy(np.ascontiguousarray(p[i][..., : img.shape[0]]))
        q8 = q8.permute(2, 0, 1).to(dev)
        quantized.append(q8 if img.dtype == torch.uint8 else q8.to(img.dtype) / 255.0)
    return BatchResult(
        palettes=torch.from_numpy(palettes).to(dev),
        indices=torch.stack(indices) if uniform else indices,
        image=torch.stack(quantized) if uniform else quantized,
        n_colors=torch.tensor([p.shape[0] for p, _ in outputs], device=dev),
        mse=torch.from_numpy(errors).to(dev),
        psnr=torch.tensor(
            [psnr_from_mse(float(e)) for e in errors], dtype=torch.float64, device=dev
        ),
        color_space=color_space,
        _pixels=pixels,
    )
