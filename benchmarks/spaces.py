"""Which clustering space beats libimagequant on both PSNR and CIEDE2000?

Every candidate is the same weighted K-means (Lloyd on the distinct colors of the image weighted by
their pixel counts, greedy k-means++ seeding with seed 0, at most 40 iterations or a relative
objective change below 1e-5), run on a different embedding of the 8-bit sRGB colors. A candidate
is three things: the space it is fitted in, the rule that turns each cluster mean back into an
8-bit sRGB palette color (the *decode*), and the space the pixels are then mapped in (each pixel
to its nearest palette color). No dithering. Quality is measured on every pixel:

- PSNR: ``10 log10(255^2 / MSE)``, MSE over pixels and the three 8-bit sRGB channels;
- ΔE00: the mean over pixels of CIEDE2000 (``colorquant.metrics.mean_delta_e``).

The reference is libimagequant (``imagequant.quantize_pil_image``, dithering 0) on the same image
and K. The goal asked of the default space: at every K, mean PSNR at least libimagequant's and
mean ΔE00 at most 0.90 times libimagequant's. The tables give, per K, the mean PSNR, ΔPSNR
against libimagequant (mean, worst image, number of images below), the mean ΔE00 and the ratio of
mean ΔE00s; the figure plots ΔPSNR against the ΔE00 ratio, the goal being the corner right of 0 dB
and below 0.90.

Usage (from the repository root)::

    .venv/bin/python benchmarks/spaces.py --limit 4                    # develop
    .venv/bin/python benchmarks/spaces.py                              # all 24 Kodak images
    .venv/bin/python benchmarks/spaces.py --candidates rgb,din99 --ks 16

Candidate names: see ``--list``. The conversions (sRGB, CIELAB, DIN99b, OKLab) are vendored below
in NumPy float64 so that this file does not depend on colorquant's internals; ``--check`` compares
them with ``colorquant.color``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_IMAGES = REPO_ROOT.parent / "shared/images/kodak"
REFERENCE = "imagequant"
GOAL_DE_RATIO = 0.90

# -- color conversions (NumPy float64, rows are colors) -----------------------------------------

XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
LMS_FROM_RGB = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ]
)
OKLAB_FROM_LMS = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)
# DIN99b (Cui et al. 2002): L scale and log factor, hue rotation (deg), b squeeze, chroma
# scale and log factor.
DIN99_CONSTANTS = (303.67, 0.0039, 26.0, 0.83, 23.0, 0.075)
_DELTA = 6.0 / 29.0


def srgb_to_linear(rgb: F64) -> F64:
    """sRGB in 0..1 to linear light (IEC 61966-2-1)."""
    x = np.clip(rgb, 0.0, None)
    out: F64 = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    return out


def rgb8_to_lab(rgb255: F64) -> F64:
    """sRGB on the 0..255 scale to CIELAB (D65)."""
    t = (srgb_to_linear(rgb255 / 255.0) @ XYZ_FROM_RGB.T) / WHITE_D65
    f = np.where(t > _DELTA**3, np.cbrt(t), t / (3 * _DELTA**2) + 4.0 / 29.0)
    return np.stack(
        (116.0 * f[:, 1] - 16.0, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])), axis=1
    )


def lab_to_din99(lab: F64, constants: Sequence[float] = DIN99_CONSTANTS) -> F64:
    """CIELAB to DIN99b (L99, a99, b99); ``constants`` as ``DIN99_CONSTANTS``."""
    c1, c2, angle, squeeze, c5, c6 = constants
    th = math.radians(angle)
    cos_t, sin_t = math.cos(th), math.sin(th)
    light, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    e = a * cos_t + b * sin_t
    f = squeeze * (b * cos_t - a * sin_t)
    g = np.hypot(e, f)
    safe = np.where(g > 1e-12, g, 1.0)
    ratio = np.where(g > 1e-12, c5 * np.log1p(c6 * safe) / safe, c5 * c6)
    return np.stack(
        (
            c1 * np.log1p(c2 * light),
            ratio * (e * cos_t - f * sin_t),
            ratio * (f * cos_t + e * sin_t),
        ),
        axis=1,
    )


def rgb8_to_oklab(rgb255: F64) -> F64:
    """sRGB on the 0..255 scale to OKLab (Ottosson 2020), L in 0..1."""
    lms = srgb_to_linear(rgb255 / 255.0) @ LMS_FROM_RGB.T
    out: F64 = np.cbrt(lms) @ OKLAB_FROM_LMS.T
    return out


def check_conversions() -> float:
    """Largest difference between the vendored conversions and ``colorquant.color``'s."""
    import torch

    from colorquant.color import lab_to_din99 as t_din
    from colorquant.color import rgb_to_lab as t_lab
    from colorquant.color import rgb_to_oklab as t_ok

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (20000, 3)).astype(np.float64)
    rgb[:8] = [
        [0, 0, 0],
        [255, 255, 255],
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [1, 1, 1],
        [128, 128, 128],
        [10, 0, 0],
    ]
    t = torch.from_numpy(rgb / 255.0)
    lab = rgb8_to_lab(rgb)
    errors = [
        np.abs(lab - t_lab(t).numpy()).max(),
        np.abs(lab_to_din99(lab) - t_din(t_lab(t)).numpy()).max(),
        np.abs(rgb8_to_oklab(rgb) - t_ok(t).numpy()).max(),
    ]
    return float(max(errors))


