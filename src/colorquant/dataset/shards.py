"""The per-shard work of a dataset job: a WebDataset shard in, a shard of palette PNGs out.

:func:`process_shard` reads a shard (a local file or an object, streamed), quantizes its image
members in batches (:func:`.work.encode_each`) and writes a new shard with every other member
unchanged, in order; locally under a temporary name renamed when complete, in an object store
built in a local temporary file and put whole. Like :mod:`.work`, it never prints, and returns
one JSON-ready record.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._checks import InputError
from ..animation import is_animated
from ..io import WriteError, atomic_write, load_image_bytes
from .sources import Member, ShardItem, image_field, iter_samples, sample_key
from .storage import StoreError, is_url, open_read, upload_written
from .work import (
    Encoded,
    ReadError,
    Record,
    Settings,
    encode_animation,
    encode_each,
    error_record,
    fatal_record,
    png_bytes,
)

__all__ = ["process_shard"]


@dataclass
class _ShardTotals:
    images: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    psnr_sum: float = 0.0
    psnr_count: int = 0
    lossless: int = 0
    animations: int = 0
    frames: int = 0


def _png_member(info: tarfile.TarInfo, data: bytes) -> tarfile.TarInfo:
    key, field = sample_key(info.name)
    base, _, _ = field.rpartition(".")
    new = tarfile.TarInfo(f"{key}.{base}.png" if base else f"{key}.png")
    new.size = len(data)
    new.mtime, new.mode = info.mtime, info.mode
    new.uid, new.gid, new.uname, new.gname = info.uid, info.gid, info.uname, info.gname
    return new


def _write_samples(
    out: tarfile.TarFile,
    samples: list[list[Member]],
    shard: str,
    settings: Settings,
    totals: _ShardTotals,
    errors: list[Record],
) -> None:
    """Quantize the image members of ``samples`` and write them, other members unchanged.

    A sample whose image cannot be decoded or quantized is left out whole and recorded in
    ``errors``.
    """
    decoded: list[tuple[int, int, Any]] = []  # (sample, member, LoadedImage)
    animations: list[tuple[int, int, Encoded]] = []  # animated members, encoded whole
    bad: set[int] = set()
    for s, sample in enumerate(samples):
        names = {m.info.name for m in sample}
        for j, member in enumerate(sample):
            if member.data is None or not image_field(sample_key(member.info.name)[1]):
                continue
            label = f"{shard}:{member.info.name}"
            png = _png_member(member.info, b"").name
            if png != member.info.name and png in names:
                errors.append(error_record(label, ValueError(f"{png} is already in the sample")))
                bad.add(s)
                continue
            try:
                if is_animated(member.data):
                    animations.append((s, j, encode_animation(member.data, label, settings)))
                else:
                    decoded.append((s, j, load_image_bytes(member.data, label)))
            except (InputError, OSError, ValueError, MemoryError) as err:
                errors.append(error_record(label, err))
                bad.add(s)
    keep = [d for d in decoded if d[0] not in bad]
    results = encode_each([image.pixels for _, _, image in keep], settings)
    encoded: list[tuple[int, int, Encoded]] = []
    for (s, j, image), result in zip(keep, results, strict=True):
        label = f"{shard}:{samples[s][j].info.name}"
        try:
            if isinstance(result, BaseException):
                raise result
            data = png_bytes(result, label, image.icc_profile)
        except (InputError, ValueError, MemoryError) as err:
            errors.append(error_record(label, err))
            bad.add(s)
            continue
        encoded.append(
            (s, j, Encoded(data, 1, result.n_colors, float(result.psnr), image.size_bytes, False))
        )
    replaced: dict[tuple[int, int], tuple[tarfile.TarInfo, bytes]] = {}
    for s, j, done in sorted([*encoded, *animations], key=lambda e: (e[0], e[1])):
        if s in bad:
            continue
        replaced[s, j] = (_png_member(samples[s][j].info, done.data), done.data)
        totals.images += 1
        if done.animated:
            totals.animations += 1
            totals.frames += done.frames
        totals.bytes_in += done.size_bytes
        totals.bytes_out += len(done.data)
        if np.isfinite(done.psnr):
            totals.psnr_sum += done.psnr
            totals.psnr_count += 1
        else:
            totals.lossless += 1
    for s, sample in enumerate(samples):
        if s in bad:
            continue
        for j, member in enumerate(sample):
            if (s, j) in replaced:
                info, data = replaced[s, j]
                out.addfile(info, _bytes_io(data))
            else:
                out.addfile(member.info, None if member.data is None else _bytes_io(member.data))


def _bytes_io(data: bytes) -> IO[bytes]:
    return io.BytesIO(data)


def process_shard(item: ShardItem, settings: Settings) -> Record:
    """Quantize every image of a WebDataset shard into a new shard at ``item.dst``.

    The image member ``key.jpg`` becomes the palette PNG ``key.png`` (an animated one, an APNG
    with all its frames); every other member is copied unchanged, in order. Samples are
    streamed ``settings.batch_size`` at a time (one batch on a GPU).
    The shard is written under a temporary name and renamed when complete.

    Returns:
        ``{"item", "status": "ok", "output", "images", "bytes_in", "bytes_out", "psnr_sum",
        "psnr_count", "lossless", "animations", "frames", "errors": [{"item", "reason"},
        ...]}``; ``status: "error"`` for a shard that cannot be read; ``status: "fatal"`` when
        the output cannot be written.
    """
    totals = _ShardTotals()
    errors: list[Record] = []
    mode = "w:gz" if item.dst.lower().endswith(("gz", "tgz")) else "w"

    def writer(fh: IO[bytes]) -> None:
        with tarfile.open(fileobj=fh, mode=mode) as out:  # type: ignore[call-overload]
            pending: list[list[Member]] = []
            try:
                with open_read(item.src, settings.storage_options) as fh:
                    for sample in iter_samples(fileobj=fh):
                        pending.append(sample)
                        if len(pending) >= settings.batch_size:
                            _write_samples(out, pending, item.name, settings, totals, errors)
                            pending = []
            except StoreError:  # SRC's store out of reach: no bad shard, the job stops
                raise
            except (OSError, tarfile.TarError, EOFError) as err:
                raise ReadError(f"{item.src}: cannot read the shard: {err}") from None
            _write_samples(out, pending, item.name, settings, totals, errors)

    try:
        if is_url(item.dst):
            size = upload_written(item.dst, writer, settings.storage_options)
        else:
            Path(item.dst).parent.mkdir(parents=True, exist_ok=True)
            size = atomic_write(item.dst, writer, force=True)
    except ReadError as err:
        return error_record(item.name, err)
    except (WriteError, OSError) as err:
        return fatal_record(item.name, err)
    return {
        "item": item.name,
        "status": "ok",
        "output": item.dst,
        "shard_bytes": size,
        "images": totals.images,
        "bytes_in": totals.bytes_in,
        "bytes_out": totals.bytes_out,
        "psnr_sum": totals.psnr_sum,
        "psnr_count": totals.psnr_count,
        "lossless": totals.lossless,
        "animations": totals.animations,
        "frames": totals.frames,
        "errors": [{"item": e["item"], "reason": e["reason"]} for e in errors],
    }
