"""A dataset job from start to end: plan, resume, shared palette, engines, summary.

:func:`quantize_dataset` is what ``colorquant dataset`` runs. The work itself is the per-batch
functions of :mod:`.work`; an engine only decides where they run:

- ``"local"``: worker processes on this machine (forkserver on Linux, spawn elsewhere, so no
  state is inherited), at most two batches in flight per worker (memory stays flat however
  large the dataset: results stream into the manifest), each worker on
  ``threads // workers`` kernel threads so that the workers never oversubscribe the cores. One
  worker runs in the calling process. A GPU (``device`` cuda/mps) takes batches of same-size
  images at once, from one worker unless ``workers`` says otherwise (one device context; a
  batch out of device memory is retried in halves).
- ``"ray"``: the same function in Ray Data's ``map_batches`` over ``ray.data.from_items``, on
  the Ray instance of ``RAY_ADDRESS`` (a cluster) or a local one started for the job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import multiprocessing
import os
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from .._checks import InputError, check_choice, check_int_range, resolve_device
from ..color import DEFAULT_COLOR_SPACE, ColorSpace
from ..io import WriteError
from ..options import FitOptions
from ..quantize import DATASET_SPEED, DITHERS, Dither, Quantizer
from ..threads import get_num_threads, shared_threads
from .lock import job_lock
from .ray_engine import RayOptions, check_address, import_ray, ray_session, run_ray
from .records import open_manifest
from .shards import process_shard
from .sources import (
    FileItem,
    Plan,
    ShardItem,
    assign_outputs,
    image_field,
    iter_samples,
    plan_job,
)
from .sources import sample_key as _sample_key
from .storage import (
    StorageOptions,
    check_location,
    open_read,
    parse_storage_options,
    scheme,
)
from .work import Settings, load_pixels, process_files, worker_init

__all__ = ["ENGINES", "DatasetSummary", "Engine", "JobStopped", "quantize_dataset"]

log = logging.getLogger(__name__)

Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = ("local", "ray")
Progress = Callable[[int], Callable[[int], None]]
"""Called once with the number of images to do; returns what is called with each count done."""


class JobStopped(WriteError):
    """The job stopped before the end (an output could not be written, a worker died); what it
    finished is in the manifest, and rerunning the same job resumes it."""


@dataclass(frozen=True)
class DatasetSummary:
    """What a dataset job did, over all its runs (``done_before`` came from earlier ones).

    Attributes:
        kind: ``"folder"``, ``"list"`` or ``"shards"``.
        items: files or shards in SRC; ``done_before`` of them were done by an earlier run,
            ``processed`` by this one.
        images: images quantized and written; ``errors``: bad items skipped (in ``errors_file``;
            a rerun tries them again).
        animations, frames: of the images, the animated ones (GIF, APNG, WebP), each written
            whole as one APNG, and their frames.
        copied, bytes_copied: files that are no images, copied unchanged (folders and lists).
        renamed: images whose output keeps their suffix (``a.jpg`` -> ``a.jpg.png``) because
            another image of their folder writes the plain name (``a.png``).
        repeated: lines of a list file naming a file that an earlier line named (done once).
        bytes_in, bytes_out: bytes of the input images and of their palette PNGs.
        mean_psnr: mean PSNR (dB) over the images that are not lossless (``lossless`` of them).
        seconds: wall time of this run; ``images_per_second``: this run's images over it.
    """

    kind: str
    source: str
    destination: str
    items: int
    done_before: int
    processed: int
    images: int
    errors: int
    animations: int
    frames: int
    copied: int
    bytes_copied: int
    renamed: int
    repeated: int
    bytes_in: int
    bytes_out: int
    mean_psnr: float | None
    lossless: int
    seconds: float
    images_per_second: float
    engine: str
    workers: int
    manifest: str
    errors_file: str

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict (the keys are the attribute names)."""
        return asdict(self)


def _start_method() -> str:
    return "forkserver" if sys.platform == "linux" else "spawn"


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    source = iter(items)
    while batch := list(itertools.islice(source, size)):
        yield batch


