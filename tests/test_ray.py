"""``--engine ray`` on a real two-node Ray cluster (``ray.cluster_utils.Cluster``), whose nodes
were started from other folders than the job's, as ``ray start`` on other machines would be.

One cluster (1 CPU a node) for the module: Ray takes seconds to start. The job finds Ray
initialized (connected to the cluster) and uses it; the CLI tests connect through RAY_ADDRESS
in a process of their own. A folder private to each node (``/proc/self/cwd/...``: each node's
workers run in the folder their node was started from) stands in for a file system that the
nodes do not share.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import colorquant as cq
from colorquant._checks import InputError
from colorquant.cli import main
from colorquant.dataset import MANIFEST_NAME, quantize_dataset, ray_engine
from colorquant.dataset.sources import LOCK_NAME
from test_dataset import (
    check_animation,
    check_palette_png,
    encode,
    make_folder,
    make_shard,
    manifest_records,
    moving,
    one_error_line,
    photo,
    read_shard,
    save_gif,
)

# The dev lock installs it: skipped only without the extra.
ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'colorquant[ray]'")
# Ray Data reads its own deprecated settings when it starts: not ours to fix.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Two nodes of 1 CPU, each started from a folder of its own; this process connected."""
    from ray.cluster_utils import Cluster

    here = os.getcwd()
    homes = [tmp_path_factory.mktemp(f"node{i}") for i in range(2)]
    try:
        os.chdir(homes[0])
        nodes = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
        )
        os.chdir(homes[1])
        nodes.add_node(num_cpus=1)
    finally:
        os.chdir(here)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, include_dashboard=False, log_to_driver=False)
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


