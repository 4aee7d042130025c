"""The ``colorquant`` command: quantize images, plot MSE against K, plot the color cloud.

This is the only module that prints or exits. A malformed option (an unknown name, a bad
choice, a K the output format cannot hold, a malformed ``--quality``, ...) is one line
``colorquant: error: --option: what is wrong`` on stderr with exit status 2, in every command
(:mod:`colorquant._cli_options`). Every other expected failure (a missing or broken input, an
output that exists, a bad palette file, ...) is one line ``colorquant: error: <message>`` with
exit status 1 and no traceback. With several inputs, a failing one is reported and the others
are still processed; the exit status is then 1. Outputs are written atomically, so a failure
never leaves a partial file. Standard output whose reader goes away (``| head -1``) ends
quietly. Anything else that escapes is a bug and shows its traceback.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
from PIL import Image, ImageFile

from . import __version__, _cpu
from ._checks import InputError, resolve_device
from ._cli_options import (
    OneLineErrors,
    device_option,
    dither_strength_option,
    figure_option,
    force_option,
    init_option,
    method_option,
    seed_option,
    space_option,
    speed_option,
    stdout_closed,
)
from ._cli_options import echo as _plain_echo
from ._extras import has as has_module
from ._extras import missing_extra
from .alpha import binary_alpha, mse_rgba, with_alpha
from .animation import (
    animation_bytes,
    is_animated,
    load_animation,
    load_animation_bytes,
    quantize_animation,
    save_animation,
)
from .color import ColorSpace
from .histogram import color_histogram
from .init import InitMethod
from .io import (
    MAX_COLORS_BY_SUFFIX,
    ImageFileError,
    NotSmallerError,
    check_colors,
    check_output_path,
    load_image,
    load_image_bytes,
    load_palette,
    parse_hex_colors,
    result_bytes,
    result_suffix,
    save_result,
)
from .metrics import mean_delta_e, psnr_from_mse
from .quantize import (
    DEFAULT_COLORS,
    DITHERS,
    MAX_COLORS,
    Dither,
    Method,
    QualityTooLowError,
    Quantizer,
    QuantizeResult,
    quality_of,
)
from .quantize import quantize as quantize_image
from .viz import cloud_figure, elbow_figure, figure_suffix, preview_figure, save_figure

__all__ = ["main"]

PROG = "colorquant"
STDIO = Path("-")
"""``-`` as IN reads the image from standard input; as ``-o`` writes it to standard output."""
PLOT_COLORS = 16
"""``colorquant plot``'s K: the palette centers drawn among the colors (256 would hide them)."""
DEFAULT_DITHER: Dither = "fs"
"""The command's default dither, as pngquant's (the library's is ``"none"``): on Kodak it lowers
the mean ΔE00 after a blur (the eye's low-pass) by 15% at K = 16, 64 and 256, at 0.9-1.2 dB
less PSNR and 10-34% more bytes (BENCHMARKS.md, "Which dither by default")."""
# Failures of the input or the environment, reported in one line. Anything else is a bug.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    InputError,
    OSError,
    ValueError,
    Image.DecompressionBombError,
    MemoryError,
)


class _OutOfMemory(Exception):
    """Stands for ``torch.cuda.OutOfMemoryError`` until torch is imported (the file path never)."""


def _torch_oom() -> type[BaseException]:
    torch = sys.modules.get("torch")
    return torch.cuda.OutOfMemoryError if torch is not None else _OutOfMemory


def _expected() -> tuple[type[BaseException], ...]:
    return (*EXPECTED_ERRORS, _torch_oom())


def _needs_extra(what: str, module: str) -> None:
    """Before any work: one line naming the extra when ``what`` needs ``module`` and it is not
    installed (``--preview needs matplotlib: pip install 'colorquant[plot]'``)."""
    if not has_module(module):
        raise missing_extra(what, module)


CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
MSE_HELP = (
    "MSE is the mean, over all pixels and the 3 channels, of the squared difference of the "
    "8-bit sRGB values (0..255); PSNR = 10 log10(255^2 / MSE) dB; dE00 is the mean CIEDE2000 "
    "color difference over pixels."
)


# -- reporting --------------------------------------------------------------------------------


def _echo(line: str, *, err: bool = False) -> None:
    """Print one line, clearing and redrawing any progress bar around it; a closed standard
    output ends quietly (:func:`colorquant._cli_options.echo`)."""
    stream = sys.stderr if err else sys.stdout
    tqdm_module = sys.modules.get("tqdm")  # imported only when a bar was shown
    if tqdm_module is None:
        _plain_echo(line, err=err)
        return
    with tqdm_module.tqdm.external_write_mode(file=stream):
        _plain_echo(line, err=err)


