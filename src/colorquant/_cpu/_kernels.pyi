"""Types of the compiled module (module.c and the stage files it includes). Use the checked
wrappers in ``colorquant._cpu``."""

import numpy as np

Array = np.ndarray

def hist_sort(
    pixels: Array, keys: Array, ids: Array, keys_tmp: Array, ids_tmp: Array, nthreads: int, /
) -> int: ...
def hist_sort_finish(
    keys: Array,
    ids: Array,
    colors: Array,
    counts: Array,
    inverse: Array,
    nthreads: int,
    /,
) -> None: ...
def hist_dense_count(
    pixels: Array, table: Array, keys: Array, blocks: Array, nthreads: int, /
) -> int: ...
def hist_dense_finish(
    table: Array,
    keys: Array,
    blocks: Array,
    colors: Array,
    counts: Array,
    nthreads: int,
    /,
) -> None: ...
def bin_cells(colors: Array, m: int, bits: int, table: Array, cell: Array, /) -> int: ...
def cell_means(
    points: Array,
    weights: Array,
    cell: Array,
    m: int,
    c: int,
    n_cells: int,
    means: Array,
    cell_weight: Array,
    /,
) -> float: ...
def kmeanspp(
    points: Array,
    weights: Array,
    n: int,
    c: int,
    k: int,
    trials: int,
    u_first: float,
    u: Array,
    chosen: Array,
    nthreads: int,
    /,
) -> None: ...
def nearest(
    points: Array,
    palette: Array,
    n: int,
    c: int,
    k: int,
    index: Array,
    dist2: Array,
    nthreads: int,
    /,
) -> None: ...
def dither_fs(
    pixels: Array,
    h: int,
    w: int,
    c: int,
    palette: Array,
    k: int,
    strength: Array,
    max_error: float,
    index: Array,
    band: int,
    warm: int,
    nthreads: int,
    /,
) -> None: ...
def dither_ordered(
    pixels: Array,
    h: int,
    w: int,
    rgb_table: Array,
    lin_table: Array,
    space: int,
    params: Array,
    palette: Array,
    k: int,
    c: int,
    index: Array,
    nthreads: int,
    /,
) -> None: ...
def squared_error(
    pixels: Array, palette: Array, index: Array, n: int, c: int, k: int, nthreads: int, /
) -> int: ...
def lloyd(
    points: Array,
    weights: Array,
    n: int,
    c: int,
    k: int,
    centroids: Array,
    labels: Array,
    lower: Array,
    warm: int,
    max_iter: int,
    tol: float,
    history: Array,
    nthreads: int,
    n_fixed: int,
    /,
) -> tuple[int, float, bool]: ...
def dither_fs_groups(
    pixels: Array,
    h: int,
    w: int,
    c: int,
    palette: Array,
    k: int,
    weight: Array,
    pixel_group: Array,
    entry_group: Array,
    fixed: Array,
    strength: Array,
    max_error: float,
    index: Array,
    /,
) -> None: ...
def set_parallel_min(value: int, /) -> int: ...
def openmp() -> bool: ...
