"""What a dataset job reads and writes: folders, list files and WebDataset shards.

A job's SRC is one of

- a folder: every regular file under it (recursively, hidden names skipped) is an item. An
  image (its suffix one of :data:`IMAGE_EXTENSIONS`) is written to ``DST/<the same relative
  path>`` with the suffix ``.png``; any other file (captions ``.txt``, ``.json`` sidecars, ...)
  is copied unchanged to ``DST/<the same relative path>``. SRC's own ``colorquant-manifest.jsonl``
  and ``colorquant-errors.jsonl`` (SRC is an earlier job's DST) are a job's records, not data:
  not items;
- a list file: one path a line (blank lines and ``#`` comments skipped), relative to the
  list's folder; written under DST at the path relative to that folder (an absolute path outside
  it is mirrored whole, ``/data/a.jpg`` -> ``DST/data/a.png``), images converted and other files
  copied as in a folder. A file named twice (``../imgs/a.png`` and its absolute path) is done
  once; the repeats are counted (:attr:`Plan.repeated`). A list whose every line ends in
  ``.tar`` is a list of shards;
- WebDataset shards: a ``.tar`` file or a pattern ``data-{000000..000099}.tar`` (brace ranges and
  ``{a,b}`` lists), written to the same names in DST (a folder) or to a DST pattern of as many
  names.

WebDataset conventions (no ``webdataset`` package needed): a sample is the run of consecutive
members whose names share the key, the name up to the first dot of its last path component; the
rest is the member's field (``cls``, ``json``, ``seg.png``). A member is an image when the last
dot-part of its name is one of :data:`IMAGE_EXTENSIONS`.

Output names of images (:func:`assign_outputs`): ``x.jpg`` writes ``x.png``. When two images of
one folder would write one name (``a.png`` and ``a.jpg``), the one already named so (``a.png``)
keeps it and every other keeps its suffix in its name (``a.jpg`` -> ``a.jpg.png``); a name still
taken (by another file, or by an output that an earlier run of the job wrote) gets a number:
``a.jpg.2.png``, ``a.jpg.3.png``, ... The rule depends only on the file names and on what the
manifest records as written, so reruns and resumes give every file the same output.
"""

from __future__ import annotations

import io
import itertools
import os
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from .._checks import InputError
from .plan import (
    IMAGE_EXTENSIONS,
    FileItem,
    Plan,
    ShardItem,
    assign_outputs,
    is_image_name,
)
from .storage import (
    StorageOptions,
    is_url,
    join,
    kind_of,
    normalize,
    open_read,
    parent,
    scheme,
    walk_files,
)

__all__ = [
    "ERRORS_NAME",
    "IMAGE_EXTENSIONS",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "FileItem",
    "Plan",
    "ShardItem",
    "assign_outputs",
    "expand_braces",
    "image_field",
    "is_image_name",
    "iter_samples",
    "plan_job",
    "sample_key",
]

MANIFEST_NAME = "colorquant-manifest.jsonl"
ERRORS_NAME = "colorquant-errors.jsonl"
#: The lock file of a running job, in DST (hidden: a folder job skips hidden names).
LOCK_NAME = ".colorquant.lock"
_SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


def expand_braces(pattern: str) -> list[str]:
    """``"d-{000..002}.tar"`` -> ``["d-000.tar", "d-001.tar", "d-002.tar"]``, in order.

    A brace holds a range ``a..b`` of integers (zero-padded to the width of ``a`` when ``a``
    starts with 0 or both ends have the same width; descending when ``a > b``) or a
    comma-separated list ``{x,y}``. Several braces give every combination, the last varying
    fastest. A pattern without braces is itself.

    Raises:
        InputError: an empty brace or an unclosed one; the message quotes the pattern.

    Example:
        >>> expand_braces("s{8..10}-{a,b}")
        ['s8-a', 's8-b', 's9-a', 's9-b', 's10-a', 's10-b']
    """
    parts: list[list[str]] = []
    last = 0
    for match in _BRACE.finditer(pattern):
        parts.append([pattern[last : match.start()]])
        body = match.group(1)
        span = _RANGE.match(body)
        if span:
            a, b = span.group(1), span.group(2)
            start, stop = int(a), int(b)
            step = 1 if stop >= start else -1
            pad = len(a) if a.lstrip("-").startswith("0") or len(a) == len(b) else 0
            parts.append([str(v).zfill(pad) for v in range(start, stop + step, step)])
        elif body:
            parts.append(body.split(","))
        else:
            raise InputError(f"pattern {pattern!r}: empty braces {{}}")
        last = match.end()
    parts.append([pattern[last:]])
    if "{" in pattern[last:] or "}" in pattern[last:]:
        raise InputError(f"pattern {pattern!r}: unmatched brace")
    return ["".join(p) for p in itertools.product(*parts)]


