"""The ``colorquant`` command: quantize images, plot MSE against K, plot the color cloud.

This is the only module that prints or exits. Every expected failure (a missing or broken
input, an output that exists, a bad palette file, a K the output format cannot hold, ...) is
reported as one line ``colorquant: error: <message>`` on stderr with exit status 1 and no
traceback; click's usage errors (unknown option, bad choice) keep click's exit status 2. With
several inputs, a failing one is reported and the others are still processed; the exit status
is then 1. Outputs are written atomically, so a failure never leaves a partial file. Anything
else that escapes is a bug and shows its traceback.
"""

from __future__ import annotations

import json
import logging
import math
import os
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
    device_option,
    dither_strength_option,
    figure_option,
    force_option,
    init_option,
    method_option,
    seed_option,
    space_option,
    speed_option,
)
from .alpha import binary_alpha
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
    NotSmallerError,
    check_output_path,
    load_image,
    load_image_bytes,
    load_palette,
    parse_hex_colors,
    result_bytes,
    result_suffix,
    save_result,
)
from .metrics import psnr_from_mse
from .quantize import (
    DITHERS,
    MAX_COLORS,
    Dither,
    Method,
    QualityTooLowError,
    Quantizer,
    QuantizeResult,
)
from .quantize import quantize as quantize_image
from .viz import cloud_figure, elbow_figure, figure_suffix, preview_figure

__all__ = ["main"]

PROG = "colorquant"
STDIO = Path("-")
"""``-`` as IN reads the image from standard input; as ``-o`` writes it to standard output."""
DEFAULT_COLORS = 16
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


CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
MSE_HELP = (
    "MSE is the mean, over all pixels and the 3 channels, of the squared difference of the "
    "8-bit sRGB values (0..255); PSNR = 10 log10(255^2 / MSE) dB; dE00 is the mean CIEDE2000 "
    "color difference over pixels."
)


# -- reporting --------------------------------------------------------------------------------


def _echo(line: str, *, err: bool = False) -> None:
    """Print one line, clearing and redrawing any progress bar around it."""
    stream = sys.stderr if err else sys.stdout
    tqdm_module = sys.modules.get("tqdm")  # imported only when a bar was shown
    if tqdm_module is None:
        click.echo(line, err=err)
        return
    with tqdm_module.tqdm.external_write_mode(file=stream):
        click.echo(line, err=err)


