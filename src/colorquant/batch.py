"""The batch's tensors: :func:`colorquant.quantize_batch`'s GPU path, and its result assembled
from per-image results.

:func:`batch_on_device` runs every stage batched over the images (:mod:`._torch.pipeline`);
:func:`stack_results` turns the CPU pipeline's per-image NumPy results into a
:class:`~colorquant.result.BatchResult` on the input's device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._checks import InputError
from .color import ColorSpace
from .metrics import psnr_from_mse
from .options import restarts, settings_for_speed
from .result import BatchResult, QuantizeResult

if TYPE_CHECKING:
    import torch

__all__ = ["batch_on_device", "stack_results"]


def batch_on_device(
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

    x = x.detach()  # the indices and palettes carry no gradient (colorquant.nn does that)
    if x.dtype == torch.uint8:
        x8 = x
    else:
        if not x.is_floating_point():
            raise InputError(f"x must be uint8 or float in [0, 1], got {x.dtype}")
        # One sync for the three checks; the same messages as the CPU pipeline's.
        low, high, finite = torch.stack(
            [x.min().float(), x.max().float(), torch.isfinite(x).all().float()]
        ).tolist()
        if not finite:
            raise InputError("x holds NaN or infinite values")
        if low < 0.0 or high > 1.0:
            raise InputError(
                f"x is floating point, so it must lie in [0, 1], got values in "
                f"[{low:.4g}, {high:.4g}]"
            )
        # 255 x of a float16 or bfloat16 value is exact in float32, not in its own dtype.
        wide = x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)
        x8 = (wide * 255.0).round_().to(torch.uint8)
    s = settings_for_speed(speed)
    out = quantize_images(
        x8,
        n_colors,
        color_space,
        s,
        n_init=restarts(s, n_colors),
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


def stack_results(
    images: list[torch.Tensor],
    results: list[tuple[np.ndarray, np.ndarray, float]],
    uniform: bool,
    color_space: ColorSpace,
    pixels: list[np.ndarray],
    per_image: list[QuantizeResult] | None = None,
) -> BatchResult:
    """A :class:`BatchResult` of per-image results, on the images' device.

    Args:
        images: the ``(C, H, W)`` input tensors (their dtype, channels and device are kept).
        results: per image, its ``(K_b, C')`` uint8 palette, ``(H, W)`` int64 indices and MSE.
        uniform: the input was one ``(B, C, H, W)`` tensor (else a list, given back as lists).
        color_space: the space the colors were compared in.
        pixels: the ``(H, W, C)`` uint8 input images (kept by reference, for ``delta_e``).
        per_image: each image's own result, which ``result[b]`` gives back.
    """
    import torch

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
        _results=per_image,
    )