def sample_key(name: str) -> tuple[str, str]:
    """A member name's WebDataset key and field: ``"a/b.seg.png"`` -> ``("a/b", "seg.png")``."""
    path = PurePosixPath(name)
    stem, dot, field = path.name.partition(".")
    parent = str(path.parent)
    key = stem if parent == "." else f"{parent}/{stem}"
    return key, field if dot else ""


def image_field(field: str) -> bool:
    """Whether a member's field (``"jpg"``, ``"seg.png"``) names an image."""
    return field.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS


def _is_shard_name(text: str) -> bool:
    return text.lower().endswith(_SHARD_SUFFIXES)


def _inside(inner: str, outer: str) -> bool:
    """Whether the location ``inner`` is ``outer`` or under it (URLs: same protocol)."""
    if is_url(inner) != is_url(outer):
        return False
    if not is_url(inner):
        a, b = Path(inner).resolve(), Path(outer).resolve()
        return a == b or b in a.parents
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def _hidden_or_record(relative: str) -> bool:
    """A hidden name anywhere in the path, or a job's records at the top (SRC was a DST)."""
    parts = relative.split("/")
    return any(p.startswith(".") for p in parts) or relative in (MANIFEST_NAME, ERRORS_NAME)


def _walk(root: str, options: StorageOptions | None) -> Iterator[tuple[str, str]]:
    """Every regular, non-hidden file under ``root``: (relative posix name, location), streamed
    in sorted order (a local folder: each folder's files, then its subfolders; a URL: the
    names sorted whole); not the records of a job whose DST ``root`` was."""
    if is_url(root):
        for name in walk_files(root, options):
            if not _hidden_or_record(name):
                yield name, join(root, name)
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or (
                folder == str(root) and name in (MANIFEST_NAME, ERRORS_NAME)
            ):
                continue
            path = Path(folder) / name
            if path.is_file():
                yield path.relative_to(root).as_posix(), str(path)


def _binary_list(list_file: str) -> InputError:
    return InputError(
        f"SRC {str(list_file)!r}: a binary file, not a list of paths (a folder, a text file "
        "of paths or a .tar shard; one image: colorquant quantize)"
    )


def _list_entries(list_file: str, options: StorageOptions | None) -> Iterator[str]:
    """The paths a list file names, read line by line (blank lines and comments skipped)."""
    try:
        with open_read(list_file, options) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline=None)
            for chunk in text:
                if "\x00" in chunk:
                    raise _binary_list(list_file)
                for line in chunk.splitlines():
                    line = line.strip()
                    if line and not line.startswith("#"):
                        yield line
    except UnicodeDecodeError:
        raise _binary_list(list_file) from None
    except OSError as err:
        raise InputError(f"{list_file}: cannot read the list file: {err.strerror or err}") from None


class _Folders:
    """Resolved folders, each resolved once: a million-line list names few folders."""

    def __init__(self) -> None:
        self.cache: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        """``path`` with its folder's links resolved (the file's own name kept)."""
        folder, name = os.path.split(os.path.normpath(path))
        found = self.cache.get(folder)
        if found is None:
            found = self.cache[folder] = str(Path(folder).resolve())
        return _child(found, name)


def _child(folder: str, name: str) -> str:
    """``os.path.join(folder, name)`` for a name without separators, as a string: a million
    paths are planned at once."""
    if not name or os.sep != "/":
        return os.path.join(folder, name)
    return f"{folder.rstrip('/')}/{name}"