@pytest.mark.usefixtures("cluster")
def test_folder_job_on_ray_with_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # SRC and DST relative to the job's folder, not the nodes'
    monkeypatch.setattr(ray_engine, "CHUNK_ROWS", 4)  # the 11 files go to Ray in 3 chunks
    src, dst = tmp_path / "src", tmp_path / "dst"
    pixels = make_folder(src, 6)
    (src / "sub" / "bad.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    # Beside img0.png: it writes img0.jpg.png. Captions and sidecars are copied unchanged.
    (src / "img0.jpg").write_bytes(encode(photo(20), "JPEG"))
    pixels["img0.jpg"] = np.array(Image.open(src / "img0.jpg").convert("RGB"))
    others = {"img0.txt": b"a caption", "sub/img1.json": b'{"label": 3}'}
    # An animated GIF: written whole as an APNG, every frame, its durations and loop.
    save_gif(src / "sub" / "clip.gif", moving(3, 8), [40, 80, 120], loop=0)
    clip = cq.load_animation(src / "sub" / "clip.gif")
    for rel, data in others.items():
        (src / rel).write_bytes(data)
    result = CliRunner().invoke(
        main,
        [
            "dataset",
            "src",
            "dst",
            "-k",
            "16",
            "--engine",
            "ray",
            "--batch-size",
            "2",
            "--workers",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["engine"] == "ray" and record["images"] == 8 and record["errors"] == 1
    assert record["animations"] == 1 and record["frames"] == 3
    check_animation(dst / "sub" / "clip.png", clip)
    assert record["copied"] == 2 and record["renamed"] == 1
    for rel, original in pixels.items():
        name = "img0.jpg.png" if rel == "img0.jpg" else Path(rel).with_suffix(".png")
        check_palette_png(dst / name, original)
    for rel, data in others.items():
        assert (dst / rel).read_bytes() == data
    records = manifest_records(dst)
    items = [r["item"] for r in records]
    assert sorted(items) == sorted([*pixels, *others, "sub/clip.gif", "sub/bad.jpg"])
    assert all(r["output"].startswith(str(dst)) for r in records if "output" in r)
    assert not (dst / LOCK_NAME).exists()
    # The same job on the local engine finds everything done but the bad item, tried again.
    again = quantize_dataset(src, dst, 16, workers=1)
    assert again.done_before == 10 and again.processed == 1 and again.copied == 2
    assert again.images == 8 and again.animations == 1 and again.errors == 1


@pytest.mark.usefixtures("cluster")
def test_shard_job_on_ray_matches_the_local_engine(tmp_path: Path) -> None:
    for s in range(3):
        make_shard(tmp_path / f"s-{s}.tar", s, n=3, bad=1 if s == 2 else None)
    pattern = str(tmp_path / "s-{0..2}.tar")
    on_ray = quantize_dataset(pattern, tmp_path / "ray", 16, engine="ray", workers=2)
    local = quantize_dataset(pattern, tmp_path / "local", 16, workers=1)
    assert on_ray.images == local.images == 8 and on_ray.errors == local.errors == 1
    assert on_ray.bytes_out == local.bytes_out
    for s in range(3):
        members = read_shard(tmp_path / "ray" / f"s-{s}.tar")
        assert members == read_shard(tmp_path / "local" / f"s-{s}.tar")  # byte for byte
        for name, data in members:
            if name.endswith(".png"):
                check_palette_png(data, None)
    header = json.loads((tmp_path / "ray" / MANIFEST_NAME).read_text().splitlines()[0])
    assert header["job"]["kind"] == "shards"
    with tarfile.open(tmp_path / "ray" / "s-0.tar") as tar:
        first = tar.extractfile("000000.png")
        assert first is not None
        assert np.array(Image.open(first)).max() < 16


@pytest.mark.usefixtures("cluster")
def test_a_path_that_the_nodes_do_not_share_is_refused_naming_node_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /proc/self/cwd is the job's folder here, and each node's own folder on the nodes.
    monkeypatch.chdir(tmp_path)
    make_folder(tmp_path / "src", 2)
    private = "/proc/self/cwd"
    line = one_error_line(
        run_cli([f"{private}/src", "out", "--engine", "ray"]), "node ", f"{private}/src"
    )
    assert "cannot read" in line and "shared file system or an object store" in line
    line = one_error_line(
        run_cli(["src", f"{private}/out", "--engine", "ray"]), "node ", f"{private}/out"
    )
    assert "does not see the probe file" in line
    assert not list((tmp_path / "out").rglob("*.png"))  # nothing was quantized
    assert not list(tmp_path.rglob(".colorquant-probe-*"))
    # The same job with shared paths runs, and a rerun on the local engine finds it done.
    assert quantize_dataset("src", "out", 16, engine="ray").images == 2
    assert quantize_dataset("src", "out", 16, workers=1).done_before == 2


@pytest.mark.usefixtures("cluster")
def test_a_node_of_another_colorquant_version_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_folder(tmp_path / "src", 1)
    monkeypatch.setattr(ray_engine, "__version__", "0.0.0-driver")
    with pytest.raises(InputError, match=r"^node \w+ \(.*\) has colorquant .*, this driver 0.0.0"):
        quantize_dataset(tmp_path / "src", tmp_path / "dst", 16, engine="ray")
    assert not list((tmp_path / "dst").rglob("*.png"))


def test_an_output_missing_at_dst_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"12345")
    record = {"item": "a.jpg", "status": "ok", "output": str(tmp_path / "a.png"), "node": "n1"}
    ray_engine.check_output({**record, "bytes_out": 5}, {})
    with pytest.raises(InputError, match="written by node n1 but 5 bytes, not 9 at DST"):
        ray_engine.check_output({**record, "bytes_out": 9}, {})
    gone = {**record, "output": str(tmp_path / "b.png"), "bytes_out": 5}
    with pytest.raises(InputError, match=r"b\.png: written by node n1 but missing at DST"):
        ray_engine.check_output(gone, {})
    ray_engine.check_output({"item": "x", "status": "error", "reason": "bad"}, {})


def test_an_unreachable_address_fails_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    make_folder(tmp_path / "src", 1)
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    proc = cli(["src", "dst", "--engine", "ray", "--json"], tmp_path, env)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"RAY_ADDRESS '127.0.0.1:{port}': cannot reach" in lines[0]
    assert not (tmp_path / "dst").exists()


def test_joining_a_cluster_of_this_machine_passes_no_cpu_count() -> None:
    calls: list[dict[str, Any]] = []

    class Joined:  # ray.init as Ray answers it while `ray start` runs on this machine
        @staticmethod
        def init(**kwargs: Any) -> None:
            calls.append(kwargs)
            if "num_cpus" in kwargs:
                raise ValueError(
                    "When connecting to an existing cluster, num_cpus and num_gpus must not be "
                    "provided."
                )

    saved = os.environ.pop("RAY_ADDRESS", None)
    try:
        ray_engine._connect(Joined, 3)
    finally:
        if saved is not None:
            os.environ["RAY_ADDRESS"] = saved
    assert [c.get("num_cpus") for c in calls] == [3, None] and "num_cpus" not in calls[1]


def test_cli_on_the_cluster_prints_only_the_json_object(tmp_path: Path, cluster: Any) -> None:
    make_folder(tmp_path / "src", 4)
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    proc = cli(["src", "dst", "--engine", "ray", "--json", "--cpus-per-task", "0.5"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)  # the whole of stdout: one JSON object
    assert record["images"] == 4 and record["destination"] == str(tmp_path / "dst")
    assert len(list((tmp_path / "dst").rglob("*.png"))) == 4


def run_cli(args: list[str]) -> Any:
    return CliRunner().invoke(main, ["dataset", *args, "-k", "16"])


def cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "colorquant.cli", "dataset", *args, "-k", "16"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_node_removed_mid_job_loses_nothing(tmp_path: Path, cluster: Any) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    n = 24
    for i in range(n):
        (src / f"p{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"p{i % 3}" / f"{i:03d}.png").write_bytes(encode(photo(i, 96, 128)))
    extra = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    result: dict[str, Any] = {}

    def job() -> None:
        try:
            result["summary"] = quantize_dataset(src, dst, 64, engine="ray", batch_size=1, speed=1)
        except BaseException as err:
            result["error"] = err

    thread = threading.Thread(target=job)
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and thread.is_alive():
        if (dst / MANIFEST_NAME).exists() and len(manifest_records(dst)) >= 2:
            break
        time.sleep(0.02)
    assert thread.is_alive(), "the job ended before the node was removed"
    cluster.remove_node(extra)
    thread.join(timeout=300)
    assert "error" not in result, result.get("error")
    assert result["summary"].images == n and result["summary"].errors == 0
    items = [r["item"] for r in manifest_records(dst)]
    assert sorted(items) == sorted({*items}) and len(items) == n
    for png in dst.rglob("*.png"):
        check_palette_png(png, None, k=64)
    assert len(list(dst.rglob("*.png"))) == n


def test_a_node_without_colorquant_is_refused(tmp_path: Path, cluster: Any) -> None:
    # A node whose Python finds no colorquant: here a package of that name that fails to import.
    fake = tmp_path / "path" / "colorquant"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named colorquant')\n")
    make_folder(tmp_path / "src", 1)
    bare = cluster.add_node(num_cpus=1, env_vars={"PYTHONPATH": str(tmp_path / "path")})
    try:
        cluster.wait_for_nodes()
        with pytest.raises(InputError) as caught:
            quantize_dataset(tmp_path / "src", tmp_path / "dst", 16, engine="ray")
    finally:
        cluster.remove_node(bare)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"node {bare.node_id[:8]} (")
    assert "colorquant is not installed there" in message and "on every node" in message
    assert not list((tmp_path / "dst").rglob("*.png"))


@pytest.mark.usefixtures("cluster")
def test_tasks_that_no_node_can_run_are_refused(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", 1)
    # --device cuda asks one GPU per task: these nodes have none (the driver needs none either).
    with pytest.raises(InputError, match=r"asks for 1 GPUs .* largest node has 0: no task"):
        quantize_dataset(tmp_path / "src", tmp_path / "dst", 16, engine="ray", device="cuda")
    line = one_error_line(
        run_cli([str(tmp_path / "src"), str(tmp_path / "d2"), "--engine", "ray",
                 "--cpus-per-task", "4"]),
        "asks for 4 CPUs (--cpus-per-task)", "largest node has 1",
    )  # fmt: skip
    assert line.startswith("colorquant: error: each task")
    for dst in ("dst", "d2"):
        assert not list((tmp_path / dst).rglob("*.png"))


def test_a_cluster_that_refuses_the_driver_leaves_dst_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The address answers TCP (the pre-check passes) but Ray cannot connect, as ray.init says.
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    address = f"127.0.0.1:{listening.getsockname()[1]}"
    tries: list[str] = []

    def refuse(address: str | None = None, **kwargs: Any) -> None:
        tries.append(str(address))
        raise ConnectionError(f"Failed to connect to Ray cluster at {address}.")

    monkeypatch.setenv("RAY_ADDRESS", address)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    make_folder(tmp_path / "src", 2)
    (tmp_path / "empty").mkdir()
    try:
        for dst in ("dst", "empty"):
            result = run_cli([str(tmp_path / "src"), str(tmp_path / dst), "--engine", "ray"])
            one_error_line(result, f"Failed to connect to Ray cluster at {address}")
    finally:
        listening.close()
    assert tries == [address, address]
    assert not (tmp_path / "dst").exists()  # not created
    assert list((tmp_path / "empty").iterdir()) == []  # no manifest, errors file nor lock
    monkeypatch.delenv("RAY_ADDRESS")
    # So a local job of other settings writes there, as if the refused one never ran.
    assert quantize_dataset(tmp_path / "src", tmp_path / "dst", 8, workers=1).images == 2
