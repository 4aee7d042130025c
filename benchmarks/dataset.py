"""Dataset throughput: ``colorquant dataset`` against ``pngquant 256`` run by ``xargs -P``.

The dataset is ``--count`` Kodak-sized photos made once from Kodak's 24 (each a copy with a
small crop of 0..6 pixels at the left and top and a flip chosen by its number, so no two files
are equal), written as PNG into a temporary folder. Every command then quantizes the whole
folder at K = 256 in the default space, without dithering, into an empty folder:

- ``colorquant dataset SRC DST -k 256 --workers W`` for W = 1 and 2 (1: in the command's own
  process, on every core's thread; 2: two worker processes of one kernel thread each);
- ``colorquant dataset ... --engine ray --workers 2``: Ray Data on a local instance that the
  command starts (its start-up, several seconds, is in the time);
- ``xargs -P P -L 1 pngquant 256 --nofs --force --output OUT IN`` for P = 1 and 2 (one
  ``pngquant`` process a file, ``--nofs``: no dithering, as colorquant's default).

Each is timed ``--repeat`` times, alternating, and the medians and their ratio to pngquant are
reported, with images/s, bytes before and after, and the peak memory of the whole process tree
(the resident set sizes of the command and all its descendants, summed, sampled from /proc
every 50 ms). ``pngquant`` is the binary of the PyPI package ``pngquant-cli`` (dev lock).
Also the CPU time of each stage of one image on one thread (``--stages-only``: just that).

    .venv/bin/python benchmarks/dataset.py --count 1000 --repeat 1
    .venv/bin/python benchmarks/dataset.py --stages-only --out benchmarks/dataset_stages.md

``--stores`` (report ``benchmarks/dataset_stores.md``) times instead where the data lives:
``--count`` 256x256 crops of the Kodak photos, each with a caption, quantized local -> local,
local -> S3, S3 -> S3 (moto's S3 server on 127.0.0.1, started here; every byte goes through
HTTP on loopback), and on a two-node Ray cluster (``ray.cluster_utils.Cluster``, 1 CPU a node,
reached through RAY_ADDRESS) local -> local and S3 -> S3; then the driver's planning of a list
file of 10,000 to ``--list-items`` lines (time and peak resident memory of the process).

    .venv/bin/python benchmarks/dataset.py --stores --count 200 --list-items 1000000

``--planning-only`` (report ``benchmarks/dataset_plan.md``): just that planning.

    .venv/bin/python benchmarks/dataset.py --planning-only --list-items 1000000
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import IO

from PIL import Image

from _common import (
    BENCH_DIR,
    DEFAULT_IMAGES,
    list_images,
    load_average,
    markdown_table,
    report_header,
    tool,
)


def _variant(job: tuple[Path, Path, int]) -> int:
    """Write copy number ``i`` of a Kodak photo: cropped by ``i % 7`` pixels, maybe flipped."""
    source, target, i = job
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    crop = i % 7
    image = image.crop((crop, crop, image.width, image.height))
    if i // 24 % 2:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if i // 48 % 2:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    image.save(target)
    return target.stat().st_size


def make_dataset(kodak: list[Path], folder: Path, count: int) -> int:
    """``count`` PNG variants of the Kodak photos in ``folder``; their total bytes."""
    jobs = [(kodak[i % len(kodak)], folder / f"img{i:05d}.png", i) for i in range(count)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        return sum(pool.map(_variant, jobs, chunksize=8))


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
    family, grew = {root}, True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in family and pid not in family:
                family.add(pid)
                grew = True
    total = 0
    for pid in family:
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def measure(
    command: list[str], shell: bool = False, on_sample: Callable[[int], None] | None = None
) -> tuple[float, int]:
    """Wall seconds of ``command`` and the peak resident bytes of its process tree, sampled
    every 50 ms (each sample also given to ``on_sample``)."""
    peak = 0
    start = time.perf_counter()
    proc = subprocess.Popen(
        " ".join(command) if shell else command,
        shell=shell,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            rss = _tree_rss(proc.pid)
            peak = max(peak, rss)
            if on_sample is not None:
                on_sample(rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {err.decode(errors='replace')}")
    return seconds, peak


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.png"))


def _write_bytes(data: bytes, fh: IO[bytes]) -> None:
    fh.write(data)


def stage_times(kodak: list[Path]) -> list[list[str]]:
    """Median CPU time of each stage of one image, on one kernel thread, over the photos:
    what a worker spends (decode, quantize in the default space at the dataset command's speed,
    PNG encode, atomic write)."""
    from colorquant import _cpu, quantize
    from colorquant.io import atomic_write, load_image, result_bytes
    from colorquant.quantize import DATASET_SPEED

    _cpu.set_num_threads(1)
    fit = f"quantize, K = 256, speed {DATASET_SPEED}"
    stages: dict[str, list[float]] = {"decode (Pillow)": [], fit: []}
    stages.update({"encode PNG (zlib level 7)": [], "write: temporary file, fsync, rename": []})
    with tempfile.TemporaryDirectory() as tmp:
        for path in kodak:
            t0 = time.perf_counter()
            image = load_image(path)
            t1 = time.perf_counter()
            result = quantize(image.pixels, 256, device="cpu", speed=DATASET_SPEED)
            t2 = time.perf_counter()
            data = result_bytes(result, ".png", image.icc_profile)
            t3 = time.perf_counter()
            atomic_write(Path(tmp) / path.name, functools.partial(_write_bytes, data))
            t4 = time.perf_counter()
            for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                stages[name].append(seconds)
    rows = [[name, f"{1000 * statistics.median(ts):.0f}"] for name, ts in stages.items()]
    total = sum(statistics.median(ts) for ts in stages.values())
    return [*rows, ["sum", f"{1000 * total:.0f}"]]


def _crops(kodak: list[Path], folder: Path, count: int, size: int = 256) -> int:
    """``count`` PNG crops of ``size`` pixels square, each with a caption; their bytes."""
    total = 0
    for i in range(count):
        with Image.open(kodak[i % len(kodak)]) as opened:
            x, y = (i * 37) % (opened.width - size), (i * 23) % (opened.height - size)
            crop = opened.convert("RGB").crop((x, y, x + size, y + size))
        target = folder / f"part{i % 4}" / f"img{i:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        crop.save(target)
        target.with_suffix(".txt").write_text(f"a crop of {kodak[i % len(kodak)].name}")
        total += target.stat().st_size
    return total


def _cli(*args: str) -> list[str]:
    """``colorquant dataset ...`` of this checkout (the module, on PYTHONPATH)."""
    return [sys.executable, "-m", "colorquant.cli", "dataset", *args]


_PLAN_CODE = """\
import json, re, sys, time
from pathlib import Path
listing, dst, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "resume"
if resume:  # every line done by an earlier run: its manifest is replayed, nothing is left
    from colorquant.quantize import DATASET_SPEED
    from colorquant.dataset import quantize_dataset
    from colorquant.dataset.work import Settings
    from colorquant.options import FitOptions
    fit = FitOptions(speed=DATASET_SPEED)
    job = {"kind": "list", "source": str(Path(listing).resolve()),
           **Settings(n_colors=256, fit=fit).recorded(), "shared_palette": False, "sample": None}
    Path(dst).mkdir()
    with open(Path(dst) / "colorquant-manifest.jsonl", "w") as fh:
        fh.write(json.dumps({"colorquant_manifest": 1, "job": job, "palette": None}) + "\\n")
        for line in open(listing):
            name = line.strip()
            out = f"{dst}/{name.rsplit('.', 1)[0]}.png"
            fh.write(json.dumps({"item": name, "status": "ok", "output": out, "psnr": 30.0,
                                 "bytes_in": 1, "bytes_out": 1}) + "\\n")
    start = time.perf_counter()
    summary = quantize_dataset(listing, dst, 256, workers=1)
    count = summary.done_before
    assert summary.processed == 0
