"""What quantizing gives: :class:`QuantizeResult` (one image) and :class:`BatchResult` (a batch).

Both are frozen: indices into a palette, the palette, and the error; a result converts to a
NumPy array, a tensor or a palette-mode PIL image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from ._array import to_numpy
from .color import DEFAULT_COLOR_SPACE, ColorSpace, rgb_to_lab
from .metrics import ciede2000

if TYPE_CHECKING:
    import torch

__all__ = ["BatchResult", "QuantizeResult"]


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
    # Each image's own QuantizeResult where the CPU pipeline made one (its fit record kept).
    _results: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.n_colors.shape[0])

    def __getitem__(self, b: int) -> QuantizeResult:
        """Image ``b``'s :class:`QuantizeResult`, on the host: its listed palette rows, its
        indices (uint8, uint16 past 256 rows), pixels per row, MSE and PSNR.

        On the CPU pipeline it is the very result :func:`colorquant.quantize` gave that image
        (with its fit record). The batched torch stages keep no per-image record: there
        ``history`` is empty, ``n_iter`` 0, ``converged`` False (not known) and ``seconds`` 0.

        Raises:
            TypeError: ``b`` is not an integer (slices are not supported: use
                :meth:`results`).
            IndexError: ``b`` is out of range.
        """
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
            raise TypeError(
                f"a BatchResult is indexed by an image number, got {type(b).__name__} "
                "(results() gives every image's result)"
            )
        b = int(b)
        if not -len(self) <= b < len(self):
            raise IndexError(f"image index {b} out of range for a batch of {len(self)}")
        b %= len(self)
        if self._results is not None:
            return self._results[b]  # type: ignore[no-any-return]
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
            converged=False,
            color_space=self.color_space,
            method="kmeans",
            seconds=0.0,
            _mapping=pairs,
        )

    def results(self) -> list[QuantizeResult]:
        """Every image's :class:`QuantizeResult` (``[result[b] for b in range(B)]``)."""
        return [self[b] for b in range(len(self))]