# Library messages name the Python API's arguments; the command names its options.
_CLI_NAMES = (
    ("overwrite with force=True or --force", "overwrite with --force"),
    ("fixed_colors", "--fixed-colors"),
    ("n_colors", "-k/--colors"),
    ("dither_strength", "--dither-strength"),
    ("keep_transparent_rgb", "--keep-transparent-rgb"),
    ("posterize", "--posterize"),
    ("method='kmeans'", "--method kmeans"),
    ("method='adam'", "--method adam"),
)


def _cli_names(text: str) -> str:
    """A library message with the API's argument names replaced by the command's options."""
    for api, cli in _CLI_NAMES:
        text = re.sub(rf"(?<![\w-]){re.escape(api)}(?!\w)", cli, text)
    return text


def _message(error: BaseException) -> str:
    """One line for an expected error: its message, the file named if the error has one."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.filename}: {error.strerror}"
    elif isinstance(error, (MemoryError, _torch_oom())):
        text = f"out of memory ({error})" if str(error) else "out of memory"
    else:
        text = str(error) or type(error).__name__
        if isinstance(error, FileExistsError):
            text = text.replace(*_CLI_NAMES[0])
        elif isinstance(error, InputError) and not isinstance(error, ImageFileError):
            text = _cli_names(text)  # (a file's message names paths, not arguments)
    return " ".join(text.split())  # one line, whatever the message held


def _report_error(error: BaseException | str) -> None:
    text = error if isinstance(error, str) else _message(error)
    _echo(f"{PROG}: error: {text}", err=True)


def _warn(text: str) -> None:
    _echo(f"{PROG}: warning: {text}", err=True)


@contextmanager
def _fatal_errors(json_inputs: Sequence[Path] = ()) -> Iterator[None]:
    """Turn an expected error of the set-up (before any image) into one line and exit 1; with
    ``json_inputs`` (``--json``), also an ``error`` record for each of them on stdout."""
    try:
        yield
    except _expected() as error:
        _report_error(error)
        for source in json_inputs:
            _echo(json.dumps(_status_record(source, None, "error", _message(error))))
        raise click.exceptions.Exit(1) from None


@contextmanager
def _option(name: str) -> Iterator[None]:
    """An InputError from checking option ``name`` (``-o/--output``) is a usage error naming it."""
    try:
        yield
    except InputError as error:
        raise click.UsageError(f"{name}: {_message(error)}") from None


def _status_record(
    source: Path, output: Path | None, status: str, reason: str, **more: Any
) -> dict[str, Any]:
    """The ``--json`` record of an input that was not written: ``status`` says what happened
    (``skipped``, ``quality-too-low``, ``error``) and ``reason`` why, in the line's words."""
    record: dict[str, Any] = {"input": _shown(source)}
    if output is not None:
        record["output"] = str(output)
    return {**record, "status": status, "reason": reason, **more}


def _json_number(x: float) -> float | None:
    """JSON has no infinity: a lossless PSNR is written as null."""
    return x if math.isfinite(x) else None


def _progress(items: Sequence[Any], unit: str) -> Any:
    """A tqdm bar on stderr for more than one item; tqdm turns it off when stderr is no TTY."""
    if len(items) <= 1:
        return items  # one file, as scripts call it: no bar, and no import of tqdm (25 ms)
    from tqdm import tqdm

    return tqdm(items, unit=unit, file=sys.stderr, disable=None)


# -- shared checks ----------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (resolved, or the same inode when both exist)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _refuse_input(output: Path, inputs: Sequence[Path]) -> None:
    for source in inputs:
        if _same_file(output, source):
            raise InputError(
                f"{output}: is the input {source}; an input is never overwritten, even with --force"
            )


