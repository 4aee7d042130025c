"""Atomic writes: a file appears whole under its final name, or not at all.

Every output of the package (palette images, animations, figures, JSON) goes through
:func:`atomic_write`; :func:`check_output_path` checks, before any work, that an output can be
written. Errors name the file: :class:`FileExistsError` for an output that is already there,
:class:`WriteError` (an :class:`OSError`) for one that cannot be written.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "NotSmallerError",
    "PathLike",
    "WriteError",
    "atomic_write",
    "check_output_path",
]

PathLike = str | os.PathLike[str]


class WriteError(OSError):
    """An output file could not be written. The message names the file and why."""


class NotSmallerError(Exception):
    """The output would not be smaller than allowed (``max_bytes``): nothing was written."""


def _exists_error(path: Path) -> FileExistsError:
    return FileExistsError(f"{path}: already exists (overwrite with force=True or --force)")


def check_output_path(path: PathLike, *, force: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written as a new file (or replaced with force).

    Args:
        path: the output file.
        force: allow replacing an existing file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FileExistsError: the file exists and ``force`` is false.
        WriteError: ``path`` is a directory, or its directory is missing or not writable.
    """
    p = Path(path)
    parent = p.parent
    if p.is_dir():
        raise WriteError(f"{p}: is a directory")
    if (p.exists() or p.is_symlink()) and not force:
        raise _exists_error(p)
    if not parent.exists():
        raise WriteError(f"{p}: directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise WriteError(f"{p}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WriteError(f"{p}: directory {str(parent)!r} is not writable")
    return p


def _new_file_mode(target: Path) -> int:
    """Permissions for the new file: the replaced file's, else 0o666 less the umask."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0o022)  # the only way to read the umask; restored at once
    os.umask(umask)
    return 0o666 & ~umask


def _commit(tmp: str, target: Path, force: bool) -> None:
    """Move the finished temporary file to ``target``; without ``force``, never replace one."""
    if force:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # atomic and fails if target exists, even one made meanwhile
    except FileExistsError:
        raise _exists_error(target) from None
    except OSError:  # no hard links on this file system: check, then rename
        if target.exists() or target.is_symlink():
            raise _exists_error(target) from None
        os.replace(tmp, target)
        return
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _fsync_directory(directory: Path) -> None:
    """Make the new directory entry durable (POSIX); a no-op where directories can't be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_TEMPORARY_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _new_temporary(target: Path) -> tuple[IO[bytes], str]:
    """A new file beside ``target``, hidden (``.<name>.<8 random characters>.tmp``, the names
    :func:`tempfile.NamedTemporaryFile` made, which ``colorquant dataset`` recognizes as left
    by a killed job), created exclusively with mode 0o600 and open for binary writing; its
    name. Without importing :mod:`tempfile` (and :mod:`shutil`, :mod:`random`) at every start
    of the command."""
    for _ in range(100):
        name = str(target.parent / f".{target.name}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(name, _TEMPORARY_FLAGS, 0o600)
        except FileExistsError:
            continue  # that name is taken: draw again
        return os.fdopen(fd, "w+b"), name
    raise OSError(f"no free temporary name in {target.parent}")


def atomic_write(
    path: PathLike,
    writer: Callable[[IO[bytes]], Any],
    *,
    force: bool = False,
    max_bytes: int | None = None,
) -> int:
    """Write a file all or nothing: ``writer`` fills a temporary file that then takes the name.

    The temporary file lies in the same directory (so the rename is atomic), hidden
    (``.<name>.<random>.tmp``); it is flushed and fsynced before the rename, and removed on any
    error, including an exception raised by ``writer`` or a KeyboardInterrupt. Without ``force``
    an existing file is never replaced, even one created while ``writer`` ran.

    Args:
        path: the final file name.
        writer: called once with the temporary file, open for binary writing.
        force: allow replacing an existing file.
        max_bytes: write nothing unless the file is smaller than this.

    Returns:
        The size in bytes of the written file.

    Raises:
        NotSmallerError: the file would have ``max_bytes`` or more (nothing is written).
        FileExistsError: the file exists and ``force`` is false.
        WriteError: the directory is missing or not writable, or writing failed (disk full...).
        Exception: whatever ``writer`` raises, other than :class:`OSError`, passes through.
    """
    target = check_output_path(path, force=force)
    tmp_name: str | None = None
    try:
        fh, tmp_name = _new_temporary(target)
        with fh:
            writer(fh)
            size = fh.tell()
            if max_bytes is not None and size >= max_bytes:
                raise NotSmallerError(
                    f"{target}: would be {size:,} bytes, not smaller than {max_bytes:,}; "
                    "nothing written"
                )
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, _new_file_mode(target))
        _commit(tmp_name, target, force)
        tmp_name = None
    except FileExistsError:
        raise
    except OSError as err:
        raise WriteError(f"{target}: cannot write: {err.strerror or err}") from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    _fsync_directory(target.parent)
    return target.stat().st_size
