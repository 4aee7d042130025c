"""The ColorQuant nodes: adapters between ComfyUI's tensors and the colorquant library.

ComfyUI's layouts (https://docs.comfy.org/custom-nodes/backend/datatypes):

- ``IMAGE``: a ``(B, H, W, C)`` float tensor in [0, 1], C = 3 (RGB) or 4 (RGBA), on any device.
  Other float dtypes (float16, bfloat16) are accepted; outputs keep the input's dtype.
- ``MASK``: a ``(B, H, W)`` (or ``(H, W)``) float tensor, 1 - alpha (``LoadImage`` gives one;
  for an opaque file it is a 64x64 block of zeros, which means "no transparency" here).
- ``PALETTE`` (this pack's type): a ``(K, C)`` uint8 CPU tensor of sRGB(A) colors, one palette
  for the whole batch, or ``(B, K, C)``, a palette per image. Palette inputs also take a
  ``(K, 3)`` array or list of 0..255 triples and a list or string of hex colors, so a palette
  made by another node pack connects too.

The work runs on the image's device: a batch on a GPU is quantized there, batched
(:func:`colorquant.quantize_batch`); transparency and Floyd-Steinberg run on the CPU.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

import colorquant as cq
from colorquant.animation import animation_bytes
from colorquant.diffusers import frame_durations
from colorquant.io import atomic_write, parse_hex_colors

from .convert import (
    DITHERS,
    as_palette,
    fit_palette,
    frames8,
    image_in,
    image_out,
    map_to_palettes,
    palette_for,
    with_text_chunks,
)

log = logging.getLogger("colorquant.comfyui")

CATEGORY = "image/colorquant"
MAX_COLORS = 256  # one palette PNG / GIF / APNG
FORMATS = ("png", "gif", "apng")
PALETTE_SUFFIXES = (".gpl", ".hex", ".txt", ".png", ".gif", ".bmp", ".webp")
PALETTE_FOLDER = "palettes"  # input/palettes/ is listed too
PICO8 = (
    "#000000 #1d2b53 #7e2553 #008751 #ab5236 #5f574f #c2c3c7 #fff1e8\n"
    "#ff004d #ffa300 #ffec27 #00e436 #29adff #83769c #ff77a8 #ffccaa"
)

_COLORS = ("INT", {"default": 256, "min": 1, "max": MAX_COLORS, "step": 1})
_SPACE = (list(cq.COLOR_SPACES), {"default": cq.DEFAULT_COLOR_SPACE})
_DITHER = (list(DITHERS), {"default": "none"})
_STRENGTH = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05})
# Last in every node, so that a "control after generate" widget a front end adds after it
# does not shift the widgets that follow. "fixed" by default: the same palette every run.
_SEED = ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF, "control_after_generate": False})
_MASK = ("MASK", {"tooltip": "1 - alpha, as LoadImage gives it: transparency kept"})


# -- nodes -------------------------------------------------------------------------------------


class ColorQuantQuantize:
    """Reduce images to at most K colors: one palette for the whole batch (video frames do not
    flicker) or one per image."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "colors": _COLORS,
                "color_space": _SPACE,
                "dither": _DITHER,
                "dither_strength": _STRENGTH,
                "shared_palette": (
                    "BOOLEAN",
                    {"default": True, "tooltip": "one palette for every image of the batch"},
                ),
                "seed": _SEED,
            },
            "optional": {"mask": _MASK},
        }

    RETURN_TYPES = ("IMAGE", "PALETTE", "MASK")
    RETURN_NAMES = ("image", "palette", "mask")
    FUNCTION = "quantize"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Weighted K-means palette quantization (colorquant). With shared_palette the whole "
        "batch gets one palette (PALETTE is (K, C)), else each image its own ((B, K, C))."
    )

    def quantize(
        self,
        image: torch.Tensor,
        colors: int,
        color_space: str,
        dither: str,
        dither_strength: float,
        shared_palette: bool,
        seed: int,
        mask: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, rgba_in = image_in(image, mask)
        out = cq.quantize_batch(
            x,
            colors,
            shared=shared_palette,
            color_space=color_space,  # type: ignore[arg-type]
            dither=DITHERS[dither],  # type: ignore[arg-type]
            dither_strength=dither_strength,
            seed=seed,
        )
        # Shared: every image has the same palette, all K rows in one order (one index space).
        palette = (out.palettes[0] if shared_palette else out.palettes).cpu()
        result, alpha_mask = image_out(out.image, image.dtype, rgba_in)
        return result, palette, alpha_mask


class ColorQuantPaletteFromImage:
    """Fit a K-color palette to a reference image (every image of the batch together)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "colors": ("INT", {"default": 16, "min": 1, "max": MAX_COLORS, "step": 1}),
                "color_space": _SPACE,
                "seed": _SEED,
            },
            "optional": {"mask": _MASK},
        }

    RETURN_TYPES = ("PALETTE",)
    RETURN_NAMES = ("palette",)
    FUNCTION = "fit"
    CATEGORY = CATEGORY
    DESCRIPTION = "K-means palette of a reference image (all K rows, (K, 3) or (K, 4) with alpha)."

    def fit(
        self, image: torch.Tensor, colors: int, color_space: str, seed: int, mask: Any = None
    ) -> tuple[torch.Tensor]:
        x, _ = image_in(image, mask)
        return (fit_palette(x, colors, color_space, seed),)


class ColorQuantPaletteFromHex:
    """A palette typed as hex colors (``#rrggbb``, ``rrggbb`` or ``#rgb``)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "hex_colors": (
                    "STRING",
                    {
                        "default": PICO8,
                        "multiline": True,
                        "tooltip": "colors separated by spaces, commas or new lines",
                    },
                ),
            }
        }

    RETURN_TYPES = ("PALETTE",)
    RETURN_NAMES = ("palette",)
    FUNCTION = "parse"
    CATEGORY = CATEGORY
    DESCRIPTION = "A palette from hex colors, in the order typed (default: PICO-8's 16)."

    def parse(self, hex_colors: str) -> tuple[torch.Tensor]:
        colors = parse_hex_colors(hex_colors, "hex_colors")
        if len(colors) > MAX_COLORS:
            raise ValueError(f"hex_colors: {len(colors)} colors, a palette holds at most 256")
        return (torch.from_numpy(colors),)