else:
    from colorquant.dataset.sources import plan_job
    start = time.perf_counter()
    plan = plan_job(listing, dst)
    # (plan.items: the plan held in Python, before the plan on disk, to measure the two)
    count = sum(1 for _ in (plan.iter_items() if hasattr(plan, "iter_items") else plan.items))
seconds = time.perf_counter() - start
status = open("/proc/self/status").read()  # VmHWM: this process's peak
print(count, seconds, re.search(r"VmHWM:\\s*(\\d+)", status)[1])
"""


def plan_rows(most: int, tmp: Path, resume: bool = False) -> list[list[str]]:
    """Planning a list file of 10,000, 100,000 ... ``most`` lines (files in folders of 1,000,
    which need not exist), each in a process of its own: seconds to plan and to read the plan
    back once (what the job's engine does), and the process's peak resident memory. With
    ``resume``: a whole ``quantize_dataset`` call on a DST whose manifest records every line as
    done (the manifest is replayed, outputs named, nothing left to do)."""
    rows = []
    for n in sorted({n for n in (10_000, 100_000, most) if n <= most}):
        listing = tmp / f"list-{n}.txt"
        with open(listing, "w") as fh:
            fh.writelines(f"imgs/{i // 1000:04d}/{i:07d}.jpg\n" for i in range(n))
        dst = tmp / f"planned-{n}-{resume}"
        argv = [sys.executable, "-c", _PLAN_CODE, str(listing), str(dst), "resume" * resume]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
        if int(out[0]) != n:
            raise SystemExit(f"planned {out[0]} items of {n} lines")
        rows.append([f"{n:,}", f"{float(out[1]):.1f}", f"{int(out[2]) / 1024:.0f}"])
        print(rows[-1], flush=True)
        listing.unlink()
        shutil.rmtree(dst, ignore_errors=True)
    return rows


def planning_table(rows: list[list[str]], resume: bool = False) -> str:
    """The planning rows as a markdown table."""
    what = "resume, all done: s" if resume else "planning + one read of the plan, s"
    return markdown_table(["list lines", what, "peak MiB (driver)"], rows, "rrr")


def stores(args: argparse.Namespace) -> str:
    """The ``--stores`` report: throughput by where SRC and DST live, and driver planning."""
    import s3fs
    from moto.server import ThreadedMotoServer
    from ray.cluster_utils import Cluster

    load_at_start = load_average()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    options = ["--storage-options", json.dumps({"endpoint_url": endpoint})]
    fs = s3fs.S3FileSystem(key="bench", secret="bench", endpoint_url=endpoint)
    fs.mkdir("bench")
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bytes_in = _crops(list_images(args.images, None), tmp / "src", args.count)
        fs.put(str(tmp / "src"), "bench/src", recursive=True)
        common = ["-k", str(args.k), "--workers", "2", *options]
        runs = {
            "local -> local": _cli(str(tmp / "src"), str(tmp / "out1"), *common),
            "local -> S3": _cli(str(tmp / "src"), "s3://bench/out2", *common),
            "S3 -> S3": _cli("s3://bench/src", "s3://bench/out3", *common),
        }
        here = os.getcwd()
        os.chdir(tmp)  # the nodes run in a folder of their own
        cluster = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
        )
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        os.chdir(here)
        ray = ["--engine", "ray"]
        runs["Ray, 2 nodes: local -> local"] = _cli(
            str(tmp / "src"), str(tmp / "o4"), *common, *ray
        )
        runs["Ray, 2 nodes: S3 -> S3"] = _cli("s3://bench/src", "s3://bench/out5", *common, *ray)
        os.environ["RAY_ADDRESS"] = cluster.address
        try:
            for name, command in runs.items():
                seconds, peak = measure(command)
                rows.append(
                    [
                        name,
                        f"{seconds:.1f}",
                        f"{args.count / seconds:.1f}",
                        f"{peak / 2**20:.0f}",
                    ]
                )
                print(rows[-1], flush=True)
        finally:
            os.environ.pop("RAY_ADDRESS", None)
            cluster.shutdown()  # type: ignore[no-untyped-call]
            server.stop()
        planning = plan_rows(args.list_items, tmp)
    throughput = markdown_table(
        ["SRC -> DST (2 workers, or 2 Ray nodes)", "wall s", "images/s", "peak MiB (command)"],
        rows,
        "lrrr",
    )
    plan_table = planning_table(planning)
    title = f"Dataset jobs by where the data lives: {args.count} crops of 256x256 + captions"
    return (
        "\n".join(report_header(title, 2, "cpu", load_at_start))
        + f"\n\nBytes of images before: {bytes_in:,}; K = {args.k}; S3 is moto's server on "
        "127.0.0.1 (every object through HTTP on loopback: the request overhead, not a "
        "network's bandwidth). Wall time of the whole command, start-up (and Ray's connection) "
        "included; peak memory of the command's process tree (a Ray cluster's own processes "
        "are not in it).\n\n"
        f"{throughput}\n\nPlanning a list file (the driver reads it and names every output "
        "before any work; the lines name files that do not exist, so only planning is timed):"
        f"\n\n{plan_table}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "dataset.md")
    parser.add_argument(
        "--stages-only", action="store_true", help="only the per-stage times of one image"
    )
    parser.add_argument("--stores", action="store_true", help="local, S3 and Ray (see above)")
    parser.add_argument("--list-items", type=int, default=1_000_000)
    parser.add_argument(
        "--planning-only", action="store_true", help="only the driver's planning of list files"
    )
    args = parser.parse_args()
    if args.planning_only:
        load_at_start = load_average()
        with tempfile.TemporaryDirectory() as tmp_name:
            table = planning_table(plan_rows(args.list_items, Path(tmp_name)))
            again = planning_table(plan_rows(args.list_items, Path(tmp_name), True), True)
        title = f"Dataset driver: planning a list file of up to {args.list_items:,} lines"
        text = (
            "\n".join(report_header(title, 1, "cpu", load_at_start))
            + f"\n\nPlanning (the lines name files that need not exist):\n\n{table}\n\n"
            "Resuming a job whose manifest records every line as done (`quantize_dataset`, "
            f"one worker: the manifest replayed, the outputs named, nothing to do):\n\n{again}\n"
        )
        out = args.out if args.out != BENCH_DIR / "dataset.md" else BENCH_DIR / "dataset_plan.md"
        out.write_text(text)
        print(text)
        return
    if args.stores:
        text = stores(args)
        out = args.out if args.out != BENCH_DIR / "dataset.md" else BENCH_DIR / "dataset_stores.md"
        out.write_text(text)
        print(text)
        return
    load_at_start = load_average()
    stages = markdown_table(
        ["stage (one image, one thread)", "median ms"], stage_times(list_images(args.images, None))
    )
    if args.stages_only:
        title = "Dataset job: CPU time of each stage of one Kodak photo"
        text = "\n".join(report_header(title, 1, "cpu", load_at_start)) + f"\n\n{stages}\n"
        args.out.write_text(text)
        print(text)
        return
    colorquant, pngquant = tool("colorquant"), tool("pngquant")
    k = str(args.k)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "src"
        src.mkdir()
        start = time.perf_counter()
        bytes_in = make_dataset(list_images(args.images, None), src, args.count)
        print(
            f"made {args.count} images, {bytes_in:,} bytes, in {time.perf_counter() - start:.0f} s"
        )
        inputs = sorted(src.iterdir())
        commands: dict[str, tuple[list[str], bool]] = {}
        for workers in (1, 2):
            commands[f"colorquant dataset --workers {workers}"] = (
                [colorquant, "dataset", str(src), "{out}", "-k", k, "--workers", str(workers)],
                False,
            )
        if not args.no_ray:
            commands["colorquant dataset --engine ray --workers 2"] = (
                [colorquant, "dataset", str(src), "{out}", "-k", k, "--engine", "ray",
                 "--workers", "2"],
                False,
            )  # fmt: skip
        for parallel in (1, 2):
            pairs = tmp / "pairs.txt"
            commands[f"xargs -P {parallel} pngquant {k} --nofs"] = (
                ["xargs", "-P", str(parallel), "-L", "1", "-a", str(pairs), pngquant, k, "--nofs",
                 "--force", "--output"],
                False,
            )  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in commands}
        peaks: dict[str, list[int]] = {name: [] for name in commands}
        sizes: dict[str, int] = {}
        for round_ in range(args.repeat):
            for name, (command, shell) in commands.items():
                out = tmp / f"out-{round_}-{len(times[name])}-{name.split()[0]}"
                out.mkdir()
                (tmp / "pairs.txt").write_text("".join(f"{out / p.name} {p}\n" for p in inputs))
                argv = [str(out) if part == "{out}" else part for part in command]
                seconds, peak = measure(argv, shell)
                times[name].append(seconds)
                peaks[name].append(peak)
                sizes[name] = folder_bytes(out)
                written = len(list(out.rglob("*.png")))
                if written != len(inputs):
                    raise SystemExit(f"{name}: wrote {written} of {len(inputs)} images")
                print(f"{name}: {seconds:.1f} s, peak {peak / 2**20:.0f} MiB", flush=True)
                shutil.rmtree(out)
    base1 = statistics.median(times[f"xargs -P 1 pngquant {k} --nofs"])
    base2 = statistics.median(times[f"xargs -P 2 pngquant {k} --nofs"])
    rows = []
    for name in commands:
        med = statistics.median(times[name])
        base = base1 if "-P 1" in name or "--workers 1" in name else base2
        rows.append(
            [
                name,
                f"{med:.1f}",
                f"{args.count / med:.2f}",
                f"{med / base:.2f}",
                f"{sizes[name]:,}",
                f"{sizes[name] / bytes_in:.1%}",
                f"{max(peaks[name]) / 2**20:.0f}",
            ]
        )
    table = markdown_table(
        [
            "command",
            "median s",
            "images/s",
            "time / pngquant (same parallelism)",
            "bytes after",
            "of before",
            "peak MiB (all processes)",
        ],
        rows,
        "lrrrrrr",
    )
    title = f"Dataset throughput: {args.count} Kodak-sized PNGs, K = {args.k}, no dithering"
    text = (
        "\n".join(report_header(title, 2, "cpu", load_at_start))
        + f"\n\nBytes before: {bytes_in:,} ({args.count} PNG files, about "
        f"{bytes_in / args.count / 1024:.0f} KiB each).\n\n{table}\n\n"
        f"Medians of {args.repeat} alternating run(s) of each command, wall time of the whole "
        "command (start-up included); 'time / pngquant' compares with xargs -P 1 for one worker "
        "and xargs -P 2 for two (and for Ray). Peak memory: resident set sizes of the command "
        "and all its descendants, summed, sampled every 50 ms.\n\n"
        f"What one worker spends on each of the 24 Kodak photos (medians):\n\n{stages}\n"
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
