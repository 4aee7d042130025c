"""Figures: a before/after preview, an elbow plot to choose K, and a 3-D cloud of colors.

matplotlib is imported inside the functions (importing :mod:`colorquant.viz` stays cheap) and
figures are plain :class:`matplotlib.figure.Figure` objects on the Agg canvas: no pyplot, no
global figure registry, nothing to close. Each function returns its figure and, given ``path``,
also saves it atomically through :func:`colorquant.io.atomic_write` (PNG, PDF or SVG by suffix).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._checks import InputError, as_rgb8, check_choice, check_int_range
from ._extras import require
from .color import COLOR_SPACES, ColorSpace, encode_colors, rgb_to_lab
from .io import PathLike, atomic_write
from .metrics import ciede2000, psnr_from_mse

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .quantize import QuantizeResult

__all__ = [
    "CHECKER_GRAYS",
    "FIGURE_SUFFIXES",
    "checkerboard",
    "cloud_figure",
    "delta_e_map",
    "elbow_figure",
    "figure_suffix",
    "over_checkerboard",
    "preview_figure",
    "save_figure",
]

#: Figure formats :func:`save_figure` writes, by file suffix.
FIGURE_SUFFIXES: tuple[str, ...] = (".png", ".pdf", ".svg")
_AXIS_LABELS: dict[str, tuple[str, str, str]] = {
    "rgb": ("R", "G", "B"),
    "lab": ("a*", "b*", "L*"),
    "oklab": ("a", "b", "L"),
    "din99": ("a99", "b99", "L99"),
    "hybrid": ("a99", "b99", "L99"),
}
_CHUNK = 1 << 20  # color pairs per ΔE00 chunk: bounds the float64 temporaries


def figure_suffix(path: PathLike) -> str:
    """The lower-case suffix of a figure path.

    Raises:
        InputError: not one of ``FIGURE_SUFFIXES``; the message lists them.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        shown = repr(suffix) if suffix else "(no suffix)"
        valid = ", ".join(FIGURE_SUFFIXES)
        raise InputError(f"{path}: unknown figure format {shown}, use one of {valid}")
    return suffix


def save_figure(figure: Figure, path: PathLike, *, force: bool = False, dpi: int = 100) -> int:
    """Save ``figure`` atomically as PNG, PDF or SVG (by suffix).

    Args:
        figure: the figure.
        path: output file; the suffix picks the format.
        force: allow replacing an existing file.
        dpi: resolution of raster output.

    Returns:
        The size in bytes of the written file.

    Raises:
        InputError: unknown suffix.
        FileExistsError: the file exists and ``force`` is false.
        colorquant.io.WriteError: the file cannot be written.
    """
    fmt = figure_suffix(path)[1:]
    return atomic_write(path, lambda fh: figure.savefig(fh, format=fmt, dpi=dpi), force=force)


