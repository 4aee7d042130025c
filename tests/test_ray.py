"""``--engine ray``: the same per-batch functions on Ray Data, on a local Ray instance.

One instance (2 CPUs) for the module, started here as a cluster's would be reached: the job
finds Ray initialized and uses it. Kept to two small jobs: Ray takes seconds to start.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import colorquant as cq
from colorquant.cli import main
from colorquant.dataset import MANIFEST_NAME, quantize_dataset
from colorquant.dataset.sources import LOCK_NAME
from test_dataset import (
    check_animation,
    check_palette_png,
    encode,
    make_folder,
    make_shard,
    manifest_records,
    moving,
    photo,
    read_shard,
    save_gif,
)

# The dev lock installs it: skipped only without the extra.
ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'colorquant[ray]'")
# Ray Data reads its own deprecated settings when it starts: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.usefixtures("local_ray")
def test_folder_job_on_ray(tmp_path: Path) -> None:
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
            str(src),
            str(dst),
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
    items = [r["item"] for r in manifest_records(dst)]
    assert sorted(items) == sorted([*pixels, *others, "sub/clip.gif", "sub/bad.jpg"])
    assert not (dst / LOCK_NAME).exists()
    # The same job on the local engine finds everything done but the bad item, tried again.
    again = quantize_dataset(src, dst, 16, workers=1)
    assert again.done_before == 10 and again.processed == 1 and again.copied == 2
    assert again.images == 8 and again.animations == 1 and again.errors == 1


@pytest.mark.usefixtures("local_ray")
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
