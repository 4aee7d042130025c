"""colorquant.diffusers: export_to_gif / export_to_apng and pipeline outputs quantized in place.

A real diffusers pipeline runs here, built from a tiny randomly initialised config (a
``UNet2DModel`` and a ``DDPMScheduler``, two steps at 32x32): nothing is downloaded. The
pipeline tests are skipped only where the ``diffusers`` extra is not installed (the dev lock
installs it); the helpers themselves do not need diffusers.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageSequence

from colorquant import InputError
from conftest import NEEDS_TORCH, make_photo_like

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

from colorquant.diffusers import export_to_apng, export_to_gif, frame_durations, quantize_output


def moving_clip(frames: int = 8, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """A still photo-like background and a colorful disk crossing it in the upper third."""
    background = make_photo_like(height, width, seed=3)
    yy, xx = np.mgrid[0:height, 0:width]
    out = []
    for t in range(frames):
        f = background.copy()
        cx = 8 + t * (width - 16) / max(frames - 1, 1)
        disk = (xx - cx) ** 2 + (yy - height / 4) ** 2 < 64
        pattern = np.stack(
            [
                255 * (0.5 + 0.5 * np.sin(xx / 5 + t)),
                255 * (0.5 + 0.5 * np.cos(yy / 4 - t)),
                np.full(xx.shape, 40 * t % 256),
            ],
            axis=-1,
        )
        f[disk] = pattern[disk].astype(np.uint8)
        out.append(f)
    return out


def read_frames(path: str | Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")).astype(np.int64) for f in ImageSequence.Iterator(im)]


def distinct(x: np.ndarray) -> int:
    return len(np.unique(x.reshape(-1, x.shape[-1]), axis=0))


def assert_nearest(original: np.ndarray, quantized: np.ndarray) -> None:
    """Every pixel got the color, among those the result uses, nearest to it in RGB (8-bit)."""
    px = np.round(original.reshape(-1, 3).astype(np.float64))
    out = quantized.reshape(-1, 3).astype(np.float64)
    palette = np.unique(out, axis=0)
    d = ((px[:, None, :] - palette[None]) ** 2).sum(-1)
    got = ((px - out) ** 2).sum(-1)
    assert (got <= d.min(1) + 1e-9).all()


# -- export_to_gif / export_to_apng -------------------------------------------------------------


def test_export_to_gif_writes_one_palette_for_every_frame(tmp_path: Path) -> None:
    clip = moving_clip()
    frames = [Image.fromarray(f) for f in clip]
    path = export_to_gif(frames, tmp_path / "clip.gif", fps=10, n_colors=32)
    assert path == str(tmp_path / "clip.gif")
    got = read_frames(path)
    assert len(got) == 8
    assert distinct(np.stack(got)) <= 32  # over the whole clip, not per frame
    # A background that does not move comes out the same in every frame: no flicker.
    still = np.stack([g[24:] for g in got])
    assert (still == still[:1]).all()
    with Image.open(path) as im:
        assert im.info["loop"] == 0 and im.info["duration"] == 100


def test_export_to_gif_cuts_translucent_alpha_as_the_command_does(tmp_path: Path) -> None:
    clip = moving_clip(2, 16, 32)
    ramp = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (16, 1))  # clear .. opaque
    frames = [np.dstack([f, ramp]) for f in clip]
    path = export_to_gif(frames, tmp_path / "soft.gif", n_colors=16)
    with Image.open(path) as im:
        for t, frame in enumerate(ImageSequence.Iterator(im)):
            alpha = np.asarray(frame.convert("RGBA"))[..., 3]
            np.testing.assert_array_equal(alpha, np.where(ramp < 128, 0, 255), err_msg=f"{t}")
    # An APNG keeps the translucency.
    apng = export_to_apng(frames, tmp_path / "soft.png", n_colors=16)
    with Image.open(apng) as im:
        assert len(np.unique(np.asarray(im.convert("RGBA"))[..., 3])) > 2


def test_export_to_gif_without_a_path_writes_a_temporary_gif() -> None:
    path = export_to_gif([Image.fromarray(f) for f in moving_clip(3)])
    try:
        assert path.endswith(".gif") and os.path.getsize(path) > 0
        assert len(read_frames(path)) == 3
    finally:
        os.unlink(path)


@pytest.mark.parametrize(
    "form",
    ["arrays_float", "array_uint8", "tensor_bfloat16", "tensors"],
)
def test_export_to_gif_takes_arrays_and_tensors(tmp_path: Path, form: str) -> None:
    clip = np.stack(moving_clip(4))
    frames: Any = {
        "arrays_float": [f.astype(np.float32) / 255 for f in clip],
        "array_uint8": clip,
        "tensor_bfloat16": (torch.from_numpy(clip).permute(0, 3, 1, 2) / 255).to(torch.bfloat16),
        "tensors": list(torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255),
    }[form]
    path = export_to_gif(frames, tmp_path / "a.gif", n_colors=16)
    got = np.stack(read_frames(path))
    assert got.shape == clip.shape and distinct(got) <= 16
    assert np.abs(got - clip).mean() < 12


def test_export_to_apng_is_a_palette_apng(tmp_path: Path) -> None:
    path = export_to_apng(moving_clip(6), tmp_path / "clip.png", fps=24, n_colors=64)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "P" and im.n_frames == 6
        durations = []
        for t in range(6):
            im.seek(t)
            durations.append(im.info["duration"])
    assert durations == [42, 41, 42, 42, 41, 42]  # 1000 / 24 ms, the rounding carried
    assert sum(durations) == 250


def test_export_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "clip.gif"
    target.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        export_to_gif(moving_clip(2), target)
    assert target.read_bytes() == b"keep"
    export_to_gif(moving_clip(2), target, force=True)
    assert len(read_frames(target)) == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: export_to_gif([], p), "frames is empty"),
        (lambda p: export_to_gif(moving_clip(2), p, fps=0), "fps must be a positive number"),
        (lambda p: export_to_gif(moving_clip(2), p, n_colors=300), r"n_colors must be in 1\.\.256"),
        (lambda p: export_to_gif("clip", p), "frames must be"),
    ],
)
def test_export_bad_input_names_it(tmp_path: Path, call: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        call(tmp_path / "x.gif")
    assert not (tmp_path / "x.gif").exists()


def test_frame_durations_carry_the_rounding() -> None:
    assert frame_durations(3, 10) == [100, 100, 100]
    assert frame_durations(3, 30) == [33, 34, 33]
    assert sum(frame_durations(24, 24)) == 1000


# -- against diffusers.utils.export_to_gif ------------------------------------------------------

needs_diffusers = pytest.mark.skipif(
    importlib.util.find_spec("diffusers") is None, reason="the diffusers extra is not installed"
)


@needs_diffusers
def test_export_to_gif_against_diffusers(tmp_path: Path) -> None:
    """The same call on a clip with a still background: smaller, no flicker, better PSNR."""
    from diffusers.utils import export_to_gif as diffusers_export_to_gif

    clip = moving_clip(12)
    frames = [Image.fromarray(f) for f in clip]
    theirs = diffusers_export_to_gif(frames, str(tmp_path / "diffusers.gif"), fps=12)
    ours = export_to_gif(frames, str(tmp_path / "colorquant.gif"), fps=12)

    def flicker(path: str) -> float:
        got = np.stack(read_frames(path))[:, 24:]  # the still part, below the disk
        return float(np.abs(np.diff(got, axis=0)).mean())

    def psnr(path: str) -> float:
        mse = np.mean((np.stack(read_frames(path)) - np.stack(clip)) ** 2)
        return float(10 * np.log10(255**2 / mse))

    assert flicker(ours) == 0.0 < flicker(theirs)
    assert os.path.getsize(ours) < os.path.getsize(theirs)
    assert psnr(ours) > psnr(theirs)


# -- pipeline outputs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline() -> Any:
    """A real DDPM pipeline from a tiny randomly initialised UNet: 32x32, no download."""
    pytest.importorskip("diffusers", reason="the diffusers extra is not installed")
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )
    pipe = DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=10))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipeline: Any, **kw: Any) -> Any:
    return pipeline(
        batch_size=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0), **kw
    )


def test_a_pipelines_pil_output_quantized_in_place(pipeline: Any) -> None:
    output = run(pipeline)
    assert isinstance(output.images, list) and output.images[0].size == (32, 32)
    quantized = quantize_output(output, 8, color_space="rgb")
    assert type(quantized) is type(output)
    images = quantized.images
    assert [im.mode for im in images] == ["RGB", "RGB"] and images[0].size == (32, 32)
    together = np.stack([np.asarray(im) for im in images])
    assert distinct(together) <= 8  # one palette for the batch
    assert_nearest(np.stack([np.asarray(im) for im in output.images]), together)


def test_a_pipelines_numpy_output_keeps_shape_and_dtype(pipeline: Any) -> None:
    output = run(pipeline, output_type="np")
    images = output.images
    assert isinstance(images, np.ndarray) and images.shape == (2, 32, 32, 3)
    quantized = quantize_output(images, 8, shared=False, color_space="rgb")
    assert quantized.shape == images.shape and quantized.dtype == images.dtype
    for b in range(2):
        assert distinct(quantized[b]) <= 8
        assert_nearest(images[b] * 255, quantized[b] * 255)
    # More colors, less error (the output is noise: a randomly initialised model).
    one = quantize_output(images, 1, shared=False, color_space="rgb")
    assert np.abs(quantized - images).mean() < 0.8 * np.abs(one - images).mean()
    assert np.array_equal(np.round(quantized * 255), quantized * 255)  # 8-bit palette colors


def test_pil_outputs_as_palette_images_save_as_palette_pngs(pipeline: Any, tmp_path: Path) -> None:
    images = quantize_output(run(pipeline).images, 16, palette_images=True)
    assert [im.mode for im in images] == ["P", "P"]
    images[0].save(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "P"
    # Shared: the two images use at most 16 colors together.
    assert distinct(np.stack([np.asarray(im.convert("RGB")) for im in images])) <= 16


def test_the_pipelines_images_go_to_export_to_gif(pipeline: Any, tmp_path: Path) -> None:
    images = run(pipeline).images
    path = export_to_gif(images, tmp_path / "ddpm.gif", fps=2, n_colors=16)
    got = np.stack(read_frames(path))
    assert got.shape == (2, 32, 32, 3) and distinct(got) <= 16


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.uint8])
def test_a_pt_output_keeps_shape_dtype_and_device(dtype: torch.dtype) -> None:
    x = torch.from_numpy(np.stack(moving_clip(3))).permute(0, 3, 1, 2)
    images = x if dtype == torch.uint8 else (x.float() / 255).to(dtype)
    quantized = quantize_output(images, 8)
    assert quantized.shape == images.shape and quantized.dtype == dtype
    assert quantized.device == images.device
    flat = quantized.float().permute(0, 2, 3, 1).reshape(-1, 3)
    assert len(flat.unique(dim=0)) <= 8


def test_video_frames_in_every_form() -> None:
    clip = np.stack(moving_clip(4))  # (T, H, W, 3)
    as_np = clip[None].astype(np.float32) / 255  # (B, T, H, W, 3)
    out_np = quantize_output(as_np, 8)
    assert out_np.shape == as_np.shape and distinct(out_np) <= 8
    as_pt = torch.from_numpy(as_np).permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W)
    out_pt = quantize_output(as_pt, 8)
    assert out_pt.shape == as_pt.shape
    torch.testing.assert_close(out_pt.permute(0, 1, 3, 4, 2).numpy(), out_np)
    as_pil = [[Image.fromarray(f) for f in clip]]
    out_pil = quantize_output(as_pil, 8)
    assert len(out_pil) == 1 and len(out_pil[0]) == 4
    frames = np.stack([np.asarray(f) for f in out_pil[0]])
    assert np.array_equal(frames, np.round(out_np[0] * 255).astype(np.uint8))


def test_a_video_output_object_keeps_its_class() -> None:
    @dataclasses.dataclass
    class VideoOutput:  # the shape of diffusers' video pipeline outputs
        frames: Any
        nsfw: Any = None

    output = VideoOutput(frames=np.stack(moving_clip(3))[None].astype(np.float32) / 255, nsfw=[0])
    quantized = quantize_output(output, 4)
    assert isinstance(quantized, VideoOutput) and quantized.nsfw == [0]
    assert distinct(quantized.frames) <= 4


def test_a_given_palette_is_used() -> None:
    palette = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0]])
    out = quantize_output(np.stack(moving_clip(2)), palette=palette)
    assert {tuple(c) for c in np.unique(out.reshape(-1, 3), axis=0).tolist()} <= {
        tuple(c) for c in palette.tolist()
    }


def test_rgba_images_keep_their_alpha() -> None:
    rgba = np.dstack([make_photo_like(16, 16), np.full((16, 16), 255, np.uint8)])
    rgba[:, :4, 3] = 0
    out = quantize_output([Image.fromarray(rgba, "RGBA")], 8)
    assert out[0].mode == "RGBA"
    alpha = np.asarray(out[0])[..., 3]
    assert (alpha[:, :4] == 0).all() and (alpha[:, 4:] == 255).all()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("images", "got str"),
        (np.zeros((2, 8, 8)), r"got \(2, 8, 8\)"),
        (np.zeros((2, 8, 8, 3), np.int32), "got int32"),
        (torch.zeros(2, 5, 8, 8), r"got \(2, 5, 8, 8\)"),
        ([[Image.new("RGB", (8, 8))] * 2, [Image.new("RGB", (8, 8))]], r"got \[1, 2\]"),
    ],
)
def test_quantize_output_bad_input_says_what_came(bad: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        quantize_output(bad, 8)
