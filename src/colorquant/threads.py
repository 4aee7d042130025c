"""How many threads colorquant's compiled CPU core runs on.

The core (``colorquant._cpu``: the histogram, k-means++, Lloyd, the nearest-color search and
dithering, in C + OpenMP) splits each call over this many threads. The count changes the speed
only: partial sums are taken over fixed blocks and merged in order, so the results are the same
bit for bit on any number of threads. It does not govern torch's threads
(``torch.set_num_threads``), nor BLAS, nor how many images the command line or a dataset job
processes at once (a dataset job's ``workers`` / ``--workers``).

Two levels, and the calling thread's count is the first that applies:

1. its own count, inside a ``with num_threads(n):`` block: this Python thread (and this
   ``asyncio`` task) only, for the block; blocks nest;
2. the process default, :func:`set_num_threads`: every thread without a count of its own. It
   starts from the environment: ``COLORQUANT_NUM_THREADS``, else ``OMP_NUM_THREADS`` (its first
   entry), else the number of CPUs this process may run on.

For jobs that run at once on a pool of threads (one image each), :func:`shared_threads` splits
the count among them so that together they never use more threads than one call would.

Safe to use from several Python threads at once: the default is read and written under a lock,
a thread's own count lives in a :class:`contextvars.ContextVar` that other threads do not see,
and every kernel call reads the count once, when it starts, and hands it to the C code (no
global that another thread could change mid-call).

Example:
    >>> import colorquant.threads as threads
    >>> with threads.num_threads(1):  # this thread, for the block
    ...     threads.get_num_threads()
    1
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ._checks import InputError

__all__ = ["get_num_threads", "num_threads", "set_num_threads", "shared_threads"]


def _from_environment() -> int:
    """The default from ``COLORQUANT_NUM_THREADS``, ``OMP_NUM_THREADS``, else the usable CPUs."""
    for name in ("COLORQUANT_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


_lock = threading.Lock()
_default = _from_environment()
# This thread's (and asyncio task's) own count, None outside any num_threads block.
_own: ContextVar[int | None] = ContextVar("colorquant_num_threads", default=None)


def _integer(name: str, value: Any, low: int) -> int:
    """``value`` as an int if it is an integer (not a bool) >= low, else a one-line InputError."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise InputError(
            f"{name} must be an integer >= {low}, got {type(value).__name__} {value!r}"
        )
    out = int(value.__index__())
    if out < low:
        raise InputError(f"{name} must be an integer >= {low}, got {out}")
    return out


def get_num_threads() -> int:
    """The threads a kernel called from this thread runs on.

    Returns:
        This thread's count inside a :func:`num_threads` block, else the process default
        (:func:`set_num_threads`, or the environment's; see the module).
    """
    own = _own.get()
    if own is not None:
        return own
    with _lock:
        return _default


def set_num_threads(n: int) -> None:
    """Set the process default: the threads of every kernel called from a Python thread that
    has no count of its own (outside :func:`num_threads` blocks).

    A thread inside a :func:`num_threads` block keeps its block's count until the block ends.

    Args:
        n: threads, an integer ``>= 1``.

    Raises:
        InputError: ``n`` is not an integer >= 1 (a ``ValueError``).
    """
    global _default
    value = _integer("n", n, 1)
    with _lock:
        _default = value


@contextmanager
def num_threads(n: int) -> Iterator[int]:
    """Run the kernels called from this thread on ``n`` threads for the block.

    Other Python threads (and asyncio tasks) are not affected; an inner block overrides an outer
    one; the count before the block comes back after it, even on an exception.

    Args:
        n: threads, an integer ``>= 1``.

    Yields:
        ``n``.

    Raises:
        InputError: ``n`` is not an integer >= 1 (a ``ValueError``), raised before the block.

    Example:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> def job(n: int) -> int:
        ...     with num_threads(n):
        ...         return get_num_threads()  # kernels called here run on n threads
        >>> with ThreadPoolExecutor(2) as pool:
        ...     list(pool.map(job, [1, 3]))
        [1, 3]
    """
    value = _integer("n", n, 1)
    token = _own.set(value)
    try:
        yield value
    finally:
        _own.reset(token)


@contextmanager
def shared_threads(jobs: int) -> Iterator[int]:
    """Split this thread's count among up to ``jobs`` jobs that run at once, one per thread.

    Yields how many jobs to run at once, ``workers = min(jobs, get_num_threads())``; while the
    block runs, a kernel called from a thread without a count of its own (a pool's thread) runs
    on ``get_num_threads() // workers`` threads: the jobs together never use more threads than
    one call would (no oversubscription). The pool's threads have no count of their own, so the
    block sets the process default (:func:`set_num_threads`) and puts the one before back after.
    Two such blocks that overlap in time share that default: the later one's share applies to
    both until it ends. Where that matters, a job can set its share itself with
    ``num_threads(share)`` around its work.

    Args:
        jobs: jobs there are, an integer ``>= 0`` (0 runs like 1: one worker).

    Yields:
        ``workers``, the jobs to run at once.

    Raises:
        InputError: ``jobs`` is not an integer >= 0 (a ``ValueError``).

    Example:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> with num_threads(4), shared_threads(2) as workers:
        ...     with ThreadPoolExecutor(workers) as pool:
        ...         list(pool.map(lambda _: get_num_threads(), range(2)))
        [2, 2]
    """
    global _default
    budget = get_num_threads()
    workers = max(1, min(_integer("jobs", jobs, 0), budget))
    with _lock:
        previous, _default = _default, max(1, budget // workers)
    try:
        yield workers
    finally:
        with _lock:
            _default = previous