def _new_figure(width: float, height: float) -> Figure:
    require("matplotlib", "a figure (colorquant.viz)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _finish(figure: Figure, path: PathLike | None, force: bool) -> Figure:
    if path is not None:
        save_figure(figure, path, force=force)
    return figure


def delta_e_map(original_rgb8: np.ndarray, quantized_rgb8: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 between two images.

    Computed once per distinct (original, quantized) color pair, which a quantized photo has a
    few times fewer of than pixels.

    Args:
        original_rgb8: ``(H, W, 3)`` uint8 sRGB.
        quantized_rgb8: ``(H, W, 3)`` uint8 sRGB, same shape.

    Returns:
        ``(H, W)`` float32 ΔE00 (computed in float64, in chunks of 2^20 pairs).

    Raises:
        InputError: shapes differ or are not ``(H, W, 3)``.
    """
    a = as_rgb8(original_rgb8, "original_rgb8")
    b = as_rgb8(quantized_rgb8, "quantized_rgb8")
    if a.shape != b.shape:
        raise InputError(f"original and quantized shapes differ: {a.shape} and {b.shape}")

    def packed(x: np.ndarray) -> np.ndarray:
        x64 = x.reshape(-1, 3).astype(np.int64)
        return (x64[:, 0] << 16) | (x64[:, 1] << 8) | x64[:, 2]

    pairs, inverse = np.unique((packed(a) << 24) | packed(b), return_inverse=True)
    shifts = np.array([40, 32, 24, 16, 8, 0], dtype=np.int64)
    channels = ((pairs[:, None] >> shifts) & 255).astype(np.float64) / 255.0  # (P, 6)
    per_pair = np.empty(pairs.shape[0], dtype=np.float32)
    for start in range(0, pairs.shape[0], _CHUNK):
        chunk = channels[start : start + _CHUNK]
        lab_a, lab_b = rgb_to_lab(chunk[:, :3]), rgb_to_lab(chunk[:, 3:])
        per_pair[start : start + _CHUNK] = ciede2000(lab_a, lab_b)
    return per_pair[inverse.reshape(-1)].reshape(a.shape[:2])


#: The checkerboard transparent pixels are drawn over: two light grays, 8-pixel squares.
CHECKER_GRAYS: tuple[int, int] = (204, 255)
_CHECKER = 8


def checkerboard(height: int, width: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 checkerboard of :data:`CHECKER_GRAYS` in 8-pixel squares."""
    y, x = np.mgrid[0:height, 0:width]
    gray = np.where((y // _CHECKER + x // _CHECKER) % 2 == 0, *CHECKER_GRAYS).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def over_checkerboard(rgba8: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA composited over :func:`checkerboard`: ``(H, W, 3)`` uint8."""
    a = rgba8[..., 3:].astype(np.float64) / 255.0
    back = checkerboard(*rgba8.shape[:2]).astype(np.float64)
    out = rgba8[..., :3].astype(np.float64) * a + back * (1.0 - a)
    return np.rint(out).astype(np.uint8)


def _palette_bars(ax: Axes, palette: np.ndarray, counts: np.ndarray) -> None:
    """Horizontal bars, one per palette color drawn in that color, most used on top; with
    alpha (``(K, 4)``), translucent entries drawn at their alpha and the fully transparent
    entry hatched and labelled "transparent"."""
    order = np.argsort(-counts, kind="stable")
    colors, values = palette[order], counts[order]
    rows = np.arange(len(order))
    face = colors / 255.0
    bars = ax.barh(rows, values, color=face, edgecolor="black", linewidth=0.4, height=0.85)
    clear = colors[:, 3] == 0 if colors.shape[1] == 4 else np.zeros(len(colors), bool)
    for bar, is_clear in zip(bars, clear.tolist(), strict=True):
        if is_clear:
            bar.set_facecolor("white")
            bar.set_hatch("////")
    ax.invert_yaxis()
    ax.set_xlabel("pixels")
    ax.set_xlim(0, float(values.max()) * 1.25)
    if len(order) <= 32:
        labels = [
            "transparent" if c else "#" + "".join(f"{v:02x}" for v in color.tolist())
            for color, c in zip(colors, clear.tolist(), strict=True)
        ]
        ax.set_yticks(rows, labels)
        ax.tick_params(axis="y", labelsize="x-small")
        for row, value in zip(rows.tolist(), values.tolist(), strict=True):
            ax.text(value, row, f" {value:,}", va="center", fontsize="x-small")
    else:
        ax.set_yticks([])
        for row in np.flatnonzero(clear).tolist():
            ax.text(values[row], row, " transparent", va="center", fontsize="x-small")
    ax.set_title(f"palette: {len(order)} colors, by pixel count")


def preview_figure(
    original_rgb8: np.ndarray,
    result: QuantizeResult,
    *,
    path: PathLike | None = None,
    force: bool = False,
    mse: float | None = None,
    delta_e: float | None = None,
) -> Figure:
    """Original and quantized side by side, the palette with pixel counts, the ΔE00 map.

    Four panels (and a colorbar): the original, the quantized image, a per-pixel CIEDE2000 heat
    map, and one bar per palette color (drawn in it) with its pixel count, most used first.
    The title gives K, MSE, PSNR and the mean ΔE00.

    With transparency (an ``(H, W, 4)`` original, or an RGBA result) both images are drawn
    over a checkerboard (:func:`over_checkerboard`), the error map leaves out the pixels that
    are fully transparent in the original (drawn blank: nothing there is seen) and measures the
    others on their colors, and the fully transparent palette entry is hatched and labelled.

    Args:
        original_rgb8: ``(H, W, 3)`` uint8 sRGB, or ``(H, W, 4)`` RGBA, the image that was
            quantized.
        result: its :class:`colorquant.QuantizeResult`.
        path: if given, also save the figure there (PNG, PDF or SVG).
        force: allow replacing an existing file at ``path``.
        mse, delta_e: the metrics the title gives, when measured otherwise than the result's
            (the command's GIF output of a translucent image: against the input, not the image
            with its alpha cut); the PSNR follows the MSE.

    Returns:
        The figure (5 axes: 4 panels and the colorbar).

    Raises:
        InputError: the image and the result differ in size.
    """
    arr = np.asarray(original_rgb8)
    rgba = arr.ndim == 3 and arr.shape[2] == 4
    original = as_rgb8(arr[..., :3] if rgba else arr, "original_rgb8")
    out = result.to_numpy()
    quantized = out[..., :3]
    if original.shape != quantized.shape:
        raise InputError(
            f"original_rgb8 is {original.shape[1]}x{original.shape[0]} pixels, the result "
            f"{quantized.shape[1]}x{quantized.shape[0]}"
        )
    error = delta_e_map(original, quantized)
    if rgba or out.shape[2] == 4:
        alpha = arr[..., 3] if rgba else np.full(original.shape[:2], 255, np.uint8)
        error = np.where(alpha == 0, np.nan, error).astype(np.float32)  # unseen: left out
        original = over_checkerboard(np.dstack([original, alpha]).astype(np.uint8))
        quantized = over_checkerboard(out if out.shape[2] == 4 else np.dstack([out, alpha]))
    height, width = original.shape[:2]
    aspect = height / width
    figure = _new_figure(11.0, max(4.0, min(11.0, 2 * 5.5 * aspect + 1.2)))
    axes = figure.subplots(2, 2)
    for ax, image, label in (
        (axes[0, 0], original, "original"),
        (axes[0, 1], quantized, f"quantized: {result.n_colors} colors"),
    ):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(label)
        ax.set_axis_off()
    heat = axes[1, 0].imshow(error, cmap="magma", vmin=0.0, interpolation="nearest")
    axes[1, 0].set_title(r"error per pixel, CIEDE2000 $\Delta E_{00}$")
    axes[1, 0].set_axis_off()
    figure.colorbar(heat, ax=axes[1, 0], shrink=0.85, label=r"$\Delta E_{00}$")
    _palette_bars(axes[1, 1], result.palette, result.counts)
    shown_mse = result.mse if mse is None else mse
    mean_de = result.delta_e if delta_e is None else delta_e
    figure.suptitle(
        f"K = {result.n_colors}   MSE {shown_mse:.2f}   PSNR {psnr_from_mse(shown_mse):.2f} dB   "
        rf"mean $\Delta E_{{00}}$ {mean_de:.2f}   ({result.color_space}, {result.method})"
    )
    return _finish(figure, path, force)


def elbow_figure(
    ks: Sequence[int],
    mses: Sequence[float],
    *,
    path: PathLike | None = None,
    force: bool = False,
) -> Figure:
    """MSE (left axis) and PSNR (right axis) against palette size K, K on a log2 axis.

    Args:
        ks: palette sizes, ``(M,)`` ints >= 1.
        mses: the MSE of each (8-bit units, mean over pixels and channels), ``(M,)``.
        path: if given, also save the figure there (PNG, PDF or SVG).
        force: allow replacing an existing file at ``path``.

    Returns:
        The figure (2 axes: MSE and its PSNR twin).

    Raises:
        InputError: empty or unequal lengths, K < 1 or a negative MSE.
    """
    k = np.asarray(ks, dtype=np.int64)
    err = np.asarray(mses, dtype=np.float64)
    if k.ndim != 1 or k.shape != err.shape or k.size == 0:
        raise InputError(f"ks and mses must be equal, non-empty 1-D, got {k.shape} and {err.shape}")
    if (k < 1).any() or (err < 0).any() or not np.isfinite(err).all():
        raise InputError("ks must be >= 1 and mses finite and >= 0")
    psnr = np.array([psnr_from_mse(float(e)) for e in err])
    psnr[~np.isfinite(psnr)] = np.nan  # lossless: no finite PSNR to draw
    figure = _new_figure(7.0, 4.5)
    ax = figure.add_subplot()
    ax.plot(k, err, "o-", color="tab:blue", label="MSE")
    ax.set_xscale("log", base=2)
    ax.set_xticks(k.tolist(), [str(v) for v in k.tolist()])
    ax.minorticks_off()
    ax.set_xlabel("palette size K")
    ax.set_ylabel("MSE (8-bit units)", color="tab:blue")
    ax.set_ylim(bottom=0.0)
    ax.grid(True, alpha=0.3)
    twin = ax.twinx()
    twin.plot(k, psnr, "s--", color="tab:orange", label="PSNR")
    twin.set_ylabel("PSNR (dB)", color="tab:orange")
    ax.set_title("quantization error against palette size")
    return _finish(figure, path, force)


def _sample(counts: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    """Indices of at most ``max_points`` colors, drawn without replacement, weighted by count."""
    candidates = np.flatnonzero(counts > 0)
    if candidates.size <= max_points:
        return candidates
    weights = counts[candidates].astype(np.float64)
    rng = np.random.default_rng(seed)
    picked = rng.choice(candidates.size, size=max_points, replace=False, p=weights / weights.sum())
    return np.sort(candidates[picked])


def cloud_figure(
    colors_rgb8: np.ndarray,
    counts: np.ndarray,
    palette_rgb8: np.ndarray,
    color_space: ColorSpace,
    *,
    max_points: int = 5000,
    seed: int = 0,
    path: PathLike | None = None,
    force: bool = False,
) -> Figure:
    """3-D scatter of an image's colors, each in its own color, with the palette centers.

    At most ``max_points`` distinct colors are drawn, sampled without replacement with
    probability proportional to their pixel counts (so the cloud shows where the pixels are);
    palette colors are large black-edged markers. Coordinates are those the clustering works in
    (:func:`colorquant.color.encode_colors`): R, G, B (0..255) for ``"rgb"``; a*, b*, L* for
    ``"lab"``; a, b, L for ``"oklab"``; a99, b99, L99 for ``"din99"`` (lightness vertical).

    Args:
        colors_rgb8: ``(N, 3)`` uint8 distinct sRGB colors of the image.
        counts: ``(N,)`` pixel count of each color (>= 0).
        palette_rgb8: ``(K, 3)`` uint8 palette.
        color_space: one of :data:`colorquant.color.COLOR_SPACES`.
        max_points: most colors drawn, >= 1.
        seed: seed of the sampling.
        path: if given, also save the figure there (PNG, PDF or SVG).
        force: allow replacing an existing file at ``path``.

    Returns:
        The figure (one 3-D axes).

    Raises:
        InputError: wrong shapes, negative counts, unknown color space.
    """
    space: ColorSpace = check_choice("color_space", color_space, COLOR_SPACES)
    max_points = check_int_range("max_points", max_points, 1)
    colors = np.asarray(colors_rgb8)
    weights = np.asarray(counts)
    palette = np.asarray(palette_rgb8)
    for name, arr in (("colors_rgb8", colors), ("palette_rgb8", palette)):
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.dtype != np.uint8 or arr.shape[0] == 0:
            raise InputError(f"{name} must be a non-empty (N, 3) uint8 array, got {arr.shape}")
    if weights.shape != (colors.shape[0],) or (weights < 0).any():
        raise InputError(f"counts must be ({colors.shape[0]},) and >= 0, got shape {weights.shape}")
    shown = _sample(weights, max_points, seed)
    # hybrid's six coordinates are drawn as its perceptual half, DIN99b.
    drawn: ColorSpace = "din99" if space == "hybrid" else space
    points = encode_colors(colors[shown], drawn)
    centers = encode_colors(palette, drawn)
    # Lightness on the vertical axis for the Lab spaces: (a, b, L).
    order = [0, 1, 2] if space == "rgb" else [1, 2, 0]
    points, centers = points[:, order], centers[:, order]

    require("matplotlib", "a figure (colorquant.viz)")
    import mpl_toolkits.mplot3d  # noqa: F401  (registers the "3d" projection)

    figure = _new_figure(7.0, 6.5)
    ax: Any = figure.add_subplot(projection="3d")
    ax.scatter(
        points[:, 0],
        points[:, 1],
        points[:, 2],
        c=colors[shown] / 255.0,
        s=6,
        depthshade=False,
        linewidths=0,
    )
    ax.scatter(
        centers[:, 0],
        centers[:, 1],
        centers[:, 2],
        c=palette / 255.0,
        s=140,
        edgecolors="black",
        linewidths=1.2,
        depthshade=False,
    )
    x_label, y_label, z_label = _AXIS_LABELS[space]
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_zlabel(z_label)
    total = int(np.count_nonzero(weights))
    ax.set_title(
        f"{shown.size:,} of {total:,} colors in {space}, {palette.shape[0]} palette centers"
    )
    return _finish(figure, path, force)