# -- embeddings: 8-bit sRGB (as float 0..255) -> clustering coordinates --------------------------

Embed = Callable[[F64], F64]


def scaled(fn: Embed, weights: Sequence[float]) -> Embed:
    """``fn`` with each output axis multiplied by ``weights``."""
    w = np.asarray(weights, dtype=np.float64)

    def embed(rgb: F64) -> F64:
        out: F64 = fn(rgb) * w
        return out

    return embed


def linear_map(matrix: Sequence[Sequence[float]]) -> Embed:
    """sRGB 0..255 times a fixed 3x3 matrix (rows are output axes)."""
    m = np.asarray(matrix, dtype=np.float64)

    def embed(rgb: F64) -> F64:
        out: F64 = rgb @ m.T
        return out

    return embed


def emb_rgb(rgb: F64) -> F64:
    """sRGB 0..255 itself."""
    return rgb


def emb_lab(rgb: F64) -> F64:
    """CIELAB."""
    return rgb8_to_lab(rgb)


def emb_din99(rgb: F64) -> F64:
    """DIN99b."""
    return lab_to_din99(rgb8_to_lab(rgb))


def emb_oklab(rgb: F64) -> F64:
    """OKLab times 100 (L in 0..100, like L*)."""
    return 100.0 * rgb8_to_oklab(rgb)


def din99_variant(constants: Sequence[float]) -> Embed:
    """DIN99-like space with other constants (e.g. a less compressive chroma log)."""

    def embed(rgb: F64) -> F64:
        return lab_to_din99(rgb8_to_lab(rgb), constants)

    return embed


def gamma_rgb(exponent: float, weights: Sequence[float]) -> Embed:
    """``255 * linear**exponent`` per channel times ``weights`` (libimagequant-like)."""
    w = np.asarray(weights, dtype=np.float64)

    def embed(rgb: F64) -> F64:
        out: F64 = 255.0 * srgb_to_linear(rgb / 255.0) ** exponent * w
        return out

    return embed


def blend(a: float, first: Embed, s1: float, second: Embed, s2: float) -> Embed:
    """``[sqrt(a) first / s1, sqrt(1-a) second / s2]``: squared distances add as
    ``a |d first|^2 / s1^2 + (1 - a) |d second|^2 / s2^2``."""
    w1, w2 = math.sqrt(a) / s1, math.sqrt(1.0 - a) / s2

    def embed(rgb: F64) -> F64:
        return np.concatenate((w1 * first(rgb), w2 * second(rgb)), axis=1)

    return embed


# -- weighted K-means --------------------------------------------------------------------------