def _pool(workers: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context(_start_method())
    threads = max(1, get_num_threads() // workers)
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=worker_init, initargs=(threads, os.getpid())
    )


def _stream(
    pool: ProcessPoolExecutor, function: Callable[..., Any], units: Iterable[Any], *args: Any
) -> Iterator[Any]:
    """``function(unit, *args)`` in the pool, at most two per worker in flight; results as they
    come (any order)."""
    limit = 2 * pool._max_workers  # type: ignore[attr-defined]
    source = iter(units)
    pending: set[Future[Any]] = set()
    try:
        while True:
            while len(pending) < limit:
                unit = next(source, None)
                if unit is None:
                    break
                pending.add(pool.submit(function, unit, *args))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        for future in pending:
            future.cancel()


def _as_records(kind: str, value: Any) -> list[dict[str, Any]]:
    return [value] if kind == "shards" else list(value)


def _run_local(
    plan_kind: str,
    units: Iterable[Any],
    settings: Settings,
    workers: int,
    on_record: Callable[[dict[str, Any]], None],
) -> None:
    function: Callable[..., Any] = process_shard if plan_kind == "shards" else process_files
    if workers == 1:
        with shared_threads(1):
            for unit in units:
                for record in _as_records(plan_kind, function(unit, settings)):
                    on_record(record)
        return
    pool = _pool(workers)
    try:
        for value in _stream(pool, function, units, settings):
            for record in _as_records(plan_kind, value):
                on_record(record)
    except BrokenProcessPool:
        raise JobStopped(
            "a worker process died (killed, or out of memory?); rerun the same command to resume"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- shared palette ---------------------------------------------------------------------------


def _sample_sources(
    plan: Plan, sample: int, options: StorageOptions
) -> Iterator[FileItem | tuple[str, bytes]]:
    """About ``sample`` images spread over the dataset: evenly spaced files (read from the plan
    in order, :meth:`Plan.sample_images`), or the first images of every shard
    (``ceil(sample / shards)`` each: shards are read from the start; of more shards than
    ``sample``, the first image of ``sample`` evenly spaced ones, so that the driver never opens
    every shard of a large set)."""
    if plan.kind != "shards":
        yield from plan.sample_images(sample)
        return
    shards: list[ShardItem] = plan.shards
    if len(shards) > sample:  # one image of each of `sample` shards spread over all
        shards = [shards[len(shards) * i // sample] for i in range(sample)]
    quota = math.ceil(sample / max(1, len(shards)))
    for shard in shards:
        taken = 0
        try:
            with open_read(shard.src, options) as fh:
                for members in iter_samples(fileobj=fh):
                    for member in members:
                        field = _sample_key(member.info.name)[1]
                        if member.data is not None and image_field(field):
                            yield (f"{shard.name}:{member.info.name}", member.data)
                            taken += 1
                    if taken >= quota:
                        break
        except (OSError, EOFError, tarfile.TarError) as err:  # recorded when processed
            log.info("shared palette: skipping %s: %s", shard.src, err)


def _fit_palette(plan: Plan, settings: Settings, sample: int, workers: int) -> list[list[int]]:
    """One palette fitted on a sample of the dataset, its colors merged as they stream in."""
    quantizer = Quantizer(
        settings.n_colors,
        options=settings.fit,
        device=resolve_device("auto") if settings.device.startswith("cuda") else settings.device,
    )
    seen = 0
    options = settings.storage_options
    sources = _sample_sources(plan, sample, options)
    if workers == 1:
        decoded: Iterable[np.ndarray | None] = (load_pixels(s, options) for s in sources)
        for pixels in decoded:
            if pixels is not None:
                quantizer.partial_fit(pixels)
                seen += 1
    else:
        pool = _pool(workers)
        try:
            for pixels in _stream(pool, load_pixels, sources, options):
                if pixels is not None:
                    quantizer.partial_fit(pixels)
                    seen += 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    if not seen:
        raise InputError("--shared-palette: SRC holds no readable image to fit the palette on")
    log.info("shared palette fitted on %d images", seen)
    palette: list[list[int]] = quantizer.palette.tolist()
    return palette


# -- the job ----------------------------------------------------------------------------------


def quantize_dataset(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    n_colors: int = 256,
    *,
    color_space: ColorSpace = DEFAULT_COLOR_SPACE,
    dither: Dither = "none",
    dither_strength: float = 1.0,
    speed: int = DATASET_SPEED,
    seed: int = 0,
    shared_palette: bool = False,
    sample: int = 1000,
    workers: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    engine: Engine = "local",
    restart: bool = False,
    progress: Progress | None = None,
    storage_options: str | StorageOptions | None = None,
    ray_options: RayOptions | None = None,
) -> DatasetSummary:
    """Quantize every image of a folder, a list file or WebDataset shards into DST; resumable.

    DST mirrors SRC: a folder of palette PNGs at the same relative paths (suffix ``.png``; of
    ``a.png`` and ``a.jpg`` in one folder, ``a.jpg`` writes ``a.jpg.png``) and every other file
    copied unchanged, or shards of the same names with each image member replaced by its palette
    PNG and every other member copied unchanged (:mod:`colorquant.dataset.sources`). Rerunning
    the same job skips what its manifest records as done; a kill at any moment leaves no partial
    output. One job at a time writes into a DST (:mod:`colorquant.dataset.lock`).

    Args:
        src: a folder, a list file, a ``.tar`` shard or a pattern ``data-{000000..000099}.tar``;
            a local path (relative to this process's folder) or a URL of an fsspec file system
            (``s3://bucket/images``; :mod:`colorquant.dataset.storage`).
        dst: a folder (or, for shards, a pattern of as many names), local or a URL.
        n_colors: palette size K, 1..256.
        color_space, dither, dither_strength, speed, seed: as for :func:`colorquant.quantize`
            (but ``speed`` is ``DATASET_SPEED``, 7, unless given).
        shared_palette: fit one palette on about ``sample`` images spread over the dataset (their
            colors merged by :meth:`Quantizer.partial_fit`) and map every image to it.
        sample: images the shared palette is fitted on.
        workers: processes (default: the CPUs this process may use; on a GPU with the local
            engine 1, which feeds the device whole batches from one context); 1 runs in this
            process.
        batch_size: images per task (default 16 on a GPU, else 4).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``; on a GPU same-size images are
            quantized in batches (:func:`colorquant.quantize_batch`), and a batch that runs the
            device out of memory is retried in halves (an image that does not fit alone is an
            error record, not the end of the job).
        engine: ``"local"`` or ``"ray"`` (Ray Data; ``RAY_ADDRESS`` names a cluster).
        restart: forget DST's manifest and start over (also allows a non-empty DST).
        progress: see :data:`Progress`.
        storage_options: keyword arguments of the URL file systems, as a mapping or a JSON
            object (``{"endpoint_url": ...}``, or one object per protocol ``{"s3": {...}}``);
            credentials otherwise come the file system's standard way (environment, config).
        ray_options: CPUs and GPUs per task and concurrency for ``engine="ray"``
            (:class:`~colorquant.dataset.ray_engine.RayOptions`; on a GPU, one GPU per task
            unless given).

    Returns:
        A :class:`DatasetSummary`.

    Raises:
        InputError: a bad argument or SRC; a URL of an unknown protocol, or whose package
            (s3fs, gcsfs, adlfs) is missing, and ``engine="ray"`` without Ray installed (before
            DST is created); DST holds another job
            (:class:`~colorquant.dataset.manifest.SettingsMismatchError`) or unrelated files;
            another job is running in DST
            (:class:`~colorquant.dataset.lock.DestinationBusyError`, naming it); Ray's cluster
            cannot run the job (a node, the resources asked; nothing is written into DST).
        ConnectionError: Ray cannot connect to RAY_ADDRESS's cluster (nothing written to DST).
        WriteError: DST cannot be written; :class:`JobStopped` when that happens mid-job (the
            manifest then holds everything finished, and the same call resumes);
            :class:`~colorquant.dataset.storage.StoreError` when an object store cannot be
            reached (no credentials, no answer, lost mid-job, its lock not renewed).
    """
    start = time.perf_counter()
    check_int_range("n_colors", n_colors, 1, 256)
    fit = FitOptions(color_space=color_space, speed=speed, seed=seed)  # checks them
    check_choice("dither", dither, DITHERS)
    check_choice("engine", engine, ENGINES)
    check_int_range("sample", sample, 1)
    if not 0.0 <= float(dither_strength) <= 1.0:
        raise InputError(f"dither_strength must be in 0..1, got {dither_strength}")
    if engine == "ray" and str(device).split(":")[0] == "cuda":
        run_device = str(device)  # the nodes' GPUs: the driver needs none (nor torch)
    else:
        run_device = resolve_device(device)
    batched = run_device != "cpu"
    if workers is None:  # a GPU: one worker (one device context) feeds it whole batches
        workers = 1 if batched and engine == "local" else get_num_threads()
    n_workers = check_int_range("workers", workers, 1)
    size = check_int_range("batch_size", batch_size or (16 if batched else 4), 1)
    options = parse_storage_options(storage_options)
    check_location("SRC", os.fspath(src), options)  # before anything is written
    check_location("DST", os.fspath(dst), options)
    if (n_workers > 1 or engine == "ray") and any(
        scheme(os.fspath(p)) == "memory" for p in (src, dst)
    ):
        raise InputError(
            "memory:// is this process's memory, which worker processes do not share: "
            "pass workers=1 and the local engine"
        )
    settings = Settings(
        n_colors=n_colors,
        fit=fit,
        dither=dither,
        dither_strength=float(dither_strength),
        device=run_device,
        batched=batched,
        batch_size=size,
        storage_options=options,
    )
    ray = import_ray() if engine == "ray" else None  # before DST is created
    if ray is not None and not ray.is_initialized() and os.environ.get("RAY_ADDRESS"):
        check_address(os.environ["RAY_ADDRESS"])
    resources = ray_options or RayOptions()
    if resources.cpus_per_task <= 0 or resources.gpus_per_task < 0:
        raise InputError(
            f"ray_options: cpus_per_task must be > 0 and gpus_per_task >= 0, got "
            f"{resources.cpus_per_task} and {resources.gpus_per_task}"
        )
    if resources.concurrency is not None:
        check_int_range("concurrency", resources.concurrency, 1)
    if engine == "ray" and run_device.startswith("cuda") and not resources.gpus_per_task:
        resources = dataclasses.replace(resources, gpus_per_task=1.0)
    plan = plan_job(os.fspath(src), os.fspath(dst), options)  # on disk: closed at the end
    with plan:
        return _run_job(
            plan,
            settings,
            engine=engine,
            ray=ray,
            workers=n_workers,
            resources=resources,
            shared_palette=shared_palette,
            sample=sample,
            restart=restart,
            progress=progress,
            start=start,
        )


def _run_job(
    plan: Plan,
    settings: Settings,
    *,
    engine: Engine,
    ray: Any,
    workers: int,
    resources: RayOptions,
    shared_palette: bool,
    sample: int,
    restart: bool,
    progress: Progress | None,
    start: float,
) -> DatasetSummary:
    """The job once planned: the manifest, the shared palette, the engine, the summary."""
    size, options, n_workers = settings.batch_size, settings.storage_options, workers
    job = {
        "kind": plan.kind,
        "source": plan.source,
        **settings.recorded(),
        "shared_palette": shared_palette,
        "sample": sample if shared_palette else None,
    }
    # Ray connected and its nodes checked before DST is touched: a job it refuses writes nothing.
    session = (
        ray_session(ray, plan, n_workers, resources, options)
        if ray is not None
        else contextlib.nullcontext()
    )
    with session, job_lock(plan.root, options) as lock:
        manifest = open_manifest(plan.root, job, restart=restart, options=options, plan=plan)
        if manifest.written:  # images done keep the outputs they wrote
            plan = assign_outputs(plan, manifest.written)
        done_before = len(manifest.done)
        palette = manifest.palette
        if shared_palette and palette is None:
            palette = _fit_palette(plan, settings, sample, n_workers)
        if palette is not None:
            shared = tuple(tuple(int(v) for v in color) for color in palette)  # RGB or RGBA
            settings = dataclasses.replace(settings, palette=shared)
        manifest.begin(palette)
        processed = 0
        images_before = manifest.totals.images + manifest.totals.errors
        try:
            for name, reason in plan.refused:
                if name not in manifest.done:
                    manifest.add({"item": name, "status": "error", "reason": reason})
                    processed += 1
            # The bar counts images (and bad ones), not the files copied; a shard set's total is
            # unknown (the driver opens no shard to count its members: each task reports them).
            total = plan.count_todo_images() if progress is not None else 0
            advance = progress(total) if progress is not None else None

            def on_record(record: dict[str, Any]) -> None:
                nonlocal processed
                lock.check()  # an object store's lease that could not be renewed stops the job
                if record["status"] == "fatal":
                    raise JobStopped(
                        f"{record['reason']}; the job stopped, rerun the same command to resume"
                    )
                manifest.add(record)
                processed += 1
                if advance is not None and record["status"] != "copied":
                    count = (
                        1
                        if plan.kind != "shards"
                        else record.get("images", 0) + len(record.get("errors", ()))
                    )
                    advance(count)

            todo = plan.iter_items(todo=True)  # read from the plan a chunk at a time
            if engine == "ray":
                run_ray(ray, plan, todo, settings, size, resources, on_record)
            else:
                units = todo if plan.kind == "shards" else _batches(todo, size)
                _run_local(plan.kind, units, settings, n_workers, on_record)
        finally:
            manifest.close()
    seconds = time.perf_counter() - start
    totals = manifest.totals
    new_images = totals.images + totals.errors - images_before
    return DatasetSummary(
        kind=plan.kind,
        source=plan.source,
        destination=str(plan.root),
        items=plan.count + len(plan.refused),
        done_before=done_before,
        processed=processed,
        images=totals.images,
        errors=totals.errors,
        animations=totals.animations,
        frames=totals.frames,
        copied=totals.copied,
        bytes_copied=totals.bytes_copied,
        renamed=plan.renamed,
        repeated=plan.repeated,
        bytes_in=totals.bytes_in,
        bytes_out=totals.bytes_out,
        mean_psnr=totals.mean_psnr,
        lossless=totals.lossless,
        seconds=round(seconds, 3),
        images_per_second=round(new_images / seconds, 3) if seconds > 0 else 0.0,
        engine=engine,
        workers=n_workers,
        manifest=str(manifest.path),
        errors_file=str(manifest.errors_path),
    )
