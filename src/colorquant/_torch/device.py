"""What the torch stages need to know about a device: where float64 may be used.

``exact_dtype`` is the one place that decides where float64 may be used: the re-decision of
near ties and the color conversions of a few distinct colors (never the hot loops, which run in
float32). MPS has no float64, so there everything stays in float32 and the near-tie rule is the
float32 one (direct differences, the lowest index on ties).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

__all__ = ["exact_dtype", "exact_math", "run_exact"]


def exact_dtype(device: torch.device) -> torch.dtype:
    """float64 where ``device`` has it, float32 on MPS (which has no float64).

    The stages call it through this module (``dev.exact_dtype``), so a test can make a CPU
    tensor look like an MPS one.
    """
    return torch.float32 if device.type == "mps" else torch.float64


@contextlib.contextmanager
def exact_math(device: torch.device) -> Iterator[None]:
    """Autocast off for ``device``: matrix products and reductions in the dtypes given.

    TF32 only touches float32 matrix products; the stages compute distances by direct
    differences and color conversions in :func:`exact_dtype`, so it never reaches them.
    """
    kind = device.type if device.type in ("cuda", "cpu", "mps", "xpu") else "cpu"
    with torch.autocast(kind, enabled=False):
        yield


def run_exact(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn(x)`` where float64 exists: on ``x``'s device, or on the CPU for MPS (then back).

    For color conversions of a few distinct colors or palette rows, which compute in float64.
    """
    if exact_dtype(x.device) == torch.float64:
        with exact_math(x.device):
            return fn(x)
    out = fn(x.cpu())
    return out.to(device=x.device, dtype=out.dtype if out.dtype != torch.float64 else torch.float32)
