"""Conversions between ComfyUI's tensors and colorquant's: images and masks in and out, palettes
in every form a palette input takes, the batched fit and map, and PNG text chunks.

Layouts as :mod:`.nodes` states them: ``IMAGE`` ``(B, H, W, C)`` float in [0, 1]; ``MASK``
``(B, H, W)`` = 1 - alpha; ``PALETTE`` ``(K, C)`` or ``(B, K, C)`` uint8 on the CPU.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import colorquant as cq
from colorquant.io import parse_hex_colors

OPAQUE = 254.5 / 255  # alpha at or above this is 255 in 8 bits
DITHERS = {"none": "none", "floyd-steinberg": "fs", "ordered": "ordered"}
"""The dither widget's choices and the library's names for them."""


def alpha_from_mask(mask: Any, shape: tuple[int, int, int], device: torch.device) -> Any:
    """``1 - mask`` as a ``(B, H, W)`` float32 alpha, or ``None`` for no transparency."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a ComfyUI MASK, a (B, H, W) tensor, got {got}")
    m = mask.to(device=device, dtype=torch.float32)
    if m.ndim == 2:
        m = m.unsqueeze(0)
    batch, height, width = shape
    if tuple(m.shape[1:]) != (height, width):
        if not bool((m == 0).all()):
            raise ValueError(
                f"mask is {tuple(m.shape[1:])} (H, W) and the image {(height, width)}: "
                "they must have one size"
            )
        return None  # LoadImage's 64x64 zeros for an opaque file
    if m.shape[0] not in (1, batch):
        raise ValueError(f"mask has {m.shape[0]} masks for {batch} images (give 1 or {batch})")
    return (1.0 - m.clamp(0.0, 1.0)).expand(batch, height, width)


def image_in(image: Any, mask: Any = None, name: str = "image") -> tuple[torch.Tensor, bool]:
    """A ComfyUI IMAGE (and optional MASK) as a ``(B, C, H, W)`` float32 batch for colorquant.

    Returns:
        The batch on the image's device, C = 4 where some pixel is not opaque (alpha from the
        IMAGE's fourth channel or from ``1 - mask``), else 3; and whether the IMAGE had four
        channels (the output then has four too).

    Raises:
        ValueError: not a (B, H, W, 3 or 4) float tensor, NaN values, a mask of another size,
            or transparency given twice.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (3, 4):
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{name} must be a ComfyUI IMAGE, a (B, H, W, 3 or 4) tensor, got {got}")
    if not image.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got {image.dtype}")
    if image.numel() == 0:
        raise ValueError(f"{name} is empty: {tuple(image.shape)}")
    x = image.to(torch.float32)  # any float dtype in; bfloat16 and float16 computed in float32
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} has NaN values")
    x = x.clamp(0.0, 1.0)
    rgba_in = x.shape[-1] == 4
    alpha = x[..., 3] if rgba_in else None
    batch, height, width = x.shape[:3]
    from_mask = alpha_from_mask(mask, (batch, height, width), x.device)
    if from_mask is not None:
        if alpha is not None and not bool((alpha >= OPAQUE).all()):
            raise ValueError(
                f"{name} has an alpha channel and a mask was given too: connect one of them"
            )
        alpha = from_mask
    if alpha is not None and bool((alpha >= OPAQUE).all()):
        alpha = None  # opaque: the RGB pipeline (batched on a GPU)
    rgb = x[..., :3]
    out = rgb if alpha is None else torch.cat([rgb, alpha.unsqueeze(-1)], dim=-1)
    return out.permute(0, 3, 1, 2).contiguous(), rgba_in


def image_out(
    batch: torch.Tensor, dtype: torch.dtype, rgba_out: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``(B, C, H, W)`` float batch in [0, 1] as ComfyUI's IMAGE ``(B, H, W, 3 or 4)`` in
    ``dtype`` and MASK ``(B, H, W)`` float32 (1 - alpha; zeros when opaque)."""
    x = batch.permute(0, 2, 3, 1).to(torch.float32)
    rgb = x[..., :3]
    alpha = x[..., 3] if x.shape[-1] == 4 else torch.ones_like(x[..., 0])
    image = torch.cat([rgb, alpha.unsqueeze(-1)], dim=-1) if rgba_out else rgb
    return image.to(dtype).contiguous(), (1.0 - alpha).contiguous()


