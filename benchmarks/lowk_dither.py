"""Low-K dithering against pngquant (issue 18, item 3): research prototypes, measured.

Every variant maps 512x512 centre crops of Kodak photos to K colors with Floyd-Steinberg on
colorquant's compiled kernel (:func:`colorquant.dither.error_diffusion`, serpentine, the
palette's spread as the error cap); they differ in the palette and in the per-pixel strength:

- ``colorquant fs``: ``quantize(img, K, dither="fs")``, the command's default (the baseline);
- ``fs s=...``: the same palette, a lower global ``dither_strength`` (item b);
- ``edge x2`` / ``noise``: the same palette, the strength map attenuated twice as fast at luma
  steps (``EDGE_SCALE`` / 2), or also by the local luma spread (texture, noise) (item b);
- ``refined (targets)``: the palette refined against the dithered map's error, libimagequant's
  idea: a few rounds of "dither with the palette (raster Floyd-Steinberg here, in NumPy, by
  anti-diagonal wavefronts so the error state is visible), then move every entry to the mean
  of the error-diffused target colors of the pixels mapped to it"; ``refined (originals)``:
  the mean of their original colors instead (item a);
- ``blur-LS [s=...]``: the palette that, for the dithered map, minimises the squared error after
  a Gaussian blur of sigma 1 (the eye's low-pass): a K x K linear least-squares (item a);
- ``own fit`` / ``salient a=...``: weighted K-means (:func:`colorquant.weighted_kmeans`, the
  hybrid space, k-means++ seeding) on the histogram, with every pixel weighted 1 (the control)
  or ``1 + a * chroma * rarity`` (saturated colors of rare hue-lightness bins count more, like
  libimagequant's importance map) (item c); `` s=...`` and `` + refined`` combine them.

Metrics, each against the original crop: PNG bytes (Pillow, zlib level 7, the palette-mode file
``colorquant.save_result`` writes; the same with the palette reordered; the same unfiltered;
pngquant: its own file), mean ΔE00 after a Gaussian blur of
both images in linear light at sigma 1 and 2 pixels (viewing distances), the 99th percentile of
that at sigma 2 (where a small colored region turned into another hue shows), SSIM (scikit-image,
Gaussian window, per channel, mean), and PSNR. The table gives the sums/means over the images and
each against pngquant's.

    python benchmarks/lowk_dither.py --k 16 --figures --out benchmarks/lowk_dither_k16.md
    python benchmarks/lowk_dither.py --k 16 --full-size-bytes   # bytes only, all 24 whole photos
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, uniform_filter
from skimage.metrics import structural_similarity

import colorquant as cq
from _common import BENCH_DIR, DEFAULT_IMAGES, load_rgb, markdown_table, report_header
from colorquant.color import (
    decode_colors,
    encode_colors,
    linear_to_srgb,
    rgb_to_lab,
    srgb_to_linear,
)
from colorquant.dither import EDGE_SCALE, diffusion_strength, dither_spread, error_diffusion
from colorquant.init import kmeans_plusplus
from colorquant.io.result import result_bytes

IMAGES = ("kodim01", "kodim03", "kodim04", "kodim05", "kodim07", "kodim15", "kodim20", "kodim23")
CROP = 512
PNGQUANT = Path("/work/main/.venv/bin/pngquant")
KODAK = DEFAULT_IMAGES if DEFAULT_IMAGES.is_dir() else Path("/work/shared/images/kodak")
FIG_DIR = BENCH_DIR / "figures" / "lowk"
SIGMAS = (1.0, 2.0)

Mapped = tuple[np.ndarray, np.ndarray]
"""``(indices (H, W) int, palette (K, 3) uint8)``."""


# -- images and files -------------------------------------------------------------------------


def centre_crop(rgb8: np.ndarray, size: int = CROP) -> np.ndarray:
    """The ``size x size`` centre of an image: ``(size, size, 3)`` uint8, C-contiguous."""
    h, w = rgb8.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(rgb8[y : y + size, x : x + size])


def png_bytes(indices: np.ndarray, palette: np.ndarray) -> bytes:
    """The palette PNG ``save_result`` writes for these indices: used rows only, in order."""
    used = np.flatnonzero(np.bincount(indices.ravel(), minlength=len(palette)))
    remap = np.zeros(len(palette), np.int64)
    remap[used] = np.arange(used.size)
    image = Image.fromarray(remap[indices].astype(np.uint8), "P")
    image.putpalette(palette[used].astype(np.uint8).ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=7)
    return buffer.getvalue()


def reordered(indices: np.ndarray, palette: np.ndarray, order: np.ndarray) -> Mapped:
    """The same image with palette row ``order[i]`` moved to row ``i``."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    return inverse[indices], palette[order]


