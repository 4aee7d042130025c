"""colorquant dataset with SRC and DST in object stores: memory:// in this process, and an S3
API on loopback (moto's server, started here on 127.0.0.1) reached by real CLI processes.

Every input is made here; nothing leaves the machine.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from colorquant._checks import InputError
from colorquant.dataset import MANIFEST_NAME, DestinationBusyError, quantize_dataset
from colorquant.dataset import job as dataset_job
from colorquant.dataset import lock as dataset_lock
from colorquant.dataset import storage as dataset_storage
from colorquant.dataset.records import RECORDS_FOLDER, StoreManifest
from colorquant.dataset.sources import LOCK_NAME
from colorquant.dataset.storage import StoreError
from test_dataset import (
    check_palette_png,
    encode,
    make_folder,
    make_shard,
    one_error_line,
    photo,
    read_shard,
    run,
)

fsspec = pytest.importorskip("fsspec", reason="needs fsspec: pip install 'colorquant[s3]'")
K = 16


@pytest.fixture
def memory() -> Iterator[Any]:
    """The memory:// file system, emptied after the test."""
    fs = fsspec.filesystem("memory")
    root = f"/t{uuid.uuid4().hex[:8]}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def upload(fs: Any, local: Path, remote: str) -> dict[str, bytes]:
    """Every file under ``local`` put under ``remote``; returns relative name -> bytes."""
    files = {}
    for path in sorted(local.rglob("*")):
        if path.is_file():
            rel = path.relative_to(local).as_posix()
            files[rel] = path.read_bytes()
            fs.pipe_file(f"{remote}/{rel}", files[rel])
    return files


def record_objects(fs: Any, root: str) -> list[str]:
    """The record objects of a run still going (or killed) under ``root``."""
    fs.invalidate_cache()
    folder = f"{root}/{RECORDS_FOLDER}"
    return list(fs.find(folder)) if fs.exists(folder) else []


def store_records(fs: Any, root: str) -> list[dict[str, Any]]:
    lines = fs.cat_file(f"{root}/{MANIFEST_NAME}").decode().splitlines()
    return [json.loads(line) for line in lines[1:]]


# -- memory:// --------------------------------------------------------------------------------


def test_folder_with_captions_in_memory_matches_the_local_job(tmp_path: Path, memory: Any) -> None:
    fs, root = memory
    pixels = make_folder(tmp_path / "src", 6)
    (tmp_path / "src" / "img0.txt").write_text("a caption")
    (tmp_path / "src" / "sub" / "img1.json").write_text('{"label": 3}')
    (tmp_path / "src" / ".hidden").write_text("skipped")
    files = upload(fs, tmp_path / "src", f"{root}/src")

    done = quantize_dataset(f"memory://{root}/src", f"memory://{root}/dst", K, workers=1)
    local = quantize_dataset(tmp_path / "src", tmp_path / "dst", K, workers=1)

    assert done.images == local.images == 6 and done.copied == local.copied == 2
    assert done.destination == f"memory://{root}/dst" and done.errors == 0
    for rel in pixels:
        out = str(Path(rel).with_suffix(".png"))
        data = fs.cat_file(f"{root}/dst/{out}")
        assert data == (tmp_path / "dst" / out).read_bytes()  # byte for byte the local output
        check_palette_png(data, pixels[rel])
    assert fs.cat_file(f"{root}/dst/img0.txt") == files["img0.txt"]
    assert fs.cat_file(f"{root}/dst/sub/img1.json") == files["sub/img1.json"]
    assert not fs.exists(f"{root}/dst/.hidden")
    # The run ended: its record objects are folded into the manifest, and the lock is gone.
    assert sorted(r["item"] for r in store_records(fs, f"{root}/dst")) == sorted(
        [*pixels, "img0.txt", "sub/img1.json"]
    )
    assert record_objects(fs, f"{root}/dst") == []
    assert not fs.exists(f"{root}/dst/{LOCK_NAME}")
    # Rerunning skips all of it; a new file is the only work.
    fs.pipe_file(f"{root}/src/new.png", encode(photo(99)))
    again = quantize_dataset(f"memory://{root}/src", f"memory://{root}/dst", K, workers=1)
    assert again.done_before == 8 and again.processed == 1 and again.images == 7
    check_palette_png(fs.cat_file(f"{root}/dst/new.png"), photo(99))