def sq_dist(x: F64, c: F64, x_sq: F64 | None = None) -> F64:
    """``(N, K)`` squared Euclidean distances (clipped at 0)."""
    xs = (x * x).sum(1) if x_sq is None else x_sq
    d: F64 = xs[:, None] - 2.0 * (x @ c.T) + (c * c).sum(1)[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def nearest(x: F64, c: F64) -> I64:
    """Index of the nearest row of ``c`` for each row of ``x`` (in blocks, to bound memory)."""
    out = np.empty(x.shape[0], dtype=np.int64)
    c_sq = (c * c).sum(1)
    step = 65536
    for lo in range(0, x.shape[0], step):
        xb = x[lo : lo + step]
        d = c_sq[None, :] - 2.0 * (xb @ c.T)
        out[lo : lo + step] = d.argmin(1)
    return out


def kmeanspp(x: F64, w: F64, k: int, seed: int) -> F64:
    """Greedy weighted k-means++ (``2 + ln k`` trials per center, the lowest potential kept)."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    x_sq = (x * x).sum(1)
    first = int(rng.choice(n, p=w / w.sum()))
    centers = [x[first]]
    closest = sq_dist(x, x[first : first + 1], x_sq)[:, 0]
    for _ in range(1, min(k, n)):
        pot = w * closest
        total = pot.sum()
        if total <= 0:
            break
        cand = np.searchsorted(np.cumsum(pot), rng.random(trials) * total)
        cand = np.minimum(cand, n - 1)
        d = np.minimum(closest[:, None], sq_dist(x, x[cand], x_sq))
        best = int(np.argmin((w[:, None] * d).sum(0)))
        centers.append(x[cand[best]])
        closest = d[:, best]
    return np.array(centers)


@dataclass
class Fit:
    """K-means result: centers in the fitted space and the label of every distinct color."""

    centers: F64
    labels: I64
    iterations: int


def kmeans(x: F64, w: F64, k: int, seed: int = 0, max_iter: int = 40, tol: float = 1e-5) -> Fit:
    """Weighted Lloyd from greedy k-means++; an emptied cluster keeps its previous center."""
    c = kmeanspp(x, w, k, seed)
    k = c.shape[0]
    x_sq = (x * x).sum(1)
    prev = math.inf
    labels = np.zeros(x.shape[0], dtype=np.int64)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (it is returned)
        d = sq_dist(x, c, x_sq)
        labels = d.argmin(1)
        obj = float((w * d[np.arange(x.shape[0]), labels]).sum())
        mass = np.bincount(labels, weights=w, minlength=k)
        sums = np.stack(
            [np.bincount(labels, weights=w * x[:, j], minlength=k) for j in range(x.shape[1])], 1
        )
        keep = mass > 0
        c = c.copy()
        c[keep] = sums[keep] / mass[keep, None]
        if prev - obj <= tol * obj:
            break
        prev = obj
    labels = sq_dist(x, c, x_sq).argmin(1)
    return Fit(c, labels, it)


def kmeans_mixed(
    p: F64,
    q: F64,
    w: F64,
    k: int,
    power: float,
    seed: int = 0,
    max_iter: int = 40,
    tol: float = 1e-5,
) -> Fit:
    """K-means-like fit of ``cost(x, c) = |p(x) - P_c|^2 + |q(x) - Q_c|^power``.

    The centers ``(P, Q)`` are free points of the joint space (as in the 6-D blend); ``P`` is the
    weighted mean of its members, ``Q`` takes one IRLS (Weiszfeld for ``power = 1``) step per
    iteration: the mean weighted by ``w |q - Q|^(power - 2)``. Seeding is the k-means++ of the
    joint squared space, the same as the plain blend's. Returns the centers as ``[P, Q]``.
    """
    joint = np.concatenate((p, q), axis=1)
    c = kmeanspp(joint, w, k, seed)
    k = c.shape[0]
    dp_dim = p.shape[1]
    pc, qc = c[:, :dp_dim].copy(), c[:, dp_dim:].copy()
    p_sq, q_sq = (p * p).sum(1), (q * q).sum(1)
    rows = np.arange(p.shape[0])
    floor = 1e-3

    def costs(pc: F64, qc: F64) -> tuple[F64, F64]:
        dq = np.sqrt(sq_dist(q, qc, q_sq))
        return sq_dist(p, pc, p_sq) + dq**power, dq

    prev = math.inf
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (it is returned)
        cost, dq = costs(pc, qc)
        labels = cost.argmin(1)
        obj = float((w * cost[rows, labels]).sum())
        mass = np.bincount(labels, weights=w, minlength=k)
        keep = mass > 0
        for j in range(dp_dim):
            col = np.bincount(labels, weights=w * p[:, j], minlength=k)
            pc[keep, j] = col[keep] / mass[keep]
        wq = w * np.maximum(dq[rows, labels], floor) ** (power - 2.0)
        mq = np.bincount(labels, weights=wq, minlength=k)
        keep = mq > 0
        for j in range(q.shape[1]):
            col = np.bincount(labels, weights=wq * q[:, j], minlength=k)
            qc[keep, j] = col[keep] / mq[keep]
        if prev - obj <= tol * obj:
            break
        prev = obj
    labels = costs(pc, qc)[0].argmin(1)
    return Fit(np.concatenate((pc, qc), axis=1), labels, it)


# -- decode: cluster mean -> 8-bit sRGB color -------------------------------------------------

_OFFSETS = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])


def grid_search(embed: Embed, target: F64, start: F64) -> U8:
    """The 8-bit sRGB color ``c`` minimising ``|embed(c) - target|^2``, by a pattern search on the
    8-bit grid (27-neighbourhoods at steps 16, 8, 4, 2, 1) from ``start`` (float 0..255)."""
    cur = np.clip(np.rint(start), 0, 255).astype(np.int64)
    k = cur.shape[0]
    for step in (16, 8, 4, 2, 1):
        for _ in range(64):
            cand = np.clip(cur[:, None, :] + step * _OFFSETS[None], 0, 255)
            e = embed(cand.reshape(-1, 3).astype(np.float64)).reshape(k, 27, -1)
            cost = ((e - target[:, None, :]) ** 2).sum(2)
            best = cost.argmin(1)
            new = cand[np.arange(k), best]
            if np.array_equal(new, cur):
                break
            cur = new
    return cur.astype(np.uint8)


def member_rgb_mean(rgb: F64, w: F64, labels: I64, k: int) -> F64:
    """Weighted sRGB mean of each cluster's members (NaN-free: empty clusters get mid-gray)."""
    mass = np.bincount(labels, weights=w, minlength=k)
    sums = np.stack([np.bincount(labels, weights=w * rgb[:, j], minlength=k) for j in range(3)], 1)
    out: F64 = np.full((k, 3), 128.0)
    keep = mass > 0
    out[keep] = sums[keep] / mass[keep, None]
    return out


def lab_to_rgb8(lab: F64) -> F64:
    """CIELAB to sRGB on the 0..255 scale (unclipped), for the analytic decodes."""
    fy = (lab[:, 0] + 16.0) / 116.0
    f = np.stack((fy + lab[:, 1] / 500.0, fy, fy - lab[:, 2] / 200.0), axis=1)
    t = np.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0)) * WHITE_D65
    lin = t @ np.linalg.inv(XYZ_FROM_RGB).T
    return 255.0 * linear_to_srgb(lin)


