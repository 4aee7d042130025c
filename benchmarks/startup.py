"""Start-up and per-call cost of ``colorquant quantize`` against ``pngquant 256 --nofs``.

Three measurements, each on 512x512 centre crops of the photos of ``--images`` (Kodak):

- **stages**: one CLI job in this process, its stages timed with ``time.process_time`` (CPU
  time of the process) through public functions: decode (:func:`colorquant.load_image`), fit
  and map (:func:`colorquant.quantize`), the report's ΔE00 (``result.delta_e``, from the
  distinct colors and their palette rows), PNG encode (:func:`colorquant.io.result_bytes`,
  metadata included);
  and, in fresh processes, the start-up (``colorquant --version``: interpreter, imports, click)
  against ``python -c "import numpy, PIL.Image"`` and ``python -c pass``;
- **one**: the whole command on one crop against ``pngquant 256 --nofs`` on the same crop;
- **many**: one call over the first 8 and the first 24 crops against one ``pngquant`` call
  over the same files.

``--second-set`` takes the photos scikit-image and matplotlib ship (``_common.SECOND_SET``, 8
photos; the smaller ones whole) instead of ``--images``.

Commands run alternately (A, B, A, B, ...) after one warm-up each; the medians of the wall time
and of the CPU time (user + sys of the child, from ``os.wait4``: steadier on a shared machine)
are reported with their ratio to pngquant's (the imports': to ``import numpy, PIL.Image``).
Every ``--tree NAME=SRC`` runs the command from that source folder (``PYTHONPATH``), so that
two versions alternate in the same run. Python runs
as installed: bytecode cached (in a per-tree ``PYTHONPYCACHEPREFIX``), not recompiled.

    .venv/bin/python benchmarks/startup.py --repeat 11
    .venv/bin/python benchmarks/startup.py --tree before=/tmp/old/src --tree after=src
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from _common import BENCH_DIR, DEFAULT_IMAGES, REPO_ROOT, list_images, tool, write_second_set

Run = tuple[float, float]
"""One run: (wall seconds, CPU seconds of the child)."""


def _run(command: list[str], env: dict[str, str]) -> Run:
    start = time.perf_counter()
    child = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, close_fds=True
    )
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {err.decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime


def alternate(
    commands: dict[str, tuple[list[str], dict[str, str]]], repeat: int
) -> dict[str, list[Run]]:
    """One warm-up run of every command, then ``repeat`` rounds of all of them in turn."""
    for command, env in commands.values():
        _run(command, env)
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, (command, env) in commands.items():
            runs[name].append(_run(command, env))
    return runs


def tree_env(name: str, src: Path) -> dict[str, str]:
    """The environment that runs ``colorquant`` from ``src`` with cached bytecode."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(src.resolve())
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / f"cq-startup-pyc-{name}")
    return env


def crops(images: Path, out: Path, limit: int) -> list[Path]:
    """The 512x512 centre crops of the first ``limit`` photos, as PNG files in ``out``.

    A photo narrower or lower than 512 keeps its whole width or height.
    """
    paths = []
    for path in list_images(images, limit):
        photo = Image.open(path).convert("RGB")
        width, height = min(photo.width, 512), min(photo.height, 512)
        left, top = (photo.width - width) // 2, (photo.height - height) // 2
        crop = out / f"{path.stem}.png"
        photo.crop((left, top, left + width, top + height)).save(crop)
        paths.append(crop)
    return paths


def stages(paths: list[Path], k: int) -> dict[str, float]:
    """Median CPU milliseconds (``time.process_time``: every thread of this process) of each
    stage of one CLI job (this process, the tree imported)."""
    import colorquant as cq
    from colorquant.io import result_bytes

    times: dict[str, list[float]] = {}

    def lap(stage: str, since: float) -> float:
        now = time.process_time()
        times.setdefault(stage, []).append(1000 * (now - since))
        return now

    for path in [paths[0], *paths]:  # the first one again: a warm-up
        start = time.process_time()
        loaded = cq.load_image(path)
        now = lap("decode", start)
        result = cq.quantize(loaded.pixels, k, dither="none")
        now = lap("fit + map", now)
        _ = result.delta_e
        now = lap("report's dE00", now)
        result_bytes(result, ".png", icc_profile=loaded.icc_profile, gamma=loaded.gamma)
        lap("PNG encode", now)
    return {name: statistics.median(ts[1:]) for name, ts in times.items()}