def _palette_files(input_dir: str) -> list[str]:
    names: list[str] = []
    for sub in ("", PALETTE_FOLDER):
        folder = os.path.join(input_dir, sub)
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            full = os.path.join(folder, entry)
            if os.path.isfile(full) and os.path.splitext(entry)[1].lower() in PALETTE_SUFFIXES:
                names.append(f"{sub}/{entry}" if sub else entry)
    return names


class ColorQuantPaletteFromFile:
    """A palette file from ComfyUI's input folder (or ``input/palettes/``): GIMP ``.gpl``,
    ``.hex``/``.txt`` hex colors (lospec's downloads), or an image of at most 256 colors."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        import folder_paths

        return {
            "required": {
                "palette_file": (
                    _palette_files(folder_paths.get_input_directory()),
                    {"tooltip": ".gpl, .hex, .txt, or an image (its distinct colors)"},
                ),
            }
        }

    RETURN_TYPES = ("PALETTE",)
    RETURN_NAMES = ("palette",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Load a palette file (.gpl, .hex, .txt or an image) from the input folder."

    @staticmethod
    def _path(palette_file: str) -> str:
        import folder_paths

        path: str = folder_paths.get_annotated_filepath(palette_file)
        return path

    def load(self, palette_file: str) -> tuple[torch.Tensor]:
        colors = cq.load_palette(self._path(palette_file))
        if len(colors) > MAX_COLORS:
            raise ValueError(f"{palette_file}: {len(colors)} colors, a palette holds at most 256")
        return (torch.from_numpy(np.ascontiguousarray(colors, dtype=np.uint8)),)

    @classmethod
    def IS_CHANGED(cls, palette_file: str) -> str:
        with open(cls._path(palette_file), "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, palette_file: str) -> bool | str:
        import folder_paths

        if not folder_paths.exists_annotated_filepath(palette_file):
            return f"palette_file: no such file in the input folder: {palette_file}"
        return True


class ColorQuantApplyPalette:
    """Map images to a given palette (locked), or keep the palette's colors and fit
    ``extra_colors`` more around them on the batch."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "palette": ("PALETTE",),
                "color_space": _SPACE,
                "dither": _DITHER,
                "dither_strength": _STRENGTH,
                "extra_colors": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": MAX_COLORS - 1,
                        "tooltip": "0: the palette as it is; N: its colors kept, N more fitted",
                    },
                ),
                "seed": _SEED,
            },
            "optional": {"mask": _MASK},
        }

    RETURN_TYPES = ("IMAGE", "PALETTE", "MASK")
    RETURN_NAMES = ("image", "palette", "mask")
    FUNCTION = "apply"
    CATEGORY = CATEGORY
    DESCRIPTION = "Map images to a palette: each pixel its nearest palette color (or dithered)."

    def apply(
        self,
        image: torch.Tensor,
        palette: Any,
        color_space: str,
        dither: str,
        dither_strength: float,
        extra_colors: int,
        seed: int,
        mask: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, rgba_in = image_in(image, mask)
        given = palette_for(as_palette(palette), x.shape[0])
        if extra_colors:
            if given.ndim == 3:
                raise ValueError("extra_colors needs one palette for the batch, got one per image")
            if given.shape[-1] == 4 and bool((given[:, 3] < 255).any()):
                raise ValueError("extra_colors keeps opaque colors; this palette has alpha")
            total = given.shape[0] + extra_colors
            if total > MAX_COLORS:
                raise ValueError(
                    f"palette ({given.shape[0]} colors) + extra_colors ({extra_colors}) is "
                    f"{total}, at most 256"
                )
            fixed = np.unique(given[:, :3].numpy(), axis=0)  # fixed colors must be distinct
            given = fit_palette(x, len(fixed) + extra_colors, color_space, seed, fixed)
        out = map_to_palettes(x, given, color_space, dither, dither_strength)
        result, alpha_mask = image_out(out.image, image.dtype, rgba_in)
        return result, given, alpha_mask


class ColorQuantPalettePreview:
    """A palette as a picture: one square per color, 16 to a row (a batch for per-image
    palettes)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "palette": ("PALETTE",),
                "cell": ("INT", {"default": 32, "min": 1, "max": 256}),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("swatches",)
    FUNCTION = "draw"
    CATEGORY = CATEGORY

    def draw(self, palette: Any, cell: int) -> tuple[torch.Tensor]:
        p = as_palette(palette)
        palettes = p if p.ndim == 3 else p.unsqueeze(0)
        k = palettes.shape[1]
        cols = min(k, 16)
        rows = -(-k // cols)
        grid = torch.zeros((palettes.shape[0], rows * cols, 3), dtype=torch.uint8)
        grid[:, :k] = palettes[..., :3]
        grid = grid.view(-1, rows, cols, 3)
        big = grid.repeat_interleave(cell, dim=1).repeat_interleave(cell, dim=2)
        return (big.to(torch.float32) / 255.0,)


# -- saving ------------------------------------------------------------------------------------


def _metadata_disabled() -> bool:
    try:
        from comfy.cli_args import args
    except ImportError:  # outside ComfyUI (tests)
        return False
    return bool(getattr(args, "disable_metadata", False))


def _truecolor_bytes(frame: np.ndarray, text: Sequence[tuple[str, str]]) -> int:
    """Bytes of the PNG ComfyUI's SaveImage would write for ``frame`` (zlib level 4)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text:
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=4, pnginfo=info)
    return buffer.tell()