def _message(error: BaseException) -> str:
    """One line for an expected error: its message, the file named if the error has one."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.filename}: {error.strerror}"
    elif isinstance(error, (MemoryError, _torch_oom())):
        text = f"out of memory ({error})" if str(error) else "out of memory"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())  # one line, whatever the message held


def _report_error(error: BaseException | str) -> None:
    text = error if isinstance(error, str) else _message(error)
    _echo(f"{PROG}: error: {text}", err=True)


def _warn(text: str) -> None:
    _echo(f"{PROG}: warning: {text}", err=True)


@contextmanager
def _fatal_errors() -> Iterator[None]:
    """Turn an expected error of the set-up (before any image) into one line and exit 1."""
    try:
        yield
    except _expected() as error:
        _report_error(error)
        raise click.exceptions.Exit(1) from None


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


def _parse_quality(text: str) -> tuple[float, float]:
    """``"60-80"`` -> (60, 80); ``"80"`` -> (0, 80); raise InputError when malformed."""
    low, sep, high = text.partition("-")
    try:
        values = (float(low) if sep else 0.0, float(high if sep else low))
    except ValueError:
        raise InputError(f"--quality must be MIN-MAX or MAX in 0..100, got {text!r}") from None
    if not 0.0 <= values[0] <= values[1] <= 100.0:
        raise InputError(f"--quality must be MIN-MAX with 0 <= MIN <= MAX <= 100, got {text!r}")
    return values


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
        raise InputError(f"-k/--colors must be in 1..{limit} for {where}{hint}, got {n_colors}")


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


@click.group(context_settings=CONTEXT)
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


def _to_stdout(data: bytes, limit: int | None) -> int:
    """Write a whole output file to standard output (unless not smaller than ``limit``)."""
    if limit is not None and len(data) >= limit:
        raise NotSmallerError(
            f"<stdout>: would be {len(data):,} bytes, not smaller than {limit:,}; nothing written"
        )
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return len(data)


def _quantize_animation_one(
    job: _Job,
    data: bytes | None,
    fit_frames: Callable[[list[np.ndarray]], list[QuantizeResult]],
    force: bool,
    skip_if_larger: bool,
    fmt: str,
    start: float,
) -> tuple[dict[str, Any], str]:
    """Quantize and write every frame of an animation, durations and loop count kept."""
    animation = load_animation(job.source) if data is None else load_animation_bytes(data)
    results = fit_frames([_pixels_for(f, fmt) for f in animation.frames])
    limit = animation.size_bytes if skip_if_larger else None
    options: dict[str, Any] = {"durations": animation.durations, "loop": animation.loop}
    if job.output == STDIO:
        bytes_out = _to_stdout(animation_bytes(results, f".{fmt}", **options), limit)
    else:
        bytes_out = save_animation(results, job.output, force=force, max_bytes=limit, **options)
    if job.preview is not None:
        preview_figure(animation.frames[0][..., :3], results[0], path=job.preview, force=force)
    error = float(np.mean([r.mse for r in results]))
    return _report(
        animation.path,
        job.output,
        results[0],
        n_colors=len({tuple(c) for r in results for c in r.palette.tolist()}),
        mse=error,
        psnr=psnr_from_mse(error),
        delta_e=float(np.mean([r.delta_e for r in results])),
        bytes_in=animation.size_bytes,
        bytes_out=bytes_out,
        seconds=time.perf_counter() - start,
        frames=len(results),
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
) -> tuple[dict[str, Any], str]:
    """The JSON record and the human line of one written image (or animation: ``frames``);
    ``result`` gives the fit's record (the first frame's for an animation)."""
    record: dict[str, Any] = {"input": str(source), "output": str(output)}
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
) -> tuple[dict[str, Any], str]:
    """Check, load, quantize, write one image; the JSON record and the human line.

    An animated input (more than one frame) goes to :func:`_quantize_animation_one`.
    """
    start = time.perf_counter()
    if job.problem is not None:
        raise InputError(job.problem)
    for path in (job.output, job.preview):
        if path is not None and path != STDIO:
            _refuse_input(path, inputs)
            check_output_path(path, force=force)
    data = sys.stdin.buffer.read() if job.source == STDIO else None
    if fit_frames is not None and is_animated(job.source if data is None else data):
        return _quantize_animation_one(
            job, data, fit_frames, force, skip_if_larger, stdout_format, start
        )
    loaded = load_image_bytes(data) if data is not None else load_image(job.source)
    result: QuantizeResult = fit(_pixels_for(loaded.pixels, stdout_format))
    limit = loaded.size_bytes if skip_if_larger else None
    keep: dict[str, Any] = {"optimize": optimize}
    if not strip:
        keep.update(icc_profile=loaded.icc_profile, gamma=loaded.gamma, text=loaded.text)
    if job.output == STDIO:
        bytes_out = _to_stdout(result_bytes(result, f".{stdout_format}", **keep), limit)
    else:
        bytes_out = save_result(result, job.output, force=force, max_bytes=limit, **keep)
    if job.preview is not None:
        preview_figure(loaded.pixels[..., :3], result, path=job.preview, force=force)
    return _report(
        loaded.path,
        job.output,
        result,
        n_colors=result.n_colors,
        mse=result.mse,
        psnr=result.psnr,
        delta_e=result.delta_e,
        bytes_in=loaded.size_bytes,
        bytes_out=bytes_out,
        seconds=time.perf_counter() - start,
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
    help=f"Palette size: 1..256 for .png/.gif, up to 65536 for .npz.  [default: {DEFAULT_COLORS}]",
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
    help='Colors every palette keeps, e.g. "#ff0000,#ffffff"; the rest is fitted around them.',
)
@click.option(
    "--shared-palette",
    is_flag=True,
    help="Fit one palette on all inputs together and map each input to it.",
)
@click.option(
    "--quality",
    metavar="MIN-MAX",
    default=None,
    help="0..100 (0 at 20 dB PSNR, 100 at 50 dB and lossless): use the fewest colors, at most "
    "K, that reach MAX; exit 99 and write nothing if even K stays below MIN.",
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
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image on stdout.")
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
    fixed_colors: str | None,
    shared_palette: bool,
    quality: str | None,
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
    quantize and write). With --json, one object per line instead, with the keys input, output,
    n_colors, color_space, method, mse, psnr (null when lossless), delta_e, bytes_in, bytes_out,
    seconds, n_iter, converged. IN may be - (standard input): the image then goes to standard
    output unless -o says otherwise, and the line to stderr.

    Transparency is kept (RGBA clustered premultiplied; a PNG with a tRNS chunk; in a GIF one
    transparent color). An animated GIF or APNG is written as an animation (GIF, or APNG for
    .png) with one palette for all frames, frame durations and loop count kept; its JSON has a
    "frames" key too.

    Outputs are never overwritten without --force, and an input never, even with --force.

    Exit status: 0 when every image was written; 1 when one failed (bad input, existing output,
    unwritable folder...); 99 when --quality's minimum was not reached; 98 when --skip-if-larger
    skipped one; 2 for a usage error. With several images the first of 1, 99, 98 that applies.
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
    if fmt is not None and outdir is None and output != STDIO:
        raise click.UsageError(
            "--format goes with -d or -o -; else the suffix of -o or --ext decides"
        )

    with _fatal_errors():
        run_device = resolve_device(device)
        if preview is not None:
            figure_suffix(preview)
        if output == STDIO:
            suffix = f".{fmt or 'png'}"
        elif output is not None:
            suffix = result_suffix(output)
        elif outdir is not None:
            suffix = f".{fmt or 'png'}"
        else:
            suffix = result_suffix(Path(ext))
        if optimize:
            import importlib.util

            if importlib.util.find_spec("oxipng") is None:
                raise InputError(
                    "--optimize needs the optional pyoxipng package: "
                    "pip install 'colorquant[optimize]'"
                )
        if keep_transparent_rgb and suffix == ".gif":
            raise InputError(
                "--keep-transparent-rgb needs PNG (or .npz) output: GIF holds one transparent color"
            )
        target = _parse_quality(quality) if quality is not None else None
        limit = MAX_COLORS_BY_SUFFIX[suffix]
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
            k = DEFAULT_COLORS if n_colors is None else n_colors
            _check_colors(k, limit, f"{suffix} output")
            fixed = (
                None if fixed_colors is None else parse_hex_colors(fixed_colors, "--fixed-colors")
            )
            options: dict[str, Any] = {
                "color_space": color_space,
                "method": method,
                "init": init,
                "speed": speed,
                "seed": seed,
                "device": run_device,
                "fixed_colors": fixed,
                "posterize": posterize,
                "keep_transparent_rgb": keep_transparent_rgb,
            }
            if shared_palette:
                # One palette for all: every input's colors merged (bounded memory), then fitted.
                shared = Quantizer(k, **options)
                for source in _progress(inputs, "image (palette)"):
                    if is_animated(source):
                        for frame in load_animation(source).frames:
                            shared.partial_fit(_pixels_for(frame, suffix[1:]))
                    else:
                        shared.partial_fit(_pixels_for(load_image(source).pixels, suffix[1:]))
                fit = _apply_with(shared, dither, dither_strength)
                fit_frames = _each_frame(fit)
            else:

                def fit_one(pixels: np.ndarray) -> QuantizeResult:
                    return quantize_image(
                        pixels,
                        k,
                        dither=dither,
                        dither_strength=dither_strength,
                        quality=target,
                        **options,
                    )

                fit = fit_one

                def fit_frames(frames: list[np.ndarray]) -> list[QuantizeResult]:
                    k_frames = k
                    if target is not None:
                        # The frames stacked have the frames' merged histogram: the fewest
                        # colors that reach the target for all of them together.
                        k_frames = quantize_image(
                            np.concatenate(frames), k, quality=target, **options
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
    failed = 0
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
            )
            for job in jobs
        ]
        too_low = skipped = 0
        for future in _progress(pending, "image"):
            try:
                record, line = future.result()
            except QualityTooLowError as error:
                too_low += 1
                _report_error(error)
                continue
            except NotSmallerError as error:
                skipped += 1
                _echo(f"{PROG}: skipped: {error}", err=True)
                continue
            except _expected() as error:
                failed += 1
                _report_error(error)
                continue
            # The image itself may be on standard output: the report then goes to stderr.
            _echo(json.dumps(record) if as_json else line, err=output == STDIO)
    if failed or too_low or skipped:
        raise click.exceptions.Exit(1 if failed else 99 if too_low else 98)


# -- elbow ------------------------------------------------------------------------------------


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

    Quantizes IN with K = 2, 4, 8, ... up to --max-k, prints one line per K (K, colors used, MSE,
    PSNR, dE00, seconds; or JSON with --json) and writes the figure to -o.
    """
    with _fatal_errors():
        run_device = resolve_device(device)
        figure_suffix(output)
        _refuse_input(output, [source])
        check_output_path(output, force=force)
        loaded = load_image(source)
        if loaded.has_alpha:
            _warn(f"{source}: alpha channel ignored (this figure shows colors)")
        ks = _elbow_ks(max_k)
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
        elbow_figure(ks, mses, path=output, force=force)
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
    default=DEFAULT_COLORS,
    show_default=True,
    metavar="K",
    help=f"Palette size, 1..{MAX_COLORS}.",
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
    with _fatal_errors():
        run_device = resolve_device(device)
        _check_colors(n_colors, MAX_COLORS, "plot")
        figure_suffix(output)
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
