"""A job's plan on disk: every file, its source and its output, in a private SQLite database.

A list of a million files held as Python objects (each path, its output, the set of finished
items) took half a gigabyte of the driver's memory. The plan of a folder or a list therefore
lives in a SQLite file in a private temporary folder (``colorquant-plan-<host>-<pid>-*`` under
:func:`tempfile.gettempdir`, so ``TMPDIR`` moves it; never in DST, which may be an object store
or a folder that another reader watches). It is removed when the plan is closed, the job ends
(also by an error), or at the latest when the interpreter exits; the folder of a job that was
killed is removed by the next plan made on the machine. The driver holds only chunks of
:data:`CHUNK` rows at a time, and the names that collide.

A row is a file: ``seq`` (the order of the listing), ``name`` (its key in the manifest),
``src``, ``plain`` (the output an image wants, ``a/b.jpg`` -> ``a/b.png``; a copied file's own
name), ``copy`` and ``out`` (the output when it is not ``plain``: a name collision). The
manifest's finished items (``done``) and the outputs earlier runs wrote (``written``) are tables
of the same database, so resuming is a join, not a Python set.

A WebDataset shard set keeps its shards in a Python list (one item per shard: the driver never
opens a shard to count its members; each task reports what it found).
"""

from __future__ import annotations

import contextlib
import heapq
import os
import shutil
import socket
import sqlite3
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .storage import is_url, join, normalize

__all__ = [
    "CHUNK",
    "PLAN_PREFIX",
    "DoneItems",
    "FileItem",
    "Plan",
    "ShardItem",
    "WrittenOutputs",
    "assign_outputs",
    "is_image_name",
    "png_name",
]

#: Rows read from or written to the plan at a time.
CHUNK = 10_000
#: The name of a plan's temporary folder starts so.
PLAN_PREFIX = "colorquant-plan-"
#: Member and file suffixes (lower case, no dot) taken as images.
IMAGE_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif", "ppm", "pgm", "pbm", "pnm"}
)
_PARAMETERS = 500  # names per IN (...) query

Kind = Literal["folder", "list", "shards"]


def is_image_name(name: str) -> bool:
    """Whether a file name's suffix is one of :data:`IMAGE_EXTENSIONS` (``"a/b.JPG"``: yes)."""
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    return 0 < dot < len(base) - 1 and base[dot + 1 :].lower() in IMAGE_EXTENSIONS


def png_name(relative: str) -> str:
    """``a/b.jpg`` -> ``a/b.png`` (string work: a million names are planned at once)."""
    head, slash, base = relative.rpartition("/")
    dot = base.rfind(".")
    return f"{head}{slash}{base[:dot] if 0 < dot < len(base) - 1 else base}.png"


@dataclass(frozen=True, slots=True)
class FileItem:
    """One file: ``name`` (its key in the manifest), ``src`` and ``dst`` paths; ``copy``: not
    an image, copied unchanged."""

    name: str
    src: str
    dst: str
    copy: bool = False


@dataclass(frozen=True, slots=True)
class ShardItem:
    """One WebDataset shard: ``name`` (its key in the manifest), ``src`` and ``dst`` paths."""

    name: str
    src: str
    dst: str


_SCHEMA = """
CREATE TABLE files (
    seq INTEGER PRIMARY KEY, name TEXT NOT NULL, src TEXT NOT NULL, plain TEXT NOT NULL,
    copy INTEGER NOT NULL, out TEXT, target TEXT
);
CREATE TABLE done (item TEXT PRIMARY KEY);
CREATE TABLE written (out TEXT PRIMARY KEY, item TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX written_item ON written (item);
"""


def _close(db: sqlite3.Connection, folder: str) -> None:
    with contextlib.suppress(sqlite3.Error):
        db.close()
    shutil.rmtree(folder, ignore_errors=True)


def _own_prefix() -> str:
    """This machine's plan folders start so (then the process id, ``-``, random letters)."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
    return f"{PLAN_PREFIX}{host}-"


def _remove_stale(prefix: str) -> None:
    """Remove the plan folders that killed jobs of this machine left (their process is gone):
    a SIGKILL gives no job the chance to remove its own."""
    folder = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            pid = entry.name[len(prefix) :].split("-", 1)[0]
            if not entry.name.startswith(prefix) or not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:  # another user's live process
                continue


def _chunks(values: list[str], size: int = _PARAMETERS) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class DoneItems:
    """The manifest's finished items (their names), a table of the plan: ``in``, ``add``,
    ``len``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __contains__(self, item: object) -> bool:
        row = self._db.execute("SELECT 1 FROM done WHERE item = ?", (item,)).fetchone()
        return row is not None

    def add(self, item: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO done VALUES (?)", (item,))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM done").fetchone()[0])


