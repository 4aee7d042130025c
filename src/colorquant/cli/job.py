"""One input of ``colorquant quantize``: its output paths, then load, quantize, write, record.

:func:`plan_jobs` names every input's output (and preview) before any work, marking clashes;
:func:`quantize_one` runs one job in a worker thread and gives its ``--json`` record and its
human line, or raises what the runner reports (:mod:`colorquant.cli.quantize`).
"""

from __future__ import annotations

import errno
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._checks import InputError
from ..alpha import mse_rgba, with_alpha
from ..io import (
    NotSmallerError,
    check_colors,
    check_output_path,
    is_animated,
    load_image,
    load_image_bytes,
    result_bytes,
    result_suffix,
    save_result,
)
from ..metrics import mean_delta_e, psnr_from_mse
from ..quantize import QualityTooLowError, QuantizeResult, quality_of
from .fit import Fitter, pixels_for
from .options import not_a_folder, refuse_input
from .report import STDIO, json_number, shown, stdout_closed, warn

if TYPE_CHECKING:
    from .quantize import QuantizeOptions

__all__ = ["Job", "plan_jobs", "quantize_one"]


@dataclass
class Job:
    """One input and where it goes: ``output`` (``-``: standard output), the ``preview``
    figure, and the ``problem`` found when planning (reported instead of running it)."""

    source: Path
    output: Path
    preview: Path | None
    problem: str | None = None


def plan_jobs(
    inputs: Sequence[Path],
    output: Path | None,
    outdir: Path | None,
    fmt: str,
    preview: Path | None,
    ext: str,
) -> list[Job]:
    """One job per input: its output and preview paths; clashes marked as the job's problem.

    The output is ``-o``, or ``OUTDIR/<stem>.<fmt>``, or (neither given) next to the input:
    ``<stem><ext>``, as pngquant names its outputs.
    """
    jobs: list[Job] = []
    for source in inputs:
        if output is not None:
            out = output
        elif outdir is not None:
            out = outdir / f"{source.stem}.{fmt}"
        else:
            out = source.with_name(f"{source.stem}{ext}")
        fig = preview
        if preview is not None and len(inputs) > 1:
            fig = preview.with_name(f"{preview.stem}-{source.stem}{preview.suffix}")
        jobs.append(Job(source, out, fig))
    claimed: dict[Path, Path] = {}
    for job in jobs:
        for path in (job.output, job.preview):
            if path is None or job.problem is not None:
                continue
            key = path.resolve()
            if key in claimed:
                job.problem = (
                    f"{path}: would be written twice (for {claimed[key]} and {job.source}); "
                    "give the inputs different names or use separate runs"
                )
            claimed[key] = job.source
    return jobs


def _alpha_cut(source: Path, frames: Sequence[np.ndarray], fmt: str) -> int:
    """How many translucent pixels of ``frames`` output format ``fmt`` cuts to 0 or 255 (GIF
    holds no translucency); when some, one warning line naming ``source``."""
    if fmt != "gif":
        return 0
    translucent = sum(
        int(((f[..., 3] > 0) & (f[..., 3] < 255)).sum()) for f in frames if f.shape[2] == 4
    )
    if translucent:
        warn(
            f"{source}: GIF holds no translucency: the alpha of {translucent:,} translucent "
            "pixels was cut at 128 (PNG output keeps it); metrics are against the input"
        )
    return translucent


def _check_cut_quality(
    quality: tuple[float, float] | None, error: float, result: QuantizeResult
) -> None:
    """``--quality`` after a GIF's alpha cut: the quality the command reports (against the
    input) must reach the minimum too, or nothing is written (exit 99)."""
    if quality is None:
        return
    reached = quality_of(psnr_from_mse(error))
    if reached < quality[0]:
        raise QualityTooLowError(
            f"quality {math.floor(reached)} with {result.n_colors} colors is below "
            f"{quality[0]:g} against the input (GIF output cuts its translucency; PNG keeps it)",
            result,
            reached,
            quality[0],
        )


