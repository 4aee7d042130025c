"""The per-batch work of a dataset job: decode, quantize, encode, write; the same on every engine.

:func:`process_files` takes a batch of files (images, and other files that it copies;
:func:`.shards.process_shard`, built on the helpers here, one WebDataset shard) and returns
JSON-ready records (one per item) that the job appends to its manifest. They run in worker
processes (the local engine), Ray tasks (``--engine ray``) or the calling process, and never
print. A bad image is a record with
``status: "error"`` (an image that cannot be read, quantized or encoded, e.g. a 256-row shared
palette meeting clear pixels, which a PNG cannot hold); a write that fails (disk full, unwritable
folder) is ``status: "fatal"``, which stops the job. Every output is written to a temporary
name and renamed when complete (in an object store: put whole, :mod:`.storage`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._checks import InputError
from ..animation import (
    animation_bytes,
    is_animated,
    load_animation,
    load_animation_bytes,
    quantize_animation,
)
from ..io import (
    WriteError,
    atomic_write,
    check_palette_colors,
    load_image,
    load_image_bytes,
    result_bytes,
)
from ..metrics import psnr_from_mse
from ..options import FitOptions
from ..quantize import Dither, Quantizer, QuantizeResult, quantize, quantize_batch
from ..threads import set_num_threads
from .sources import FileItem
from .storage import (
    StorageOptions,
    StoreError,
    is_url,
    read_bytes,
    source_of,
    write_bytes,
)

__all__ = [
    "BatchFunction",
    "Encoded",
    "ReadError",
    "Record",
    "Settings",
    "encode_animation",
    "encode_each",
    "encode_images",
    "error_record",
    "fatal_record",
    "png_bytes",
    "process_files",
    "worker_init",
]

Record = dict[str, Any]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """What decides the outputs (recorded in the manifest), and how to run.

    Attributes:
        n_colors: palette size K, 1..256.
        fit: how palettes are fitted; a job sets its ``color_space``, ``speed`` and ``seed``
            (the recorded ones) and leaves the rest at their defaults.
        dither: ``"none"``, ``"fs"`` or ``"ordered"``; ``dither_strength`` 0..1.
        palette: ``(K, 3)`` (or RGBA ``(K, 4)``) uint8 shared palette as nested tuples, or
            ``None`` (a palette per image).
        device: where quantizing runs (``"cpu"``, ``"cuda"``, ``"mps"``).
        batched: group same-size images into ``(B, 3, H, W)`` batches for
            :func:`colorquant.quantize_batch` (a GPU), instead of one :func:`quantize` each.
        batch_size: samples of a shard decoded and quantized together (a GPU batch).
        storage_options: keyword arguments of the fsspec file systems of URL SRC and DST
            (:mod:`.storage`); not recorded (credentials).
    """

    n_colors: int = 256
    fit: FitOptions = field(default_factory=FitOptions)
    dither: Dither = "none"
    dither_strength: float = 1.0
    palette: tuple[tuple[int, ...], ...] | None = None
    device: str = "cpu"
    batched: bool = False
    batch_size: int = 16
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def recorded(self) -> dict[str, Any]:
        """The settings that decide the outputs, as the manifest stores them."""
        return {  # the manifest's format: these keys, in this order
            "n_colors": self.n_colors,
            "color_space": self.fit.color_space,
            "dither": self.dither,
            "dither_strength": self.dither_strength,
            "speed": self.fit.speed,
            "seed": self.fit.seed,
        }


def _exit_with(pid: int) -> None:
    """Exit this worker as soon as the job's process ``pid`` is gone, even killed by SIGKILL.

    A pool worker would otherwise wait for work forever: it holds both ends of the pool's queue
    (and, under forkserver, its parent is the fork server, so no parent-death signal comes).
    Waits on a pidfd where Linux has one, else checks every half second.
    """

    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux >= 5.3, or already gone
            fd = None
        if fd is not None:
            select.select([fd], [], [])  # readable when the process has exited
        else:
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                except PermissionError:  # alive, another user's (a reused pid): keep waiting
                    pass
                time.sleep(0.5)
        os._exit(1)  # an output being written stays a temporary file: removed on resume

    threading.Thread(target=watch, name="colorquant-job-watch", daemon=True).start()


def worker_init(threads: int, job_pid: int) -> None:
    """Start of a worker process: ``threads`` kernel threads, truncated files fail, exit with
    the job's process ``job_pid``, and leave Ctrl-C to the job (which stops the pool)."""
    from PIL import ImageFile

    _exit_with(job_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    set_num_threads(max(1, threads))


# -- quantizing -------------------------------------------------------------------------------


def _result(palette: np.ndarray, indices: np.ndarray, psnr: float, settings: Settings) -> Any:
    """A :class:`QuantizeResult` for the writer, from a batch's palette and index map."""
    return QuantizeResult(
        palette=palette,
        indices=indices,
        counts=np.bincount(indices.ravel(), minlength=palette.shape[0]),
        mse=0.0,
        psnr=psnr,
        history=(),
        n_iter=0,
        converged=True,
        color_space=settings.fit.color_space,
        method="kmeans",
        seconds=0.0,
        _mapping=None,
    )


BatchFunction = Callable[..., Any]
"""What quantizes a ``(B, 3, H, W)`` batch on the device: :func:`colorquant.quantize_batch`'s
signature and :class:`~colorquant.result.BatchResult` (a test passes another, e.g. one that runs
out of memory)."""


def _out_of_memory() -> tuple[type[BaseException], ...]:
    """The device's out-of-memory errors (``torch.cuda.OutOfMemoryError``, which is
    ``torch.OutOfMemoryError`` in recent releases: a class on every build of torch, CPU-only
    ones included)."""
    import torch

    return (torch.cuda.OutOfMemoryError,)


def _free_device_cache(device: str) -> None:
    """Give the blocks that a failed batch left cached back to the device before the retry."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and torch.backends.mps.is_available():
        torch.mps.empty_cache()


def _one_batch(
    pixels: list[np.ndarray], settings: Settings, run_batch: BatchFunction
) -> list[QuantizeResult]:
    """``(H, W, 3)`` uint8 images of one size quantized as one ``(B, 3, H, W)`` batch."""
    import torch

    palette = None if settings.palette is None else np.array(settings.palette, np.uint8)
    x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)
    batch = run_batch(
        x.to(settings.device),
        settings.n_colors,
        palette=palette,
        dither=settings.dither,
        dither_strength=settings.dither_strength,
        options=settings.fit,
        device=settings.device,
    )
    results = []
    for b in range(len(pixels)):
        indices = batch.indices[b].cpu().numpy()
        used = max(int(batch.n_colors[b]), int(indices.max()) + 1)
        colors = batch.palettes[b, :used].cpu().numpy().astype(np.uint8)
        results.append(_result(colors, indices.astype(np.uint8), float(batch.psnr[b]), settings))
    return results


def _quantize_batched(
    pixels: list[np.ndarray], settings: Settings, run_batch: BatchFunction | None = None
) -> list[QuantizeResult | BaseException]:
    """Same-size images in ``(B, 3, H, W)`` batches through :func:`colorquant.quantize_batch`
    (an image of a size of its own is a batch of one).

    A batch that runs the device out of memory is tried again split in halves, down to single
    images; an image that does not fit even alone, or that cannot be quantized, is its own
    error (the other images are unaffected). The torch stages give an image the same result
    alone as inside any batch, so the splits change no output.

    Returns:
        Per image, in order, its result or the error that stopped it.
    """
    run = run_batch if run_batch is not None else quantize_batch
    out_of_memory = _out_of_memory()
    out: list[QuantizeResult | BaseException | None] = [None] * len(pixels)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(pixels):
        groups.setdefault(p.shape, []).append(i)
    todo = list(groups.values())
    while todo:
        rows = todo.pop(0)
        short_of_memory = ""
        try:
            results = _one_batch([pixels[i] for i in rows], settings, run)
        except out_of_memory as err:
            # Only its message is kept: the error's traceback holds the batch's tensors, which
            # the device can free only once the error is gone (after this block).
            short_of_memory = str(err).strip().split("\n")[0].split(". ")[0] or "out of memory"
        except (InputError, ValueError, MemoryError) as err:
            for i in rows:
                out[i] = err
            continue
        if short_of_memory:
            _free_device_cache(settings.device)
            if len(rows) > 1:
                half = len(rows) // 2
                log.info("out of %s memory on %d images: trying halves", settings.device, len(rows))
                todo[:0] = [rows[:half], rows[half:]]
            else:
                out[rows[0]] = MemoryError(
                    f"out of {settings.device} memory for this image alone: {short_of_memory}"
                )
            continue
        for i, result in zip(rows, results, strict=True):
            out[i] = result
    return [r for r in out if r is not None]


def _apply_given(pixels: Sequence[np.ndarray], settings: Settings) -> list[QuantizeResult]:
    """Images (or an animation's frames) mapped to the job's palette, one by one: each result
    lists the palette whole, in its order (index space)."""
    assert settings.palette is not None
    given = Quantizer.from_palette(
        np.array(settings.palette, np.uint8),
        color_space=settings.fit.color_space,
        device=settings.device,
    )
    return [
        given.apply(p, dither=settings.dither, dither_strength=settings.dither_strength)
        for p in pixels
    ]


def encode_images(pixels: list[np.ndarray], settings: Settings) -> list[QuantizeResult]:
    """Quantize ``(H, W, 3)`` uint8 images: a batch on a GPU, one by one on the CPU.

    Raises:
        InputError, ValueError, MemoryError: the first image that could not be quantized.
    """
    if settings.batched and pixels:
        results = _quantize_batched(pixels, settings)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results  # type: ignore[return-value]
    if settings.palette is not None:
        return _apply_given(pixels, settings)
    return [
        quantize(
            p,
            settings.n_colors,
            dither=settings.dither,
            dither_strength=settings.dither_strength,
            device=settings.device,
            options=settings.fit,
        )
        for p in pixels
    ]


def encode_each(
    pixels: list[np.ndarray], settings: Settings, run_batch: BatchFunction | None = None
) -> list[QuantizeResult | BaseException]:
    """:func:`encode_images`, a failure costing only its own image (or its GPU batch; a batch
    out of device memory is retried in halves).

    Args:
        pixels: ``(H, W, 3)`` uint8 images.
        settings: the job's settings.
        run_batch: the batched path's device call (default :func:`colorquant.quantize_batch`).

    Returns:
        Per image, in order, its result or the error that stopped it.
    """
    if settings.batched:
        return _quantize_batched(pixels, settings, run_batch)
    results: list[QuantizeResult | BaseException] = []
    for image in pixels:
        try:
            results += encode_images([image], settings)
        except (InputError, ValueError, MemoryError) as err:
            results.append(err)
    return results


def finite_psnr(value: float) -> float | None:
    return value if np.isfinite(value) else None


def png_bytes(result: QuantizeResult, name: str, icc_profile: bytes | None) -> bytes:
    """The palette PNG of ``result``.

    Raises:
        InputError: more rows than a PNG holds (a 256-row shared palette without a fully
            transparent entry, meeting clear pixels); the message names ``name`` and the remedy.
    """
    return result_bytes(result, ".png", icc_profile, name=name)


@dataclass(frozen=True)
class Encoded:
    """An animation quantized and encoded as an APNG."""

    data: bytes
    frames: int
    n_colors: int
    psnr: float
    size_bytes: int
    animated: bool = True


def encode_animation(source: str | bytes, name: str, settings: Settings) -> Encoded:
    """An animated GIF/APNG/WebP (a file's path or bytes) as an APNG with all its frames, their
    durations and loop count: one palette for all frames (the shared palette if there is one,
    else one fitted on every frame, :func:`colorquant.quantize_animation`).

    Raises:
        InputError: the file or a frame cannot be read, or the frames cannot be quantized or
            written (more than 256 colors); the message names ``name``.
    """
    animation = (
        load_animation(source) if isinstance(source, str) else (load_animation_bytes(source, name))
    )
    results: list[QuantizeResult]
    if settings.palette is not None:
        results = _apply_given(animation.frames, settings)
    else:
        results = quantize_animation(
            animation.frames,
            settings.n_colors,
            dither=settings.dither,
            dither_strength=settings.dither_strength,
            device=settings.device,
            options=settings.fit,
        )
    for result in results:  # one palette for all frames: the longest is the APNG's
        check_palette_colors(result.palette, ".png", name)
    data = animation_bytes(results, ".png", durations=animation.durations, loop=animation.loop)
    mse = float(np.mean([r.mse for r in results]))
    return Encoded(
        data=data,
        frames=len(results),
        n_colors=max(r.n_colors for r in results),
        psnr=psnr_from_mse(mse),
        size_bytes=animation.size_bytes,
    )


def error_record(name: str, err: BaseException) -> Record:
    return {"item": name, "status": "error", "reason": " ".join(str(err).split())}


def fatal_record(name: str, err: BaseException) -> Record:
    return {"item": name, "status": "fatal", "reason": " ".join(str(err).split())}


# -- folders and lists ------------------------------------------------------------------------


class ReadError(Exception):
    """An input could not be read (not an OSError, so atomic_write lets it through)."""


def _put(target: str, data: bytes, options: StorageOptions) -> int:
    """Write ``data`` at ``target`` all or nothing: a local file through a temporary name and
    a rename, an object with one put. Raises WriteError or OSError."""
    if is_url(target):
        return write_bytes(target, data, options)
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda fh: fh.write(data), force=True)


def _copy_file(item: FileItem, options: StorageOptions | None = None) -> Record:
    """Copy a file that is no image to ``item.dst`` unchanged (atomically; its mtime kept)."""
    if is_url(item.src) or is_url(item.dst):
        try:
            data = (
                read_bytes(item.src, options) if is_url(item.src) else Path(item.src).read_bytes()
            )
        except StoreError as err:  # SRC's store out of reach: no bad file, the job stops
            return fatal_record(item.name, err)
        except OSError as err:
            return error_record(
                item.name, InputError(f"{item.src}: cannot read: {err.strerror or err}")
            )
        try:
            size = _put(item.dst, data, options or {})
        except (WriteError, OSError) as err:
            return fatal_record(item.name, err)
        return {"item": item.name, "status": "copied", "output": item.dst, "bytes": size}
    try:
        source = open(item.src, "rb")  # noqa: SIM115 - closed below
    except OSError as err:
        return error_record(
            item.name, InputError(f"{item.src}: cannot read: {err.strerror or err}")
        )

    def writer(fh: IO[bytes]) -> None:
        while True:
            try:
                chunk = source.read(1 << 20)
            except OSError as err:
                raise ReadError(f"{item.src}: cannot read: {err.strerror or err}") from None
            if not chunk:
                return
            fh.write(chunk)

    target = Path(item.dst)
    with source:
        try:
            stat = os.fstat(source.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            size = atomic_write(target, writer, force=True)
        except ReadError as err:
            return error_record(item.name, err)
        except (WriteError, OSError) as err:
            return fatal_record(item.name, err)
    with contextlib.suppress(OSError):  # the bytes are what matters, and they are in place
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return {"item": item.name, "status": "copied", "output": item.dst, "bytes": size}


def process_files(items: list[FileItem], settings: Settings) -> list[Record]:
    """Quantize a batch of image files, each to a palette PNG at its ``dst`` (atomically), and
    copy the items that are no images (``item.copy``) unchanged.

    An animated file (GIF, APNG, WebP of more than one frame) is written whole, as an APNG with
    every frame, its durations and loop count, and one palette for all frames (the shared one,
    if any); its record adds ``"frames"``.

    Returns one record per item: ``{"item", "status": "ok", "output", "bytes_in", "bytes_out",
    "psnr", "n_colors"}``, ``{"item", "status": "copied", "output", "bytes"}`` for a copy,
    ``{"item", "status": "error", "reason"}`` for a file that cannot be read, or
    ``status: "fatal"`` for an output that cannot be written (then the rest of the batch is not
    tried).
    """
    records: list[Record] = []
    loaded = []
    for item in items:
        if item.copy:
            records.append(_copy_file(item, settings.storage_options))
            if records[-1]["status"] == "fatal":
                return records
            continue
        try:
            source = source_of(item.src, settings.storage_options)
        except StoreError as err:  # SRC's store out of reach: no bad image, the job stops
            records.append(fatal_record(item.name, err))
            return records
        except OSError as err:
            records.append(error_record(item.name, InputError(f"{item.src}: cannot read: {err}")))
            continue
        if is_animated(source):
            records.append(_animation_file(item, source, settings))
            if records[-1]["status"] == "fatal":
                return records
            continue
        try:
            image = (
                load_image(source)
                if isinstance(source, str)
                else load_image_bytes(source, item.src)
            )
            loaded.append((item, image))
        except (InputError, OSError, MemoryError) as err:
            records.append(error_record(item.name, err))
    results = encode_each([image.pixels for _, image in loaded], settings)
    for (item, image), result in zip(loaded, results, strict=True):
        if isinstance(result, BaseException):
            records.append(error_record(item.name, result))
            continue
        try:
            data = png_bytes(result, item.name, image.icc_profile)
        except InputError as err:
            records.append(error_record(item.name, err))
            continue
        try:
            size = _put(item.dst, data, settings.storage_options)
        except (WriteError, OSError) as err:
            records.append(fatal_record(item.name, err))
            return records
        records.append(
            {
                "item": item.name,
                "status": "ok",
                "output": item.dst,
                "bytes_in": image.size_bytes,
                "bytes_out": size,
                "psnr": finite_psnr(result.psnr),
                "n_colors": result.n_colors,
            }
        )
    return records


def _animation_file(item: FileItem, source: str | bytes, settings: Settings) -> Record:
    """An animated file (its path or bytes) written whole as an APNG at ``item.dst``: its
    record (``frames``)."""
    try:
        encoded = encode_animation(source, item.name, settings)
    except (InputError, ValueError, MemoryError) as err:
        return error_record(item.name, err)
    try:
        size = _put(item.dst, encoded.data, settings.storage_options)
    except (WriteError, OSError) as err:
        return fatal_record(item.name, err)
    return {
        "item": item.name,
        "status": "ok",
        "output": item.dst,
        "bytes_in": encoded.size_bytes,
        "bytes_out": size,
        "psnr": finite_psnr(encoded.psnr),
        "n_colors": encoded.n_colors,
        "frames": encoded.frames,
    }


def load_pixels(
    source: FileItem | tuple[str, bytes], options: StorageOptions | None = None
) -> np.ndarray | None:
    """An image's pixels for fitting a shared palette; ``None`` when it cannot be read."""
    try:
        if isinstance(source, FileItem):
            if source.copy:
                return None
            if is_url(source.src):
                return load_image_bytes(read_bytes(source.src, options), source.src).pixels
            return load_image(source.src).pixels
        return load_image_bytes(source[1], source[0]).pixels
    except (InputError, OSError, MemoryError):
        return None
