"""colorquant.threads: the process default, a Python thread's own count, the share of pooled
jobs, what the kernels are handed, and the old names in colorquant._cpu."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import colorquant.threads as threads
from colorquant import InputError, _cpu


@pytest.fixture(autouse=True)
def default_restored() -> Iterator[None]:
    """Every test leaves the process default as it found it."""
    before = threads.get_num_threads()
    yield
    threads.set_num_threads(before)


class Recording:
    """The compiled core with a record of the thread count each ``nearest`` call was handed,
    per Python thread."""

    def __init__(self, build: Any) -> None:
        self.build = build
        self.seen: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def nearest(self, *args: Any) -> None:
        with self.lock:
            self.seen.setdefault(threading.current_thread().name, []).append(args[-1])
        self.build.nearest(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.build, name)


def points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (500, 3)), rng.uniform(0, 255, (7, 3))


def test_set_and_get_the_default() -> None:
    threads.set_num_threads(3)
    assert threads.get_num_threads() == 3
    threads.set_num_threads(np.int64(1))
    assert threads.get_num_threads() == 1


def test_a_block_is_this_threads_only_and_nests() -> None:
    threads.set_num_threads(2)
    with threads.num_threads(5) as n:
        assert n == 5 and threads.get_num_threads() == 5
        with threads.num_threads(1):
            assert threads.get_num_threads() == 1
        assert threads.get_num_threads() == 5
        # Another thread, without a block of its own, sees the default.
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(threads.get_num_threads).result() == 2
        # The default changes under the block; this thread keeps its block's count.
        threads.set_num_threads(4)
        assert threads.get_num_threads() == 5
    assert threads.get_num_threads() == 4


def test_a_block_restores_on_an_exception() -> None:
    threads.set_num_threads(2)
    with pytest.raises(RuntimeError, match="inside"), threads.num_threads(6):
        raise RuntimeError("inside")
    assert threads.get_num_threads() == 2


def test_two_threads_hand_the_kernels_their_own_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    recording = Recording(_cpu._kernels)
    monkeypatch.setattr(_cpu, "_kernels", recording)
    x, palette = points()
    expected, _ = _cpu.nearest(x, palette)
    both_inside = threading.Barrier(2)
    results: dict[str, np.ndarray] = {}

    def job(n: int) -> None:
        with threads.num_threads(n):
            both_inside.wait()  # each call below runs while the other thread holds its count
            for _ in range(3):
                results[threading.current_thread().name] = _cpu.nearest(x, palette)[0]
            both_inside.wait()

    runners = [threading.Thread(target=job, args=(n,), name=f"n{n}") for n in (1, 3)]
    for t in runners:
        t.start()
    for t in runners:
        t.join()
    assert recording.seen["n1"] == [1, 1, 1]
    assert recording.seen["n3"] == [3, 3, 3]
    for index in results.values():  # and the count never changes the result
        np.testing.assert_array_equal(index, expected)


def test_shared_threads_splits_this_threads_count() -> None:
    threads.set_num_threads(7)
    with threads.num_threads(4), threads.shared_threads(3) as workers:
        assert workers == 3
        with ThreadPoolExecutor(workers) as pool:
            shares = list(pool.map(lambda _: threads.get_num_threads(), range(6)))
        assert shares == [1] * 6  # 4 // 3
    assert threads.get_num_threads() == 7
    with threads.num_threads(2), threads.shared_threads(8) as workers:
        assert workers == 2  # no more jobs at once than threads
    with threads.shared_threads(0) as workers:
        assert workers == 1
        assert threads.get_num_threads() == 7


@pytest.mark.parametrize(
    ("bad", "shown"),
    [(0, "got 0"), (-2, "got -2"), (1.5, "got float 1.5"), (True, "got bool True"),
     ("2", "got str '2'"), (None, "got NoneType None")],
)  # fmt: skip
def test_bad_counts_are_one_line_errors_naming_n(bad: Any, shown: str) -> None:
    for call in (threads.set_num_threads, lambda n: threads.num_threads(n).__enter__()):
        with pytest.raises(InputError) as caught:
            call(bad)
        message = str(caught.value)
        assert message == f"n must be an integer >= 1, {shown}" and "\n" not in message
    with pytest.raises(InputError, match=r"^jobs must be an integer >= 0, got -1$"):
        threads.shared_threads(-1).__enter__()
    assert issubclass(InputError, ValueError)


def test_the_old_names_in_cpu_are_the_new_ones() -> None:
    _cpu.set_num_threads(3)
    assert threads.get_num_threads() == 3 == _cpu.get_num_threads()
    with threads.num_threads(2):
        assert _cpu.get_num_threads() == 2
    with _cpu.shared_threads(3) as workers:
        assert workers == 3 and _cpu.get_num_threads() == 1
    assert _cpu.get_num_threads() == 3


@pytest.mark.parametrize(
    ("environment", "expected"),
    [({"COLORQUANT_NUM_THREADS": "3", "OMP_NUM_THREADS": "2"}, 3),
     ({"OMP_NUM_THREADS": "2,1"}, 2)],
)  # fmt: skip
def test_the_default_comes_from_the_environment(environment: dict[str, str], expected: int) -> None:
    env = {"PATH": "", **environment}
    done = subprocess.run(
        [sys.executable, "-c", "import colorquant.threads as t; print(t.get_num_threads())"],
        env={**env, "PYTHONPATH": ":".join(sys.path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == expected