class WrittenOutputs:
    """Output names (relative to DST, posix) that earlier runs wrote, with the item that wrote
    each, a table of the plan: ``outputs[name] = item``, ``len``, ``bool``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __setitem__(self, out: str, item: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO written VALUES (?, ?)", (out, item))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM written").fetchone()[0])

    def __bool__(self) -> bool:
        return self._db.execute("SELECT 1 FROM written LIMIT 1").fetchone() is not None


class Plan:
    """A job's items, where the manifest goes, and items refused before any work.

    Open a folder's or a list's plan with :meth:`of_files`, a shard set's with
    :meth:`of_shards`; close it (or use it as a context manager) to remove its database.

    Attributes:
        kind: ``"folder"``, ``"list"`` or ``"shards"``.
        source: SRC as given, resolved (recorded in the manifest).
        root: the folder (absolute) or URL that holds the manifest and the errors file.
        refused: ``(name, reason)`` of items refused before any work: recorded as errors
            like unreadable images.
        repeated: lines of a list file that name a file an earlier line named.
        renamed: images whose output is not their name with ``.png`` (a name collision).
        count: files or shards planned.
        done: the finished items (:class:`DoneItems`), filled by the manifest.
        written: outputs earlier runs wrote (:class:`WrittenOutputs`), filled by the manifest.
    """

    def __init__(
        self, kind: Kind, source: str, root: str, *, shards: list[ShardItem] | None = None
    ) -> None:
        self.kind: Kind = kind
        self.source = source
        self.root = root
        self.refused: list[tuple[str, str]] = []
        self.repeated = 0
        self.renamed = 0
        self.shards: list[ShardItem] = shards or []
        prefix = _own_prefix()
        _remove_stale(prefix)
        self.folder = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")
        try:
            self._db = sqlite3.connect(
                os.path.join(self.folder, "plan.sqlite"), isolation_level=None
            )
            # A private scratch file: no journal, no fsync, one connection.
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "locking_mode=EXCLUSIVE"):
                self._db.execute(f"PRAGMA {pragma}")
            self._db.executescript(_SCHEMA)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self._finalizer = weakref.finalize(self, _close, self._db, self.folder)
        self.done = DoneItems(self._db)
        self.written = WrittenOutputs(self._db)
        self.count = len(self.shards)

    @classmethod
    def of_shards(cls, source: str, root: str, shards: list[ShardItem]) -> Plan:
        """A shard set's plan: one item per shard."""
        return cls("shards", source, root, shards=shards)

    @classmethod
    def of_files(
        cls,
        kind: Kind,
        source: str,
        root: str,
        files: Iterable[tuple[str, str]],
        *,
        unique: bool = False,
    ) -> Plan:
        """A folder's or a list's plan of ``(relative name, source location)`` pairs, streamed
        into the database in order; outputs named by :func:`assign_outputs`.

        Args:
            unique: keep only the first pair of each source (a list naming a file twice);
                the others are counted in :attr:`repeated`.
        """
        plan = cls(kind, source, root)
        try:
            plan.add_files(files, unique=unique)
            assign_outputs(plan)
        except BaseException:
            plan.close()
            raise
        return plan

    def add_files(
        self,
        files: Iterable[tuple[str, str]],
        *,
        unique: bool = False,
        target: Callable[[str], str] | None = None,
    ) -> None:
        """Append ``(relative name, source)`` pairs in order (``unique``: see :meth:`of_files`).

        Args:
            target: the location an output name (relative, posix) is written to, resolved as
                sources are: kept for :meth:`first_input_written`.
        """
        db = self._db
        if unique:
            db.execute("CREATE UNIQUE INDEX IF NOT EXISTS files_src ON files (src)")
        verb = "INSERT OR IGNORE" if unique else "INSERT"
        seen, before = 0, self.count

        def rows() -> Iterator[tuple[str, str, str, int, str | None]]:
            nonlocal seen
            for name, location in files:
                seen += 1
                copy = not is_image_name(name)
                plain = name if copy else png_name(name)
                yield name, location, plain, copy, None if target is None else target(plain)

        db.execute("BEGIN")
        try:
            db.executemany(
                f"{verb} INTO files (name, src, plain, copy, target) VALUES (?, ?, ?, ?, ?)",
                rows(),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite ends the transaction itself on some errors (disk full)
                db.execute("ROLLBACK")
            raise
        db.execute("CREATE INDEX IF NOT EXISTS files_plain ON files (plain) WHERE copy = 0")
        self.count = int(db.execute("SELECT count(*) FROM files").fetchone()[0])
        self.repeated += seen - (self.count - before)

    # -- reading ----------------------------------------------------------------------------

    def _joiner(self) -> Callable[[str], str]:
        """The function of an output name (relative, posix) to its path under the root."""
        root = normalize(os.fspath(self.root))
        if os.sep != "/" and not is_url(root):
            return lambda out: join(root, out)
        prefix = root.rstrip("/") + "/"
        # A clean relative name (every one planned) joins as a string; others as join() does.
        return lambda out: (
            prefix + out if "//" not in out and not out.startswith("/") else join(root, out)
        )

    def iter_items(
        self, *, todo: bool = False, images: bool = False, chunk: int = CHUNK
    ) -> Iterator[Any]:
        """The items in order, read :data:`CHUNK` rows at a time (no cursor stays open between
        chunks, so the manifest may record finished items meanwhile).

        Args:
            todo: only the items not :attr:`done` when the iteration starts (what the run
                finishes meanwhile does not change which items it yields).
            images: only the images (not the files copied); a shard set's shards either way.
        """
        # Rows of `done` are only added: those up to this rowid are the ones done before.
        before = self._db.execute("SELECT coalesce(max(rowid), 0) FROM done").fetchone()[0]
        if self.kind == "shards":
            done = {
                r[0] for r in self._db.execute("SELECT item FROM done WHERE rowid <= ?", (before,))
            }  # as many as the shards at most
            for shard in self.shards:
                if not todo or shard.name not in done:
                    yield shard
            return
        joined = self._joiner()
        where = " AND copy = 0" if images else ""
        if todo:
            where += (
                " AND NOT EXISTS (SELECT 1 FROM done WHERE done.item = files.name "
                "AND done.rowid <= :before)"
            )
        query = (
            "SELECT seq, name, src, plain, copy, out FROM files "
            f"WHERE seq > :last{where} ORDER BY seq LIMIT :chunk"
        )
        last = 0
        while True:
            values = {"last": last, "chunk": chunk, "before": before}
            rows = self._db.execute(query, values).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            for _, name, src, plain, copy, out in rows:
                yield FileItem(name, src, joined(out or plain), bool(copy))

    def count_todo_images(self) -> int:
        """Images not done yet (0 for a shard set: its members are counted by the tasks)."""
        if self.kind == "shards":
            return 0
        row = self._db.execute(
            "SELECT count(*) FROM files WHERE copy = 0 AND NOT EXISTS "
            "(SELECT 1 FROM done WHERE done.item = files.name)"
        ).fetchone()
        return int(row[0])

    def sample_images(self, sample: int) -> Iterator[FileItem]:
        """``sample`` images evenly spaced over the plan's images in order (number
        ``n * i // sample`` of ``n``), or all of them when there are no more, streamed."""
        n = int(self._db.execute("SELECT count(*) FROM files WHERE copy = 0").fetchone()[0])
        if n <= sample:
            yield from self.iter_items(images=True)
            return
        picks = (n * i // sample for i in range(sample))
        wanted = next(picks)
        for rank, item in enumerate(self.iter_items(images=True)):
            if rank == wanted:
                yield item
                wanted = next(picks, -1)
                if wanted < 0:
                    return

    def first_source(self) -> str | None:
        """The first item's source (``None`` for an empty plan)."""
        for item in self.iter_items(chunk=1):
            return str(item.src)
        return None

    def first_input_written(self, target: Callable[[str], str], also: str) -> str | None:
        """The output path of the first file whose output would be one of the plan's sources,
        or ``also`` (a list file), or ``None``: ``target`` as given to :meth:`add_files`. A
        join over the sources' index, except for the few renamed outputs."""
        found = self._db.execute(
            "SELECT seq, plain FROM files WHERE out IS NULL AND (target = ? OR target IN "
            "(SELECT src FROM files)) ORDER BY seq LIMIT 1",
            (also,),
        ).fetchone()
        first: tuple[int, str] | None = (found[0], found[1]) if found else None
        renamed = self._db.execute("SELECT seq, out FROM files WHERE out IS NOT NULL ORDER BY seq")
        for seq, out in renamed:
            if first is not None and seq > first[0]:
                break
            place = target(out)
            is_source = self._db.execute("SELECT 1 FROM files WHERE src = ?", (place,))
            if place == also or is_source.fetchone():
                first = (seq, out)
                break
        return None if first is None else self._joiner()(first[1])

    # -- the end ----------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the plan's database and its folder (again: nothing)."""
        self._finalizer()

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        """The plan's SQLite connection (for :func:`assign_outputs`)."""
        return self._db


# -- output names -------------------------------------------------------------------------------


def _in_rows(db: sqlite3.Connection, query: str, values: list[str]) -> list[tuple[Any, ...]]:
    """``query`` (with one ``{marks}``) over ``values`` in chunks of IN parameters."""
    rows: list[tuple[Any, ...]] = []
    for part in _chunks(values):
        rows += db.execute(query.format(marks=",".join("?" * len(part))), part).fetchall()
    return rows


def assign_outputs(plan: Plan, taken: Mapping[str, str] | WrittenOutputs | None = None) -> Plan:
    """Name the outputs of the plan's images by the rule of :mod:`.sources` (in place; the
    plan is returned); a shard set comes back as it is.

    Only the images whose name collides reach Python: one wanting an output that another image
    also wants or that an earlier run wrote for another item, or an item that wrote an output
    other than its plain one. Every other image writes its plain name, which no collision's
    fallback may take (``a.jpg`` falls back to ``a.jpg.2.png`` when a file ``a.jpg`` exists
    beside ``a.jpg.png``, wherever they stand in the listing).

    Args:
        plan: a folder or list plan.
        taken: output names (relative to DST, posix) that an earlier run of the job wrote, with
            the item that wrote each: those items keep them, and no other gets them. The plan's
            own :attr:`Plan.written` (the manifest's), or a mapping copied into it.
    """
    if plan.kind == "shards":
        return plan
    db = plan.db
    if taken is not None and not isinstance(taken, WrittenOutputs):
        db.execute("DELETE FROM written")
        for out, item in taken.items():
            plan.written[out] = item
    db.execute("UPDATE files SET out = NULL WHERE out IS NOT NULL")
    # Items that wrote another name than their plain one keep it.
    special: dict[int, str] = {
        seq: out
        for seq, out in db.execute(
            "SELECT f.seq, w.out FROM written w JOIN files f ON f.name = w.item "
            "WHERE f.copy = 0 AND w.out != f.plain"
        )
    }
    # Names that collide: wanted by two images, or written by another item.
    groups: dict[str, tuple[int, int]] = {  # plain -> (first seq wanting it, wanters)
        plain: (first, n)
        for plain, first, n in db.execute(
            "SELECT plain, min(seq), count(*) FROM files WHERE copy = 0 "
            "GROUP BY plain HAVING count(*) > 1"
        )
    }
    for plain, seq in db.execute(
        "SELECT f.plain, f.seq FROM written w JOIN files f ON f.plain = w.out "
        "WHERE f.copy = 0 AND f.name != w.item"
    ):
        groups.setdefault(plain, (seq, 1))
    plains = list(groups)
    rows = _in_rows(
        db,
        "SELECT seq, name, plain FROM files WHERE copy = 0 AND plain IN ({marks}) "
        "AND NOT EXISTS (SELECT 1 FROM written w WHERE w.item = files.name)",
        plains,
    )
    # The order of the rule: by each name's first wanter, then in the listing's order.
    queue = [(groups[plain][0], seq, name, plain) for seq, name, plain in rows]
    heapq.heapify(queue)
    del rows
    claimed: set[str] = set()
    last = float("inf")

    def is_claimed(out: str, position: float) -> bool:
        if out in claimed:
            return True
        if db.execute("SELECT 1 FROM written WHERE out = ?", (out,)).fetchone():
            return True
        if out in groups:  # a colliding name: claimed in this run, or not yet
            return False
        # A name no other wants: its image's (not one that keeps what it wrote) once that
        # image's turn came; before it, it is free, and that image then has to number it.
        owner = db.execute(
            "SELECT seq, name FROM files WHERE copy = 0 AND plain = ? AND NOT EXISTS "
            "(SELECT 1 FROM written w WHERE w.item = files.name)",
            (out,),
        ).fetchone()
        if owner is None:
            return False
        if owner[0] < position:
            return True
        groups[out] = (owner[0], 1)
        heapq.heappush(queue, (owner[0], owner[0], owner[1], out))
        return False

    def claim(out: str, position: float) -> str:
        base, number = out[: -len(".png")], 2
        while is_claimed(out, position):
            out = f"{base}.{number}.png"
            number += 1
        claimed.add(out)
        return out

    later: list[tuple[int, str]] = []
    while queue:
        first, seq, name, plain = heapq.heappop(queue)
        if groups[plain][1] == 1 or name == plain:  # wants no change
            final = claim(plain, first)
            if final != plain:
                special[seq] = final
        else:
            later.append((seq, name))
    for seq, name in later:
        special[seq] = claim(f"{name}.png", last)
    db.execute("BEGIN")
    for seq, out in special.items():
        db.execute("UPDATE files SET out = ? WHERE seq = ? AND plain != ?", (out, seq, out))
    db.execute("COMMIT")
    plan.renamed = int(db.execute("SELECT count(*) FROM files WHERE out IS NOT NULL").fetchone()[0])
    return plan