def frames8(image: Any, mask: Any = None) -> list[np.ndarray]:
    """A ComfyUI IMAGE (and MASK) as ``(H, W, 3)`` (or, with transparency, ``(H, W, 4)``)
    uint8 arrays on the CPU, rounded as colorquant rounds float input."""
    x, _ = image_in(image, mask)
    x8 = (x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(f) for f in x8]


def palette_rows(value: Any) -> np.ndarray:
    if isinstance(value, str):
        return parse_hex_colors(value, "palette")
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return parse_hex_colors(" ".join(value), "palette")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError("palette colors must be whole numbers in 0..255")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"palette must hold integer colors in 0..255, got dtype {arr.dtype}")
    return arr


def as_palette(value: Any) -> torch.Tensor:
    """A PALETTE input as a ``(K, C)`` or ``(B, K, C)`` uint8 CPU tensor, C = 3 or 4,
    1 <= K <= 256.

    Raises:
        ValueError: anything else; the message says what came.
    """
    arr = palette_rows(value)
    if arr.ndim not in (2, 3) or arr.shape[-1] not in (3, 4) or not 1 <= arr.shape[-2] <= 256:
        raise ValueError(
            "palette must be (K, 3) or (K, 4) colors (or (B, K, C), one per image) with "
            f"1 <= K <= 256, got shape {arr.shape}"
        )
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"palette colors must be in 0..255, got {arr.min()}..{arr.max()}")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.uint8))


def palette_for(palette: torch.Tensor, batch: int) -> torch.Tensor:
    if palette.ndim == 3 and palette.shape[0] != batch:
        raise ValueError(f"palette has {palette.shape[0]} palettes for {batch} images")
    return palette


def fit_palette(
    x: torch.Tensor,
    colors: int,
    color_space: str,
    seed: int,
    fixed_colors: Any = None,
) -> torch.Tensor:
    """One ``(K, C)`` uint8 palette fitted on every image of ``x`` ``(B, C, H, W)`` (their
    merged histogram, as ``quantize_batch(..., shared=True)`` fits), all K rows."""
    quantizer = cq.Quantizer(
        colors,
        color_space=color_space,  # type: ignore[arg-type]
        seed=seed,
        device=str(x.device),
        fixed_colors=fixed_colors,
    )
    quantizer.fit(list(x.unbind(0)))
    return torch.from_numpy(np.ascontiguousarray(quantizer.palette, dtype=np.uint8))


def map_to_palettes(
    x: torch.Tensor, palette: torch.Tensor, color_space: str, dither: str, strength: float
) -> cq.BatchResult:
    # An RGB palette for a transparent image gets a clear entry (colorquant adds it); an RGBA
    # palette maps an opaque image to its opaque entries.
    return cq.quantize_batch(
        x,
        palette=palette,
        color_space=color_space,  # type: ignore[arg-type]
        dither=DITHERS[dither],  # type: ignore[arg-type]
        dither_strength=strength,
    )


# -- PNG text chunks --------------------------------------------------------------------------


def text_chunk(key: str, value: str) -> bytes:
    """A PNG ``tEXt`` chunk (``value`` Latin-1), or ``iTXt`` (UTF-8) for any other text."""
    try:
        body = key.encode("latin-1") + b"\0" + value.encode("latin-1")
        kind = b"tEXt"
    except UnicodeEncodeError:
        body = key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")
        kind = b"iTXt"
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def with_text_chunks(png: bytes, text: Sequence[tuple[str, str]]) -> bytes:
    """``png`` with text chunks inserted after its header chunk (an APNG stays an APNG)."""
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR length + type, its 13 bytes, CRC
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    chunks = b"".join(text_chunk(k, v) for k, v in text)
    return png[:end_of_ihdr] + chunks + png[end_of_ihdr:]
