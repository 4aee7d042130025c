"""One job at a time in a DST: an exclusive ``flock`` on ``DST/.colorquant.lock``.

The lock belongs to the open file, so the kernel drops it when the process ends, however it
ends: a job killed by SIGKILL never blocks the rerun that resumes it. A second job on the same
DST is refused at once (it never waits), with the holder's pid, host and start time, which the
holder writes into the file. The holder removes the file when it ends (a killed one leaves it,
unlocked, for the next job to take). Over NFS, Linux maps ``flock`` to NFS byte-range locks,
so jobs on two machines exclude each other too. Windows has no ``flock``: there the lock is
not taken.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from .._checks import InputError
from ..io import WriteError
from .sources import LOCK_NAME
from .storage import (
    StorageOptions,
    StoreError,
    delete,
    is_url,
    join,
    read_bytes,
    write_bytes,
)

__all__ = ["STALE_SECONDS", "DestinationBusyError", "JobLock", "StoreLock", "job_lock"]

#: An object store's lock not renewed for this long belongs to a job that is gone.
STALE_SECONDS = 60.0
#: How often a job renews its object store lock.
RENEW_SECONDS = 15.0


class DestinationBusyError(InputError):
    """Another job holds DST's lock."""


def _holder(path: Path) -> str:
    """Who holds the lock, as the holder wrote it: ``"pid 12 on host, started 2026-...Z"``."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):  # it is writing it at this moment
        return "a process that has not yet written its name"


class JobLock:
    """The lock of the job writing into ``root``: ``with JobLock(root): ...``.

    Entering creates ``root`` if needed (and removes it again on exit if it is still empty and
    was created here), takes the lock or raises, and writes the holder's pid, host and start
    time into the lock file; exiting removes the file and releases the lock.

    Raises:
        DestinationBusyError: another process holds the lock (the message names it).
        InputError: ``root`` exists and is not a folder.
        WriteError: ``root`` or the lock file cannot be created.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / LOCK_NAME
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> JobLock:
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"DST {str(self.root)!r}: exists and is not a folder")
        try:
            self._created = not self.root.exists()
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WriteError(f"{self.root}: cannot create: {err.strerror or err}") from None
        try:
            self._fd = self._take()
        except BaseException:
            self._remove_root()
            raise
        return self

    def _take(self) -> int:
        if sys.platform == "win32":  # no flock: one job at a time is the user's to keep
            return -1
        import fcntl

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise WriteError(f"{self.path}: cannot create: {err.strerror or err}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DestinationBusyError(
                    f"DST {str(self.root)!r}: another colorquant dataset job is writing there "
                    f"({_holder(self.path)}); wait for it to end, or choose another DST"
                ) from None
            except OSError as err:
                os.close(fd)
                raise WriteError(f"{self.path}: cannot lock: {err.strerror or err}") from None
            # The holder before us may have removed the file between our open and our lock:
            # then we hold a lock on a file nobody else can see, so take the new one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
        try:
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(info) + "\n").encode())
        except OSError as err:
            os.close(fd)
            raise WriteError(f"{self.path}: cannot write: {err.strerror or err}") from None
        return fd

    def check(self) -> None:
        """Nothing: a ``flock`` needs no renewal (as :meth:`StoreLock.check`)."""

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._fd is not None and self._fd >= 0:
            # Removed while still locked, so that no other job can lock this file after us.
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
        self._fd = None
        self._remove_root()

    def _remove_root(self) -> None:
        if self._created:
            with contextlib.suppress(OSError):
                self.root.rmdir()  # only if empty: a job that failed before writing anything


def _alive(held: dict[str, Any]) -> bool:
    """Whether an object store lock's holder may still run: renewed less than
    :data:`STALE_SECONDS` ago, and, if it ran on this host, its process still there."""
    try:
        if time.time() - float(held.get("renewed", 0)) >= STALE_SECONDS:
            return False
        if held.get("host") == socket.gethostname():
            os.kill(int(held.get("pid", 0)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):  # another user's process, or no number
        return True
    return True


class StoreLock:
    """The lock of a job writing under the URL ``root`` (an object store has no ``flock``):
    a lease, ``DST/.colorquant.lock`` holding the holder's pid, host, start time and the time
    it last renewed it (every :data:`RENEW_SECONDS`, by a thread). A lock renewed less than
    :data:`STALE_SECONDS` ago refuses a second job, unless its holder ran on this host and is
    gone; an older one was left by a killed job and is taken over. Two jobs starting within
    the same second may both get in (fsspec exposes no atomic create-if-absent): start one
    job per DST.

    A renewal that fails (the store lost mid-job) is kept, not raised in the thread: the job
    asks :meth:`check` as it goes and stops with it, and exiting without another error raises
    it, so that a job whose lease lapsed is never reported as a success.

    Raises:
        DestinationBusyError: the lock is held (the message names the holder).
        WriteError: the lock object cannot be written (:class:`~.storage.StoreError`: the
            store cannot be reached).
    """

    def __init__(self, root: str, options: StorageOptions | None = None) -> None:
        self.root = root
        self.path = join(root, LOCK_NAME)
        self._options = dict(options or {})
        self._token = uuid.uuid4().hex
        self._info: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: StoreError | None = None

    def _read(self) -> dict[str, Any] | None:
        """The lock's content; ``None`` if there is none or it is unreadable (being written).

        Raises:
            StoreError: the store cannot be reached.
        """
        try:
            value = json.loads(read_bytes(self.path, self._options))
        except StoreError:
            raise
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def _put(self) -> None:
        self._info["renewed"] = time.time()
        write_bytes(self.path, (json.dumps(self._info) + "\n").encode(), self._options)

    def __enter__(self) -> StoreLock:
        held = self._read()
        if held is not None and _alive(held):
            holder = f"pid {held.get('pid')} on {held.get('host')}, started {held.get('started')}"
            raise DestinationBusyError(
                f"DST {self.root!r}: another colorquant dataset job is writing there "
                f"({holder}); wait for it to end, or choose another DST"
            )
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self._info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": started,
            "token": self._token,
        }
        try:
            self._put()
        except StoreError:
            raise
        except OSError as err:
            raise WriteError(f"{self.path}: cannot write: {err}") from None
        self._thread = threading.Thread(target=self._renew, name="colorquant-lock", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            try:
                self._put()
            except StoreError as err:  # kept for the job's thread (check), which stops
                self._failure = err
                return
            except Exception as err:  # never an unhandled exception in this thread
                reason = " ".join((str(err) or type(err).__name__).split())
                self._failure = StoreError(f"{self.path}: cannot renew the lock ({reason})")
                return

    def check(self) -> None:
        """Raise the failure of the lock's renewal, if one failed (the job must stop: another
        job may take the lapsed lease over).

        Raises:
            StoreError: the lock could not be renewed (the message names it and why).
        """
        if self._failure is not None:
            raise StoreError(
                f"{self._failure}; the lock could not be renewed, so the job stopped "
                "(rerun the same command to resume)"
            )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):  # a store gone: the lease lapses by itself
            held = None if self._failure is not None else self._read()
            if held is not None and held.get("token") == self._token:
                delete(self.path, self._options)
        if kind is None:
            self.check()


def job_lock(root: str | os.PathLike[str], options: StorageOptions | None = None) -> Any:
    """The lock for a job writing under ``root``: :class:`JobLock` for a local folder,
    :class:`StoreLock` for a URL."""
    text = os.fspath(root)
    return StoreLock(text, options) if is_url(text) else JobLock(Path(text))
