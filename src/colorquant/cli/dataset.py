"""``colorquant dataset SRC DST``: quantize a whole dataset, resumably.

Reports as the other commands do: one line ``colorquant: error: <message>`` on stderr, exit
status 1 and no traceback for a bad SRC, a DST of another job, an unwritable DST, an object
store out of reach (no credentials, no answer, lost mid-job) or a disk that fills up (the job
then stops where it is, and rerunning the same command resumes it); 130 when interrupted; 2
for a usage error (a Ray-only flag without --engine ray). Bad images are no failure: they are
listed in DST's errors file and counted. The package :mod:`colorquant.dataset` is imported
only when the command runs (the other commands start without it), and it imports neither
torch (but for a GPU) nor Ray (but for --engine ray).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import click

from .._checks import DEVICES, InputError
from ..quantize import DATASET_SPEED, DEFAULT_COLORS, DITHERS
from .options import CONTEXT, check_device, dither_strength_option, seed_option, space_option
from .report import EXIT_INTERRUPTED, echo, fail, json_number, plain_message

__all__ = ["dataset"]


#: The phrases of the library's messages that name its Python arguments, as the command's
#: flags. Whole phrases, not bare names as :func:`.report.message` replaces for ``quantize``:
#: this command's messages name SRC's and DST's paths and URLs, which a name must not touch.
_FLAG_PHRASES = (
    ("pass workers=1 and the local engine", "pass --workers 1 and --engine local"),
    ("storage_options: ", "--storage-options: "),
)
#: The options that only the Ray engine reads.
_RAY_FLAGS = (
    ("cpus_per_task", "--cpus-per-task"),
    ("gpus_per_task", "--gpus-per-task"),
    ("concurrency", "--concurrency"),
)


def _message(error: BaseException) -> str:
    """One line for an expected error, the library's argument names as this command's flags
    (only in an :class:`InputError`'s fixed phrases; a path or an object's message is kept as
    it is, which is why this is no :func:`.report.message`)."""
    text = plain_message(error)
    if isinstance(error, InputError):
        for api, flag in _FLAG_PHRASES:
            text = text.replace(api, flag)
    return text


def _check_engine_flags(engine: str) -> None:
    """Refuse a Ray-only flag given with the local engine (it would do nothing).

    Raises:
        click.UsageError: one line naming the flag.
    """
    if engine == "ray":
        return
    context = click.get_current_context()
    for name, flag in _RAY_FLAGS:
        source = context.get_parameter_source(name)
        if source is not None and source != click.core.ParameterSource.DEFAULT:
            raise click.UsageError(f"{flag} needs --engine ray (the local engine ignores it)")


def _progress_bar() -> tuple[Callable[[int], Callable[[int], None]], list[Any]]:
    """A tqdm bar on stderr (images/s and ETA); tqdm turns it off when stderr is no TTY."""
    bars: list[Any] = []

    def start(total: int) -> Callable[[int], None]:
        from tqdm import tqdm

        bar = tqdm(total=total or None, unit="image", file=sys.stderr, disable=None)
        bars.append(bar)

        def update(count: int) -> None:
            bar.update(count)

        return update

    return start, bars


def _human(summary: Any) -> list[str]:
    ratio = f" ({summary.bytes_out / summary.bytes_in:.1%})" if summary.bytes_in else ""
    psnr = "n/a" if summary.mean_psnr is None else f"{summary.mean_psnr:.2f} dB"
    lossless = f" ({summary.lossless:,} lossless)" if summary.lossless else ""
    errors = f"{summary.errors:,} errors"
    if summary.errors:
        errors += f" (listed in {summary.errors_file})"
    unit = "shards" if summary.kind == "shards" else "files"
    before = (
        f", {summary.done_before:,} of {summary.items:,} {unit} done before"
        if summary.done_before
        else ""
    )
    notes = ""
    if summary.animations:  # animated inputs, each written whole as an APNG
        notes += f" ({summary.animations:,} animations, {summary.frames:,} frames, as APNG)"
    if summary.copied:
        notes += f", {summary.copied:,} other files copied ({summary.bytes_copied:,} bytes)"
    if summary.renamed:
        notes += f", {summary.renamed:,} renamed (a.jpg beside a.png writes a.jpg.png)"
    if summary.repeated:
        notes += f", {summary.repeated:,} repeated lines of the list done once"
    return [
        f"{summary.source} -> {summary.destination}: {summary.images:,} images{notes}, {errors}",
        f"bytes {summary.bytes_in:,} -> {summary.bytes_out:,}{ratio}, mean PSNR {psnr}{lossless}",
        f"{summary.seconds:.1f} s, {summary.images_per_second:.2f} images/s "
        f"({summary.engine}, {summary.workers} workers){before}",
    ]


@click.command(context_settings=CONTEXT)
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@click.option(
    "-k",
    "--colors",
    "n_colors",
    type=click.IntRange(1, 256),
    default=DEFAULT_COLORS,
    show_default=True,
    metavar="K",
    help="Palette size, 1..256 (the default, as colorquant quantize's).",
)
@space_option
@click.option(
    "--dither",
    type=click.Choice(DITHERS),
    default="none",
    show_default=True,
    help="fs: Floyd-Steinberg error diffusion; ordered: 8x8 Bayer pattern.",
)
@dither_strength_option
@click.option(
    "--speed",
    type=click.IntRange(1, 10),
    default=DATASET_SPEED,
    show_default=True,
    help="1 (slowest, best) .. 10 (fastest); 7 here (throughput first: 0.2 dB below "
    "colorquant quantize's 4, 35% less fit time).",
)
@seed_option
@click.option(
    "--shared-palette",
    is_flag=True,
    help="Fit one palette on a sample of the dataset (--sample images) and map every image to it.",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Images the shared palette is fitted on, spread over the dataset.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (1: in this process).  [default: the CPU count; 1 on a GPU]",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Images per task (a GPU batch).  [default: 16 on a GPU, else 4]",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    callback=check_device,
    help=(
        f"One of {', '.join(DEVICES)}; on a GPU same-size images are quantized in batches "
        "(a batch out of GPU memory is retried in halves)."
    ),
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: worker processes here; ray: Ray Data, on RAY_ADDRESS's cluster or a local "
    "instance (pip install 'colorquant[ray]').",
)
@click.option(
    "--restart",
    is_flag=True,
    help="Forget DST's manifest and start over (also: write into a non-empty DST).",
)
@click.option(
    "--cpus-per-task",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="--engine ray: CPUs Ray reserves for each task (a batch of files, or a shard).",
)
@click.option(
    "--gpus-per-task",
    type=click.FloatRange(min=0),
    default=None,
    help="--engine ray: GPUs each task asks Ray for.  [default: 1 with --device cuda, else 0]",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="--engine ray: tasks at most at once.  [default: as many as the cluster's resources]",
)
@click.option(
    "--storage-options",
    default=None,
    metavar="JSON",
    help="Keyword arguments of the file systems of URL SRC/DST (s3://, gs://, ...), a JSON "
    'object: {"endpoint_url": "http://..."}, or one per protocol {"s3": {...}}.',
)
@click.option("--json", "as_json", is_flag=True, help="The summary as one JSON object.")
def dataset(
    src: str,
    dst: str,
    n_colors: int,
    color_space: str,
    dither: str,
    dither_strength: float,
    speed: int,
    seed: int,
    shared_palette: bool,
    sample: int,
    workers: int | None,
    batch_size: int | None,
    device: str,
    engine: str,
    restart: bool,
    cpus_per_task: float,
    gpus_per_task: float | None,
    concurrency: int | None,
    storage_options: str | None,
    as_json: bool,
) -> None:
    """Quantize every image of SRC into palette PNGs under DST; rerun to resume.

    SRC and DST are local paths or URLs of fsspec file systems (s3://bucket/images, gs://,
    az://, hf://; pip install 'colorquant[s3]'). SRC is a folder (recursive; DST gets the same
    relative paths: images as palette PNGs, suffix .png, of a.png and a.jpg a.jpg writes
    a.jpg.png; other files copied unchanged), a list file (one path a line, relative to the
    list's folder), a WebDataset shard or a pattern data-{000000..000099}.tar (DST: a folder,
    or a pattern of as many names; each image member is replaced by its palette PNG, every
    other member copied unchanged).

    DST/colorquant-manifest.jsonl records what is done: rerunning the same command skips it, and
    a kill at any moment loses nothing and leaves no partial file. One job at a time writes
    into a DST (a second is refused, naming the first). Bad images are skipped and listed in
    DST/colorquant-errors.jsonl. At the end: images, bytes before and after, mean
    PSNR, errors and time (--json: one object with the keys of
    colorquant.dataset.DatasetSummary).
    """
    _check_engine_flags(engine)
    from ..dataset import quantize_dataset
    from ..dataset.ray_engine import RayOptions
    from ..io import WriteError

    start, bars = _progress_bar()
    try:
        summary = quantize_dataset(
            src,
            dst,
            n_colors,
            color_space=color_space,  # type: ignore[arg-type]
            dither=dither,  # type: ignore[arg-type]
            dither_strength=dither_strength,
            speed=speed,
            seed=seed,
            shared_palette=shared_palette,
            sample=sample,
            workers=workers,
            batch_size=batch_size,
            device=device,
            engine=engine,  # type: ignore[arg-type]
            restart=restart,
            # The bar is drawn on a terminal only (a shard set's total is unknown: the driver
            # opens no shard, each task counts its own members).
            progress=start if sys.stderr.isatty() else None,
            storage_options=storage_options,
            ray_options=RayOptions(cpus_per_task, gpus_per_task or 0.0, concurrency),
        )
    except KeyboardInterrupt:
        raise fail("interrupted; rerun the same command to resume", EXIT_INTERRUPTED) from None
    except (InputError, WriteError, OSError, ValueError, MemoryError) as error:
        raise fail(_message(error)) from None
    except sqlite3.Error as error:  # the driver's plan, a file in the temporary folder
        raise fail(
            f"the job's plan in {tempfile.gettempdir()}: {plain_message(error)}; set TMPDIR to a "
            "folder with room (about 200 bytes an item) and rerun the same command"
        ) from None
    finally:
        for bar in bars:
            bar.close()
    if as_json:
        record = summary.to_json()
        if record["mean_psnr"] is not None:
            record["mean_psnr"] = json_number(record["mean_psnr"])
        echo(json.dumps(record))
    else:
        for line in _human(summary):
            echo(line)