def test_records_without_append_resume_after_a_kill(memory: Any) -> None:
    fs, root = memory
    job = {"kind": "folder", "source": "x"}
    first = StoreManifest(f"memory://{root}/dst", job)
    first.begin(None)
    for i in range(5):
        first.add({"item": f"a{i}.png", "status": "copied", "output": "o", "bytes": 3})
    first.flush()  # what a kill leaves: record objects, a header-only manifest
    first.add({"item": "lost.png", "status": "copied", "output": "o", "bytes": 3})  # not put
    assert len(record_objects(fs, f"{root}/dst")) == 1
    assert len(fs.cat_file(f"{root}/dst/{MANIFEST_NAME}").splitlines()) == 1

    second = StoreManifest(f"memory://{root}/dst", job)
    assert second.done == {f"a{i}.png" for i in range(5)}  # the pending one is done again
    assert second.totals.copied == 5 and second.totals.bytes_copied == 15
    second.begin(None)
    second.add({"item": "lost.png", "status": "copied", "output": "o", "bytes": 3})
    second.close()
    assert [r["item"] for r in store_records(fs, f"{root}/dst")] == [
        *[f"a{i}.png" for i in range(5)],
        "lost.png",
    ]
    assert record_objects(fs, f"{root}/dst") == []
    third = StoreManifest(f"memory://{root}/dst", job)
    assert len(third.done) == 6 and third.totals.units == 6
    with pytest.raises(InputError, match="other settings"):
        StoreManifest(f"memory://{root}/dst", {**job, "kind": "list"})


def test_shards_in_memory_match_the_local_engine(tmp_path: Path, memory: Any) -> None:
    fs, root = memory
    for s in range(3):
        make_shard(tmp_path / f"s-{s}.tar", s, n=3, bad=1 if s == 2 else None)
        fs.pipe_file(f"{root}/in/s-{s}.tar", (tmp_path / f"s-{s}.tar").read_bytes())
    pattern = "s-{0..2}.tar"
    done = quantize_dataset(f"memory://{root}/in/{pattern}", f"memory://{root}/out", K, workers=1)
    local = quantize_dataset(str(tmp_path / pattern), tmp_path / "out", K, workers=1)
    assert done.images == local.images == 8 and done.errors == local.errors == 1
    for s in range(3):
        assert (
            fs.cat_file(f"{root}/out/s-{s}.tar") == (tmp_path / "out" / f"s-{s}.tar").read_bytes()
        )
    assert [r["item"] for r in store_records(fs, f"{root}/out")] == [f"s-{s}.tar" for s in range(3)]