def _entries(base: str, resolve: _Folders) -> Callable[[str], tuple[str, str]]:
    """:func:`_entry` of the list folder ``base``, with what every line shares computed once."""
    if is_url(base):
        return lambda line: _entry(base, line, resolve)
    prefix = base.rstrip(os.sep) + os.sep

    def entry(line: str) -> tuple[str, str]:
        if "://" in line:  # a URL, or a file:// path
            return _entry(base, line, resolve)
        location = resolve(os.path.join(base, line))
        if location.startswith(prefix):
            return location[len(prefix) :].replace(os.sep, "/"), location
        return Path(location).relative_to("/").as_posix(), location

    return entry


def _entry(base: str, entry: str, resolve: _Folders) -> tuple[str, str]:
    """A list line's (name under DST, location): relative to the list's folder ``base``, an
    absolute path or URL elsewhere mirrored whole (``/data/a.jpg`` -> ``data/a.jpg``)."""
    if is_url(entry):
        location = normalize(entry)
    elif is_url(base):
        head, tail = base.split("://", 1)
        location = f"{head}://{posixpath.normpath(posixpath.join(tail, entry))}"
    else:
        location = resolve(os.path.join(base, normalize(entry) if scheme(entry) else entry))
    sep = "/" if is_url(base) else os.sep
    prefix = base.rstrip(sep) + sep
    if location.startswith(prefix):
        return location[len(prefix) :].replace(os.sep, "/"), location
    if is_url(location):
        return location.split("://", 1)[1].lstrip("/"), location
    return Path(location).relative_to("/").as_posix(), location


def _exists(location: str, options: StorageOptions | None) -> bool:
    return kind_of(location, options) is not None if is_url(location) else Path(location).exists()


def _is_dir(location: str, options: StorageOptions | None) -> bool:
    if is_url(location):
        return kind_of(location, options) == "directory"
    return Path(location).is_dir()


def _common_folder(paths: list[str]) -> str:
    parents = [parent(p) for p in paths]
    if not is_url(paths[0]):
        return os.path.commonpath([str(Path(p).resolve()) for p in parents])
    head = paths[0].split("://", 1)[0]
    return f"{head}://" + posixpath.commonpath([p.split("://", 1)[1] for p in parents])


def _shard_plan(sources: list[str], dst: str, given: str, options: StorageOptions | None) -> Plan:
    if "{" in dst:
        paths = [normalize(t) for t in expand_braces(dst)]
        if len(paths) != len(sources):
            raise InputError(
                f"DST pattern {dst!r} names {len(paths)} shards, SRC {given!r} {len(sources)}"
            )
    elif _is_shard_name(dst) and not _is_dir(dst, options):
        if len(sources) != 1:
            raise InputError(
                f"DST {dst!r} is one shard, SRC {given!r} names {len(sources)}: give a folder "
                "or a pattern"
            )
        paths = [normalize(dst)]
    else:
        names = [posixpath.basename(s) if is_url(s) else Path(s).name for s in sources]
        if len(set(names)) != len(names):
            raise InputError(
                f"SRC {given!r} holds two shards of one name: give DST as a pattern of as many "
                "names"
            )
        paths = [join(normalize(dst), n) for n in names]
    if len({is_url(p) for p in paths}) > 1 or (
        is_url(paths[0]) and len({scheme(p) for p in paths}) > 1
    ):
        raise InputError(f"DST {dst!r}: the shards must all go to one file system")
    resolve = _Folders()
    inputs = {s if is_url(s) else resolve(s) for s in sources}
    for path in paths:
        if (path if is_url(path) else resolve(path)) in inputs:
            raise InputError(f"{path}: is an input shard; an input is never overwritten")
    root = _common_folder(paths)
    items = [ShardItem(_base_name(s), s, p) for s, p in zip(sources, paths, strict=True)]
    if len({i.name for i in items}) != len(items):
        items = [ShardItem(i.src, i.src, i.dst) for i in items]  # full paths as names
    return Plan.of_shards(normalize(given), root, items)


def _base_name(location: str) -> str:
    return posixpath.basename(location) if is_url(location) else Path(location).name


