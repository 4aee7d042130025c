"""A dataset job's record of done work, so that rerunning the same command resumes it.

``DST/colorquant-manifest.jsonl``: the first line describes the job (kind, source, the settings
that decide the outputs, the shared palette); every other line is one finished item (an image
file, a copied file or a whole shard), appended and fsynced only after its output was renamed
into place. A
kill at any moment therefore loses nothing that the manifest claims, and an item whose output
exists but whose line is missing is simply done again (same name, same bytes). A last line cut
by a kill is dropped on the next start. A bad item's line (``status: "error"``) does not make it
done: every run of the job tries it again (it may have been fixed or replaced meanwhile).

``DST/colorquant-errors.jsonl``: one ``{"item", "reason"}`` line per bad item of the last run
(and the bad samples of the shards done), rewritten on every start so that it never holds a line
twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .._checks import InputError
from ..io import WriteError
from .plan import DoneItems, Plan, WrittenOutputs
from .sources import ERRORS_NAME, MANIFEST_NAME

__all__ = ["Manifest", "SettingsMismatchError", "Totals"]

VERSION = 1
# The temporary files of colorquant.io.atomic_write: ".<name>.<8 random characters>.tmp".
_TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


class SettingsMismatchError(InputError):
    """DST holds a job made with other settings; resuming into it would mix two outputs."""


@dataclass
class Totals:
    """Running sums over finished items (all runs of the job)."""

    units: int = 0
    images: int = 0
    copied: int = 0
    bytes_copied: int = 0
    errors: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    psnr_sum: float = 0.0
    psnr_count: int = 0
    lossless: int = 0
    animations: int = 0
    frames: int = 0

    def add(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Count a record; return its bad items ``{"item", "reason"}``."""
        self.units += 1
        if record["status"] == "error":
            self.errors += 1
            return [{"item": record["item"], "reason": record["reason"]}]
        if record["status"] == "copied":  # a file that is no image, copied unchanged
            self.copied += 1
            self.bytes_copied += record["bytes"]
            return []
        if "images" in record:  # a shard
            self.images += record["images"]
            self.psnr_sum += record["psnr_sum"]
            self.psnr_count += record["psnr_count"]
            self.lossless += record["lossless"]
            self.animations += record.get("animations", 0)
            self.frames += record.get("frames", 0)
            bad: list[dict[str, Any]] = record["errors"]
        else:
            self.images += 1
            if "frames" in record:  # an animation, written whole as an APNG
                self.animations += 1
                self.frames += record["frames"]
            if record["psnr"] is None:
                self.lossless += 1
            else:
                self.psnr_sum += record["psnr"]
                self.psnr_count += 1
            bad = []
        self.errors += len(bad)
        self.bytes_in += record["bytes_in"]
        self.bytes_out += record["bytes_out"]
        return bad

    @property
    def mean_psnr(self) -> float | None:
        """Mean PSNR in dB over the lossy images (lossless ones have none)."""
        return self.psnr_sum / self.psnr_count if self.psnr_count else None


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [k for k in new if old.get(k) != new[k]] + [k for k in old if k not in new]
    return "; ".join(f"{k} {old.get(k)!r}, now {new.get(k)!r}" for k in keys)


def _writable(path: Path, what: str) -> WriteError:
    return WriteError(f"{path}: cannot write the {what}")


