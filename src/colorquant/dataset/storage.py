"""Where a dataset job reads and writes: local paths, or URLs of any fsspec file system.

SRC and DST may be local paths (made absolute here, so that a worker on another machine or in
another folder finds the same file) or URLs ``s3://``, ``gs://``, ``az://``, ``hf://``,
``memory://`` and every other protocol fsspec knows (``file://`` is a local path). Credentials
and endpoints come the file system's standard way (environment variables, config files) plus
``storage_options`` (``--storage-options JSON``): keyword arguments of the file system, either
one object for all (``{"endpoint_url": ...}``) or one per protocol (``{"s3": {...}}``).

Object stores have no rename and no append, so outputs there are written with one put each (an
object appears only when complete; a large shard is uploaded in parts that s3fs completes or
aborts), and the manifest is kept as separate record objects (:mod:`.manifest`).

A URL whose protocol fsspec does not know, or whose package is missing (``s3fs``, ``gcsfs``,
``adlfs``), is refused by :func:`check_location` in one line, before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from .._checks import InputError
from ..io import WriteError

__all__ = [
    "StorageOptions",
    "StoreError",
    "check_location",
    "filesystem",
    "is_url",
    "join",
    "normalize",
    "open_read",
    "parent",
    "parse_storage_options",
    "read_bytes",
    "size_of",
    "source_of",
    "upload_written",
    "walk_files",
    "write_bytes",
]

log = logging.getLogger(__name__)

StorageOptions = Mapping[str, Any]
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
#: The extra that installs each protocol's package (what the refusal tells to install).
_EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
    "hf": "datasets",
}


#: The packages whose exceptions an fsspec file system lets through (not OSErrors): a store that
#: cannot be reached, refused credentials, a client error. Turned into :class:`StoreError`.
_STORE_PACKAGES = frozenset(
    {"botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "google", "azure", "adlfs"}
    | {"huggingface_hub", "requests", "urllib3"}
)


class StoreError(WriteError):
    """An object store could not be reached or refused the request (no credentials, an
    endpoint that does not answer, a connection lost mid-job). The message names the URL."""


def _is_store_failure(err: BaseException) -> bool:
    if isinstance(err, StoreError):
        return False  # already one
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    package = type(err).__module__.split(".")[0]
    return package in _STORE_PACKAGES and not isinstance(err, OSError)


@contextlib.contextmanager
def store_errors(url: str) -> Iterator[None]:
    """Within it, an object store's own exception (botocore's, aiohttp's, a lost connection)
    becomes a one-line :class:`StoreError` naming ``url``; other errors pass unchanged."""
    try:
        yield
    except Exception as err:
        if not _is_store_failure(err):
            raise
        reason = " ".join((str(err) or type(err).__name__).split())
        raise StoreError(f"{url}: cannot reach the store ({reason})") from err


def scheme(path: str) -> str | None:
    """The URL scheme of ``path`` (``"s3"``), or ``None`` for a local path."""
    match = _SCHEME.match(path)
    return match.group(1).lower() if match else None


def is_url(path: str) -> bool:
    """Whether ``path`` names an fsspec file system other than the local one."""
    found = scheme(path)
    return found is not None and found not in ("file", "local")


def normalize(path: str) -> str:
    """A local path made absolute (``file://`` dropped), or a URL without a trailing slash."""
    if is_url(path):
        return path if path.endswith("://") else path.rstrip("/")
    if scheme(path) is not None:
        path = path.split("://", 1)[1]
    return os.path.abspath(os.path.expanduser(path))


def join(root: str, relative: str) -> str:
    """``root`` and a relative posix name: ``s3://b/out`` + ``a/x.png`` -> ``s3://b/out/a/x.png``."""
    if is_url(root):
        return f"{root.rstrip('/')}/{relative}"
    return os.path.join(root, *relative.split("/"))


def parent(path: str) -> str:
    """The folder that holds ``path`` (a URL's parent is a URL)."""
    if is_url(path):
        head, tail = path.split("://", 1)
        return f"{head}://{posixpath.dirname(tail.rstrip('/'))}"
    return os.path.dirname(path)


def parse_storage_options(text: str | StorageOptions | None) -> dict[str, Any]:
    """``--storage-options``: a JSON object (or a mapping) of file-system keyword arguments.

    Raises:
        InputError: not valid JSON, or not an object.
    """
    if text is None:
        return {}
    if isinstance(text, Mapping):
        return dict(text)
    try:
        value = json.loads(text)
    except ValueError as err:
        raise InputError(f"storage_options: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise InputError(
            f'storage_options: must be a JSON object like {{"endpoint_url": ...}}, got {text!r}'
        )
    return value


def _options_for(protocol: str, options: StorageOptions | None) -> dict[str, Any]:
    """The keyword arguments for ``protocol``'s file system: its own object if the options
    hold one (``{"s3": {...}}``), else the options without other protocols' objects."""
    if not options:
        return {}
    own = options.get(protocol)
    if isinstance(own, Mapping):
        return dict(own)
    return {
        k: v for k, v in options.items() if not (isinstance(v, Mapping) and k in _known_protocols())
    }


def _known_protocols() -> set[str]:
    try:
        from fsspec.registry import known_implementations
    except ImportError:
        return set(_EXTRAS)
    return set(known_implementations) | set(_EXTRAS)


def filesystem(url: str, options: StorageOptions | None = None) -> tuple[Any, str]:
    """The fsspec file system of ``url`` and the path in it (fsspec caches the instances).

    Raises:
        InputError: fsspec is missing, the protocol is unknown, or its package is missing.
    """
    protocol = scheme(url) or "file"
    try:
        import fsspec
        from fsspec.core import url_to_fs
    except ImportError:
        raise InputError(
            f"{url!r}: URLs need fsspec, which is not installed here: "
            f"pip install 'colorquant[{_EXTRAS.get(protocol, 's3')}]'"
        ) from None
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise InputError(
            f"{url!r}: unknown storage protocol {protocol!r} (a local path, or a URL of an fsspec "
            "file system: s3://, gs://, az://, hf://, memory://, file://)"
        ) from None
    except ImportError as err:
        extra = _EXTRAS.get(protocol)
        remedy = f"pip install 'colorquant[{extra}]'" if extra else str(err)
        raise InputError(
            f"{url!r}: the {protocol}:// file system is not installed here: {remedy}"
        ) from None
    try:
        fs, path = url_to_fs(url, **_options_for(protocol, options))
    except (TypeError, ValueError) as err:
        raise InputError(f"{url!r}: bad storage options: {err}") from None
    _quiet_lost_requests(getattr(fs, "loop", None))
    return fs, str(path)


def _lost_request(loop: Any, context: dict[str, Any]) -> None:
    """The event loop's handler of exceptions nobody awaited: a request that a lost connection
    ended (aiohttp's writer of a request whose answer failed) is logged at debug level, since
    the failure itself reaches the caller as a :class:`StoreError`; anything else as asyncio
    would."""
    error = context.get("exception")
    if error is not None and _is_store_failure(error):
        log.debug("%s: %s", context.get("message"), error)
        return
    loop.default_exception_handler(context)


def _quiet_lost_requests(loop: Any) -> None:
    """Install :func:`_lost_request` on an async file system's loop (fsspec's IO thread)."""
    if loop is not None and loop.get_exception_handler() is None:
        loop.set_exception_handler(_lost_request)


def check_location(what: str, path: str, options: StorageOptions | None = None) -> str:
    """``path`` normalized (:func:`normalize`); a URL's file system is made here, so that an
    unknown protocol or a missing package is refused before anything is written.

    Raises:
        InputError: the message names ``what`` (``"SRC"``, ``"DST"``) and the remedy.
    """
    if not is_url(path):
        return normalize(path)
    try:
        filesystem(path, options)
    except InputError as err:
        raise InputError(f"{what} {err}") from None
    return normalize(path)


def read_bytes(url: str, options: StorageOptions | None = None) -> bytes:
    """The whole object at ``url``. Raises OSError (FileNotFoundError, PermissionError)."""
    fs, path = filesystem(url, options)
    with store_errors(url):
        data: bytes = fs.cat_file(path)
    return data


def write_bytes(url: str, data: bytes, options: StorageOptions | None = None) -> int:
    """Put ``data`` at ``url`` in one request (an object appears whole or not at all)."""
    fs, path = filesystem(url, options)
    with store_errors(url):
        fs.pipe_file(path, data)
    return len(data)


def source_of(location: str, options: StorageOptions | None = None) -> str | bytes:
    """What the image loaders read: a local path as it is, an object's bytes (one get)."""
    return read_bytes(location, options) if is_url(location) else location


def upload_written(
    target: str, writer: Callable[[IO[bytes]], object], options: StorageOptions | None = None
) -> int:
    """What ``writer`` writes (a shard), built in a local temporary file (removed after), then
    uploaded to the URL ``target`` whole: the object appears only when complete. Its size."""
    with tempfile.NamedTemporaryFile(prefix=".colorquant-", suffix=".tmp") as tmp:
        writer(tmp)
        tmp.flush()
        size = tmp.tell()
        put_file(tmp.name, target, options)
    return size


def put_file(local: str, url: str, options: StorageOptions | None = None) -> None:
    """Upload the local file ``local`` to ``url`` (s3fs: in parts above 50 MiB, completed when
    all are in, aborted on an error; the object appears only when complete)."""
    fs, path = filesystem(url, options)
    with store_errors(url):
        fs.put_file(local, path)


def size_of(url: str, options: StorageOptions | None = None) -> int | None:
    """The size in bytes of the object or file at ``url``; ``None`` when there is none."""
    if not is_url(url):
        try:
            return os.stat(url).st_size
        except OSError:
            return None
    fs, path = filesystem(url, options)
    try:
        with store_errors(url):
            fs.invalidate_cache(path)
            info = fs.info(path)
    except StoreError:
        raise
    except OSError:
        return None
    if info.get("type") == "directory":
        return None
    return int(info.get("size") or 0)


@contextlib.contextmanager
def open_read(url: str, options: StorageOptions | None = None) -> Iterator[IO[bytes]]:
    """A binary file object reading ``url`` (buffered, streamed)."""
    if not is_url(url):
        with open(url, "rb") as fh:
            yield fh
        return
    fs, path = filesystem(url, options)
    with store_errors(url), fs.open(path, "rb") as fh:
        yield fh


def delete(url: str, options: StorageOptions | None = None) -> None:
    """Remove the object at ``url`` (nothing if there is none)."""
    fs, path = filesystem(url, options)
    with contextlib.suppress(FileNotFoundError), store_errors(url):
        fs.rm_file(path)


def list_files(root: str, options: StorageOptions | None = None) -> list[str]:
    """Every object under the URL ``root``: relative posix names, sorted."""
    fs, path = filesystem(root, options)
    base = path.rstrip("/")
    with store_errors(root):
        fs.invalidate_cache(base)
        found_all = fs.find(base, withdirs=False)
    names = []
    for found in found_all:
        relative = posixpath.relpath(found, base) if base else found
        if not relative.startswith(".."):
            names.append(relative)
    return sorted(names)


def walk_files(root: str, options: StorageOptions | None = None) -> Iterator[str]:
    """Every object under the URL ``root``: relative posix names, streamed in the order of
    :func:`list_files` (the names sorted whole), one folder listed at a time."""
    fs, path = filesystem(root, options)
    base = path.rstrip("/")

    def visit(folder: str, prefix: str) -> Iterator[str]:
        with store_errors(root):
            fs.invalidate_cache(folder)
            try:
                entries = fs.ls(folder, detail=True)
            except FileNotFoundError:
                return
        # "a/" sorts among names as everything under a/ does: the names sorted whole.
        keyed = []
        for entry in entries:
            full = str(entry["name"]).rstrip("/")
            if full == folder.rstrip("/"):
                continue
            name = posixpath.basename(full)
            folder_like = entry.get("type") == "directory"
            keyed.append((name + "/" if folder_like else name, name, folder_like))
        del entries
        for _, name, folder_like in sorted(keyed):
            if folder_like:
                yield from visit(f"{folder.rstrip('/')}/{name}", f"{prefix}{name}/")
            else:
                yield prefix + name

    yield from visit(base, "")


def kind_of(url: str, options: StorageOptions | None = None) -> str | None:
    """``"file"``, ``"directory"`` or ``None`` (nothing there) for the URL ``url``."""
    fs, path = filesystem(url, options)
    try:
        with store_errors(url):
            fs.invalidate_cache(path)
            if fs.isfile(path):
                return "file"
            return "directory" if fs.isdir(path) else None
    except (FileNotFoundError, PermissionError):
        return None