def _against_input(original: np.ndarray, result: QuantizeResult) -> tuple[float, float]:
    """MSE (premultiplied RGBA, :func:`colorquant.alpha.mse_rgba`) and alpha-weighted mean
    ΔE00 of ``result`` against the ``(H, W, 4)`` input it was made from after a cut."""
    out = with_alpha(result.to_numpy())
    error = mse_rgba(original, out)
    weights = original[..., 3].astype(np.float64) / 255.0
    if not weights.any():
        return error, 0.0
    return error, mean_delta_e(original[..., :3], out[..., :3], weights=weights)


def _to_stdout(data: bytes, limit: int | None) -> int:
    """Write a whole output file to standard output (unless not smaller than ``limit``)."""
    if limit is not None and len(data) >= limit:
        raise NotSmallerError(
            f"<stdout>: would be {len(data):,} bytes, not smaller than {limit:,}; nothing written"
        )
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        stdout_closed()
        message = "closed before the whole image was written"
        raise OSError(errno.EPIPE, message, "<stdout>") from None
    return len(data)


def _quantize_animation(
    job: Job, data: bytes | None, options: QuantizeOptions, fitter: Fitter, start: float
) -> tuple[dict[str, Any], str]:
    """Quantize and write every frame of an animation, durations and loop count kept."""
    # Imported here: a still image (the common case) never needs them.
    from ..io.animation import animation_bytes, load_animation, load_animation_bytes, save_animation
    from ..viz import preview_figure

    fmt, force = options.output_format, options.force
    animation = load_animation(job.source) if data is None else load_animation_bytes(data)
    results = fitter.frames([pixels_for(f, fmt) for f in animation.frames])
    cut = _alpha_cut(animation.path, animation.frames, fmt)
    if cut:
        measured = [_against_input(f, r) for f, r in zip(animation.frames, results, strict=True)]
    else:
        measured = [(r.mse, r.delta_e) for r in results]
    error = float(np.mean([m for m, _ in measured]))
    if cut:
        _check_cut_quality(options.quality, error, results[0])
    limit = animation.size_bytes if options.skip_if_larger else None
    timing: dict[str, Any] = {"durations": animation.durations, "loop": animation.loop}
    if job.output == STDIO:
        bytes_out = _to_stdout(animation_bytes(results, f".{fmt}", **timing), limit)
    else:
        bytes_out = save_animation(results, job.output, force=force, max_bytes=limit, **timing)
    if job.preview is not None:
        first_mse, first_delta_e = measured[0]
        preview_figure(
            animation.frames[0],
            results[0],
            path=job.preview,
            force=force,
            mse=first_mse,
            delta_e=first_delta_e,
        )
    return _record(
        animation.path,
        job.output,
        results[0],
        n_colors=len({tuple(c) for r in results for c in r.palette.tolist()}),
        mse=error,
        psnr=psnr_from_mse(error),
        delta_e=float(np.mean([d for _, d in measured])),
        bytes_in=animation.size_bytes,
        bytes_out=bytes_out,
        seconds=time.perf_counter() - start,
        frames=len(results),
        alpha_cut=cut,
    )


