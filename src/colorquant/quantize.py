"""The orchestrator: the only module that knows the order of the stages.

    image -> 8-bit pixels -> color histogram (:mod:`.histogram`) -> palette (:mod:`.fit`)
    -> indices, with or without a dither (:mod:`.remap`, :mod:`.dither`) -> result (:mod:`.result`)

Quantizing one image is fitting a palette on its histogram and applying it; a palette shared by a
dataset is fitted on the merged histogram of its images and applied to each one. Every path
(:func:`quantize`, :class:`Quantizer`, :func:`quantize_batch` on the CPU, the CLI) runs the same
two stage functions, :func:`colorquant.fit.fit_histogram` and
:func:`colorquant.remap.apply_histogram` (or :func:`~colorquant.remap.apply_pixels` with a
dither). The fit's settings come in one :class:`~colorquant.options.FitOptions`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ._array import to_numpy
from ._checks import (
    InputError,
    as_batch,
    as_pixels,
    check_batch_palettes,
    check_choice,
    check_int_range,
    check_palette,
    check_quality,
    check_strength,
    resolve_device,
)
from .alpha import with_alpha
from .batch import batch_on_device as _batch_on_device  # the name tests patch
from .batch import stack_results
from .color import DEFAULT_COLOR_SPACE, ColorSpace
from .dither import DITHERS, Dither
from .fit import Fit, encode_points, fit_histogram, fit_shared, on_device
from .histogram import ColorHistogram, merge_histograms
from .hues import keep_lost_hue
from .init import InitMethod
from .options import (
    ADAM_STEPS,
    BACKENDS,
    DATASET_SPEED,
    DEFAULT_COLORS,
    DEFAULT_SPEED,
    MAX_COLORS,
    METHODS,
    Backend,
    FitOptions,
    FitSettings,
    Method,
    resolve_options,
    settings_for_speed,
)
from .pixels import image_histogram, merged_histogram, pipeline_pixels
from .quality import LIQ_MSE_POWER, LIQ_MSE_SCALE, QualityTooLowError, fewest_colors, quality_of
from .remap import apply_histogram, apply_pixels, with_clear_entry
from .result import BatchResult, QuantizeResult
from .threads import shared_threads

if TYPE_CHECKING:
    import torch

__all__ = [
    "ADAM_STEPS",
    "DATASET_SPEED",
    "DEFAULT_COLORS",
    "DEFAULT_SPEED",
    "DITHERS",
    "LIQ_MSE_POWER",
    "LIQ_MSE_SCALE",
    "MAX_COLORS",
    "METHODS",
    "BatchResult",
    "Dither",
    "FitOptions",
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


def _option(name: str) -> Any:
    """A read-only attribute of :class:`Quantizer` that is its ``options``' ``name``."""
    return property(lambda self: getattr(self.options, name), doc=f"``options.{name}``.")


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
        options: all the fit's settings in one :class:`~colorquant.options.FitOptions`,
            instead of the keywords above (``color_space`` .. ``keep_transparent_rgb``); a
            keyword given beside it must be left at its default or agree with it, else
            :class:`~colorquant.InputError`. :attr:`options` holds the settings either way.

    Images with transparency (an alpha channel that some pixel uses) are clustered on their
    RGBA colors, premultiplied (:mod:`colorquant.alpha`), on the CPU; the palette is then
    ``(K, 4)``. A fully transparent pixel never becomes visible, nor the reverse.

    Attributes:
        n_colors: the palette size K.
        options: the fit's settings; each of its fields reads through as an attribute too
            (``q.color_space``, ``q.seed``, ...; ``q.fixed`` is ``options.fixed``).
        device: the device the work runs on.

    Example:
        >>> import numpy as np
        >>> img = np.zeros((4, 4, 3), np.uint8); img[:, 2:] = 200
        >>> q = Quantizer(n_colors=2, color_space="rgb").fit(img)
        >>> sorted(map(tuple, q.palette.tolist()))
        [(0, 0, 0), (200, 200, 200)]
        >>> q.apply(img).mse
        0.0
        >>> same = Quantizer(2, options=FitOptions(color_space="rgb")).fit(img)
        >>> same.palette.tolist() == q.palette.tolist(), same.color_space
        (True, 'rgb')
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
        options: FitOptions | None = None,
    ) -> None:
        self.n_colors = check_int_range("n_colors", n_colors, 1, MAX_COLORS)
        self.options = resolve_options(
            options,
            self.n_colors,
            fixed_colors,
            color_space=color_space,
            method=method,
            init=init,
            speed=speed,
            max_iter=max_iter,
            tol=tol,
            seed=seed,
            posterize=posterize,
            keep_transparent_rgb=keep_transparent_rgb,
        )
        self.device = resolve_device(device)
        self._fit: Fit | None = None
        # partial_fit's merged histogram, and whether the palette is older than it.
        self._seen: ColorHistogram | None = None
        self._stale = False
        # Made by from_palette: the palette is the caller's, never refitted.
        self._given = False

    color_space = _option("color_space")
    method = _option("method")
    init = _option("init")
    speed = _option("speed")
    max_iter = _option("max_iter")
    tol = _option("tol")
    seed = _option("seed")
    posterize = _option("posterize")
    keep_transparent_rgb = _option("keep_transparent_rgb")
    settings = _option("settings")
    fixed = _option("fixed")

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
        colors = check_palette(palette, MAX_COLORS)
        q = cls(
            n_colors=colors.shape[0],
            color_space=color_space,
            device=device,
            keep_transparent_rgb=keep_transparent_rgb,
        )
        q._fit = Fit(colors if colors.shape[1] == 4 else on_device(colors, q.device), pinned=True)
        q._given = True
        return q

    def _refuse_given(self, method: str) -> None:
        if self._given:
            raise InputError(
                f"{method}() would replace the palette this Quantizer was given "
                "(from_palette); make a Quantizer(n_colors) to fit one"
            )

    def fit(self, images: Any) -> Quantizer:
        """Fit the palette to one image, or one palette shared by a sequence of images.

        Args:
            images: an image (see :func:`colorquant._checks.as_rgb8` for the accepted kinds), a
                list/tuple of images or a ``(B, 3, H, W)`` tensor batch, whose pixels are pooled.

        Returns:
            ``self``, fitted.

        Raises:
            InputError: the quantizer maps to a given palette (:meth:`from_palette`).
        """
        self._refuse_given("fit")
        merged = merged_histogram(images, "fit", self.keep_transparent_rgb, self.device)
        self._fit = fit_shared(merged, self.n_colors, self.options, self.device)
        # What a later partial_fit adds to: the fit's images are part of everything seen.
        self._seen = ColorHistogram(merged.colors, merged.counts, None)
        self._stale = False
        return self

    def partial_fit(self, images: Any) -> Quantizer:
        """Add images to the colors the palette is fitted on; fit when the palette is next used.

        Every call merges the images' color histograms into one (at most one entry per distinct
        color: bounded memory, however many images). The palette is fitted on everything seen so
        far when it is next needed (:attr:`palette`, :meth:`apply`), and equals what :meth:`fit`
        on all those images at once gives with the same seed. The images of an earlier
        :meth:`fit` count as seen; a later :meth:`fit` starts over from its own images.

        Args:
            images: an image, a list/tuple of images, or a ``(B, 3, H, W)`` tensor batch.

        Returns:
            ``self``.

        Raises:
            InputError: the quantizer maps to a given palette (:meth:`from_palette`).

        Example:
            >>> import numpy as np
            >>> a, b = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 200, np.uint8)
            >>> q = Quantizer(2, color_space="rgb").partial_fit(a).partial_fit(b)
            >>> q.palette.tolist()
            [[0, 0, 0], [200, 200, 200]]
        """
        self._refuse_given("partial_fit")
        keep = self.keep_transparent_rgb
        new = merged_histogram(images, "partial_fit", keep, self.device)
        if self._seen is not None:
            new = merge_histograms([self._seen, new])
        self._seen, self._stale = ColorHistogram(new.colors, new.counts, None), True
        return self

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
        strength = check_strength(dither_strength)
        fit = self._fitted()
        rgba = fit.palette.shape[1] == 4  # an RGBA palette: the image as RGBA
        pixels = pipeline_pixels(image, self.keep_transparent_rgb, rgba)
        if dither != "none":
            return apply_pixels(fit, pixels, self.color_space, start, dither, strength)
        hist, shape = image_histogram(pixels, self.device)
        return apply_histogram(fit, hist, shape, self.color_space, start)

    @property
    def palette(self) -> np.ndarray:
        """``(K, 3)`` uint8 palette (unused and duplicate colors included); ``(K, 4)`` RGBA when
        fitted on an image with transparency. Every :meth:`apply` result lists exactly these
        rows in this order: a given palette in its own order; a fitted one with the fixed
        colors first, then the others by the pixels of the fitted images they take, most
        first (with alpha, the translucent rows before the opaque ones)."""
        return to_numpy(self._fitted().palette)

    @property
    def seen(self) -> ColorHistogram | None:
        """Everything the palette is fitted on: the images of the last :meth:`fit` and of every
        :meth:`partial_fit` since, as one merged color histogram (one entry per distinct
        color, with its pixel count), or None."""
        return self._seen

    @property
    def history(self) -> tuple[float, ...]:
        """Objective after each iteration of the last fit."""
        return self._fitted().history

    def with_colors(self, n_colors: int) -> Quantizer:
        """A new, unfitted quantizer with the same options and another palette size."""
        return Quantizer(n_colors, device=self.device, options=self.options)

    def _fitted(self) -> Fit:
        """The palette, fitted now if :meth:`partial_fit` saw images since the last fit."""
        if self._stale and self._seen is not None:
            # Threads applying one quantizer at once (the command's files) fit it once: the
            # others wait, and none sees the fit half done (unordered rows).
            with _LAZY_FIT_LOCK:
                if self._stale and self._seen is not None:
                    self._fit = fit_shared(self._seen, self.n_colors, self.options, self.device)
                    self._stale = False
        if self._fit is None:
            raise RuntimeError(
                "this Quantizer has no palette yet: call fit(), partial_fit() or from_palette()"
            )
        return self._fit


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
    keep_hues: bool = False,
    options: FitOptions | None = None,
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
        keep_hues: after the fit, keep one palette entry for the heaviest small region whose
            hue the palette lost (a green eye in brown fur), fitting again around it
            (:mod:`colorquant.hues`; opaque images, ``method="kmeans"``, not with ``palette``).
        options: the fit's settings in one :class:`~colorquant.options.FitOptions`, instead
            of the fit keywords (a keyword given beside it must be left at its default or
            agree with it); with ``palette``, its ``color_space`` and ``keep_transparent_rgb``.
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
    if not isinstance(keep_hues, bool):
        raise InputError(f"keep_hues must be True or False, got {keep_hues!r}")
    if palette is not None and keep_hues:
        raise InputError("keep_hues fits a palette: give palette (map to it) or keep_hues")
    keywords: dict[str, Any] = {
        "color_space": color_space,
        "method": method,
        "init": init,
        "speed": speed,
        "max_iter": max_iter,
        "tol": tol,
        "seed": seed,
        "posterize": posterize,
        "keep_transparent_rgb": keep_transparent_rgb,
    }
    given: Fit | None = None
    if palette is not None:
        opts = resolve_options(options, MAX_COLORS, None, **keywords)
        if opts.fixed_colors:
            raise InputError("give palette (map to it) or options with fixed_colors, not both")
        colors = check_palette(palette, MAX_COLORS)
        given = Fit(colors if colors.shape[1] == 4 else on_device(colors, device), pinned=True)
    else:
        k = check_int_range("n_colors", n_colors, 1, MAX_COLORS)
        opts = resolve_options(options, k, fixed_colors, **keywords)
    if keep_hues and opts.method != "kmeans":
        raise InputError(f"keep_hues works with method='kmeans', got {opts.method!r}")
    check_choice("dither", dither, DITHERS)
    strength = check_strength(dither_strength)
    target = None if quality is None else check_quality(quality)
    # The image converted once, for the histogram and a dithered map (which needs the pixels);
    # with a given RGBA palette, as RGBA.
    rgba = given is not None and given.palette.shape[1] == 4
    pixels = pipeline_pixels(image, opts.keep_transparent_rgb, rgba)
    hist, shape = image_histogram(pixels, device)
    space = opts.color_space
    points = encode_points(hist.colors, space)  # once, for every fit and map
    if keep_hues and hist.colors.shape[1] == 4:  # (keep_hues means no palette was given)
        raise InputError("keep_hues works on opaque images; this one has transparency")

    def fitted(n: int) -> Fit:
        fit = fit_histogram(hist, n, opts, device, points)
        return keep_lost_hue(fit, hist, n, opts, device, points) if keep_hues else fit

    def plain(fit: Fit) -> QuantizeResult:
        return apply_histogram(fit, hist, shape, space, start, points)

    def final(fit: Fit, plain_result: QuantizeResult | None = None) -> QuantizeResult:
        if dither == "none":
            return plain(fit) if plain_result is None else plain_result
        return apply_pixels(fit, pixels, space, start, dither, strength)

    if given is not None:
        return final(given)
    if target is None:
        return final(fitted(k))

    def attempt(n: int) -> tuple[Fit, QuantizeResult]:
        fit = fitted(n)
        return fit, plain(fit)

    return fewest_colors(k, len(opts.fixed), target, attempt, final)