def linear_to_srgb(lin: F64) -> F64:
    """Linear light to sRGB 0..1 (values below 0 are clipped first)."""
    x = np.clip(lin, 0.0, None)
    out: F64 = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1.0 / 2.4) - 0.055)
    return out


def din99_to_lab(din: F64) -> F64:
    """DIN99b to CIELAB (inverse of :func:`lab_to_din99`)."""
    c1, c2, angle, squeeze, c5, c6 = DIN99_CONSTANTS
    th = math.radians(angle)
    cos_t, sin_t = math.cos(th), math.sin(th)
    c99 = np.hypot(din[:, 1], din[:, 2])
    safe = np.where(c99 > 1e-12, c99, 1.0)
    ratio = np.where(c99 > 1e-12, np.expm1(safe / c5) / (c6 * safe), 1.0 / (c5 * c6))
    e = ratio * (din[:, 1] * cos_t + din[:, 2] * sin_t)
    f = ratio * (din[:, 2] * cos_t - din[:, 1] * sin_t) / squeeze
    light = np.expm1(din[:, 0] / c1) / c2
    return np.stack((light, e * cos_t - f * sin_t, e * sin_t + f * cos_t), axis=1)


def oklab_to_rgb8(ok100: F64) -> F64:
    """OKLab (times 100) to sRGB 0..255, unclipped."""
    lms = (ok100 / 100.0) @ np.linalg.inv(OKLAB_FROM_LMS).T
    lin = (lms**3) @ np.linalg.inv(LMS_FROM_RGB).T
    return 255.0 * linear_to_srgb(lin)


ANALYTIC: dict[str, Callable[[F64], F64]] = {
    "rgb": lambda c: c,
    "lab": lab_to_rgb8,
    "din99": lambda c: lab_to_rgb8(din99_to_lab(c)),
    "oklab": oklab_to_rgb8,
}


# -- candidates ---------------------------------------------------------------------------------


@dataclass
class Candidate:
    """A clustering space, a decode rule and a mapping space.

    ``decode``: ``"analytic"`` (the space's inverse, rounded and clipped, as colorquant does),
    ``"search"`` (the 8-bit color whose embedding is nearest the cluster mean, grid search from
    the members' sRGB mean), ``"rgbmean"`` (the members' sRGB mean, rounded: the PSNR-optimal color
    of each cluster). ``mapping``: the space the pixels are mapped in (default: the fitted one).
    """

    name: str
    fit: Embed
    decode: str = "search"
    analytic: str | None = None
    mapping: Embed | None = None
    note: str = ""
    group: str = "other"
    rgb_scale: float = 1.0
    robust: Embed | None = None
    power: float = 2.0