def _record(
    source: Path,
    output: Path,
    result: QuantizeResult,
    *,
    n_colors: int,
    mse: float,
    psnr: float,
    delta_e: float,
    bytes_in: int,
    bytes_out: int,
    seconds: float,
    frames: int | None = None,
    alpha_cut: int = 0,
) -> tuple[dict[str, Any], str]:
    """The JSON record and the human line of one written image (or animation: ``frames``);
    ``result`` gives the fit's record (the first frame's for an animation); ``alpha_cut``: the
    translucent pixels a GIF made opaque or clear (recorded when some)."""
    record: dict[str, Any] = {"input": str(source), "output": str(output), "status": "written"}
    if frames is not None:
        record["frames"] = frames
    record.update(
        n_colors=n_colors,
        color_space=result.color_space,
        method=result.method,
        mse=mse,
        psnr=json_number(psnr),
        delta_e=delta_e,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        seconds=round(seconds, 6),
        n_iter=result.n_iter,
        converged=result.converged,
    )
    if alpha_cut:
        record["alpha_cut"] = alpha_cut
    what = f"{n_colors} colors" if frames is None else f"{frames} frames, {n_colors} colors"
    line = (
        f"{source} -> {output}: {what}  MSE {mse:.2f}  PSNR {psnr:.2f} dB  dE00 {delta_e:.2f}  "
        f"{bytes_in:,} -> {bytes_out:,} bytes  {seconds:.2f} s"
    )
    return record, line


def quantize_one(job: Job, options: QuantizeOptions, fitter: Fitter) -> tuple[dict[str, Any], str]:
    """Check, load, quantize, write one input; its JSON record and its human line.

    An animated input (more than one frame) is quantized and written whole.

    Raises:
        QualityTooLowError: ``--quality``'s minimum was not reached (exit 99).
        NotSmallerError: ``--skip-if-larger`` and the output would not be smaller (exit 98).
        Exception: one of :func:`colorquant.cli.report.expected_errors` (exit 1), or a bug.
    """
    start = time.perf_counter()
    fmt, force = options.output_format, options.force
    if job.problem is not None:
        raise InputError(job.problem)
    not_a_folder(job.source)
    for path in (job.output, job.preview):
        if path is not None and path != STDIO:
            refuse_input(path, options.inputs)
            check_output_path(path, force=force)
    data = sys.stdin.buffer.read() if job.source == STDIO else None
    if is_animated(job.source if data is None else data):
        if options.keep_hues:
            what = "works on still images, not animations"
            raise InputError(f"{shown(job.source)}: --keep-hues {what}")
        return _quantize_animation(job, data, options, fitter, start)
    loaded = load_image_bytes(data) if data is not None else load_image(job.source)
    pixels = pixels_for(loaded.pixels, fmt)
    if options.keep_hues and pixels.shape[-1] == 4:
        raise InputError(
            f"{shown(job.source)}: --keep-hues works on opaque images; this one has transparency"
        )
    result: QuantizeResult = fitter.image(pixels)
    error, delta_e = result.mse, result.delta_e
    cut = _alpha_cut(loaded.path, [loaded.pixels], fmt)
    if cut:
        error, delta_e = _against_input(loaded.pixels, result)
        _check_cut_quality(options.quality, error, result)
    limit = loaded.size_bytes if options.skip_if_larger else None
    keep: dict[str, Any] = {"optimize": options.optimize}
    if not options.strip:
        keep.update(icc_profile=loaded.icc_profile, gamma=loaded.gamma, text=loaded.text)
    # A 257th (clear) row that PNG/GIF cannot hold: one line naming the input
    kind = f".{fmt}" if job.output == STDIO else result_suffix(job.output)
    check_colors(result, kind, f"{loaded.path} -> {job.output}")
    if job.output == STDIO:
        bytes_out = _to_stdout(result_bytes(result, f".{fmt}", **keep), limit)
    else:
        bytes_out = save_result(result, job.output, force=force, max_bytes=limit, **keep)
    if job.preview is not None:
        from ..viz import preview_figure  # matplotlib's figures: only with --preview

        preview_figure(
            loaded.pixels, result, path=job.preview, force=force, mse=error, delta_e=delta_e
        )
    return _record(
        loaded.path,
        job.output,
        result,
        n_colors=result.n_colors,
        mse=error,
        psnr=psnr_from_mse(error),
        delta_e=delta_e,
        bytes_in=loaded.size_bytes,
        bytes_out=bytes_out,
        seconds=time.perf_counter() - start,
        alpha_cut=cut,
    )