def _summary(runs: dict[str, list[Run]], base: str) -> list[str]:
    wall0 = statistics.median(w for w, _ in runs[base])
    cpu0 = statistics.median(c for _, c in runs[base])
    lines = []
    for name, rs in runs.items():
        wall = statistics.median(w for w, _ in rs)
        cpu = statistics.median(c for _, c in rs)
        lines.append(
            f"| {name} | {1000 * wall:.0f} | {wall / wall0:.2f} | {1000 * cpu:.0f} | "
            f"{cpu / cpu0:.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="a source folder to run colorquant from (repeatable; default: this tree's src)",
    )
    parser.add_argument("--only", choices=("stages", "imports", "one", "many"), action="append")
    parser.add_argument(
        "--second-set",
        action="store_true",
        help="the photos scikit-image and matplotlib ship (_common.SECOND_SET) instead of --images",
    )
    args = parser.parse_args()
    trees = [t.split("=", 1) for t in args.tree] or [["this", str(REPO_ROOT / "src")]]
    envs = {name: tree_env(name, Path(src)) for name, src in trees}
    only = set(args.only or ("stages", "imports", "one", "many"))
    pngquant, python, k = tool("pngquant"), sys.executable, str(args.k)
    cli = [tool("colorquant")]  # the console script: `from colorquant.cli import main`
    header = "| command | wall ms | wall ratio | CPU ms | CPU ratio |\n|---|--:|--:|--:|--:|"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images = write_second_set(tmp / "photos") if args.second_set else args.images
        paths = crops(images, tmp, 24)
        plain = dict(os.environ)
        if "stages" in only:
            for name, env in envs.items():
                # As the command starts: colorquant imported first, by a script of that name.
                code = (
                    "import sys; sys.argv[0] = 'colorquant'; import colorquant; import json; "
                    "sys.path.insert(0, sys.argv[1]); import startup; "
                    "print(json.dumps(startup.stages([__import__('pathlib').Path(p) for p in "
                    "sys.argv[3:]], int(sys.argv[2]))))"
                )
                done = subprocess.run(
                    [python, "-c", code, str(BENCH_DIR), k, *map(str, paths)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                print(f"stages ({name}, median ms over {len(paths)} crops): {done.stdout.strip()}")
        if "imports" in only:
            imports = {"python -c pass": ([python, "-c", "pass"], plain)}
            imports["import numpy, PIL.Image"] = (
                [python, "-c", "import numpy, PIL.Image"],
                plain,
            )
            for name, env in envs.items():
                imports[f"colorquant --version ({name})"] = ([*cli, "--version"], env)
            runs = alternate(imports, args.repeat)
            print(f"\nimports ({args.repeat} alternating runs)\n{header}")
            print("\n".join(_summary(runs, "import numpy, PIL.Image")))
        if "one" in only:
            reference = [pngquant, k, "--nofs", "--force", "-o", str(tmp / "pq.png"), str(paths[0])]
            one = {"pngquant": (reference, plain)}
            for name, env in envs.items():
                out = tmp / f"cq-{name}.png"
                one[f"colorquant ({name})"] = (
                    [*cli, "quantize", str(paths[0]), "-k", k, "--nofs", "-o", str(out), "--force"],
                    env,
                )
            runs = alternate(one, args.repeat)
            print(f"\none 512x512 crop ({paths[0].name}, {args.repeat} runs)\n{header}")
            print("\n".join(_summary(runs, "pngquant")))
        if "many" in only:
            for n in sorted({min(8, len(paths)), len(paths)}):
                inputs = [str(p) for p in paths[:n]]
                reference = [pngquant, k, "--nofs", "--force", "--ext", "-pq.png", *inputs]
                many = {"pngquant": (reference, plain)}
                for name, env in envs.items():
                    out_dir = tmp / f"out-{name}-{n}"
                    flags = ["-k", k, "--nofs", "-d", str(out_dir), "--force"]
                    many[f"colorquant ({name})"] = ([*cli, "quantize", *inputs, *flags], env)
                reps = max(3, args.repeat // 2)
                runs = alternate(many, reps)
                print(f"\n{n} crops in one call ({reps} runs)\n{header}")
                print("\n".join(_summary(runs, "pngquant")))


if __name__ == "__main__":
    main()