class _Quality(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 on
    """``--quality MIN-MAX`` as pngquant reads it: ``"60-80"`` -> (60, 80); ``"-80"`` -> (0, 80);
    ``"60-"`` -> (60, 100); ``"80"`` alone -> (72, 80) (its minimum is 9/10 of it, rounded
    down)."""

    name = "MIN-MAX"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        low, sep, high = text.partition("-")
        try:
            if sep:
                values = (float(low or 0), float(high or 100))
            else:
                values = (math.floor(float(low) * 9 / 10), float(low))
        except (ValueError, OverflowError):
            self.fail(f"{text!r} is not MIN-MAX or MAX, numbers in 0..100", param, ctx)
        if not all(math.isfinite(v) for v in values) or not 0 <= values[0] <= values[1] <= 100:
            self.fail(f"{text!r}: MIN-MAX must have 0 <= MIN <= MAX <= 100", param, ctx)
        return values


def _fixed_colors(ctx: click.Context, param: click.Parameter, text: str | None) -> Any:
    """``--fixed-colors`` parsed to ``(F, 3)`` uint8 colors, or a usage error."""
    if text is None:
        return None
    try:
        return parse_hex_colors(text, "--fixed-colors")
    except InputError as error:
        raise click.UsageError(_message(error)) from None


def _ext(ctx: click.Context, param: click.Parameter, text: str) -> str:
    """``--ext``: the ending of an output named after its input, with a known suffix."""
    suffix = Path(f"x{text}").suffix.lower()
    if os.sep in text or "/" in text or suffix not in MAX_COLORS_BY_SUFFIX:
        raise click.UsageError(
            f"--ext: {text!r} is not a file-name ending in {', '.join(MAX_COLORS_BY_SUFFIX)} "
            "(such as -cq.png)"
        )
    return text


def _apply_with(
    quantizer: Quantizer, dither: Dither, strength: float
) -> Callable[[np.ndarray], QuantizeResult]:
    def apply(pixels: np.ndarray) -> QuantizeResult:
        return quantizer.apply(pixels, dither=dither, dither_strength=strength)

    return apply


def _each_frame(
    fit: Callable[[np.ndarray], QuantizeResult],
) -> Callable[[list[np.ndarray]], list[QuantizeResult]]:
    def each(frames: list[np.ndarray]) -> list[QuantizeResult]:
        return [fit(frame) for frame in frames]

    return each


def _check_colors(n_colors: int, limit: int, where: str) -> None:
    if not 1 <= n_colors <= limit:
        hint = f" (up to {MAX_COLORS} for .npz)" if limit < MAX_COLORS else ""
        raise click.UsageError(
            f"-k/--colors: must be in 1..{limit} for {where}{hint}, got {n_colors}"
        )


def _check_fixed_colors(colors: np.ndarray, n_colors: int, method: str) -> None:
    """``--fixed-colors`` against -k and --method (the library would name its arguments)."""
    if colors.shape[0] > n_colors:
        raise click.UsageError(
            f"--fixed-colors: {colors.shape[0]} colors, more than -k/--colors ({n_colors})"
        )
    if len({tuple(c) for c in colors.tolist()}) < colors.shape[0]:
        raise click.UsageError("--fixed-colors: a color is given twice")
    if method != "kmeans":
        raise click.UsageError(f"--fixed-colors: works with --method kmeans, not {method}")


def _not_a_folder(source: Path) -> None:
    """A folder is no image: say which command takes one."""
    if source != STDIO and source.is_dir():
        raise InputError(
            f"{source}: is a directory; to quantize a folder (recursively, resumably) use "
            f"colorquant dataset {source} OUTDIR"
        )


def _configure_logging(verbose: int) -> None:
    logger = logging.getLogger("colorquant")
    for handler in [h for h in logger.handlers if getattr(h, "_colorquant_cli", False)]:
        logger.removeHandler(handler)
    if verbose <= 0:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(name)s: %(message)s"))
    handler._colorquant_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)