class Manifest:
    """The manifest and errors file of the job whose outputs go under ``root``.

    Args:
        root: DST's folder (created if missing).
        job: what decides the outputs: compared with a manifest already there.
        restart: forget a manifest already there (its outputs are overwritten as the job goes).
        plan: the job's plan, whose database then holds the finished items and the outputs
            written (:attr:`done`, :attr:`written`) instead of Python's memory.

    Raises:
        SettingsMismatchError: ``root`` holds a manifest of another job (without ``restart``).
        InputError: ``root`` holds other files but no manifest (without ``restart``), or is a
            file.
        WriteError: ``root`` cannot be created or written.
    """

    def __init__(
        self, root: Path, job: dict[str, Any], *, restart: bool = False, plan: Plan | None = None
    ) -> None:
        self.root = root
        self.path = root / MANIFEST_NAME
        self.errors_path = root / ERRORS_NAME
        self._init_state(job, plan)
        if root.exists() and not root.is_dir():
            raise InputError(f"DST {str(root)!r}: exists and is not a folder")
        if restart:
            for path in (self.path, self.errors_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        if self.path.exists():
            self._load()
        elif (
            not restart
            and root.exists()
            and any(not p.name.startswith(".") for p in root.iterdir())
        ):
            raise InputError(
                f"DST {str(root)!r}: not empty and holds no {MANIFEST_NAME} (not a colorquant "
                "dataset output); choose a new or empty folder, or pass --restart to write into it"
            )

    def _init_state(self, job: dict[str, Any], plan: Plan | None = None) -> None:
        self.job = job
        self.done: set[str] | DoneItems = plan.done if plan is not None else set()
        self.written: dict[str, str] | WrittenOutputs = plan.written if plan is not None else {}
        """Output names (relative to ``root``, posix) of the images done, with their items."""
        self.totals = Totals()
        self.palette: list[list[int]] | None = None
        self._fh: IO[str] | None = None
        self._errors_fh: IO[str] | None = None
        self._errors: list[dict[str, Any]] = []

    def _load(self) -> None:
        """Read the manifest line by line (a million records are never held at once)."""
        complete = 0  # bytes of whole lines

        def whole_lines(fh: IO[bytes]) -> Iterator[bytes]:
            nonlocal complete
            for line in fh:
                if not line.endswith(b"\n"):
                    return
                complete += len(line)
                yield line

        try:
            with open(self.path, "rb") as fh:
                header = fh.readline()
                self._header(header.rstrip(b"\n"))
                if header.endswith(b"\n"):
                    complete = len(header)
                    # Only the text after the last newline can be cut by a kill; every line
                    # before it is whole, and one that does not read back means the file was
                    # damaged.
                    self._replay(whole_lines(fh), str(self.path))
                size = os.fstat(fh.fileno()).st_size
        except OSError as err:
            raise InputError(f"{self.path}: cannot read: {err.strerror or err}") from None
        if complete < size:
            # A line cut by a kill: the item is simply done again.
            with open(self.path, "r+b") as cut:
                cut.truncate(complete)

    def _header(self, line: bytes) -> None:
        """Check the first line's job against this one's; take its shared palette."""
        try:
            header = json.loads(line)
            old_job = header["job"]
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{self.path}: not a colorquant manifest (bad first line)") from None
        if old_job != self.job:
            changed = _differences(old_job, self.job)
            raise SettingsMismatchError(
                f"{self.path}: DST was made with other settings ({changed}); "
                "rerun with the same settings to resume, or pass --restart to start over"
            )
        self.palette = header.get("palette")

    def _replay(self, lines: Iterable[bytes], where: str, first: int = 2) -> None:
        """Count the records ``lines`` (from line ``first`` of ``where``) as done work."""
        for number, line in enumerate(lines, start=first):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if record["item"] in self.done:
                    continue
                if record["status"] == "error":  # not done: the rerun tries it again
                    continue
                self._errors += self.totals.add(record)
                if record["status"] == "ok" and "images" not in record:
                    self._note_output(record["item"], record["output"])
            except (ValueError, KeyError, TypeError):
                raise InputError(
                    f"{where}, line {number}: not a manifest record (the file was "
                    "changed?); pass --restart to start over"
                ) from None
            self.done.add(record["item"])

    def _note_output(self, item: str, output: str) -> None:
        relative = os.path.relpath(os.path.abspath(output), os.path.abspath(self.root))
        if not relative.startswith(".."):
            self.written[Path(relative).as_posix()] = item

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def begin(self, palette: list[list[int]] | None) -> None:
        """Write the first line (a new job), remove leftover temporary files, open for appends."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                header = {"colorquant_manifest": VERSION, "job": self.job, "palette": palette}
                tmp = self.path.with_name(f".{self.path.name}.new")
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(header) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
                self.palette = palette
            self._remove_temp_files()
            # The errors file is the manifest's errors: rewritten whole, never a line twice.
            tmp = self.errors_path.with_name(f".{ERRORS_NAME}.new")
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(e) + "\n" for e in self._errors)
            os.replace(tmp, self.errors_path)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._errors_fh = open(self.errors_path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as err:
            raise WriteError(f"{self.root}: cannot write there: {err.strerror or err}") from None

    def _remove_temp_files(self) -> None:
        """Temporary files a killed run left (never complete outputs)."""
        for folder, _, files in os.walk(self.root):
            for name in files:
                if _TEMP_FILE.match(name):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(folder, name))

    def add(self, record: dict[str, Any]) -> None:
        """Record a finished item (its output already in place) or a bad one: append, flush,
        fsync. A bad item is not done: the next run of the job tries it again."""
        assert self._fh is not None and self._errors_fh is not None, "begin() first"
        bad = self.totals.add(record)
        if record["status"] != "error":
            self.done.add(record["item"])
        try:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            if bad:
                self._errors_fh.writelines(json.dumps(e) + "\n" for e in bad)
                self._errors_fh.flush()
        except OSError as err:
            raise WriteError(f"{self.path}: cannot write: {err.strerror or err}") from None

    def errors(self) -> Iterator[dict[str, Any]]:
        """The bad items recorded so far (read back from the errors file)."""
        with open(self.errors_path, encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)

    def close(self) -> None:
        for fh in (self._fh, self._errors_fh):
            if fh is not None:
                with contextlib.suppress(OSError):
                    fh.close()
        self._fh = self._errors_fh = None