class ColorQuantSave:
    """Save images as real palette PNGs (one per image), or the batch as one GIF or APNG, in
    ComfyUI's output folder; PNGs keep the ``prompt`` and ``workflow`` text chunks, so a file
    dragged back into ComfyUI restores its graph."""

    def __init__(self) -> None:
        import folder_paths

        self.output_dir = folder_paths.get_output_directory()
        self.type = "output"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE",),
                "filename_prefix": ("STRING", {"default": "ColorQuant"}),
                "format": (list(FORMATS), {"default": "png"}),
                "colors": (
                    "INT",
                    {
                        "default": 256,
                        "min": 1,
                        "max": MAX_COLORS,
                        "tooltip": "images with more colors are quantized to this many first",
                    },
                ),
                "fps": ("FLOAT", {"default": 8.0, "min": 0.01, "max": 1000.0, "step": 0.5}),
            },
            "optional": {
                "palette": ("PALETTE", {"tooltip": "write this palette, in its order"}),
                "mask": _MASK,
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Palette PNG per image (smallest bit depth), or the batch as one GIF / APNG with one "
        "palette. Already quantized images are written exactly."
    )

    def _results(
        self, frames: list[np.ndarray], fmt: str, colors: int, palette: Any
    ) -> list[cq.QuantizeResult]:
        if palette is not None:
            given = palette_for(as_palette(palette), len(frames))
            if given.ndim == 3 and fmt == "apng":
                raise ValueError("an APNG has one palette: give one for the batch")
            out = []
            for b, frame in enumerate(frames):
                p = (given[b] if given.ndim == 3 else given).numpy()
                out.append(cq.Quantizer.from_palette(p).apply(frame))
            return out
        if fmt == "png":  # each file its own palette: exactly its colors when <= colors
            return [cq.quantize(f, colors, seed=0) for f in frames]
        return cq.quantize_animation(frames, colors, shared=True, seed=0)

    def save(
        self,
        images: torch.Tensor,
        filename_prefix: str = "ColorQuant",
        format: str = "png",
        colors: int = 256,
        fps: float = 8.0,
        palette: Any = None,
        mask: Any = None,
        prompt: Any = None,
        extra_pnginfo: Any = None,
    ) -> dict[str, Any]:
        import folder_paths

        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        frames = frames8(images, mask)
        height, width = frames[0].shape[:2]
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, self.output_dir, width, height
        )
        text: list[tuple[str, str]] = []
        if not _metadata_disabled():
            if prompt is not None:
                text.append(("prompt", json.dumps(prompt)))
            for key, value in (extra_pnginfo or {}).items():
                text.append((key, json.dumps(value)))
        results = self._results(frames, format, colors, palette)
        files: list[dict[str, str]] = []
        written = 0
        if format == "png":
            for b, res in enumerate(results):
                name = f"{filename.replace('%batch_num%', str(b))}_{counter:05}_.png"
                written += cq.save_result(res, os.path.join(folder, name), text=text)
                files.append({"filename": name, "subfolder": subfolder, "type": self.type})
                counter += 1
        else:
            suffix = ".gif" if format == "gif" else ".png"
            name = f"{filename}_{counter:05}_{suffix}"
            data = animation_bytes(results, suffix, durations=frame_durations(len(results), fps))
            if format == "apng" and text:
                data = with_text_chunks(data, text)
            written = atomic_write(os.path.join(folder, name), lambda fh: fh.write(data))
            files.append({"filename": name, "subfolder": subfolder, "type": self.type})
        truecolor = sum(_truecolor_bytes(f, text) for f in frames)
        summary = (
            f"ColorQuant: {len(files)} {format.upper()} file(s), {written} bytes; truecolor PNGs "
            f"(SaveImage) {truecolor} bytes: {written / truecolor:.0%}"
        )
        log.info(summary)
        ui: dict[str, Any] = {"images": files, "text": [summary]}
        if format != "png":
            ui["animated"] = (True,)
        return {"ui": ui}


NODE_CLASS_MAPPINGS: dict[str, type] = {
    "ColorQuantQuantize": ColorQuantQuantize,
    "ColorQuantPaletteFromImage": ColorQuantPaletteFromImage,
    "ColorQuantPaletteFromHex": ColorQuantPaletteFromHex,
    "ColorQuantPaletteFromFile": ColorQuantPaletteFromFile,
    "ColorQuantApplyPalette": ColorQuantApplyPalette,
    "ColorQuantPalettePreview": ColorQuantPalettePreview,
    "ColorQuantSave": ColorQuantSave,
}

NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {
    "ColorQuantQuantize": "ColorQuant Quantize",
    "ColorQuantPaletteFromImage": "ColorQuant Palette from Image",
    "ColorQuantPaletteFromHex": "ColorQuant Palette from Hex",
    "ColorQuantPaletteFromFile": "ColorQuant Palette from File",
    "ColorQuantApplyPalette": "ColorQuant Apply Palette",
    "ColorQuantPalettePreview": "ColorQuant Palette Preview",
    "ColorQuantSave": "ColorQuant Save (palette PNG / GIF / APNG)",
}