def _fit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The fit options elbow and plot share: space, method, init, seed, speed, device."""
    options = (device_option, speed_option, seed_option, init_option, method_option)
    for option in (*options, space_option):
        command = option(command)
    return command


@click.group(cls=OneLineErrors, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name=PROG)
@click.option("-v", "--verbose", count=True, help="Log the fit on stderr (-vv: more).")
def main(verbose: int) -> None:
    """Color quantization with PyTorch: reduce images to a K-color palette.

    Run 'colorquant COMMAND --help' for each command.
    """
    # This process's decoder must fail on truncated files, never pad them.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    # For the whole process (the loaders' own filters are not thread-safe): a bad file gets
    # one line, never Pillow's notes on its metadata, and a decompression bomb is an error.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    _configure_logging(verbose)


# -- quantize ---------------------------------------------------------------------------------


@dataclass
class _Job:
    source: Path
    output: Path
    preview: Path | None
    problem: str | None = None


def _plan(
    inputs: Sequence[Path],
    output: Path | None,
    outdir: Path | None,
    fmt: str,
    preview: Path | None,
    ext: str,
) -> list[_Job]:
    """One job per input: its output and preview paths; clashes marked as the job's problem.

    The output is ``-o``, or ``OUTDIR/<stem>.<fmt>``, or (neither given) next to the input:
    ``<stem><ext>``, as pngquant names its outputs.
    """
    jobs: list[_Job] = []
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
        jobs.append(_Job(source, out, fig))
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


def _pixels_for(pixels: np.ndarray, fmt: str) -> np.ndarray:
    """The pixels to quantize for output format ``fmt``: a GIF has one transparent color and no
    translucency, so its alpha is cut at 128 first (:func:`colorquant.alpha.binary_alpha`)."""
    return binary_alpha(pixels) if fmt == "gif" and pixels.shape[2] == 4 else pixels


def _shown(source: Path) -> str:
    """An input as messages and ``--json`` records name it: ``<stdin>`` for ``-``."""
    return "<stdin>" if source == STDIO else str(source)


def _alpha_cut(source: Path, frames: Sequence[np.ndarray], fmt: str) -> int:
    """How many translucent pixels of ``frames`` output format ``fmt`` cuts to 0 or 255 (GIF
    holds no translucency); when some, one warning line naming ``source``."""
    if fmt != "gif":
        return 0
    translucent = sum(
        int(((f[..., 3] > 0) & (f[..., 3] < 255)).sum()) for f in frames if f.shape[2] == 4
    )
    if translucent:
        _warn(
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


def _quantize_animation_one(
    job: _Job,
    data: bytes | None,
    fit_frames: Callable[[list[np.ndarray]], list[QuantizeResult]],
    force: bool,
    skip_if_larger: bool,
    fmt: str,
    start: float,
    quality: tuple[float, float] | None = None,
) -> tuple[dict[str, Any], str]:
    """Quantize and write every frame of an animation, durations and loop count kept."""
    animation = load_animation(job.source) if data is None else load_animation_bytes(data)
    results = fit_frames([_pixels_for(f, fmt) for f in animation.frames])
    cut = _alpha_cut(animation.path, animation.frames, fmt)
    if cut:
        measured = [_against_input(f, r) for f, r in zip(animation.frames, results, strict=True)]
    else:
        measured = [(r.mse, r.delta_e) for r in results]
    error = float(np.mean([m for m, _ in measured]))
    if cut:
        _check_cut_quality(quality, error, results[0])
    limit = animation.size_bytes if skip_if_larger else None
    options: dict[str, Any] = {"durations": animation.durations, "loop": animation.loop}
    if job.output == STDIO:
        bytes_out = _to_stdout(animation_bytes(results, f".{fmt}", **options), limit)
    else:
        bytes_out = save_animation(results, job.output, force=force, max_bytes=limit, **options)
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
    return _report(
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


def _report(
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
        psnr=_json_number(psnr),
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


def _quantize_one(
    job: _Job,
    *,
    fit: Callable[[np.ndarray], QuantizeResult],
    force: bool,
    inputs: Sequence[Path],
    skip_if_larger: bool = False,
    stdout_format: str = "png",
    strip: bool = False,
    optimize: bool = False,
    fit_frames: Callable[[list[np.ndarray]], list[QuantizeResult]] | None = None,
    quality: tuple[float, float] | None = None,
) -> tuple[dict[str, Any], str]:
    """Check, load, quantize, write one image; the JSON record and the human line.

    An animated input (more than one frame) goes to :func:`_quantize_animation_one`.
    """
    start = time.perf_counter()
    if job.problem is not None:
        raise InputError(job.problem)
    _not_a_folder(job.source)
    for path in (job.output, job.preview):
        if path is not None and path != STDIO:
            _refuse_input(path, inputs)
            check_output_path(path, force=force)
    data = sys.stdin.buffer.read() if job.source == STDIO else None
    if fit_frames is not None and is_animated(job.source if data is None else data):
        return _quantize_animation_one(
            job, data, fit_frames, force, skip_if_larger, stdout_format, start, quality
        )
    loaded = load_image_bytes(data) if data is not None else load_image(job.source)
    result: QuantizeResult = fit(_pixels_for(loaded.pixels, stdout_format))
    error, delta_e = result.mse, result.delta_e
    cut = _alpha_cut(loaded.path, [loaded.pixels], stdout_format)
    if cut:
        error, delta_e = _against_input(loaded.pixels, result)
        _check_cut_quality(quality, error, result)
    limit = loaded.size_bytes if skip_if_larger else None
    keep: dict[str, Any] = {"optimize": optimize}
    if not strip:
        keep.update(icc_profile=loaded.icc_profile, gamma=loaded.gamma, text=loaded.text)
    # A 257th (clear) row that PNG/GIF cannot hold: one line naming the input
    kind = f".{stdout_format}" if job.output == STDIO else result_suffix(job.output)
    check_colors(result, kind, f"{loaded.path} -> {job.output}")
    if job.output == STDIO:
        bytes_out = _to_stdout(result_bytes(result, f".{stdout_format}", **keep), limit)
    else:
        bytes_out = save_result(result, job.output, force=force, max_bytes=limit, **keep)
    if job.preview is not None:
        preview_figure(
            loaded.pixels, result, path=job.preview, force=force, mse=error, delta_e=delta_e
        )
    return _report(
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


@main.command(context_settings=CONTEXT, epilog=MSE_HELP)
@click.argument("inputs", metavar="IN...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-k",
    "--colors",
    "n_colors",
    type=int,
    default=None,
    metavar="K",
    help="Palette size: 1..256 for .png/.gif, up to 65536 for .npz; with --quality, the most "
    f"colors.  [default: {DEFAULT_COLORS}, as pngquant]",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output file for one input; .png, .gif or .npz by suffix; - for standard output.",
)
@click.option(
    "-d",
    "--outdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Output directory (created if missing) for any number of inputs: OUTDIR/<stem>.<format>.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([s[1:] for s in MAX_COLORS_BY_SUFFIX]),
    default=None,
    help="Output format with -d or -o -.  [default: png]",
)
@space_option
@method_option
@init_option
@click.option(
    "--palette",
    "palette_file",
    type=click.Path(path_type=Path),
    help="Map to the colors of this file instead of fitting (GIMP .gpl, hex list, or an image).",
)
@seed_option
@speed_option
@device_option
@click.option(
    "--preview",
    type=click.Path(path_type=Path),
    help="Also write a before/after figure (.png, .pdf, .svg); with several inputs one per "
    "image, named <FIG stem>-<input stem><FIG suffix>.",
)
@click.option(
    "--dither",
    type=click.Choice(DITHERS),
    default=None,
    help="fs: Floyd-Steinberg error diffusion (less at edges; the default, as pngquant's: "
    "15% lower blurred dE00 on Kodak at every K, see BENCHMARKS.md); ordered: 8x8 Bayer "
    "pattern; none: each pixel its nearest color (smallest files, best PSNR).  [default: fs]",
)
@click.option(
    "--nofs",
    is_flag=True,
    help="Same as --dither none (pngquant's name for it).",
)
@dither_strength_option
@click.option(
    "--fixed-colors",
    metavar="HEX,...",
    default=None,
    callback=_fixed_colors,
    help='Colors every palette keeps, e.g. "#ff0000,#ffffff"; the rest is fitted around them.',
)
@click.option(
    "--shared-palette",
    is_flag=True,
    help="Fit one palette on all inputs together and map each input to it.",
)
@click.option(
    "--quality",
    type=_Quality(),
    default=None,
    help="0..100, pngquant's scale (its --quality means the same here): use the fewest colors, "
    "at most K, whose mapping (undithered, as pngquant measures it) reaches MAX; exit 99 and "
    "write nothing if even K stays below MIN. As pngquant: -MAX is 0-MAX, MIN- is MIN-100, "
    "and N alone is (9N/10)-N.",
)
@click.option(
    "--skip-if-larger",
    is_flag=True,
    help="Write nothing and exit 98 when the output would not be smaller than the input file.",
)
@click.option(
    "--ext",
    default="-cq.png",
    show_default=True,
    callback=_ext,
    help="With neither -o nor -d, write each output next to its input, named <stem><EXT>.",
)
@click.option(
    "--posterize",
    type=click.IntRange(1, 8),
    default=None,
    metavar="BITS",
    help="Round the fitted colors to BITS bits per channel (for lower-depth displays).",
)
@click.option(
    "--strip",
    is_flag=True,
    help="Drop the input's metadata: its ICC color profile, gamma and text chunks (kept in PNG "
    "outputs otherwise; EXIF is never kept, its orientation is applied).",
)
@click.option(
    "--keep-transparent-rgb",
    is_flag=True,
    help="Keep (cluster) the colors under fully transparent pixels, e.g. texture padding; by "
    "default they all become one transparent entry. PNG output.",
)
@click.option(
    "--optimize",
    is_flag=True,
    help="Recompress PNG outputs with oxipng (about 5% smaller, 0.2 s an image; needs the "
    "optional pyoxipng: pip install 'colorquant[optimize]'). Not for animations.",
)
@click.option(
    "--per-frame-palette",
    is_flag=True,
    help="Animations: a palette per frame (GIF) instead of one for all frames.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per input on stdout, whatever happened (its status).",
)
@force_option
def quantize(
    inputs: tuple[Path, ...],
    n_colors: int | None,
    output: Path | None,
    outdir: Path | None,
    fmt: str | None,
    color_space: ColorSpace,
    method: Method,
    init: InitMethod,
    palette_file: Path | None,
    seed: int,
    speed: int,
    device: str,
    preview: Path | None,
    dither: Dither | None,
    nofs: bool,
    dither_strength: float,
    fixed_colors: np.ndarray | None,
    shared_palette: bool,
    quality: tuple[float, float] | None,
    skip_if_larger: bool,
    ext: str,
    posterize: int | None,
    strip: bool,
    keep_transparent_rgb: bool,
    optimize: bool,
    per_frame_palette: bool,
    as_json: bool,
    force: bool,
) -> None:
    """Quantize each image IN to a palette of K colors.

    Writes a palette PNG (or GIF, or .npz with `indices` and `palette`) and prints one line per
    image: input -> output, colors, MSE, PSNR, dE00, bytes in -> bytes out, seconds (load,
    quantize and write). IN may be - (standard input): the image then goes to standard output
    unless -o says otherwise, and the line to stderr. A folder is for colorquant dataset.

    With --json, one object per input instead, whatever happened, with a "status": "written"
    (and the keys input, output, n_colors, color_space, method, mse, psnr (null when lossless),
    delta_e, bytes_in, bytes_out, seconds, n_iter, converged); "skipped" (--skip-if-larger),
    "quality-too-low" (--quality; and its "quality") or "error", each with its "reason".

    Transparency is kept (RGBA clustered premultiplied; a PNG with a tRNS chunk; in a GIF one
    transparent color). An animated GIF or APNG is written as an animation (GIF, or APNG for
    .png) with one palette for all frames, frame durations and loop count kept; its JSON has a
    "frames" key too.

    Outputs are never overwritten without --force, and an input never, even with --force.

    Exit status: 0 when every image was written; 1 when one failed (bad input, existing output,
    unwritable folder...); 99 when --quality's minimum was not reached; 98 when --skip-if-larger
    skipped one; 2 for a malformed option (one line naming it). With several images the first
    of 1, 99, 98 that applies.
    """
    if nofs and dither not in (None, "none"):
        raise click.UsageError(f"--nofs and --dither {dither} contradict each other")
    dither = "none" if nofs else dither or DEFAULT_DITHER
    if STDIO in inputs and len(inputs) > 1:
        raise click.UsageError("- (standard input) must be the only input")
    if STDIO in inputs and outdir is not None:
        raise click.UsageError("- (standard input) has no name to write under -d: use -o")
    if STDIO in inputs and output is None:
        output = STDIO  # as pngquant: from standard input to standard output
    if output is not None and outdir is not None:
        raise click.UsageError(
            "give -o OUT (one input) or -d OUTDIR (any number of inputs), not both"
        )
    if output is not None and len(inputs) > 1:
        raise click.UsageError(f"-o takes one input, got {len(inputs)}; use -d OUTDIR")
    if fmt is not None and output != STDIO and outdir is None:
        raise click.UsageError(
            "--format goes with -d or -o -; else the suffix of -o FILE or of --ext decides"
        )
    if palette_file is not None and n_colors is not None:
        raise click.UsageError("give -k/--colors or --palette, not both")
    if palette_file is not None and (fixed_colors is not None or shared_palette):
        raise click.UsageError(
            "--palette maps to given colors: no --fixed-colors or --shared-palette"
        )
    if quality is not None and (palette_file is not None or shared_palette):
        raise click.UsageError(
            "--quality picks K per image: not with --palette or --shared-palette"
        )
    if preview is not None:
        with _option("--preview"):
            figure_suffix(preview)
    if output == STDIO:
        suffix = f".{fmt or 'png'}"
    elif output is not None:
        with _option("-o/--output"):
            suffix = result_suffix(output)
    elif outdir is not None:
        suffix = f".{fmt or 'png'}"
    else:
        suffix = result_suffix(Path(f"x{ext}"))
    if per_frame_palette and suffix != ".gif":
        raise click.UsageError(
            f"--per-frame-palette needs GIF output: {suffix} holds one palette for all frames"
        )
    if keep_transparent_rgb and suffix == ".gif":
        raise click.UsageError(
            "--keep-transparent-rgb needs PNG (or .npz) output: GIF holds one transparent color"
        )
    limit = MAX_COLORS_BY_SUFFIX[suffix]
    k = DEFAULT_COLORS if n_colors is None else n_colors
    if palette_file is None:
        _check_colors(k, limit, f"{suffix} output")
    if fixed_colors is not None:
        _check_fixed_colors(fixed_colors, k, method)

    with _fatal_errors(inputs if as_json else ()):
        if preview is not None:
            _needs_extra("--preview", "matplotlib")
        if method == "adam" and palette_file is None:
            _needs_extra("--method adam", "torch")
        run_device = resolve_device(device)
        if optimize:
            import importlib.util

            if importlib.util.find_spec("oxipng") is None:
                raise InputError(
                    "--optimize needs the optional pyoxipng package: "
                    "pip install 'colorquant[optimize]'"
                )
        fit: Callable[[np.ndarray], QuantizeResult]
        if palette_file is not None:
            palette = load_palette(palette_file)
            if palette.shape[0] > limit:
                raise InputError(
                    f"{palette_file}: {palette.shape[0]} colors, {suffix} output holds at most "
                    f"{limit}"
                )
            given = Quantizer.from_palette(
                palette,
                color_space=color_space,
                device=run_device,
                keep_transparent_rgb=keep_transparent_rgb,
            )
            fit = _apply_with(given, dither, dither_strength)
            fit_frames = _each_frame(fit)
        else:
            options: dict[str, Any] = {
                "color_space": color_space,
                "method": method,
                "init": init,
                "speed": speed,
                "seed": seed,
                "device": run_device,
                "fixed_colors": fixed_colors,
                "posterize": posterize,
                "keep_transparent_rgb": keep_transparent_rgb,
            }
            if shared_palette:
                # One palette for all: every input's colors merged (bounded memory), then fitted.
                shared = Quantizer(k, **options)
                for source in _progress(inputs, "image (palette)"):
                    _not_a_folder(source)
                    if is_animated(source):
                        for frame in load_animation(source).frames:
                            shared.partial_fit(_pixels_for(frame, suffix[1:]))
                    else:
                        shared.partial_fit(_pixels_for(load_image(source).pixels, suffix[1:]))
                _ = shared.palette  # fitted here, once, before the files are mapped in threads
                fit = _apply_with(shared, dither, dither_strength)
                fit_frames = _each_frame(fit)
            else:

                def fit_one(pixels: np.ndarray) -> QuantizeResult:
                    return quantize_image(
                        pixels,
                        k,
                        dither=dither,
                        dither_strength=dither_strength,
                        quality=quality,
                        **options,
                    )

                fit = fit_one

                def fit_frames(frames: list[np.ndarray]) -> list[QuantizeResult]:
                    k_frames = k
                    if quality is not None:
                        # The frames stacked have the frames' merged histogram: the fewest
                        # colors that reach the target for all of them together.
                        k_frames = quantize_image(
                            np.concatenate(frames), k, quality=quality, **options
                        ).n_colors
                    return quantize_animation(
                        frames,
                        k_frames,
                        shared=not per_frame_palette,
                        dither=dither,
                        dither_strength=dither_strength,
                        **options,
                    )

        if outdir is not None:
            if outdir.exists() and not outdir.is_dir():
                raise InputError(f"{outdir}: -d/--outdir is not a directory")
            outdir.mkdir(parents=True, exist_ok=True)

    jobs = _plan(inputs, output, outdir, suffix[1:], preview, ext)
    # Several files on the CPU: one image per core at a time, each on one kernel thread (decoding,
    # encoding and the kernels release the GIL), so that the cores are never oversubscribed.
    # Figures (matplotlib is not thread-safe) and GPUs take the files one by one.
    parallel = len(jobs) if run_device == "cpu" and preview is None else 1
    failed = too_low = skipped = 0
    # The image itself may be on standard output: the reports then go to stderr.
    report_err = output == STDIO
    with _cpu.shared_threads(parallel) as workers, ThreadPoolExecutor(workers) as pool:
        pending = [
            pool.submit(
                _quantize_one,
                job,
                fit=fit,
                force=force,
                inputs=inputs,
                skip_if_larger=skip_if_larger,
                stdout_format=suffix[1:],
                strip=strip,
                optimize=optimize,
                fit_frames=fit_frames,
                quality=quality,
            )
            for job in jobs
        ]
        for job, future in zip(jobs, _progress(pending, "image"), strict=True):
            try:
                record, line = future.result()
            except QualityTooLowError as error:
                too_low += 1
                reason = f"{_shown(job.source)}: {_message(error)}"
                _report_error(reason)
                status = "quality-too-low"
                more = {"quality": math.floor(error.quality), "minimum": error.minimum}
            except NotSmallerError as error:
                skipped += 1
                reason = _message(error)
                _echo(f"{PROG}: skipped: {reason}", err=True)
                status, more = "skipped", {}
            except _expected() as error:
                failed += 1
                reason = _message(error)
                _report_error(reason)
                status, more = "error", {}
            else:
                _echo(json.dumps(record) if as_json else line, err=report_err)
                continue
            if as_json:
                record = _status_record(job.source, job.output, status, reason, **more)
                _echo(json.dumps(record), err=report_err)
    if failed or too_low or skipped:
        raise click.exceptions.Exit(1 if failed else 99 if too_low else 98)


# -- elbow ------------------------------------------------------------------------------------


ELBOW_TITLE = "error of the undithered mapping against palette size K"


def _elbow_ks(max_k: int) -> list[int]:
    """2, 4, 8, ... up to ``max_k``, and ``max_k`` itself."""
    ks = [1 << e for e in range(1, max_k.bit_length()) if 1 << e <= max_k]
    return ks if ks[-1] == max_k else [*ks, max_k]


@main.command(context_settings=CONTEXT, epilog=MSE_HELP)
@click.argument("source", metavar="IN", type=click.Path(path_type=Path))
@click.option(
    "--max-k",
    type=click.IntRange(2, MAX_COLORS),
    default=64,
    show_default=True,
    help="Largest K; K = 2, 4, 8, ... up to it.",
)
@figure_option
@_fit_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per K on stdout.")
@force_option
def elbow(
    source: Path,
    max_k: int,
    output: Path,
    color_space: ColorSpace,
    method: Method,
    init: InitMethod,
    seed: int,
    speed: int,
    device: str,
    as_json: bool,
    force: bool,
) -> None:
    """Plot MSE (and PSNR) against K for image IN, to choose K.

    Quantizes IN with K = 2, 4, 8, ... up to --max-k and measures the undithered mapping (each
    pixel its nearest palette color; a dither, as colorquant quantize's default, adds error on
    purpose and would hide the fit's). Prints one line per K (K, colors used, MSE, PSNR, dE00,
    seconds; or JSON with --json, "dither": "none") and writes the figure to -o.
    """
    with _option("-o/--output"):
        figure_suffix(output)
    with _fatal_errors():
        _needs_extra("colorquant elbow", "matplotlib")
        run_device = resolve_device(device)
        _refuse_input(output, [source])
        check_output_path(output, force=force)
        loaded = load_image(source)
        if loaded.has_alpha:
            _warn(f"{source}: alpha channel ignored (this figure shows colors)")
        ks = _elbow_ks(max_k)
        if not as_json:
            _echo(f"{source}: {ELBOW_TITLE}")
        mses: list[float] = []
        for k in _progress(ks, "K"):
            start = time.perf_counter()
            result = quantize_image(
                loaded.pixels[..., :3],
                k,
                color_space=color_space,
                method=method,
                init=init,
                speed=speed,
                seed=seed,
                device=run_device,
            )
            seconds = time.perf_counter() - start
            mses.append(result.mse)
            record = {
                "input": str(source),
                "k": k,
                "dither": "none",
                "n_colors": result.n_colors,
                "mse": result.mse,
                "psnr": _json_number(result.psnr),
                "delta_e": result.delta_e,
                "seconds": round(seconds, 6),
                "n_iter": result.n_iter,
                "converged": result.converged,
            }
            line = (
                f"K={k:<5d} {result.n_colors:>5d} colors  MSE {result.mse:9.2f}  "
                f"PSNR {result.psnr:6.2f} dB  dE00 {result.delta_e:6.2f}  {seconds:.2f} s"
            )
            _echo(json.dumps(record) if as_json else line)
        figure = elbow_figure(ks, mses)
        figure.axes[0].set_title(ELBOW_TITLE)
        save_figure(figure, output, force=force)
    if not as_json:
        _echo(f"wrote {output}")


# -- plot -------------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@click.argument("source", metavar="IN", type=click.Path(path_type=Path))
@click.option(
    "-k",
    "--colors",
    "n_colors",
    type=int,
    default=PLOT_COLORS,
    show_default=True,
    metavar="K",
    help=f"Palette size, 1..{MAX_COLORS} (the centers drawn).",
)
@figure_option
@_fit_options
@click.option(
    "--points",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Most colors drawn (sampled by pixel count).",
)
@force_option
def plot(
    source: Path,
    n_colors: int,
    output: Path,
    color_space: ColorSpace,
    method: Method,
    init: InitMethod,
    seed: int,
    speed: int,
    device: str,
    points: int,
    force: bool,
) -> None:
    """Plot the colors of image IN as a 3-D cloud with the K palette centers.

    Coordinates are those of --space (R, G, B; or a, b, L with lightness vertical); each color
    is drawn in itself, palette centers as large black-edged markers.
    """
    _check_colors(n_colors, MAX_COLORS, "plot")
    with _option("-o/--output"):
        figure_suffix(output)
    with _fatal_errors():
        _needs_extra("colorquant plot", "matplotlib")
        run_device = resolve_device(device)
        _refuse_input(output, [source])
        check_output_path(output, force=force)
        loaded = load_image(source)
        if loaded.has_alpha:
            _warn(f"{source}: alpha channel ignored (this figure shows colors)")
        result = quantize_image(
            loaded.pixels[..., :3],
            n_colors,
            color_space=color_space,
            method=method,
            init=init,
            speed=speed,
            seed=seed,
            device=run_device,
        )
        hist = color_histogram(np.ascontiguousarray(loaded.pixels[..., :3]).reshape(-1, 3))
        colors, counts = np.asarray(hist.colors), np.asarray(hist.counts)
        cloud_figure(
            colors,
            counts,
            result.palette,
            color_space,
            max_points=points,
            seed=seed,
            path=output,
            force=force,
        )
    _echo(
        f"wrote {output}: {min(points, len(colors)):,} of {len(colors):,} colors, "
        f"{result.n_colors} palette centers ({color_space})"
    )


from ._cli_dataset import dataset  # noqa: E402 (its own module: colorquant dataset, issue 9)

main.add_command(dataset)

if __name__ == "__main__":
    main(prog_name=PROG)