def chain_order(palette: np.ndarray) -> np.ndarray:
    """Rows from the darkest, each next the nearest (RGB) not yet taken: ``(K,)`` int64."""
    pal = palette.astype(np.float64)
    left = list(range(len(pal)))
    order = [int(np.argmin(luma(pal)))]
    left.remove(order[0])
    while left:
        d = ((pal[left] - pal[order[-1]]) ** 2).sum(1)
        order.append(left.pop(int(np.argmin(d))))
    return np.array(order, np.int64)


def adjacency_order(indices: np.ndarray, k: int, start: np.ndarray) -> np.ndarray:
    """Swaps of two rows from ``start`` while they lower ``sum count(i, j) |pos i - pos j|``, the
    counts those of the horizontally and vertically adjacent pixel pairs: ``(K,)`` int64."""
    count = np.zeros((k, k))
    np.add.at(count, (indices[:, :-1].ravel(), indices[:, 1:].ravel()), 1.0)
    np.add.at(count, (indices[:-1].ravel(), indices[1:].ravel()), 1.0)
    count += count.T

    def cost(order: np.ndarray) -> float:
        pos = np.empty(k)
        pos[order] = np.arange(k)
        return float((count * np.abs(pos[:, None] - pos[None])).sum())

    order, best, better = start.copy(), cost(start), True
    while better:
        better = False
        for i in range(k):
            for j in range(i + 1, k):
                trial = order.copy()
                trial[i], trial[j] = order[j], order[i]
                c = cost(trial)
                if c < best - 1e-9:
                    order, best, better = trial, c, True
    return np.asarray(order, np.int64)


