"""The compiled CPU core: histogram, k-means++, Lloyd, nearest-color search and dithering in C +
OpenMP.

Every kernel works in float64 with direct distances (the sum over channels ``0..C-1`` of
``(x - c)^2``), so each nearest-centroid decision equals a float64 brute force, the lowest
index winning ties. Partial sums are taken over fixed blocks of points and added in block
order, so results do not depend on the number of threads either
(:mod:`colorquant.threads` sets it).

One wrapper module per stage, as the C files (``module.c`` builds them into ``_kernels`` as one
translation unit): ``hist`` (hist.c), ``kmeanspp`` (kmeanspp.c), ``kmeans`` (lloyd.c),
``search`` (search.c, nearest.c), ``diffusion`` (dither_fs.c), ``ordered`` (dither_ordered.c,
color.c), ``metrics`` (metrics.c); ``common`` holds their checks and ``threads`` the thread
count's old names here. The wrappers validate every input and allocate every output with NumPy;
the C side only checks byte sizes. They import NumPy alone (no torch), so the command-line path
can use them cheaply, and they call the C code as this package's ``_kernels``, looked up at each
call (a test may put another build there).

Point arrays are ``(N, C)`` float64 with ``1 <= C <= 8``; non-contiguous arrays are copied.
"""

from __future__ import annotations

from . import _kernels as _kernels  # the build the wrappers call (a test may swap it)
from .common import MAX_CHANNELS
from .diffusion import dither_fs, dither_fs_groups
from .hist import HISTOGRAM_DENSE_FROM, bin_colors, cell_means, histogram
from .kmeans import LloydOutput, lloyd
from .kmeanspp import kmeans_plusplus
from .metrics import squared_error
from .ordered import ORDERED_PARAMS, dither_ordered
from .search import nearest
from .threads import get_num_threads, set_num_threads, shared_threads

__all__ = [
    "HISTOGRAM_DENSE_FROM",
    "MAX_CHANNELS",
    "ORDERED_PARAMS",
    "LloydOutput",
    "bin_colors",
    "cell_means",
    "dither_fs",
    "dither_fs_groups",
    "dither_ordered",
    "get_num_threads",
    "histogram",
    "kmeans_plusplus",
    "lloyd",
    "nearest",
    "set_num_threads",
    "shared_threads",
    "squared_error",
]
