"""The driver's plan on disk (colorquant.dataset.plan): bounded memory, same names, cleaned up."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from colorquant._checks import InputError
from colorquant.dataset import SettingsMismatchError, quantize_dataset
from colorquant.dataset.manifest import Manifest
from colorquant.dataset.plan import PLAN_PREFIX, DoneItems, Plan, assign_outputs, is_image_name
from colorquant.dataset.sources import plan_job
from colorquant.dataset.storage import list_files, walk_files
from test_dataset import K, encode, make_folder, manifest_records, photo


def reference_outputs(names: list[str], taken: dict[str, str]) -> dict[str, str]:
    """The output name rule of colorquant.dataset.sources, written plainly over every name:
    the images of ``names`` (in order) -> their outputs (relative)."""

    def plain(name: str) -> str:
        head, slash, base = name.rpartition("/")
        dot = base.rfind(".")
        return f"{head}{slash}{base[:dot] if 0 < dot < len(base) - 1 else base}.png"

    images = [n for n in names if is_image_name(n)]
    wanters: dict[str, list[str]] = {}
    for name in images:
        wanters.setdefault(plain(name), []).append(name)
    keeps = {item: out for out, item in taken.items()}
    used = set(taken)
    outputs = {name: out for name, out in keeps.items() if name in images}

    def take(out: str) -> str:
        stem, number = out[:-4], 2
        while out in used:
            out, number = f"{stem}.{number}.png", number + 1
        used.add(out)
        return out

    fallbacks = []
    for out, group in wanters.items():
        for name in group:
            if name in keeps:
                continue
            if len(group) == 1 or name == out:
                outputs[name] = take(out)
            else:
                fallbacks.append(name)
    for name in fallbacks:
        outputs[name] = take(name + ".png")
    return outputs


def planned_outputs(plan: Plan, root: str) -> dict[str, str]:
    return {i.name: i.dst[len(root) + 1 :] for i in plan.iter_items() if not i.copy}


@pytest.mark.parametrize("seed", range(3))
def test_output_names_follow_the_rule_on_random_names(tmp_path: Path, seed: int) -> None:
    # Names built to collide (a.jpg / a.png / a.jpg.png / a.2.png ...), with and without the
    # outputs an earlier run wrote: the disk plan names every image as the plain rule does.
    rng = random.Random(seed)
    stems = ["a", "a.jpg", "a.2", "a.jpg.2", "b", "x/a", "x/a.2"]
    root = str(tmp_path / "dst")
    renamed_total = 0
    for _ in range(60):
        names = list(
            dict.fromkeys(
                f"{rng.choice(stems)}.{rng.choice(['jpg', 'png', 'webp', 'txt'])}"
                for _ in range(rng.randint(1, 12))
            )
        )
        images = [n for n in names if is_image_name(n)]
        taken: dict[str, str] = {}
        for name in rng.sample(images, rng.randint(0, len(images))) if seed else []:
            out = rng.choice([name.rsplit(".", 1)[0] + ".png", name + ".png", "a.2.png"])
            taken.setdefault(out, name)
        pairs = [(n, f"/src/{n}") for n in names]
        with Plan.of_files("folder", "/src", root, pairs) as plan:
            assign_outputs(plan, taken)
            got = planned_outputs(plan, root)
            want = reference_outputs(names, taken)
            assert got == want, (names, taken)
            assert len(set(got.values())) == len(got)  # never two images on one output
            renamed = sum(out != reference_outputs([n], {})[n] for n, out in want.items())
            assert plan.renamed == renamed
            renamed_total += renamed
    assert renamed_total > 30  # the names did collide


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private temporary folder for the plans of the test (``tempfile.gettempdir()``)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _plan_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(PLAN_PREFIX))


def test_planning_a_large_list_keeps_the_python_heap_bounded(tmp_path: Path) -> None:
    # 100,000 lines held as Python objects took 41 MiB (paths, outputs, the set of sources);
    # the disk plan holds one chunk of rows at a time (~7 MiB here), however long the list.
    listing = tmp_path / "list.txt"
    with open(listing, "w") as fh:
        fh.writelines(f"imgs/{i // 1000:04d}/{i:07d}.jpg\n" for i in range(100_000))
    tracemalloc.start()
    try:
        with plan_job(str(listing), str(tmp_path / "dst")) as plan:
            count = sum(1 for _ in plan.iter_items(todo=True))
            assert plan.count == count == 100_000 and plan.renamed == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_the_plan_folder_is_removed_after_success_and_after_an_error(
    tmp_path: Path, scratch: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_folder(src, 3)
    during: list[list[str]] = []

    def progress(total: int) -> Any:
        during.append(_plan_folders(scratch))
        return lambda n: None

    summary = quantize_dataset(src, dst, K, workers=1, progress=progress)
    assert summary.images == 3
    assert len(during) == 1 and len(during[0]) == 1  # one plan while the job ran
    assert _plan_folders(scratch) == []
    # An error after planning: DST holds a job of other settings.
    with pytest.raises(SettingsMismatchError):
        quantize_dataset(src, dst, K + 1, workers=1)
    assert _plan_folders(scratch) == []
    # An error while planning: a list whose output would overwrite one of its inputs.
    (src / "list.txt").write_text("img0.png\nout/img0.png\n")
    with pytest.raises(InputError, match="is an input"):
        quantize_dataset(src / "list.txt", src / "out", K, workers=1)
    assert _plan_folders(scratch) == []


def test_a_killed_jobs_plan_folder_is_removed_by_the_next_plan(
    tmp_path: Path, scratch: Path
) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    with Plan.of_files("folder", "/src", str(tmp_path / "dst"), []) as plan:
        own = Path(plan.folder).name
        prefix = own[: own.index(f"-{os.getpid()}-") + 1]
    (scratch / f"{prefix}{gone.stdout.strip()}-abc").mkdir()  # a killed job's
    (scratch / f"{prefix}{os.getpid()}-abc").mkdir()  # a live one's (this process)
    (scratch / f"{PLAN_PREFIX}otherhost-1-abc").mkdir()  # another machine's
    with Plan.of_files("folder", "/src", str(tmp_path / "dst"), []) as plan:
        assert _plan_folders(scratch) == sorted(
            [Path(plan.folder).name, f"{prefix}{os.getpid()}-abc", f"{PLAN_PREFIX}otherhost-1-abc"]
        )


def test_a_resumed_list_job_skips_finished_items(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        (folder / f"p{i}.png").write_bytes(encode(photo(i)))
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"imgs/p{i}.png\n" for i in range(4)))
    dst = tmp_path / "dst"
    first = quantize_dataset(listing, dst, K, workers=1)
    assert first.processed == 4 and first.done_before == 0
    before = {p.name: p.read_bytes() for p in (dst / "imgs").iterdir()}
    # Two more lines, and one naming a done file again.
    listing.write_text(listing.read_text() + "imgs/p4.png\nimgs/p5.png\nimgs/p0.png\n")
    second = quantize_dataset(listing, dst, K, workers=1)
    assert (second.done_before, second.processed, second.items) == (4, 2, 6)
    assert second.repeated == 1 and second.images == 6
    items = [r["item"] for r in manifest_records(dst)]
    assert items == [f"imgs/p{i}.png" for i in range(6)]  # each once, in the list's order
    assert all((dst / "imgs" / name).read_bytes() == data for name, data in before.items())


def test_the_manifest_keeps_its_finished_items_in_the_plan(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_folder(src, 4)
    quantize_dataset(src, dst, K, workers=1)
    records = manifest_records(dst)
    assert len(records) == 4
    with plan_job(str(src), str(dst)) as plan:
        header = (dst / "colorquant-manifest.jsonl").read_text().splitlines()[0]
        manifest = Manifest(dst, json.loads(header)["job"], plan=plan)
        assert isinstance(manifest.done, DoneItems) and len(manifest.done) == 4
        assert all(r["item"] in plan.done for r in records) and "nothing.png" not in plan.done
        assert len(plan.written) == 4  # every image's output, for the names of a resume
        assert list(plan.iter_items(todo=True)) == []


def test_todo_items_are_those_not_done_when_the_run_starts(tmp_path: Path) -> None:
    pairs = [(f"{i:02d}.png", f"/src/{i:02d}.png") for i in range(25)]
    with Plan.of_files("folder", "/src", str(tmp_path), pairs) as plan:
        plan.done.add("00.png")
        seen = []
        for item in plan.iter_items(todo=True, chunk=10):  # three chunks
            seen.append(item.name)
            plan.done.add(f"{int(item.name[:2]) + 1:02d}.png")  # finished meanwhile
        assert seen == [f"{i:02d}.png" for i in range(1, 25)]
        assert [i.name for i in plan.iter_items(todo=True)] == ["01.png"]
        assert len(plan.done) == 25 and plan.count_todo_images() == 1


def test_sample_images_are_evenly_spaced_over_the_plan(tmp_path: Path) -> None:
    names = [f"{i:02d}.png" if i % 3 else f"{i:02d}.txt" for i in range(15)]  # 10 images
    with Plan.of_files("folder", "/src", str(tmp_path), [(n, f"/src/{n}") for n in names]) as p:
        images = [i.name for i in p.iter_items(images=True)]
        assert len(images) == 10
        assert [i.name for i in p.sample_images(4)] == [images[j] for j in (0, 2, 5, 7)]
        assert [i.name for i in p.sample_images(10)] == images
        assert [i.name for i in p.sample_images(50)] == images


def test_a_store_folder_is_walked_in_the_sorted_order_of_its_names() -> None:
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    root = f"/walk-{random.getrandbits(32):08x}"
    names = ["a.png", "a/b.png", "a-b/c.png", "a.b/d.png", "a/b/c/e.png", "z.txt", "a0", "A.png"]
    for name in names:
        fs.pipe_file(f"{root}/{name}", b"x")
    walked = list(walk_files(f"memory://{root}"))
    assert walked == list_files(f"memory://{root}") == sorted(names)


def test_a_full_temporary_folder_is_one_line_and_leaves_no_plan(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The plan's SQLite file stops growing (a full disk, as SQLite reports it: it ends the
    # transaction itself): the command says so in one line, exit 1, and removes the plan.
    from click.testing import CliRunner

    from colorquant.cli import main

    connect = sqlite3.connect

    def small_disk(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.execute("PRAGMA max_page_count = 16")
        return db

    monkeypatch.setattr(sqlite3, "connect", small_disk)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"folder/image-{i:06d}.png\n" for i in range(20_000)))
    result = CliRunner().invoke(main, ["dataset", str(listing), str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"colorquant: error: the job's plan in {scratch}: database or disk is full; set TMPDIR "
        "to a folder with room (about 200 bytes an item) and rerun the same command\n"
    )
    assert _plan_folders(scratch) == []
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
