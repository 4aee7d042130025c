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

import dataclasses
import itertools
import os
import posixpath
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from .._checks import InputError
from .storage import (
    StorageOptions,
    is_url,
    join,
    kind_of,
    list_files,
    normalize,
    open_read,
    parent,
    read_bytes,
    scheme,
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

#: Member and file suffixes (lower case, no dot) taken as images in shards.
IMAGE_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif", "ppm", "pgm", "pbm", "pnm"}
)
MANIFEST_NAME = "colorquant-manifest.jsonl"
ERRORS_NAME = "colorquant-errors.jsonl"
#: The lock file of a running job, in DST (hidden: a folder job skips hidden names).
LOCK_NAME = ".colorquant.lock"
_SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")

Kind = Literal["folder", "list", "shards"]


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


def is_image_name(name: str) -> bool:
    """Whether a file name's suffix is one of :data:`IMAGE_EXTENSIONS` (``"a/b.JPG"``: yes)."""
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    return 0 < dot < len(base) - 1 and base[dot + 1 :].lower() in IMAGE_EXTENSIONS


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


@dataclass(frozen=True)
class Plan:
    """A job's items, where the manifest goes, and items refused before any work.

    Attributes:
        kind: ``"folder"``, ``"list"`` or ``"shards"``.
        source: SRC as given, resolved (recorded in the manifest).
        root: the folder (absolute) or URL that holds the manifest and the errors file.
        items: the work, in a fixed order.
        refused: ``(name, reason)`` of items refused before any work: recorded as errors
            like unreadable images.
        files: a folder's or list's ``(relative name, source path)`` pairs, what
            :func:`assign_outputs` names the outputs from.
        repeated: lines of a list file that name a file an earlier line named.
        renamed: images whose output is not their name with ``.png`` (a name collision).
    """

    kind: Kind
    source: str
    root: str
    items: list[FileItem] | list[ShardItem]
    refused: list[tuple[str, str]]
    files: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    repeated: int = 0
    renamed: int = 0


def _is_shard_name(text: str) -> bool:
    return text.lower().endswith(_SHARD_SUFFIXES)


def _png_name(relative: str) -> str:
    """``a/b.jpg`` -> ``a/b.png`` (string work: a million names are planned at once)."""
    head, slash, base = relative.rpartition("/")
    dot = base.rfind(".")
    return f"{head}{slash}{base[:dot] if 0 < dot < len(base) - 1 else base}.png"


def _claim(out: str, claimed: set[str]) -> str:
    """``out``, or the first of ``<base>.2.png``, ``<base>.3.png``, ... not yet claimed."""
    base, number = out[: -len(".png")], 2
    while out in claimed:
        out = f"{base}.{number}.png"
        number += 1
    claimed.add(out)
    return out


def _output_names(images: list[str], taken: dict[str, str]) -> dict[str, str]:
    """The images whose output is not their plain name (``a.jpg`` -> ``a.png``), with their
    outputs (relative, posix), by the rule of the module docstring; every other image writes
    its plain name. Only names that collide are held twice: a million images are planned in
    one pass.

    ``taken``: output name -> the item that wrote it in an earlier run (it keeps it).
    """
    wanted: dict[str, str | list[str]] = {}  # output -> the image, or the images, wanting it
    for name in images:
        out = _png_name(name)
        have = wanted.setdefault(out, name)
        if have is not name:
            if isinstance(have, list):
                have.append(name)
            else:
                wanted[out] = [have, name]
    kept = {item: out for out, item in taken.items()}  # an item keeps what it wrote
    claimed = set(taken)
    special = {name: out for name, out in kept.items() if out != _png_name(name)}
    # First the names that want no change (a single claim, or a PNG keeping its own name),
    # then the others, so that a file never loses its natural name to another's fallback.
    later: list[str] = []
    for out, names in wanted.items():
        for name in [names] if isinstance(names, str) else names:
            if name in kept:
                continue
            if isinstance(names, str) or name == out:
                final = _claim(out, claimed)
                if final != out:
                    special[name] = final
            else:
                later.append(name)
    for name in later:
        special[name] = _claim(f"{name}.png", claimed)
    return special


