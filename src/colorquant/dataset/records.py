"""The manifest of a job whose DST is an object store: records without appending.

An object store has no append and no rename: an object is put whole or not at all. So the
record of finished items is a set of objects, each written once:

- ``DST/colorquant-manifest.jsonl``: the header (the job, the shared palette) and, after a run
  that ended (even by an error or Ctrl-C), every record of all runs so far;
- ``DST/.colorquant-records/<run>-<number>.jsonl``: the records of a run still going (or killed),
  put every :data:`FLUSH_RECORDS` records or :data:`FLUSH_SECONDS` seconds, only after the
  outputs they name were put. When a run ends they are folded into the manifest (one put of the
  whole, built in a local temporary file), then removed.

A rerun reads the manifest and every record object (a record read twice counts once). A kill
loses at most the records not yet put: their items are done again (the same outputs, put over
the old ones). ``DST/colorquant-errors.jsonl`` is put whole when it changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from typing import IO, Any

from .._checks import InputError
from ..io import WriteError
from .manifest import VERSION, Manifest
from .plan import Plan
from .sources import ERRORS_NAME, MANIFEST_NAME
from .storage import (
    StorageOptions,
    StoreError,
    delete,
    is_url,
    join,
    kind_of,
    list_files,
    open_read,
    put_file,
    read_bytes,
    write_bytes,
)

__all__ = ["FLUSH_RECORDS", "FLUSH_SECONDS", "RECORDS_FOLDER", "StoreManifest", "open_manifest"]

RECORDS_FOLDER = ".colorquant-records"
FLUSH_RECORDS = 32
FLUSH_SECONDS = 2.0


def _store_error(where: str, err: Exception) -> WriteError:
    if isinstance(err, StoreError):  # names the object and the reason already
        return err
    return WriteError(f"{where}: cannot write there: {err}")


class StoreManifest(Manifest):
    """:class:`~.manifest.Manifest`'s interface for a DST URL (``root``), append-free.

    Raises:
        SettingsMismatchError, InputError, WriteError: as :class:`~.manifest.Manifest`.
    """

    def __init__(
        self,
        root: str,
        job: dict[str, Any],
        *,
        restart: bool = False,
        options: StorageOptions | None = None,
        plan: Plan | None = None,
    ) -> None:
        self.root = root  # type: ignore[assignment]
        self.path = join(root, MANIFEST_NAME)  # type: ignore[assignment]
        self.errors_path = join(root, ERRORS_NAME)  # type: ignore[assignment]
        self._parts = join(root, RECORDS_FOLDER)
        self._options = dict(options or {})
        self._init_state(job, plan)
        self._pending: list[str] = []
        self._flushed = time.monotonic()
        self._errors_dirty = False
        self._run = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        self._sequence = 0
        try:
            if kind_of(root, self._options) == "file":
                raise InputError(f"DST {root!r}: exists and is not a folder")
            if restart:
                for name in (MANIFEST_NAME, ERRORS_NAME):
                    delete(join(root, name), self._options)
                for part in self._part_names():
                    delete(join(self._parts, part), self._options)
            if self.exists:
                self._load()
            elif (
                not restart
                and kind_of(root, self._options) == "directory"
                and any(
                    not n.split("/")[0].startswith(".") for n in list_files(root, self._options)
                )
            ):
                raise InputError(
                    f"DST {root!r}: not empty and holds no {MANIFEST_NAME} (not a colorquant "
                    "dataset output); choose a new or empty folder, or pass --restart to "
                    "write into it"
                )
        except (PermissionError, ConnectionError) as err:
            raise WriteError(f"{root}: cannot read there: {err}") from None
        # (a StoreError, the store out of reach, passes as it is: it names the object)

    def _part_names(self) -> list[str]:
        if kind_of(self._parts, self._options) != "directory":
            return []
        return [n for n in list_files(self._parts, self._options) if n.endswith(".jsonl")]

    def _load(self) -> None:
        """Read the manifest streamed, line by line, then the record objects."""
        try:
            with open_read(str(self.path), self._options) as fh:
                self._header(fh.readline().rstrip(b"\n"))
                self._replay(fh, str(self.path))
        except StoreError:
            raise
        except OSError as err:
            raise InputError(f"{self.path}: cannot read: {err}") from None
        for part in self._part_names():
            where = join(self._parts, part)
            try:
                data = read_bytes(where, self._options)
            except FileNotFoundError:  # folded into the manifest by a run ending meanwhile
                continue
            self._replay(data.split(b"\n"), where, first=1)

    def _note_output(self, item: str, output: str) -> None:
        prefix = str(self.root).rstrip("/") + "/"
        if output.startswith(prefix):
            self.written[output[len(prefix) :]] = item

    @property
    def exists(self) -> bool:
        return kind_of(str(self.path), self._options) == "file"

    def begin(self, palette: list[list[int]] | None) -> None:
        """Put the header (a new job) and the errors object."""
        try:
            if not self.exists:
                header = {"colorquant_manifest": VERSION, "job": self.job, "palette": palette}
                write_bytes(str(self.path), (json.dumps(header) + "\n").encode(), self._options)
                self.palette = palette
            self._put_errors()
        except OSError as err:
            raise _store_error(str(self.root), err) from None

    def _put_errors(self) -> None:
        text = "".join(json.dumps(e) + "\n" for e in self._errors)
        write_bytes(str(self.errors_path), text.encode(), self._options)
        self._errors_dirty = False

    def add(self, record: dict[str, Any]) -> None:
        """Count a record; put the pending ones when there are enough or they are old enough."""
        bad = self.totals.add(record)
        if record["status"] != "error":
            self.done.add(record["item"])
        if bad:
            self._errors += bad
            self._errors_dirty = True
        self._pending.append(json.dumps(record))
        if len(self._pending) >= FLUSH_RECORDS or time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Put the pending records as one new record object (and the errors, if changed)."""
        try:
            if self._pending:
                self._sequence += 1
                name = join(self._parts, f"{self._run}-{self._sequence:06d}.jsonl")
                write_bytes(name, ("\n".join(self._pending) + "\n").encode(), self._options)
                self._pending = []
            if self._errors_dirty:
                self._put_errors()
        except OSError as err:
            raise _store_error(str(self.root), err) from None
        self._flushed = time.monotonic()

    def errors(self) -> Any:
        """The bad items recorded so far (read back from the errors object)."""
        data = read_bytes(str(self.errors_path), self._options)
        for line in data.decode("utf-8").splitlines():
            yield json.loads(line)

    def close(self) -> None:
        """Put what is pending, then fold the record objects into the manifest."""
        self.flush()
        try:
            parts = self._part_names()
            if not parts:
                return
            with tempfile.NamedTemporaryFile(prefix=".colorquant-", suffix=".jsonl") as tmp:
                with open_read(str(self.path), self._options) as fh:  # streamed
                    shutil.copyfileobj(fh, tmp)
                if tmp.tell() and _last_byte(tmp) != b"\n":
                    tmp.write(b"\n")
                for part in parts:
                    data = read_bytes(join(self._parts, part), self._options)
                    tmp.write(data if data.endswith(b"\n") or not data else data + b"\n")
                tmp.flush()
                put_file(tmp.name, str(self.path), self._options)
        except OSError:  # the record objects stay, and are read as they are by the rerun
            return
        for part in parts:  # a kill here leaves records read twice: counted once
            with contextlib.suppress(OSError):
                delete(join(self._parts, part), self._options)


def _last_byte(fh: IO[bytes]) -> bytes:
    fh.seek(-1, os.SEEK_END)
    last = fh.read(1)
    fh.seek(0, os.SEEK_END)
    return last


def open_manifest(
    root: str,
    job: dict[str, Any],
    *,
    restart: bool = False,
    options: StorageOptions | None = None,
    plan: Plan | None = None,
) -> Manifest:
    """The manifest of the job writing under ``root``: a local folder's (appended, fsynced) or
    an object store's (:class:`StoreManifest`); with ``plan``, its finished items are kept in
    the plan's database."""
    if is_url(root):
        return StoreManifest(root, job, restart=restart, options=options, plan=plan)
    from pathlib import Path

    return Manifest(Path(os.fspath(root)), job, restart=restart, plan=plan)
