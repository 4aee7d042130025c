"""The core's thread count under the names ``colorquant._cpu`` has always given it: those of
:mod:`colorquant.threads`, the public and thread-safe way, where new code should take them."""

from __future__ import annotations

from colorquant.threads import get_num_threads, set_num_threads, shared_threads

__all__ = ["get_num_threads", "set_num_threads", "shared_threads"]
