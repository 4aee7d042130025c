"""Every entry point of the compiled core releases the buffers it holds, on its way out after a
result and after an error alike (common.h's held buffers)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest

from colorquant import _cpu


def held(buffer: bytearray) -> bool:
    """Whether someone still holds ``buffer`` (a held bytearray cannot change size)."""
    try:
        buffer.append(0)
    except BufferError:
        return True
    del buffer[-1]
    return False


def doubles(*values: float) -> bytearray:
    return bytearray(struct.pack(f"{len(values)}d", *values))


# Each case: (entry point, its arguments with every buffer a bytearray; ok=False makes one buffer
# the wrong size, which the C side finds after acquiring them all).
Case = Callable[[bool], tuple[str, list[Any]]]
CASES: dict[str, Case] = {
    "hist_sort": lambda ok: ("hist_sort", [bytearray(6), *(bytearray(8) for _ in range(3)),
                                           bytearray(8 if ok else 4), 1]),
    "hist_sort_finish": lambda ok: ("hist_sort_finish", [bytearray(4), bytearray(4),
                                    bytearray(3), bytearray(8), bytearray(4 if ok else 8), 1]),
    "hist_dense_count": lambda ok: ("hist_dense_count", [bytearray(3),
                                    bytearray(4 << 24 if ok else 4), bytearray(4),
                                    bytearray(8 * 256), 1]),
    "hist_dense_finish": lambda ok: ("hist_dense_finish", [bytearray(4 << 24 if ok else 4),
                                     bytearray(4), bytearray(8 * 256), bytearray(0),
                                     bytearray(0), 1]),
    "bin_cells": lambda ok: ("bin_cells", [bytearray(3), 1, 2, bytearray(4 * 64),
                                           bytearray(4 if ok else 3)]),
    "cell_means": lambda ok: ("cell_means", [doubles(1, 2), doubles(1), bytearray(4), 1, 2, 1,
                                             bytearray(16), bytearray(8 if ok else 4)]),
    "kmeanspp": lambda ok: ("kmeanspp", [doubles(1, 2), doubles(1), 1, 2, 1, 1, 0.5,
                                         bytearray(0), bytearray(8 if ok else 4), 1]),
    "nearest": lambda ok: ("nearest", [doubles(1, 2, 3), doubles(0, 0, 0), 1, 3, 1,
                                       bytearray(4), bytearray(8 if ok else 4), 1]),
    "squared_error": lambda ok: ("squared_error", [bytearray(3), bytearray(3),
                                 bytearray(4 if ok else 8), 1, 3, 1, 1]),
    "lloyd": lambda ok: ("lloyd", [doubles(1, 2), doubles(1), 1, 2, 1, doubles(0, 0),
                                   bytearray(4), bytearray(8), 0, 2, 0.0,
                                   bytearray(16 if ok else 8), 1, 0]),
    "dither_fs": lambda ok: ("dither_fs", [bytearray(3), 1, 1, 3, doubles(0, 0, 0), 1,
                                           bytearray(4), 1.0, bytearray(4 if ok else 8), 1, 0,
                                           1]),
    "dither_fs_groups": lambda ok: ("dither_fs_groups", [doubles(1, 2), 1, 1, 2, doubles(0, 0),
                                    1, doubles(1, 1), bytearray(1), bytearray(b"\x01"),
                                    bytearray(4), bytearray(4), 1.0,
                                    bytearray(4 if ok else 8)]),
    "dither_ordered": lambda ok: ("dither_ordered", [bytearray(3), 1, 1,
                                  bytearray(8 * 64 * 256), bytearray(8 * 64 * 256), 0,
                                  bytearray(8 * 29), doubles(0, 0, 0), 1, 3,
                                  bytearray(4 if ok else 8), 1]),
}  # fmt: skip


@pytest.mark.parametrize("ok", [True, False], ids=["result", "error"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_buffers_are_released_on_every_way_out(name: str, ok: bool) -> None:
    entry, args = CASES[name](ok)
    buffers = [a for a in args if isinstance(a, bytearray)]
    kernel = getattr(_cpu._kernels, entry)
    if ok:
        kernel(*args)
    else:
        with pytest.raises(ValueError, match="expected a buffer of"):
            kernel(*args)
    assert [held(b) for b in buffers] == [False] * len(buffers)


def test_a_held_buffer_is_seen_as_held() -> None:
    # The check above can fail: a buffer someone holds cannot change size.
    buffer = bytearray(8)
    view = memoryview(buffer)
    assert held(buffer)
    view.release()
    assert not held(buffer)
