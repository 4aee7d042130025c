/*
 * module.c: colorquant._cpu._kernels, the compiled CPU core of colorquant (C99 + OpenMP), built
 * as one translation unit: this file includes common.h and every stage file in pipeline order,
 * so the compiler sees one file (and inlines across stages) and setup.py compiles this file
 * alone. Here: the module's own functions, its method table and its init.
 *
 *   common.h          includes, macros, argument checks, dist2, held buffers
 *   hist.c            exact color histogram; coarse RGB cells of the binned fit
 *   kmeanspp.c        greedy weighted k-means++
 *   search.c          exact nearest-centroid search structure (lists, sweep)
 *   nearest.c         every point's nearest palette row (Morton order)
 *   color.c           color spaces of ordered dithering, points and boxes
 *   grid.c            candidate grid: exact nearest palette point of dithered pixels
 *   dither_fs.c       Floyd-Steinberg: one diffusion loop, the search a parameter (RGB; groups)
 *   dither_ordered.c  ordered dithering
 *   metrics.c         exact squared error of a palette map
 *   lloyd.c           weighted Lloyd with Hamerly bounds
 */
#include "common.h"

#include "hist.c"
#include "kmeanspp.c"
#include "search.c"
#include "nearest.c"
#include "color.c"
#include "grid.c"
#include "dither_fs.c"
#include "dither_ordered.c"
#include "metrics.c"
#include "lloyd.c"

/* set_parallel_min(v) -> the previous value: the work size from which kernels use threads
   (tests lower it to run the parallel paths on small inputs). */
static PyObject *py_set_parallel_min(PyObject *self, PyObject *args)
{
    (void)self;
    Py_ssize_t v;
    if (!PyArg_ParseTuple(args, "n", &v))
        return NULL;
    if (v < 1) {
        PyErr_Format(PyExc_ValueError, "parallel_min must be >= 1, got %zd", v);
        return NULL;
    }
    Py_ssize_t old = g_par_min;
    g_par_min = v;
    return PyLong_FromSsize_t(old);
}

static PyObject *py_openmp(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
#ifdef _OPENMP
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}


static PyMethodDef methods[] = {
    {"hist_sort", py_hist_sort, METH_VARARGS, "Radix sort of the pixels' 24-bit keys."},
    {"hist_sort_finish", py_hist_sort_finish, METH_VARARGS, "Histogram from sorted keys."},
    {"hist_dense_count", py_hist_dense_count, METH_VARARGS, "Count pixels into a 2^24 table."},
    {"hist_dense_finish", py_hist_dense_finish, METH_VARARGS, "Histogram from the table."},
    {"bin_cells", py_bin_cells, METH_VARARGS, "Occupied cells of a coarse RGB grid."},
    {"cell_means", py_cell_means, METH_VARARGS, "Weighted means and scatter of cells."},
    {"kmeanspp", py_kmeanspp, METH_VARARGS, "Greedy weighted k-means++."},
    {"nearest", py_nearest, METH_VARARGS, "Exact nearest palette row."},
    {"dither_fs", py_dither_fs, METH_VARARGS, "Serpentine Floyd-Steinberg error diffusion."},
    {"dither_fs_groups", py_dither_fs_groups, METH_VARARGS,
     "Serpentine Floyd-Steinberg with a nearest row per pixel group."},
    {"dither_ordered", py_dither_ordered, METH_VARARGS, "Ordered dithering to the nearest color."},
    {"squared_error", py_squared_error, METH_VARARGS, "Exact squared error of a palette map."},
    {"lloyd", py_lloyd, METH_VARARGS, "Weighted Lloyd iterations with exact assignments."},
    {"set_parallel_min", py_set_parallel_min, METH_VARARGS,
     "Work size from which kernels use threads; returns the previous value."},
    {"openmp", py_openmp, METH_NOARGS, "Whether the module was built with OpenMP."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "colorquant's compiled CPU kernels.", -1, methods,
    NULL,                  NULL,       NULL,                                  NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
