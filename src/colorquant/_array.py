"""NumPy or torch: the few helpers that let one function serve both kinds of array.

The file path (PIL images, NumPy arrays, the CLI) never imports torch; a torch tensor can only
reach these helpers when the caller has imported torch already, so looking it up in
``sys.modules`` is enough to recognise one.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TypeVar, Union

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["Array", "ArrayT", "constant", "is_tensor", "namespace", "stack_last", "to_numpy"]

Array = Union[np.ndarray, "torch.Tensor"]
"""A NumPy array or a torch tensor."""
ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")


def is_tensor(x: object) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def namespace(x: Array) -> Any:
    """The module whose functions act on ``x``: ``numpy`` or ``torch``."""
    return sys.modules["torch"] if is_tensor(x) else np


def constant(value: np.ndarray, like: Any) -> Any:
    """``value`` as an array of ``like``'s kind, float dtype and device."""
    target: Any = like
    if not is_tensor(like):
        return value.astype(target.dtype, copy=False)
    import torch

    return torch.as_tensor(value, dtype=target.dtype, device=target.device)


def stack_last(parts: tuple[Any, ...]) -> Any:
    """Stack equally shaped arrays along a new last axis."""
    items: Any = parts
    if not is_tensor(parts[0]):
        return np.stack(items, axis=-1)
    import torch

    return torch.stack(items, dim=-1)


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy view or copy of an array, tensor (any device) or nested sequence."""
    if is_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)
