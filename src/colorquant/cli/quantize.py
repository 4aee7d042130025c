"""``colorquant quantize``: flag checks, fit setup and a job runner around one options value.

The command's flags become one :class:`QuantizeOptions`; :func:`check_flags` settles them
(usage errors, exit 2, before any file is read); :func:`colorquant.cli.fit.setup_fit` makes the
one :class:`~colorquant.cli.fit.Fitter` every input goes through (a given palette, one shared
palette, or a fit per image with the settings of a :class:`colorquant.FitOptions`);
:func:`run_jobs` runs the inputs (:func:`colorquant.cli.job.quantize_one`) and reports each.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
import numpy as np

from .._checks import InputError
from ..color import ColorSpace
from ..init import InitMethod
from ..io import (
    MAX_COLORS_BY_SUFFIX,
    NotSmallerError,
    result_suffix,
)
from ..quantize import (
    DEFAULT_COLORS,
    DITHERS,
    Dither,
    Method,
    QualityTooLowError,
)
from ..threads import shared_threads
from .fit import Fitter, setup_fit
from .job import plan_jobs, quantize_one
from .options import (
    CONTEXT,
    MSE_HELP,
    Quality,
    check_colors,
    check_ext,
    check_fixed_colors,
    check_strength,
    device_option,
    force_option,
    init_option,
    method_option,
    parse_fixed_colors,
    seed_option,
    space_option,
    speed_option,
)
from .report import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_QUALITY,
    EXIT_SKIPPED,
    PROG,
    STDIO,
    echo,
    error,
    expected_errors,
    fail,
    fatal_errors,
    message,
    named_option,
    progress,
    shown,
    status_record,
)

__all__ = [
    "DEFAULT_DITHER",
    "DEFAULT_FS_STRENGTH",
    "QuantizeOptions",
    "check_flags",
    "quantize",
    "run_jobs",
]

DEFAULT_DITHER: Dither = "fs"
"""The command's default dither, as pngquant's (the library's is ``"none"``): Floyd-Steinberg,
against banding in gradients, at :data:`DEFAULT_FS_STRENGTH`."""

DEFAULT_FS_STRENGTH = 0.4
"""The command's Floyd-Steinberg strength unless ``--dither-strength`` says otherwise (the
library's is 1.0): 40% of the error diffused. Against ``pngquant K`` on Kodak's 24 photos at
K = 16, 64 and 256 it writes 0.85-0.93x pngquant's bytes and is better than pngquant's on most
photos by each of five measures (blurred ΔE00 at two viewing distances, its 99th percentile, SSIM,
PSNR); at 1.0 the files are 2-3% smaller than pngquant's and the blurred ΔE00 lower still, but the
SSIM is lower than pngquant's on every photo (dither noise) (BENCHMARKS.md, "Against pngquant:
issue 18's cells, re-measured")."""


@dataclass(frozen=True)
class QuantizeOptions:
    """The flags of ``colorquant quantize``, one field each (``--help`` says what they do).

    As the command line gives them, ``n_colors``, ``dither`` and ``output`` may be ``None``
    and ``fmt`` is what ``--format`` says; :func:`check_flags` returns them settled: ``n_colors``
    the K, ``dither`` the one to use, ``output`` ``-`` for standard input, and ``fmt`` the output
    format (``"png"``, ``"gif"`` or ``"npz"``) that every input is written in.
    """

    inputs: tuple[Path, ...]
    n_colors: int | None
    output: Path | None
    outdir: Path | None
    fmt: str | None
    color_space: ColorSpace
    method: Method
    init: InitMethod
    palette_file: Path | None
    seed: int
    speed: int
    device: str
    preview: Path | None
    dither: Dither | None
    nofs: bool
    dither_strength: float | None
    fixed_colors: np.ndarray | None
    shared_palette: bool
    quality: tuple[float, float] | None
    skip_if_larger: bool
    ext: str
    posterize: int | None
    strip: bool
    keep_transparent_rgb: bool
    keep_hues: bool
    optimize: bool
    per_frame_palette: bool
    as_json: bool
    force: bool

    @property
    def k(self) -> int:
        """The palette size (``-k``, else the default)."""
        return DEFAULT_COLORS if self.n_colors is None else self.n_colors

    @property
    def strength(self) -> float:
        """The dither's strength: ``--dither-strength``, else :data:`DEFAULT_FS_STRENGTH` for
        Floyd-Steinberg and 1.0 for the ordered dither."""
        if self.dither_strength is not None:
            return self.dither_strength
        return DEFAULT_FS_STRENGTH if self.dither in (None, "fs") else 1.0

    @property
    def output_format(self) -> str:
        """The format every output is written in, ``"png"``, ``"gif"`` or ``"npz"`` (settled
        by :func:`check_flags`; ``--format``'s, else PNG, before)."""
        return self.fmt or "png"

    @property
    def suffix(self) -> str:
        """The outputs' suffix: ``".png"``, ``".gif"`` or ``".npz"``."""
        return f".{self.output_format}"


@click.command(context_settings=CONTEXT, epilog=MSE_HELP)
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
    help="fs: Floyd-Steinberg error diffusion at --dither-strength (less at edges; the default, "
    "as pngquant's, against banding in gradients); ordered: 8x8 Bayer pattern; none: each "
    "pixel its nearest color (smallest files, best PSNR).  [default: fs]",
)
@click.option(
    "--nofs",
    is_flag=True,
    help="Same as --dither none (pngquant's name for it).",
)
@click.option(
    "--dither-strength",
    type=click.FloatRange(0.0, 1.0),
    callback=check_strength,
    default=None,
    help="How much of the dither, 0..1 (fs at 0.4: smaller files than at 1.0, and less noise "
    "than pngquant's, see BENCHMARKS.md).  [default: 0.4 for fs, 1.0 for ordered]",
)
@click.option(
    "--fixed-colors",
    metavar="HEX,...",
    default=None,
    callback=parse_fixed_colors,
    help='Colors every palette keeps, e.g. "#ff0000,#ffffff"; the rest is fitted around them.',
)
@click.option(
    "--shared-palette",
    is_flag=True,
    help="Fit one palette on all inputs together and map each input to it.",
)
@click.option(
    "--quality",
    type=Quality(),
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
    callback=check_ext,
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
    "--keep-hues",
    is_flag=True,
    help="Keep one palette entry for the largest small region whose hue the fit lost (a green "
    "eye in brown fur): a second fit, some PSNR for the hue where people look. Still opaque "
    "images, --method kmeans; not with --palette or --shared-palette.",
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
def quantize(**flags: Any) -> None:
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
    options = check_flags(QuantizeOptions(**flags))
    with fatal_errors(options.inputs if options.as_json else ()):
        fitter, run_device = setup_fit(options)
    status = run_jobs(options, fitter, run_device)
    if status:
        raise click.exceptions.Exit(status)


# -- flag checks ------------------------------------------------------------------------------


def _output_suffix(options: QuantizeOptions, output: Path | None) -> str:
    """The one output format of the run: -o's suffix, --format (-d, -o -) or --ext's."""
    if output == STDIO or (output is None and options.outdir is not None):
        return f".{options.fmt or 'png'}"
    if output is not None:
        with named_option("-o/--output"):
            if output.is_dir():
                raise InputError(f"{output} is a folder: -d/--outdir writes into one")
            return result_suffix(output)
    return result_suffix(Path(f"x{options.ext}"))


def check_flags(options: QuantizeOptions) -> QuantizeOptions:
    """Refuse contradictory or impossible flags (a usage error, exit 2) before any work.

    Returns:
        ``options`` settled: ``dither`` and ``n_colors`` resolved, ``output`` ``-`` when the
        input is standard input, ``fmt`` the output format.

    Raises:
        click.UsageError: one line naming the flags at fault.
    """
    dither, nofs, inputs = options.dither, options.nofs, options.inputs
    output, outdir = options.output, options.outdir
    if nofs and dither not in (None, "none"):
        raise click.UsageError(f"--nofs and --dither {dither} contradict each other")
    dither = "none" if nofs else dither or DEFAULT_DITHER
    if dither == "none" and options.dither_strength is not None:
        flag = "--nofs" if nofs else "--dither none"
        raise click.UsageError(f"--dither-strength scales a dither: not with {flag}")
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
    if options.fmt is not None and output != STDIO and outdir is None:
        raise click.UsageError(
            "--format goes with -d or -o -; else the suffix of -o FILE or of --ext decides"
        )
    given = options.palette_file is not None
    if given and options.n_colors is not None:
        raise click.UsageError("give -k/--colors or --palette, not both")
    if given and (options.fixed_colors is not None or options.shared_palette):
        raise click.UsageError(
            "--palette maps to given colors: no --fixed-colors or --shared-palette"
        )
    if options.quality is not None and (given or options.shared_palette):
        raise click.UsageError(
            "--quality picks K per image: not with --palette or --shared-palette"
        )
    if options.keep_hues and (given or options.shared_palette or options.method != "kmeans"):
        raise click.UsageError(
            "--keep-hues fits each image's palette with --method kmeans: not with --palette, "
            "--shared-palette or --method adam"
        )
    if options.preview is not None:
        from ..viz import figure_suffix  # only --preview needs the figures' module

        with named_option("--preview"):
            figure_suffix(options.preview)
    suffix = _output_suffix(options, output)
    if options.per_frame_palette and suffix != ".gif":
        raise click.UsageError(
            f"--per-frame-palette needs GIF output: {suffix} holds one palette for all frames"
        )
    if options.keep_transparent_rgb and suffix == ".gif":
        raise click.UsageError(
            "--keep-transparent-rgb needs PNG (or .npz) output: GIF holds one transparent color"
        )
    k = options.k
    if not given:
        check_colors(k, MAX_COLORS_BY_SUFFIX[suffix], f"{suffix} output")
    if options.fixed_colors is not None:
        check_fixed_colors(options.fixed_colors, k, options.method)
    return replace(options, n_colors=k, dither=dither, output=output, fmt=suffix[1:])


# -- job runner -------------------------------------------------------------------------------


def run_jobs(options: QuantizeOptions, fitter: Fitter, run_device: str) -> int:
    """Quantize every input, each reported as it ends (in input order); the exit status.

    Returns:
        0 when every input was written; else the first of 1 (a failure), 99 (``--quality``'s
        minimum not reached), 98 (``--skip-if-larger``) that applies.
    """
    if options.as_json:
        import json  # only --json needs it: the command's start-up skips it otherwise

    fmt = options.output_format
    jobs = plan_jobs(
        options.inputs, options.output, options.outdir, fmt, options.preview, options.ext
    )
    # Several files on the CPU: one image per core at a time, each on one kernel thread
    # (decoding, encoding and the kernels release the GIL), so that the cores are never
    # oversubscribed. Figures (matplotlib is not thread-safe) and GPUs take the files one by one.
    parallel = len(jobs) if run_device == "cpu" and options.preview is None else 1
    failed = too_low = skipped = 0
    # The image itself may be on standard output: the reports then go to stderr.
    report_err = options.output == STDIO
    try:
        with shared_threads(parallel) as workers, ThreadPoolExecutor(workers) as pool:
            pending = [pool.submit(quantize_one, job, options, fitter) for job in jobs]
            try:
                for job, future in zip(jobs, progress(pending, "image"), strict=True):
                    try:
                        record, line = future.result()
                    except QualityTooLowError as caught:
                        too_low += 1
                        reason = f"{shown(job.source)}: {message(caught)}"
                        error(reason)
                        status = "quality-too-low"
                        more = {"quality": math.floor(caught.quality), "minimum": caught.minimum}
                    except NotSmallerError as caught:
                        skipped += 1
                        reason = message(caught)
                        echo(f"{PROG}: skipped: {reason}", err=True)
                        status, more = "skipped", {}
                    except expected_errors() as caught:
                        failed += 1
                        reason = message(caught)
                        error(reason)
                        status, more = "error", {}
                    else:
                        echo(json.dumps(record) if options.as_json else line, err=report_err)
                        continue
                    if options.as_json:
                        record = status_record(job.source, job.output, status, reason, **more)
                        echo(json.dumps(record), err=report_err)
            except KeyboardInterrupt:
                # Ctrl-C: the inputs not started are dropped; those being written finish
                # (writes are atomic: no half-written file), then the status is 130.
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    except KeyboardInterrupt:
        raise fail(
            "interrupted; the inputs not yet started were skipped (every file written is complete)",
            EXIT_INTERRUPTED,
        ) from None
    if failed or too_low or skipped:
        return EXIT_FAILED if failed else EXIT_QUALITY if too_low else EXIT_SKIPPED
    return 0