def ordered_png_bytes(indices: np.ndarray, palette: np.ndarray) -> int:
    """The smallest of the files with the palette as it is, in :func:`chain_order` and in
    :func:`adjacency_order`: the order of a palette changes only the file (the PNG filters see
    index differences), never the picture."""
    used = np.flatnonzero(np.bincount(indices.ravel(), minlength=len(palette)))
    remap = np.zeros(len(palette), np.int64)
    remap[used] = np.arange(used.size)
    idx, pal = remap[indices], palette[used]
    orders = [chain_order(pal)]
    if used.size <= 16:  # 8-bit indices are written unfiltered: the order changes nothing
        orders.append(adjacency_order(idx, used.size, np.arange(used.size)))
    return min(len(png_bytes(*reordered(idx, pal, o))) for o in [np.arange(used.size), *orders])


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def unfiltered_png_bytes(indices: np.ndarray, palette: np.ndarray, level: int = 7) -> bytes:
    """The same palette PNG as :func:`png_bytes` (used rows, in order; 1, 2, 4 or 8 bits as
    Pillow picks them) but every row unfiltered (filter type 0), zlib at ``level``.

    Pillow filters palette images of fewer than 8 bits per index (adaptively, per row); on
    dithered photos at K = 16 that costs ~16% (``BENCHMARKS.md``, "Low-K dithering")."""
    used = np.flatnonzero(np.bincount(indices.ravel(), minlength=len(palette)))
    remap = np.zeros(len(palette), np.int64)
    remap[used] = np.arange(used.size)
    idx = remap[indices].astype(np.uint8)
    bits = 1 if used.size <= 2 else 2 if used.size <= 4 else 4 if used.size <= 16 else 8
    h, w = idx.shape
    per = 8 // bits
    padded = np.zeros((h, -(-w // per) * per), np.uint8)
    padded[:, :w] = idx
    packed = np.zeros((h, padded.shape[1] // per), np.uint8)
    for j in range(per):  # the leftmost pixel in the high bits
        packed |= padded[:, j::per] << np.uint8(8 - bits * (j + 1))
    raw = np.concatenate([np.zeros((h, 1), np.uint8), packed], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, bits, 3, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"PLTE", palette[used].astype(np.uint8).tobytes()),
            _chunk(b"IDAT", zlib.compress(raw, level)),
            _chunk(b"IEND", b""),
        ]
    )


def pngquant(crop: np.ndarray, k: int) -> tuple[int, np.ndarray]:
    """pngquant's default (dithered) run on a crop: its file's bytes and decoded pixels."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.png", Path(tmp) / "out.png"
        Image.fromarray(crop).save(src)
        subprocess.run([str(PNGQUANT), str(k), "--force", "-o", str(out), str(src)], check=True)
        with Image.open(out) as image:
            return out.stat().st_size, np.array(image.convert("RGB"))


# -- metrics ----------------------------------------------------------------------------------


def blurred_lab(rgb8: np.ndarray, sigma: float) -> np.ndarray:
    """CIELAB of an image blurred in linear light (Gaussian, ``sigma`` px): ``(H, W, 3)``."""
    linear = srgb_to_linear(rgb8 / 255.0)
    blur = np.stack([gaussian_filter(linear[..., c], sigma) for c in range(3)], axis=-1)
    lab: np.ndarray = rgb_to_lab(linear_to_srgb(np.clip(blur, 0.0, 1.0)))
    return lab


class Judge:
    """The metrics of one original crop, its blurred CIELAB computed once."""

    def __init__(self, original: np.ndarray) -> None:
        self.original = original
        self.labs = {s: blurred_lab(original, s) for s in SIGMAS}

    def __call__(self, quantized: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in SIGMAS:
            de = cq.ciede2000(self.labs[s], blurred_lab(quantized, s))
            out[f"dE b{s:g}"] = float(de.mean())
            if s == SIGMAS[-1]:
                out[f"dE99 b{s:g}"] = float(np.percentile(de, 99))
        ssim = structural_similarity(  # type: ignore[no-untyped-call]
            self.original, quantized, channel_axis=2, data_range=255, gaussian_weights=True
        )
        out["SSIM"] = float(ssim)
        out["PSNR"] = cq.psnr(self.original, quantized)
        return out


# -- item b: strength maps --------------------------------------------------------------------


def luma(rgb8: np.ndarray) -> np.ndarray:
    """Rec. 601 luma, ``(H, W)`` float64 on 0..255."""
    return np.asarray(rgb8 @ np.array([0.299, 0.587, 0.114]), np.float64)


def edge_strength(rgb8: np.ndarray, strength: float, scale: float) -> np.ndarray:
    """:func:`diffusion_strength`'s map with another edge scale: ``(H, W)`` float32."""
    y = luma(rgb8)
    g = np.zeros_like(y)
    dx, dy = np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0))
    g[:, 1:] = np.maximum(g[:, 1:], dx)
    g[:, :-1] = np.maximum(g[:, :-1], dx)
    g[1:] = np.maximum(g[1:], dy)
    g[:-1] = np.maximum(g[:-1], dy)
    return (strength / (1.0 + (g / scale) ** 2)).astype(np.float32)


def noise_strength(rgb8: np.ndarray, strength: float, scale: float = 6.0) -> np.ndarray:
    """The library's edge map times ``1 / (1 + (sd / scale)^2)``, ``sd`` the 3x3 luma spread:
    texture and noise (where a dither pattern only adds entropy) get less: ``(H, W)`` float32."""
    y = luma(rgb8)
    var = np.maximum(uniform_filter(y * y, 3) - uniform_filter(y, 3) ** 2, 0.0)
    texture = 1.0 / (1.0 + var / scale**2)
    out: np.ndarray = (diffusion_strength(rgb8, strength) * texture).astype(np.float32)
    return out


# -- item a: palettes refined against the dithered map ----------------------------------------


def wavefront_fs(
    rgb8: np.ndarray, palette: np.ndarray, strength: np.ndarray, spread: float
) -> tuple[np.ndarray, np.ndarray]:
    """Raster Floyd-Steinberg in NumPy, the kernel's rules (clamped error, per-pixel strength).

    Pixel ``(y, x)`` needs only pixels of smaller ``x + 2 y``, so every anti-diagonal wavefront
    ``t = x + 2 y`` is one vectorised step (W + 2 H steps). Raster, not serpentine: a model of
    the kernel good enough for the statistics of a refinement, not its exact map.

    Returns:
        ``(indices (H, W) int64, targets (H, W, 3) float64)``: each pixel's row and the
        error-diffused color that chose it.
    """
    h, w = rgb8.shape[:2]
    pal = palette.astype(np.float64)
    src = rgb8.astype(np.float64)
    acc = np.zeros((h + 1, w + 2, 3))  # column x at x + 1
    idx = np.zeros((h, w), np.int64)
    targets = np.zeros((h, w, 3))
    k = strength.astype(np.float64) / 16.0
    for t in range(w + 2 * (h - 1)):
        ys = np.arange(max(0, (t - w + 2) // 2), min(h - 1, t // 2) + 1)
        xs = t - 2 * ys
        keep = (xs >= 0) & (xs < w)
        ys, xs = ys[keep], xs[keep]
        if ys.size == 0:
            continue
        v = np.clip(src[ys, xs] + np.clip(acc[ys, xs + 1], -spread, spread), 0.0, 255.0)
        best = (((v[:, None, :] - pal[None]) ** 2).sum(-1)).argmin(1)
        idx[ys, xs], targets[ys, xs] = best, v
        err = (v - pal[best]) * k[ys, xs, None]
        acc[ys, xs + 2] += 7.0 * err
        acc[ys + 1, xs] += 3.0 * err
        acc[ys + 1, xs + 1] += 5.0 * err
        acc[ys + 1, xs + 2] += err
    return idx, targets


def refined_palette(
    rgb8: np.ndarray, palette: np.ndarray, strength: np.ndarray, rounds: int = 3
) -> np.ndarray:
    """Move every entry to the mean target color of its pixels under the dithered map, ``rounds``
    times (the spread re-measured each round): ``(K, 3)`` uint8."""
    pal = palette.astype(np.float64)
    for _ in range(rounds):
        idx, targets = wavefront_fs(rgb8, np.rint(pal), strength, dither_spread(np.rint(pal)))
        n = np.bincount(idx.ravel(), minlength=len(pal)).astype(np.float64)
        for c in range(3):
            total = np.bincount(idx.ravel(), weights=targets[..., c].ravel(), minlength=len(pal))
            pal[:, c] = np.where(n > 0, total / np.maximum(n, 1.0), pal[:, c])
    return np.clip(np.rint(pal), 0, 255).astype(np.uint8)


def blur_ls_palette(rgb8: np.ndarray, indices: np.ndarray, k: int, sigma: float) -> np.ndarray:
    """The palette minimising ``|G * I - sum_k P_k G * [idx == k]|^2`` (G a Gaussian of
    ``sigma``, 8-bit sRGB values) for a fixed map: ``(K, 3)`` uint8 (rows of unused entries 0)."""
    maps = np.stack(
        [gaussian_filter((indices == j).astype(np.float64), sigma).ravel() for j in range(k)], 1
    )
    target = np.stack(
        [gaussian_filter(rgb8[..., c].astype(np.float64), sigma).ravel() for c in range(3)], 1
    )
    gram = maps.T @ maps + 1e-6 * np.eye(k)
    pal = np.linalg.solve(gram, maps.T @ target)
    return np.clip(np.rint(pal), 0, 255).astype(np.uint8)


# -- item c: palettes that keep small salient colors -------------------------------------------


def salience(rgb8: np.ndarray) -> np.ndarray:
    """``chroma / 40 * rarity`` per pixel, ``(H, W)`` float64: rarity is
    ``sqrt(median density / density)`` of the pixel's CIELAB bin (L 10, a and b 8 units wide),
    clipped to 0..8, so a saturated color of few pixels scores high and a large sky or skin
    area about its chroma."""
    lab = rgb_to_lab(rgb8 / 255.0)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    bins = np.floor(lab / np.array([10.0, 8.0, 8.0])).astype(np.int64).reshape(-1, 3)
    _, inverse, counts = np.unique(bins, axis=0, return_inverse=True, return_counts=True)
    density = counts[inverse.ravel()].astype(np.float64)
    rarity = np.clip(np.sqrt(np.median(density) / density), 0.0, 8.0)
    return np.asarray(np.minimum(chroma / 40.0, 2.0) * rarity.reshape(chroma.shape))


def own_fit(rgb8: np.ndarray, k: int, weight: np.ndarray) -> np.ndarray:
    """Weighted K-means on the image's colors (hybrid space, k-means++ seed 0), every pixel
    weighted by ``weight`` (summed per distinct color): ``(K, 3)`` uint8."""
    flat = rgb8.reshape(-1, 3)
    colors, inverse = np.unique(flat, axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=weight.ravel(), minlength=len(colors))
    points = encode_colors(colors, "hybrid")
    init = kmeans_plusplus(points, counts, k, seed=0)
    fit = cq.weighted_kmeans(points, counts, init, max_iter=100, tol=1e-5)
    pal: np.ndarray = decode_colors(fit.centroids, "hybrid")
    return np.asarray(pal, np.uint8)


# -- the variants -----------------------------------------------------------------------------


def dither_map(crop: np.ndarray, palette: np.ndarray, strength: float | np.ndarray) -> Mapped:
    """The compiled kernel's Floyd-Steinberg with a scalar strength or a strength map."""
    return error_diffusion(crop, palette, strength, dither_spread(palette)), palette


def variants(k: int) -> dict[str, Callable[[np.ndarray, np.ndarray], Mapped]]:
    """Every variant: ``(crop, baseline palette) -> (indices, palette)``."""

    def refined(crop: np.ndarray, base: np.ndarray) -> Mapped:
        return dither_map(crop, refined_palette(crop, base, diffusion_strength(crop, 1.0)), 1.0)

    def blur_ls(crop: np.ndarray, base: np.ndarray) -> Mapped:
        pal = base
        for _ in range(2):
            idx, _ = dither_map(crop, pal, 1.0)
            pal = blur_ls_palette(crop, idx, len(pal), 1.0)
        return dither_map(crop, pal, 1.0)

    def uniform(crop: np.ndarray, base: np.ndarray) -> Mapped:
        return dither_map(crop, own_fit(crop, k, np.ones(crop.shape[:2])), 1.0)

    def salient(a: float, strength: float = 1.0) -> Callable[[np.ndarray, np.ndarray], Mapped]:
        def run(crop: np.ndarray, base: np.ndarray) -> Mapped:
            return dither_map(crop, own_fit(crop, k, 1.0 + a * salience(crop)), strength)

        return run

    def weaker(s: float) -> Callable[[np.ndarray, np.ndarray], Mapped]:
        return lambda crop, base: dither_map(crop, base, s)

    def salient_refined(crop: np.ndarray, base: np.ndarray) -> Mapped:
        pal = own_fit(crop, k, 1.0 + 2.0 * salience(crop))
        return dither_map(crop, refined_palette(crop, pal, diffusion_strength(crop, 1.0)), 1.0)

    def refined_originals(crop: np.ndarray, base: np.ndarray) -> Mapped:
        pal = base.astype(np.float64)
        for _ in range(2):
            idx, _ = dither_map(crop, np.rint(pal).astype(np.uint8), 1.0)
            n = np.bincount(idx.ravel(), minlength=len(pal)).astype(np.float64)
            for c in range(3):
                total = np.bincount(idx.ravel(), crop[..., c].ravel(), minlength=len(pal))
                pal[:, c] = np.where(n > 0, total / np.maximum(n, 1.0), pal[:, c])
        return dither_map(crop, np.rint(pal).astype(np.uint8), 1.0)

    def blur_ls_weak(s: float) -> Callable[[np.ndarray, np.ndarray], Mapped]:
        def run(crop: np.ndarray, base: np.ndarray) -> Mapped:
            idx, _ = dither_map(crop, base, s)
            return dither_map(crop, blur_ls_palette(crop, idx, len(base), 1.0), s)

        return run

    out: dict[str, Callable[[np.ndarray, np.ndarray], Mapped]] = {
        "colorquant fs (baseline)": lambda crop, base: dither_map(crop, base, 1.0),
    }
    for s in (0.85, 0.7, 0.6, 0.5):
        out[f"fs s={s:g}"] = weaker(s)
    out["edge x2"] = lambda crop, base: dither_map(
        crop, base, edge_strength(crop, 1.0, EDGE_SCALE / 2)
    )
    out["noise"] = lambda crop, base: dither_map(crop, base, noise_strength(crop, 1.0))
    out["noise s=0.6"] = lambda crop, base: dither_map(crop, base, noise_strength(crop, 0.6))
    out["refined (targets)"] = refined
    out["refined (originals)"] = refined_originals
    out["blur-LS"] = blur_ls
    out["blur-LS s=0.6"] = blur_ls_weak(0.6)
    out["blur-LS s=0.5"] = blur_ls_weak(0.5)
    out["own fit (uniform)"] = uniform
    out["salient a=2"] = salient(2.0)
    out["salient a=6"] = salient(6.0)
    out["salient a=2 s=0.6"] = salient(2.0, 0.6)
    out["salient a=2 + refined"] = salient_refined
    return out


# -- figures ----------------------------------------------------------------------------------

CROPS = {  # name: (image, y, x, size) in the 512 x 512 crop
    "kodim23_parrot": ("kodim23", 150, 250, 96),
    "kodim04_eye": ("kodim04", 150, 200, 96),
    "kodim15_face": ("kodim15", 150, 200, 96),
}


def save_strips(shown: dict[str, dict[str, np.ndarray]], names: list[str]) -> list[Path]:
    """One strip per :data:`CROPS` entry: the panels of ``names``, each scaled 2x."""
    FIG_DIR.mkdir(parents=True, exist_ok=True)
    paths = []
    for label, (image, y, x, size) in CROPS.items():
        if image not in shown:
            continue
        panels = [shown[image][n][y : y + size, x : x + size] for n in names]
        strip = np.concatenate(panels, axis=1).repeat(2, 0).repeat(2, 1)
        path = FIG_DIR / f"{label}.png"
        Image.fromarray(strip).save(path, optimize=True)
        paths.append(path)
    return paths


# -- main -------------------------------------------------------------------------------------


def full_size_bytes(folder: Path, k: int) -> str:
    """Bytes only, on every whole photo of ``folder``: pngquant against today's default and
    strength 0.5, each written by Pillow and unfiltered; a Markdown table."""
    names = ["pngquant", "fs", "fs (unfiltered)", "fs s=0.5", "fs s=0.5 (unfiltered)"]
    totals = dict.fromkeys(names, 0)
    paths = sorted(folder.glob("*.png"))
    for path in paths:
        image = load_rgb(path)
        totals["pngquant"] += pngquant(image, k)[0]
        for strength, label in ((1.0, "fs"), (0.5, "fs s=0.5")):
            res = cq.quantize(image, k, dither="fs", dither_strength=strength)
            totals[label] += len(png_bytes(res.indices, res.palette))
            totals[f"{label} (unfiltered)"] += len(unfiltered_png_bytes(res.indices, res.palette))
    rows = [[n, f"{totals[n]:,}", f"{totals[n] / totals['pngquant']:.3f}"] for n in names]
    title = f"K = {k}, {len(paths)} whole photos"
    return f"{title}\n\n" + markdown_table(["method", "bytes", "bytes / pngquant"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--images", type=Path, default=KODAK)
    parser.add_argument("--only", nargs="*", default=None, help="variants to run (names)")
    parser.add_argument("--out", type=Path, default=None, help="Markdown report to write")
    parser.add_argument("--figures", action="store_true", help="write the before/after strips")
    parser.add_argument(
        "--full-size-bytes", action="store_true", help="only bytes, on every whole photo"
    )
    args = parser.parse_args()
    if args.full_size_bytes:
        print(full_size_bytes(args.images, args.k))
        return 0
    table = variants(args.k)
    names = ["pngquant", *(n for n in table if args.only is None or n in args.only)]
    stats: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    shown: dict[str, dict[str, np.ndarray]] = {}
    for stem in IMAGES:
        crop = centre_crop(load_rgb(args.images / f"{stem}.png"))
        judge = Judge(crop)
        base = cq.quantize(crop, args.k, dither="fs")
        # The encoder here is the library's: the baseline's file, byte for byte.
        assert len(png_bytes(base.indices, base.palette)) == len(result_bytes(base))
        size, pixels = pngquant(crop, args.k)
        results = {"pngquant": (size, size, size, pixels)}
        for name in names[1:]:
            idx, pal = table[name](crop, base.palette)
            plain = unfiltered_png_bytes(idx, pal)
            with Image.open(io.BytesIO(plain)) as check:  # the file holds the same picture
                assert np.array_equal(np.asarray(check.convert("RGB")), pal[idx])
            sizes = (len(png_bytes(idx, pal)), ordered_png_bytes(idx, pal), len(plain))
            results[name] = (*sizes, pal[idx])
        shown[stem] = {"original": crop, **{n: r[3] for n, r in results.items()}}
        for name, (size, smallest, unfiltered, pixels) in results.items():
            row = stats[name]
            row.setdefault("bytes", []).append(float(size))
            row.setdefault("ordered", []).append(float(smallest))
            row.setdefault("unfiltered", []).append(float(unfiltered))
            for metric, value in judge(pixels).items():
                row.setdefault(metric, []).append(value)
        print(stem, {n: r[:3] for n, r in results.items()}, file=sys.stderr, flush=True)
    files = ("bytes", "ordered", "unfiltered", "smallest")
    metrics = [m for m in stats["pngquant"] if m not in files]
    ref = stats["pngquant"]
    rows = []
    for name in names:
        row = stats[name]
        total, total_ref = sum(row["bytes"]), sum(ref["bytes"])
        cells = [name, f"{total:,.0f}"]
        row["smallest"] = [
            min(a, b) for a, b in zip(row["ordered"], row["unfiltered"], strict=True)
        ]
        kinds = ("bytes", "ordered", "unfiltered", "smallest")
        cells += [f"{sum(row[b]) / total_ref:.3f}" for b in kinds]
        for m in metrics:
            mean, mean_ref = statistics.fmean(row[m]), statistics.fmean(ref[m])
            higher = m in ("SSIM", "PSNR")  # better when higher; the ΔE00s when lower
            better = sum((a > b if higher else a < b) for a, b in zip(row[m], ref[m], strict=True))
            shown_ratio = f" ({mean / mean_ref:.3f}, {better}/{len(row[m])})"
            cells.append(f"{mean:.3f}" + ("" if name == "pngquant" else shown_ratio))
        rows.append(cells)
    bytes_columns = ["bytes / pngquant", "palette ordered", "unfiltered", "smaller of the two"]
    header = ["method", "bytes", *bytes_columns, *metrics]
    text = markdown_table(header, rows)
    print(text)
    if args.figures:
        strips = [
            "original",
            "pngquant",
            "colorquant fs (baseline)",
            "blur-LS s=0.5",
            "salient a=2",
        ]
        for path in save_strips(shown, [s for s in strips if s in names or s == "original"]):
            print(f"wrote {path}", file=sys.stderr)
    if args.out is not None:
        title = f"Low-K dithering at K = {args.k} against pngquant ({len(IMAGES)} Kodak crops)"
        head = "\n".join(report_header(title, 2, "cpu", None))
        args.out.write_text(f"{head}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