def test_unknown_protocols_and_missing_packages_are_refused_before_writing(
    tmp_path: Path,
) -> None:
    make_folder(tmp_path / "src", 1)
    line = one_error_line(run(tmp_path / "src", "s3x://bucket/out", "-k", K), "DST ", "s3x")
    assert "unknown storage protocol" in line
    one_error_line(run("nope://b/in", tmp_path / "dst", "-k", K), "SRC ", "unknown")
    if not _installed("gcsfs"):
        one_error_line(
            run(tmp_path / "src", "gs://bucket/out", "-k", K), "pip install 'colorquant[gcs]'"
        )
    # The command names its flags, not the library's Python arguments.
    line = one_error_line(run(tmp_path / "src", tmp_path / "dst", "--storage-options", "{oops"))
    assert line.startswith("colorquant: error: --storage-options: not valid JSON ("), line
    line = one_error_line(run(tmp_path / "src", tmp_path / "dst", "--storage-options", "[1]"))
    assert line.startswith("colorquant: error: --storage-options: must be a JSON object"), line
    line = one_error_line(run(tmp_path / "src", "memory://x/out", "--workers", "2"), "memory://")
    assert line.endswith("pass --workers 1 and --engine local") and "=" not in line, line
    with pytest.raises(InputError, match=r"pass workers=1 and the local engine$"):  # the API's
        quantize_dataset(tmp_path / "src", "memory://x/out", K, workers=2)
    with pytest.raises(InputError, match=r"^storage_options: not valid JSON"):
        quantize_dataset(tmp_path / "src", tmp_path / "dst", K, storage_options="{oops")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # nothing written


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_an_object_store_lock_refuses_a_second_job_and_is_taken_over_when_stale(
    tmp_path: Path, memory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs, root = memory
    make_folder(tmp_path / "src", 2)
    upload(fs, tmp_path / "src", f"{root}/src")
    src, dst = f"memory://{root}/src", f"memory://{root}/dst"
    with dataset_lock.StoreLock(dst):
        held = json.loads(fs.cat_file(f"{root}/dst/{LOCK_NAME}"))
        assert held["pid"] == os.getpid()
        with pytest.raises(DestinationBusyError, match=f"pid {os.getpid()} on "):
            quantize_dataset(src, dst, K, workers=1)
        assert not fs.exists(f"{root}/dst/{MANIFEST_NAME}")
    assert not fs.exists(f"{root}/dst/{LOCK_NAME}")
    # A lock not renewed for STALE_SECONDS was left by a killed job: taken over.
    stale = {"pid": 1, "host": "gone", "started": "then", "renewed": time.time() - 3600}
    fs.pipe_file(f"{root}/dst/{LOCK_NAME}", json.dumps(stale).encode())
    assert quantize_dataset(src, dst, K, workers=1).images == 2
    assert not fs.exists(f"{root}/dst/{LOCK_NAME}")


# -- S3 on loopback (moto's server) -------------------------------------------------------------


@pytest.fixture(scope="session")
def s3() -> Iterator[dict[str, str]]:
    """An S3 API on 127.0.0.1 (moto's server, one for the session) and the environment that
    reaches it: credentials and region the standard way, the endpoint in --storage-options."""
    server_module = pytest.importorskip("moto.server", reason="needs moto[server] (dev lock)")
    pytest.importorskip("s3fs", reason="needs s3fs: pip install 'colorquant[s3]'")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ENDPOINT": f"http://{host}:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if k != "ENDPOINT"})
    try:
        yield env
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def s3fs_for(env: dict[str, str]) -> Any:
    import s3fs

    return s3fs.S3FileSystem(
        key="testing", secret="testing", endpoint_url=env["ENDPOINT"], skip_instance_cache=True
    )


def cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    options = json.dumps({"endpoint_url": env["ENDPOINT"]})
    return subprocess.Popen(
        [sys.executable, "-m", "colorquant.cli", "dataset", *args, "--storage-options", options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


@pytest.mark.slow
def test_s3_folder_with_captions_killed_and_resumed(tmp_path: Path, s3: dict[str, str]) -> None:
    fs = s3fs_for(s3)
    bucket = f"b{uuid.uuid4().hex[:10]}"
    fs.mkdir(bucket)
    n = 40
    pixels = {}
    for i in range(n):
        array = photo(i, 64, 96)
        fs.pipe_file(f"{bucket}/src/part{i % 2}/{i:03d}.png", encode(array))
        pixels[f"part{i % 2}/{i:03d}.png"] = array
    captions = {f"part{i % 2}/{i:03d}.txt": f"caption {i}".encode() for i in range(0, n, 4)}
    for rel, data in captions.items():
        fs.pipe_file(f"{bucket}/src/{rel}", data)
    fs.pipe_file(f"{bucket}/src/bad.png", b"\x89PNG\r\n\x1a\n broken")
    args = [f"s3://{bucket}/src", f"s3://{bucket}/dst", "-k", "64", "--workers", "1"]
    args += ["--batch-size", "1", "--speed", "1"]

    proc = cli(s3, *args)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once a record object is in
        if record_objects(fs, f"{bucket}/dst"):
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    fs.invalidate_cache()
    written = [p for p in fs.find(f"{bucket}/dst") if p.endswith(".png")]
    assert 0 < len(written) < n  # killed mid-job
    for path in written:  # every object under its final name is complete
        rel = path.split("/dst/", 1)[1]
        check_palette_png(fs.cat_file(path), pixels[rel], k=64)

    proc = cli(s3, *args, "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    record = json.loads(out)  # stdout is the JSON object alone
    assert record["done_before"] >= 1 and record["images"] == n and record["errors"] == 1
    assert record["copied"] == len(captions)
    fs.invalidate_cache()
    lines = fs.cat_file(f"{bucket}/dst/{MANIFEST_NAME}").decode().splitlines()
    items = [json.loads(line)["item"] for line in lines[1:]]
    done = [json.loads(line)["item"] for line in lines[1:] if '"status": "error"' not in line]
    assert sorted(set(items)) == sorted({*pixels, *captions, "bad.png"})
    assert len(done) == len(set(done))  # a done item recorded once, even across the kill
    assert record_objects(fs, f"{bucket}/dst") == []
    for rel, original in pixels.items():
        check_palette_png(fs.cat_file(f"{bucket}/dst/{rel}"), original, k=64)
    for rel, data in captions.items():
        assert fs.cat_file(f"{bucket}/dst/{rel}") == data
    errors = fs.cat_file(f"{bucket}/dst/colorquant-errors.jsonl").decode().splitlines()
    assert len(errors) == 1 and "bad.png" in errors[0]
    assert not fs.exists(f"{bucket}/dst/{LOCK_NAME}")


@pytest.mark.slow
def test_s3_shards_to_s3_and_back_to_local(tmp_path: Path, s3: dict[str, str]) -> None:
    fs = s3fs_for(s3)
    bucket = f"b{uuid.uuid4().hex[:10]}"
    fs.mkdir(bucket)
    for s in range(3):
        make_shard(tmp_path / f"d-{s:03d}.tar", s, n=4)
        fs.put_file(str(tmp_path / f"d-{s:03d}.tar"), f"{bucket}/in/d-{s:03d}.tar")
    pattern = "d-{000..002}.tar"
    proc = cli(s3, f"s3://{bucket}/in/{pattern}", f"s3://{bucket}/out", "-k", str(K), "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    record = json.loads(out)
    assert record["kind"] == "shards" and record["images"] == 12 and record["errors"] == 0
    quantize_dataset(str(tmp_path / pattern), tmp_path / "local", K, workers=2)
    fs.invalidate_cache()
    for s in range(3):
        name = f"d-{s:03d}.tar"
        assert fs.cat_file(f"{bucket}/out/{name}") == (tmp_path / "local" / name).read_bytes()
    # The rerun finds every shard done; an S3 SRC with a local DST works as well.
    proc = cli(s3, f"s3://{bucket}/in/{pattern}", f"s3://{bucket}/out", "-k", str(K), "--json")
    again = json.loads(proc.communicate(timeout=300)[0])
    assert again["done_before"] == 3 and again["processed"] == 0
    proc = cli(s3, f"s3://{bucket}/in/{pattern}", str(tmp_path / "back"), "-k", str(K), "--json")
    assert json.loads(proc.communicate(timeout=300)[0])["images"] == 12
    for s in range(3):
        assert read_shard(tmp_path / "back" / f"d-{s:03d}.tar") == read_shard(
            tmp_path / "local" / f"d-{s:03d}.tar"
        )
    with tarfile.open(tmp_path / "back" / "d-000.tar") as tar:
        member = tar.extractfile("000000.png")
        assert member is not None and np.array(Image.open(member)).max() < K


def test_a_shared_palette_over_many_shards_opens_only_sample_of_them(
    tmp_path: Path, memory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs, root = memory
    for s in range(6):
        make_shard(tmp_path / f"m-{s}.tar", s, n=2)
        fs.pipe_file(f"{root}/in/m-{s}.tar", (tmp_path / f"m-{s}.tar").read_bytes())
    opened: list[str] = []
    real = dataset_job.open_read

    def counting(url: str, options: Any = None) -> Any:
        opened.append(url)
        return real(url, options)

    monkeypatch.setattr(dataset_job, "open_read", counting)
    progress_totals: list[int] = []
    summary = quantize_dataset(
        f"memory://{root}/in/m-{{0..5}}.tar",
        f"memory://{root}/out",
        8,
        shared_palette=True,
        sample=3,
        workers=1,
        progress=lambda total: progress_totals.append(total) or (lambda n: None),
    )
    assert summary.images == 12
    assert opened == [f"memory://{root}/in/m-{s}.tar" for s in (0, 2, 4)]  # 3 of 6, spread
    assert progress_totals == [0]  # an object store's shards are not downloaded for a total


# -- a store out of reach: one line, never a traceback ------------------------------------------


class FakeBotoError(Exception):
    """Stands for botocore's exceptions (no OSError), as s3fs lets them through."""


FakeBotoError.__module__ = "botocore.exceptions"


def test_a_lock_that_cannot_be_renewed_stops_the_job_in_one_line(
    tmp_path: Path, memory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs, root = memory
    make_folder(tmp_path / "src", 6)
    upload(fs, tmp_path / "src", f"{root}/src")
    src, dst = f"memory://{root}/src", f"memory://{root}/dst"
    real_pipe = type(fs).pipe_file
    taken = []

    def pipe_file(self: Any, path: str, value: bytes, *args: Any, **kwargs: Any) -> Any:
        if path.endswith(LOCK_NAME):
            if taken:  # the first put takes the lock; the renewals find the store gone
                raise FakeBotoError("Could not connect to the endpoint URL")
            taken.append(path)
        return real_pipe(self, path, value, *args, **kwargs)

    monkeypatch.setattr(type(fs), "pipe_file", pipe_file)
    monkeypatch.setattr(dataset_lock, "RENEW_SECONDS", 0.0)
    monkeypatch.setattr(dataset_job, "_batches", slow_batches)
    with pytest.raises(StoreError, match=r"cannot reach the store .*Could not"):
        quantize_dataset(src, dst, K, workers=1, batch_size=1)
    # The job stopped before its end: fewer than all images recorded, no summary returned.
    fs.invalidate_cache()
    outputs = [p for p in fs.find(f"{root}/dst") if p.endswith(".png")]
    assert len(outputs) < 6


def slow_batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """The job's batches, each after a pause that lets the lock's thread try its renewal (the
    items come from the plan as a stream)."""
    source = iter(items)
    while batch := list(itertools.islice(source, size)):
        time.sleep(0.05)
        yield batch


def test_a_store_error_is_one_line_naming_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise FakeBotoError("Unable to locate credentials")

    fs, _ = dataset_storage.filesystem("memory://x/y")
    monkeypatch.setattr(type(fs), "cat_file", refuse)
    with pytest.raises(StoreError) as caught:
        dataset_storage.read_bytes("memory://x/y")
    assert (
        str(caught.value) == "memory://x/y: cannot reach the store (Unable to locate credentials)"
    )
    assert isinstance(caught.value, OSError)
    monkeypatch.setattr(type(fs), "cat_file", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # a bug is no store error: it is not hidden
        dataset_storage.read_bytes("memory://x/y")


CLI = (sys.executable, "-m", "colorquant.cli", "dataset")


def unreachable_run(tmp_path: Path, *options: tuple[str, Any]) -> subprocess.CompletedProcess[str]:
    """The CLI writing into a bucket behind a loopback port that refuses connections."""
    pytest.importorskip("s3fs", reason="needs s3fs: pip install 'colorquant[s3]'")
    make_folder(tmp_path / "src", 1)
    storage = {"endpoint_url": "http://127.0.0.1:9", **dict(options)}
    storage["config_kwargs"] = {"retries": {"max_attempts": 1}}  # botocore's: fail fast here
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "none")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return subprocess.run(
        [
            *CLI,
            str(tmp_path / "src"),
            "s3://nobucket/out",
            "--storage-options",
            json.dumps(storage),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("options", "reason"),
    [((), "Unable to locate credentials"), ((("anon", True),), "Could not connect")],
)
def test_no_credentials_or_no_endpoint_is_one_line(
    tmp_path: Path, options: tuple[tuple[str, Any], ...], reason: str
) -> None:
    done = unreachable_run(tmp_path, *options)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("colorquant: error: s3://nobucket/out/"), lines[0]
    assert "cannot reach the store (" in lines[0] and reason in lines[0], lines[0]
    assert done.stdout == ""


def test_a_store_lost_mid_job_stops_it_in_one_line(tmp_path: Path, s3: dict[str, str]) -> None:
    server_module = pytest.importorskip("moto.server", reason="needs moto[server] (dev lock)")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {**s3, "ENDPOINT": f"http://{host}:{port}"}
    try:
        fs = s3fs_for(env)
        bucket = f"b{uuid.uuid4().hex[:10]}"
        fs.mkdir(bucket)
        make_folder(tmp_path / "src", 40)
        options = {
            "endpoint_url": env["ENDPOINT"],
            "config_kwargs": {"retries": {"max_attempts": 1}},
        }
        args = ["--workers", "1", "--batch-size", "1", "--speed", "1"]
        args += ["--storage-options", json.dumps(options)]
        proc = subprocess.Popen(
            [*CLI, str(tmp_path / "src"), f"s3://{bucket}/dst", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the store goes once a record object is in
            if record_objects(fs, f"{bucket}/dst"):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
    finally:
        server.stop()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"colorquant: error: s3://{bucket}/dst/"), err
    assert "cannot reach the store (" in lines[0], lines[0]
    assert out == ""


@pytest.mark.parametrize("kind", ["folder", "shards"])
def test_a_source_store_out_of_reach_stops_the_job_and_marks_nothing_bad(
    tmp_path: Path, memory: Any, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    fs, root = memory
    if kind == "folder":
        make_folder(tmp_path / "src", 2)
        (tmp_path / "src" / "notes.txt").write_text("a file copied unchanged")
    else:
        (tmp_path / "src").mkdir()
        make_shard(tmp_path / "src" / "s-0.tar", 0, n=2)
    upload(fs, tmp_path / "src", f"{root}/src")
    src = f"memory://{root}/src" + ("" if kind == "folder" else "/s-0.tar")

    def refuse(self: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        raise FakeBotoError("Could not connect to the endpoint URL")

    for method in ("cat_file", "_open"):  # reading SRC's objects; listing it still works
        monkeypatch.setattr(type(fs), method, refuse)
    dst = tmp_path / "dst"
    with pytest.raises(dataset_job.JobStopped, match=r"cannot reach the store .* the job stopped"):
        quantize_dataset(src, dst, K, workers=1)
    monkeypatch.undo()
    assert manifest_records_of(dst) == []  # no item recorded as bad: the rerun does them all
    assert not (dst / "colorquant-errors.jsonl").read_text()
    assert quantize_dataset(src, dst, K, workers=1).errors == 0


def manifest_records_of(dst: Path) -> list[dict[str, Any]]:
    lines = (dst / MANIFEST_NAME).read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]
