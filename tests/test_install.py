"""The light base install: ``pip install colorquant`` brings NumPy, Pillow, click and tqdm only.

``import colorquant`` and ``colorquant quantize`` on files need neither PyTorch nor matplotlib,
and every entry point that needs an extra says so in one line naming it. Each check runs in a
child Python where torch and matplotlib cannot be imported (``sys.modules[name] = None``, which
makes ``import`` fail and ``importlib.util.find_spec`` answer None, as on a machine without
them), so it holds in both test configurations: the full one and the minimal ``.venv-min``
(`make pytest-min`), where they are really absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

#: What the base install lacks; set first in every child below.
HIDE = (
    "import sys\n"
    "for name in ('torch', 'matplotlib', 'mpl_toolkits'):\n"
    "    sys.modules[name] = None\n"
)


def child(
    code: str, *, hide: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter of this environment (torch and matplotlib hidden)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.run(
        [sys.executable, "-c", (HIDE if hide else "") + code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def write_photo(path: Path) -> Path:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:40, 0:56]
    img = np.stack((x * 4, y * 5, 255 - x * 3), axis=-1) + rng.integers(0, 20, (40, 56, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


def test_base_dependencies_are_the_file_path_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = sorted(d.split(">")[0].split("=")[0].split("<")[0] for d in project["dependencies"])
    assert names == ["click", "numpy", "pillow", "tqdm"]
    extras = project["optional-dependencies"]
    assert extras["torch"] == ["torch>=2.1"] and extras["plot"] == ["matplotlib>=3.7"]
    everything = extras["all"][0]
    for extra in ("torch", "plot", "ray", "datasets", "diffusers", "optimize"):
        assert extra in extras and extra in everything
    # The locks: the base one pins exactly the base dependencies; the extras' locks build on it.
    base = [
        line.split("==")[0].lower()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert sorted(base) == ["click", "numpy", "pillow", "tqdm"]
    for lock, pin in (("torch", "torch==2.13.0"), ("plot", "matplotlib==")):
        text = (ROOT / f"requirements-{lock}.lock").read_text()
        assert "-r requirements.lock" in text and pin in text


def test_import_loads_neither_torch_nor_matplotlib() -> None:
    # Not hidden: in the full configuration both are installed, and still not imported.
    modules = [
        "colorquant",
        "colorquant.cli",
        "colorquant.io",
        "colorquant.animation",
        "colorquant.quantize",
        "colorquant.dataset",
        "colorquant.viz",
        "colorquant.transforms",
        "colorquant.diffusers",
    ]
    code = (
        f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'matplotlib'}))\n"
    )
    done = child(code, hide=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_import_and_quantize_a_png_without_torch(tmp_path: Path) -> None:
    src = write_photo(tmp_path / "in.png")
    code = (
        "import numpy as np, colorquant as cq\n"
        "from colorquant.cli import main\n"
        "res = cq.quantize(np.asarray(cq.load_image('in.png').pixels), 8, device='auto')\n"
        "print(res.n_colors)\n"
        "main(['quantize', 'in.png', '-k', '8', '-o', 'out.png'], prog_name='colorquant')\n"
    )
    done = child(code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "8"
    assert "in.png -> out.png: 8 colors" in done.stdout
    with Image.open(tmp_path / "out.png") as out, Image.open(src) as image:
        assert out.mode == "P" and out.size == image.size
        assert len(out.getcolors() or []) == 8


def test_diffusers_exports_pil_frames_without_torch(tmp_path: Path) -> None:
    # export_to_gif / export_to_apng take PIL frames or arrays on the NumPy path; only
    # quantize_output (tensor batches) needs the torch extra.
    code = (
        "import numpy as np\nfrom PIL import Image\n"
        "from colorquant.diffusers import export_to_apng, export_to_gif\n"
        "rng = np.random.default_rng(3)\n"
        "arrays = [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(3)]\n"
        "frames = [Image.fromarray(a) for a in arrays]\n"
        "print(export_to_gif(frames, 'clip.gif', fps=10, n_colors=8))\n"
        "print(export_to_apng(np.stack([np.asarray(f) for f in frames]), 'clip.png', fps=10))\n"
    )
    done = child(code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["clip.gif", "clip.png"]
    with Image.open(tmp_path / "clip.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (16, 12)
        assert len(gif.convert("RGB").getcolors() or []) <= 8
    with Image.open(tmp_path / "clip.png") as apng:
        assert apng.n_frames == 3


def test_the_console_script_quantizes_a_png(tmp_path: Path) -> None:
    # The installed entry point itself (in .venv-min: an environment without torch).
    write_photo(tmp_path / "in.png")
    script = Path(sys.executable).with_name("colorquant")
    done = subprocess.run(
        [script, "quantize", "in.png", "-k", "4", "-o", "q.png", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["n_colors"] == 4 and record["output"] == "q.png"
    assert record["status"] == "written"


TORCH = "pip install 'colorquant[torch]'"
PLOT = "pip install 'colorquant[plot]'"

# (arguments, the one error line): every command-line use that needs an extra.
CLI_CASES = [
    (
        ["quantize", "in.png", "-o", "o.png", "--preview", "p.png"],
        f"--preview needs matplotlib: {PLOT}",
    ),
    (
        ["quantize", "in.png", "-o", "o.png", "--method", "adam"],
        f"--method adam needs PyTorch: {TORCH}",
    ),
    (
        ["quantize", "in.png", "-o", "o.png", "--device", "cuda"],
        f"device 'cuda' needs PyTorch: {TORCH}",
    ),
    (
        ["quantize", "in.png", "-o", "o.png", "--device", "mps"],
        f"device 'mps' needs PyTorch: {TORCH}",
    ),
    (["elbow", "in.png", "-o", "e.png"], f"colorquant elbow needs matplotlib: {PLOT}"),
    (["plot", "in.png", "-o", "c.png"], f"colorquant plot needs matplotlib: {PLOT}"),
    (["dataset", "data", "out", "--device", "cuda"], f"device 'cuda' needs PyTorch: {TORCH}"),
]


def test_each_command_needing_an_extra_says_which_in_one_line(tmp_path: Path) -> None:
    write_photo(tmp_path / "in.png")
    (tmp_path / "data").mkdir()
    write_photo(tmp_path / "data" / "a.png")
    code = (
        "import json\nfrom click.testing import CliRunner\nfrom colorquant.cli import main\n"
        f"for args in {[args for args, _ in CLI_CASES]!r}:\n"
        "    r = CliRunner().invoke(main, args)\n"
        "    print(json.dumps([r.exit_code, r.stderr, repr(r.exception)]))\n"
    )
    done = child(code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == len(CLI_CASES)
    for (args, line), (code_, stderr, exception) in zip(CLI_CASES, results, strict=True):
        assert code_ == 1, (args, stderr, exception)
        assert stderr == f"colorquant: error: {line}\n", args
        assert "SystemExit" in exception, (args, exception)  # no traceback: a clean exit
    # Nothing was written: the checks come before any work.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "in.png"]


def test_each_api_needing_an_extra_says_which_in_one_line() -> None:
    code = (
        "import json\nimport numpy as np\nimport colorquant as cq\n"
        "from colorquant import InputError\n"
        "img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)\n"
        "def message(run):\n"
        "    try:\n"
        "        run()\n"
        "    except ModuleNotFoundError as error:\n"
        "        assert isinstance(error, InputError), type(error)\n"
        "        return [str(error), error.name]\n"
        "    return None\n"
        "import importlib\n"
        "cases = [\n"
        "    lambda: importlib.import_module('colorquant.nn'),\n"
        "    lambda: cq.nn,\n"
        "    lambda: importlib.import_module('colorquant.diffusers').quantize_output(\n"
        "        img[None], 4\n"
        "    ),\n"
        "    lambda: cq.quantize(img, 4, method='adam'),\n"
        "    lambda: cq.quantize(img, 4, device='cuda'),\n"
        "    lambda: importlib.import_module('colorquant.viz').elbow_figure([2, 4], [9.0, 4.0]),\n"
        "]\n"
        "for case in cases:\n"
        "    print(json.dumps(message(case)))\n"
    )
    done = child(code)
    assert done.returncode == 0, done.stderr
    got = [json.loads(line) for line in done.stdout.splitlines()]
    assert got == [
        [f"colorquant.nn needs PyTorch: {TORCH}", "torch"],
        [f"colorquant.nn needs PyTorch: {TORCH}", "torch"],
        [f"colorquant.diffusers.quantize_output needs PyTorch: {TORCH}", "torch"],
        [f"method 'adam' (fit_adam) needs PyTorch: {TORCH}", "torch"],
        [f"device 'cuda' needs PyTorch: {TORCH}", "torch"],
        [f"a figure (colorquant.viz) needs matplotlib: {PLOT}", "matplotlib"],
    ]


def test_only_the_command_runs_numpy_blas_on_one_thread() -> None:
    # OpenBLAS's threads spin after each product, taking the cores of the command's own loops:
    # the command's process (and only it) starts NumPy with one BLAS thread, unless told.
    pytest.importorskip("threadpoolctl", reason="needs threadpoolctl (the dev lock)")
    code = (
        "import sys\n"
        "sys.argv[0] = {argv0!r}\n"
        "import colorquant, os\n"
        "from threadpoolctl import threadpool_info\n"
        "blas = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "print(os.environ.get('OPENBLAS_NUM_THREADS'), blas)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT / "src")

    def run(argv0: str, **extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code.format(argv0=argv0)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, **extra},
            check=True,
        )
        return done.stdout.strip()

    assert run("/usr/bin/colorquant") == "1 [1]"
    assert run("-c").startswith("None [")  # a library user's process: NumPy's own default
    assert run("/usr/bin/colorquant", OPENBLAS_NUM_THREADS="2") == "2 [2]"