# -- batches of tensors -----------------------------------------------------------------------


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
    options: FitOptions | None = None,
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
        options: the fit's settings in one :class:`~colorquant.options.FitOptions`, instead of
            ``color_space``, ``fixed_colors``, ``seed`` and ``speed`` (given beside it, each must
            be left at its default or agree with it). Settings the batched GPU path does not
            take (``method="adam"``, ``init="random"``, ``max_iter``, ``tol``, ``posterize``)
            send a GPU batch through the per-image pipeline.
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

    images, uniform = as_batch(x)
    check_int_range("n_colors", n_colors, 1, 256)
    check_choice("dither", dither, DITHERS)
    strength = check_strength(dither_strength)
    run_device = resolve_device(device, like=images[0])
    torch_stages = check_choice("backend", backend, BACKENDS) == "torch" or run_device != "cpu"
    if palette is not None and fixed_colors is not None:
        raise InputError("give palette (map to it) or fixed_colors (fit around them), not both")
    if palette is not None and shared:
        raise InputError("give palette (map to it) or shared=True (fit one), not both")
    opts = resolve_options(
        options, n_colors, fixed_colors, color_space=color_space, seed=seed, speed=speed
    )
    if palette is not None and opts.fixed_colors:
        raise InputError("give palette (map to it) or options with fixed_colors, not both")
    given: list[np.ndarray] | None = None
    if palette is not None:
        given = check_batch_palettes(palette, len(images), images[0])
    elif shared:
        q = Quantizer(n_colors, device=run_device, options=opts).fit(images)
        given = [q.palette] * len(images)
    alpha = any(img.shape[0] == 4 for img in images)
    rgba_palette = given is not None and given[0].shape[1] == 4
    # What the batched torch fit reads of the options: the rest runs the per-image pipeline.
    batched_fit = opts == FitOptions(
        color_space=opts.color_space,
        seed=opts.seed,
        speed=opts.speed,
        fixed_colors=opts.fixed_colors,
        keep_transparent_rgb=opts.keep_transparent_rgb,
    )
    # Error diffusion is sequential; RGBA (images or palette) runs the CPU pipeline: both image
    # by image.
    if (
        torch_stages
        and uniform
        and dither != "fs"
        and not alpha
        and not rgba_palette
        and batched_fit
    ):
        return _batch_on_device(
            x,
            n_colors,
            opts.color_space,
            opts.seed,
            opts.speed,
            None if dither == "none" else strength,
            fixed=opts.fixed,
            given=None if given is None else np.stack([to_numpy(g) for g in given]),
        )
    pixels = [as_pixels(img, f"x[{b}]") for b, img in enumerate(images)]
    if given is not None and alpha:
        # One palette for every image, in index space: the entry for fully transparent pixels
        # that an image with some would get (Quantizer.from_palette) is every image's.
        clear = any(p.shape[2] == 4 and bool((p[..., 3] == 0).any()) for p in pixels)
        given = [with_clear_entry(with_alpha(g)) if clear else g for g in given]

    def one(b: int) -> QuantizeResult:
        if given is None:
            res = quantize(
                pixels[b],
                n_colors,
                dither=dither,
                dither_strength=strength,
                device=run_device,
                options=opts,
            )
        else:
            space = opts.color_space
            fixed = Quantizer.from_palette(given[b], color_space=space, device=run_device)
            res = fixed.apply(pixels[b], dither=dither, dither_strength=strength)
        return res

    parallel = len(images) if run_device == "cpu" else 1
    with shared_threads(parallel) as workers, ThreadPoolExecutor(workers) as pool:
        per_image = list(pool.map(one, range(len(images))))
    wide = alpha or rgba_palette  # every palette RGBA when one image or the palette has alpha
    results = [
        (with_alpha(r.palette) if wide else r.palette, r.indices.astype(np.int64), r.mse)
        for r in per_image
    ]
    return stack_results(images, results, uniform, opts.color_space, pixels, per_image)