def assign_outputs(plan: Plan, taken: dict[str, str] | None = None) -> Plan:
    """The plan with its files' output paths, images named by the rule of the module docstring.

    Args:
        plan: a folder or list plan (a shard plan comes back as it is).
        taken: output names (relative to DST, posix) that an earlier run of the job wrote,
            with the item that wrote each: those items keep them, and no other gets them.
    """
    if plan.kind == "shards":
        return plan
    images = [name for name, _ in plan.files if is_image_name(name)]
    special = _output_names(images, taken or {})
    del images
    root = normalize(os.fspath(plan.root))
    items: list[FileItem] = []
    renamed = 0
    for name, source in plan.files:
        if is_image_name(name):
            plain = _png_name(name)
            out = special.get(name, plain)
            renamed += out != plain
            items.append(FileItem(name, source, join(root, out)))
        else:
            items.append(FileItem(name, source, join(root, name), copy=True))
    return dataclasses.replace(plan, items=items, renamed=renamed)


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


def _walk(root: str, options: StorageOptions | None) -> list[tuple[str, str]]:
    """Every regular, non-hidden file under ``root``: (relative posix name, location), sorted;
    not the records of a job whose DST ``root`` was."""
    if is_url(root):
        names = list_files(root, options)
        return [(n, join(root, n)) for n in names if not _hidden_or_record(n)]
    found: list[tuple[str, str]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or (
                folder == str(root) and name in (MANIFEST_NAME, ERRORS_NAME)
            ):
                continue
            path = Path(folder) / name
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), str(path)))
    return found


def _list_entries(list_file: str, options: StorageOptions | None) -> list[str]:
    try:
        data = read_bytes(list_file, options) if is_url(list_file) else Path(list_file).read_bytes()
    except OSError as err:
        raise InputError(f"{list_file}: cannot read the list file: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise InputError(
            f"SRC {str(list_file)!r}: a binary file, not a list of paths (a folder, a text file "
            "of paths or a .tar shard; one image: colorquant quantize)"
        )
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.append(line)
    if not entries:
        raise InputError(f"{list_file}: the list file names no images or shards")
    return entries


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
        return os.path.join(found, name)


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
    return Plan("shards", normalize(given), root, items, [])


def _base_name(location: str) -> str:
    return posixpath.basename(location) if is_url(location) else Path(location).name


def plan_job(src: str, dst: str, options: StorageOptions | None = None) -> Plan:
    """Read what SRC holds and where each item goes under DST.

    Local paths are made absolute (relative to this process's folder) so that every worker,
    wherever it runs, reads and writes the same files; URLs are kept (:mod:`.storage`).

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
        return assign_outputs(Plan("folder", resolved, root, [], [], _walk(source, options)))
    if _exists(source, options):
        entries = _list_entries(source, options)
        resolve = _Folders()
        base = parent(source) if is_url(source) else str(Path(source).resolve().parent)
        if all(_is_shard_name(e) for e in entries):
            return _shard_plan([_entry(base, e, resolve)[1] for e in entries], dst, src, options)
        pairs = []
        seen: set[str] = set()
        for line in entries:
            name, location = _entry(base, line, resolve)
            if location in seen:  # named twice: done once
                continue
            seen.add(location)
            pairs.append((name, location))
        repeated = len(entries) - len(pairs)
        del entries  # a million lines: not kept beside the plan
        listed = source if is_url(source) else str(Path(source).resolve())
        plan = assign_outputs(Plan("list", listed, root, [], [], pairs, repeated))
        seen.add(listed)  # the inputs: no output may be one of them
        for item in plan.items:
            target = item.dst if is_url(item.dst) else resolve(item.dst)
            if target in seen:
                raise InputError(f"{item.dst}: is an input; an input is never overwritten")
        return plan
    raise InputError(
        f"SRC {src!r}: no such folder, list file or shard (a folder, a text file of paths, "
        "a .tar or a pattern like data-{000000..000099}.tar)"
    )


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


def count_images(path: str, options: StorageOptions | None = None) -> int:
    """Image members in a shard (headers only; an object store's shard is streamed); 0 for a
    shard that cannot be read."""
    try:
        with open_read(path, options) as fh, tarfile.open(fileobj=fh, mode="r|*") as tar:
            return sum(1 for m in tar if m.isfile() and image_field(sample_key(m.name)[1]))
    except (OSError, tarfile.TarError, EOFError):
        return 0