def plan_job(src: str, dst: str, options: StorageOptions | None = None) -> Plan:
    """Read what SRC holds and where each item goes under DST.

    Local paths are made absolute (relative to this process's folder) so that every worker,
    wherever it runs, reads and writes the same files; URLs are kept (:mod:`.storage`). A
    folder's or a list's files are streamed into the plan's database (:mod:`.plan`): the plan
    is open until closed (a context manager), and the caller closes it.

    Raises:
        InputError: SRC does not exist or is none of the kinds; DST overlaps SRC (an input could
            be overwritten); a DST pattern of another length; a list file that names nothing.
    """
    if "{" in src or _is_shard_name(src):
        sources = [normalize(s) for s in expand_braces(src)]
        if not any(_exists(s, options) for s in sources):
            raise InputError(f"SRC {src!r}: no such shard")
        return _shard_plan(sources, dst, src, options)
    source, root = normalize(src), normalize(dst)
    if _is_dir(source, options):
        if _inside(root, source) or _inside(source, root):
            raise InputError(
                f"DST {dst!r} and SRC {src!r} overlap: an output could overwrite an input; "
                "choose a DST outside SRC"
            )
        # Recorded resolved; walked as given (absolute): a worker resolves links itself.
        resolved = source if is_url(source) else str(Path(source).resolve())
        return Plan.of_files("folder", resolved, root, _walk(source, options))
    if _exists(source, options):
        return _list_plan(source, root, src, dst, options)
    raise InputError(
        f"SRC {src!r}: no such folder, list file or shard (a folder, a text file of paths, "
        "a .tar or a pattern like data-{000000..000099}.tar)"
    )


def _list_plan(source: str, root: str, src: str, dst: str, options: StorageOptions | None) -> Plan:
    """A list file's plan: its lines streamed into the plan (a list of shards: a shard plan)."""
    resolve = _Folders()
    base = parent(source) if is_url(source) else str(Path(source).resolve().parent)
    shards: list[str] | None = []  # the lines while every one names a shard
    lines = 0

    entry = _entries(base, resolve)

    def pairs() -> Iterator[tuple[str, str]]:
        nonlocal shards, lines
        for line in _list_entries(source, options):
            lines += 1
            pair = entry(line)
            if shards is not None:
                if _is_shard_name(line):
                    shards.append(pair[1])
                else:
                    shards = None
            yield pair

    listed = source if is_url(source) else str(Path(source).resolve())
    plan = Plan("list", listed, root)
    targets = _Targets(root)
    try:
        plan.add_files(pairs(), unique=True, target=targets)
        if not lines:
            raise InputError(f"{source}: the list file names no images or shards")
        if shards is not None:
            plan.close()
            return _shard_plan(shards, dst, src, options)
        assign_outputs(plan)
        written = plan.first_input_written(targets, listed)  # no output may be an input
        if written is not None:
            raise InputError(f"{written}: is an input; an input is never overwritten")
    except BaseException:
        plan.close()
        raise
    return plan


class _Targets:
    """Where an output name (relative, posix) is written, with its folder's links resolved
    (each folder once) as a list's sources are: what :meth:`Plan.first_input_written` compares."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.url = is_url(root)
        self.cache: dict[str, str] = {}

    def __call__(self, out: str) -> str:
        if self.url:
            return join(self.root, out)
        folder, _, name = out.rpartition("/")
        found = self.cache.get(folder)
        if found is None:
            path = os.path.normpath(join(self.root, out))
            found = self.cache[folder] = str(Path(os.path.dirname(path)).resolve())
        return _child(found, name)


@dataclass
class Member:
    """One tar member with its bytes (``None`` for directories, links and other non-files)."""

    info: tarfile.TarInfo
    data: bytes | None


def iter_samples(
    fileobj: IO[bytes] | None = None, path: str | None = None
) -> Iterator[list[Member]]:
    """The samples of a WebDataset shard in order, each the list of its members, streamed.

    Only one sample is held at a time. Raises :class:`tarfile.TarError` or :class:`OSError` on
    a shard that cannot be read (truncated, not a tar).
    """
    with tarfile.open(name=path, fileobj=fileobj, mode="r|*") as tar:
        current: list[Member] = []
        current_key: str | None = None
        for info in tar:
            data = None
            if info.isfile():
                handle = tar.extractfile(info)
                data = handle.read() if handle is not None else b""
            key = sample_key(info.name)[0]
            if current and key != current_key:
                yield current
                current = []
            current_key = key
            current.append(Member(info, data))
        if current:
            yield current
