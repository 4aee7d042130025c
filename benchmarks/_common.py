"""What the two benchmark scripts share: paths, thread limits, image loading, the record of the
command line and of the machine, and Markdown tables.

Nothing here times anything; ``compare.py`` and ``scaling.py`` do.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = [
    "BENCH_DIR",
    "DEFAULT_IMAGES",
    "IMAGE_SUFFIXES",
    "REPO_ROOT",
    "RGB8",
    "command_line",
    "ensure_passive_omp",
    "environment",
    "list_images",
    "load_average",
    "load_rgb",
    "markdown_table",
    "parse_int_list",
    "report_header",
    "set_threads",
    "write_second_set",
]

RGB8 = npt.NDArray[np.uint8]
"""An ``(H, W, 3)`` uint8 sRGB image."""

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared/images/kodak"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp")

_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def ensure_passive_omp() -> None:
    """Re-run this script with ``OMP_WAIT_POLICY=PASSIVE`` unless the variable is set.

    colorquant's CPU loops alternate NumPy and torch work; spinning OpenMP workers of torch
    otherwise take the cores NumPy needs (2.5x slower at 2 threads). The library sets this
    default itself, but only if it is imported before torch, and these scripts import torch
    first; the variable must be in place before OpenMP starts, hence the re-exec.
    """
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.execv(sys.executable, [sys.executable, *sys.argv])


def set_threads(n: int) -> None:
    """Limit every thread pool this process (and its children) may start to ``n`` threads.

    colorquant's compiled kernels get ``colorquant._cpu.set_num_threads``; torch, when it is
    imported (this never imports it), ``torch.set_num_threads``; OpenMP/BLAS runtimes already
    loaded are limited by the caller with ``threadpoolctl.threadpool_limits`` (scikit-learn's own
    OpenMP is loaded lazily, after the environment variables set here, so it reads them too).
    """
    from colorquant import _cpu

    for name in _THREAD_ENV:
        os.environ[name] = str(n)
    _cpu.set_num_threads(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def parse_int_list(name: str, text: str, low: int, high: int) -> list[int]:
    """``"16,64,256"`` -> ``[16, 64, 256]``, each in ``low..high``; raise naming ``name``."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{name} must be a comma list of integers, got {text!r}") from None
    if not values or any(not low <= v <= high for v in values):
        raise ValueError(f"{name} must be integers in {low}..{high}, got {text!r}")
    return values


SECOND_SET = (
    ("skimage", "astronaut.png"),
    ("skimage", "chelsea.png"),
    ("skimage", "coffee.png"),
    ("skimage", "motorcycle_left.png"),
    ("skimage", "rocket.jpg"),
    ("skimage", "hubble_deep_field.jpg"),
    ("skimage", "retina.jpg"),
    ("matplotlib", "grace_hopper.jpg"),
)
"""The second photo set (issue 18): the color photos scikit-image and matplotlib ship in their
wheels (no download), never used to tune colorquant: (package, file name)."""


def write_second_set(folder: Path) -> Path:
    """Write the :data:`SECOND_SET` photos into ``folder`` as RGB PNG files; return ``folder``.

    Needs the dev lock (scikit-image and matplotlib installed); reads only their own files.
    """
    import matplotlib
    import skimage

    roots = {
        "skimage": Path(skimage.__file__).parent / "data",
        "matplotlib": Path(matplotlib.get_data_path()) / "sample_data",
    }
    folder.mkdir(parents=True, exist_ok=True)
    for package, name in SECOND_SET:
        with Image.open(roots[package] / name) as image:
            image.convert("RGB").save(folder / f"{Path(name).stem}.png")
    return folder


def list_images(folder: Path, limit: int | None) -> list[Path]:
    """The image files of ``folder``, sorted by name, the first ``limit`` of them."""
    if not folder.is_dir():
        raise FileNotFoundError(f"--images: {folder} is not a directory")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"--images: no {'/'.join(IMAGE_SUFFIXES)} file in {folder}")
    return paths[:limit] if limit is not None else paths


def load_rgb(path: Path) -> RGB8:
    """Decode an image file to a writable, C-contiguous ``(H, W, 3)`` uint8 sRGB array."""
    with Image.open(path) as image:
        return np.array(image.convert("RGB"), dtype=np.uint8, order="C")


def command_line() -> str:
    """The command that is running, as one would type it from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = script.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        shown = str(script)
    return shlex.join(["python", shown, *sys.argv[1:]])


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev} (src/ modified)" if dirty else rev


def _libimagequant_version() -> str:
    try:
        from imagequant import _libimagequant

        v = int(_libimagequant.lib.liq_version())
    except (ImportError, AttributeError):
        return "unknown"
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


def load_average() -> float:
    """The 1-minute load average (runnable threads of every process), or NaN if unknown."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def environment(
    threads: int, device: str, load_at_start: float | None = None
) -> list[tuple[str, str]]:
    """What a reader needs to reproduce the numbers: machine, versions, settings, commit.

    With ``load_at_start``, also the load average then and now, flagged when the machine had more
    runnable threads than cores (timings then include waiting for other work).
    """
    import torch

    cpu = f"{_cpu_model()}, {os.cpu_count()} logical cores"
    if device.startswith("cuda") and torch.cuda.is_available():
        accel = torch.cuda.get_device_name(torch.device(device))
    else:
        accel = "none (CPU)"
    versions = ", ".join(
        f"{name} {_version(dist)}"
        for name, dist in (
            ("colorquant", "colorquant"),
            ("torch", "torch"),
            ("numpy", "numpy"),
            ("Pillow", "pillow"),
            ("imagequant", "imagequant"),
            ("scikit-learn", "scikit-learn"),
        )
    )
    cores = os.cpu_count() or 1
    rows = [
        ("date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", _git_commit()),
        ("CPU", cpu),
        ("GPU", accel),
        ("threads", f"{threads} (torch, OpenMP, BLAS)"),
        ("Python", f"{platform.python_version()} on {platform.system()} {platform.release()}"),
        ("packages", versions),
        ("libimagequant", f"{_libimagequant_version()} (C, as bundled by PyPI imagequant)"),
    ]
    if load_at_start is not None:
        # The load at the end counts this run's own threads; more than the spare cores plus
        # half a core of other work means the timings include waiting for it.
        now = load_average()
        spare = max(cores - threads, 0) + 0.5
        busy = load_at_start > spare or now - threads > spare
        flag = " — **the machine was busy: timings are unreliable**" if busy else ""
        rows.append(
            (
                "load average",
                f"{load_at_start:.2f} at start, {now:.2f} at end (this run adds up to "
                f"{threads}) on {cores} cores{flag}",
            )
        )
    return rows


def tool(name: str) -> str:
    """The path of a command of the virtual environment (``colorquant``, ``pngquant``), else
    from PATH; exits with a message when neither has it."""
    found = Path(sys.executable).parent / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} not found: install the dev lock (make test) first")
    return path


def report_header(title: str, threads: int, device: str, load_at_start: float | None) -> list[str]:
    """The first lines of every report: its title, the command that made it, the machine."""
    return [
        f"## {title}",
        "",
        "Produced by (from the repository root):",
        "",
        "```sh",
        command_line(),
        "```",
        "",
        *(f"- {key}: {value}" for key, value in environment(threads, device, load_at_start)),
    ]


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """A GitHub Markdown table; ``align`` is one letter per column, ``l`` or ``r``."""
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 1) + ":" if a == "r" else ":" + "-" * (w + 1)
        for w, a in zip(widths, align, strict=True)
    )
    return "\n".join([line(headers), rule + "|", *(line(r) for r in rows)])
