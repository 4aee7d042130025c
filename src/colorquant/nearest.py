"""Nearest palette color for every point: the one search that K-means, mapping and metrics share.

The answer is exact: it equals a float64 brute force ``argmin_k sum((x - c_k)^2)``, the lowest
index winning ties. NumPy arrays go to the compiled CPU kernel (:func:`colorquant._cpu.nearest`:
float64 direct distances, pruned by the palette's neighbour distances); tensors go to torch on
their device (:mod:`colorquant._torch.nearest`: float32 matrix products in bounded chunks, near
ties re-decided in float64).
"""

from __future__ import annotations

import numpy as np

from . import _cpu
from ._array import ArrayT

__all__ = ["nearest"]


def nearest(points: ArrayT, palette: ArrayT, *, exact: bool = True) -> tuple[ArrayT, ArrayT]:
    """Index of, and squared distance to, the nearest palette color of every point.

    Args:
        points: ``(N, C)`` float array or tensor.
        palette: ``(K, C)`` float, the same kind (and device), ``K >= 1``.
        exact: tensors only: ``False`` skips the float64 re-decision of near ties (K-means
            iterations do not need it). NumPy results are always exact.

    Returns:
        ``(index, dist2)``: ``(N,)`` int64 and ``(N,)`` squared Euclidean distance in the dtype
        of ``points`` (computed directly from the differences).

    Example:
        >>> pts = np.array([[0.0, 0.0], [9.0, 9.0]])
        >>> idx, d2 = nearest(pts, np.array([[1.0, 0.0], [8.0, 8.0]]))
        >>> idx.tolist(), d2.tolist()
        ([0, 1], [1.0, 2.0])
    """
    if points.ndim != 2 or palette.ndim != 2 or points.shape[1] != palette.shape[1]:
        raise ValueError(
            f"points (N, C) and palette (K, C) must agree in C, got {tuple(points.shape)} "
            f"and {tuple(palette.shape)}"
        )
    if palette.shape[0] == 0:
        raise ValueError("palette must have at least one color")
    if isinstance(points, np.ndarray):
        x = np.ascontiguousarray(points, dtype=np.float64)
        c = np.ascontiguousarray(palette, dtype=np.float64)
        index, dist2 = _cpu.nearest(x, c)
        return index.astype(np.int64), dist2.astype(points.dtype, copy=False)
    from ._torch.nearest import nearest as torch_nearest

    return torch_nearest(points, palette, exact=exact)