def run_candidate(cand: Candidate, rgb: F64, w: F64, k: int) -> U8:
    """Quantize the distinct colors ``rgb`` (weights ``w``); the 8-bit color of each."""
    x = cand.fit(rgb)
    if cand.robust is not None:
        fit = kmeans_mixed(x, cand.robust(rgb), w, k, cand.power)
        assert cand.decode == "rgbmean" and cand.mapping is None
        kk = fit.centers.shape[0]
        pal = np.clip(np.rint(member_rgb_mean(rgb, w, fit.labels, kk)), 0, 255).astype(np.uint8)
        pf = pal.astype(np.float64)
        d = (
            sq_dist(x, cand.fit(pf))
            + np.sqrt(sq_dist(cand.robust(rgb), cand.robust(pf))) ** cand.power
        )
        mapped: U8 = pal[d.argmin(1)]
        return mapped
    fit = kmeans(x, w, k)
    kk = fit.centers.shape[0]
    if cand.decode == "analytic":
        assert cand.analytic is not None
        pal = np.clip(np.rint(ANALYTIC[cand.analytic](fit.centers)), 0, 255).astype(np.uint8)
    elif cand.decode == "rgbmean":
        pal = np.clip(np.rint(member_rgb_mean(rgb, w, fit.labels, kk)), 0, 255).astype(np.uint8)
    elif cand.decode == "rgbpart":
        part = fit.centers[:, :3] / cand.rgb_scale
        pal = np.clip(np.rint(part), 0, 255).astype(np.uint8)
    elif cand.decode == "search":
        start = member_rgb_mean(rgb, w, fit.labels, kk)
        pal = grid_search(cand.fit, fit.centers, start)
    else:
        raise ValueError(f"unknown decode {cand.decode!r}")
    mapping = cand.mapping or cand.fit
    idx = nearest(mapping(rgb), mapping(pal.astype(np.float64)))
    return pal[idx]


# -- metrics (as colorquant.metrics defines them; vendored, checked by --check) -----------------


def ciede2000(lab1: F64, lab2: F64) -> F64:
    """CIEDE2000 (kL = kC = kH = 1; Sharma, Wu & Dalal 2005) between rows of two CIELAB arrays."""
    l1, a1, b1 = lab1[:, 0], lab1[:, 1], lab1[:, 2]
    l2, a2, b2 = lab2[:, 0], lab2[:, 1], lab2[:, 2]
    c_bar = 0.5 * (np.hypot(a1, b1) + np.hypot(a2, b2))
    c7 = c_bar**7
    g = 0.5 * (1.0 - np.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.remainder(np.degrees(np.arctan2(b1, a1p)), 360.0)
    h2p = np.remainder(np.degrees(np.arctan2(b2, a2p)), 360.0)
    chroma_zero = (c1p * c2p) == 0
    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(chroma_zero, 0.0, dh)
    d_big_h = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)
    l_bar = 0.5 * (l1 + l2)
    cp_bar = 0.5 * (c1p + c2p)
    h_sum = h1p + h2p
    far = np.abs(h1p - h2p) > 180.0
    h_bar = np.where(far, np.where(h_sum < 360.0, h_sum + 360.0, h_sum - 360.0), h_sum) / 2.0
    h_bar = np.where(chroma_zero, h_sum, h_bar)
    t = (
        1.0
        - 0.17 * np.cos(np.radians(h_bar - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * h_bar))
        + 0.32 * np.cos(np.radians(3.0 * h_bar + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * h_bar - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    cp7 = cp_bar**7
    r_c = 2.0 * np.sqrt(cp7 / (cp7 + 25.0**7))
    l50 = (l_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / np.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c
    tl, tc, th = dl / s_l, dc / s_c, d_big_h / s_h
    out: F64 = np.sqrt(tl * tl + tc * tc + th * th + r_t * tc * th)
    return out


def psnr_and_delta_e(original: U8, quantized: U8, weights: F64) -> tuple[float, float]:
    """PSNR (dB, MSE over pixels and channels) and mean ΔE00 of weighted 8-bit color lists."""
    a = original.astype(np.float64)
    b = quantized.astype(np.float64)
    err = float((weights * ((a - b) ** 2).sum(1)).sum() / (3.0 * weights.sum()))
    psnr = math.inf if err <= 0 else 10.0 * math.log10(255.0**2 / err)
    de = ciede2000(rgb8_to_lab(a), rgb8_to_lab(b))
    return psnr, float((weights * de).sum() / weights.sum())
