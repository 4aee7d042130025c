/*
 * metrics.c: the exact squared error of a palette map of 8-bit pixels.
 *
 * Part of the one translation unit module.c builds (after common.h).
 */

/* squared_error(pixels, palette, index, n, c, k, nthreads): the sum over n pixels and c
   channels of (pixel - palette[index])^2, all uint8: exact in int64 (and order-free). -1 when an
   index is out of 0..k-1. */
static PyObject *py_squared_error(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pb, cb, ib;
    Py_ssize_t n;
    int C, K, nt;
    if (!PyArg_ParseTuple(args, "y*y*y*niii", &pb, &cb, &ib, &n, &C, &K, &nt))
        return NULL;
    Held held = HELD(&pb, &cb, &ib);
    PyObject *result = NULL;
    if (check_threads(nt) < 0)
        goto done;
    if (check_sizes(n, C, K) < 0)
        goto done;
    if (check_len(&pb, n * C, "pixels") < 0 || check_len(&cb, (Py_ssize_t)K * C, "palette") < 0 ||
        check_len(&ib, 4 * n, "index") < 0)
        goto done;
    const uint8_t *px = pb.buf, *pal = cb.buf;
    const int32_t *index = ib.buf;
    int64_t total = 0;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t i; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (PAR_IF(nt, n)) reduction(+ : total) \
    reduction(| : bad) schedule(static)
    for (i = 0; i < n; i++) {
        int32_t j = index[i];
        if (j < 0 || j >= K) {
            bad = 1;
            continue;
        }
        for (int ch = 0; ch < C; ch++) {
            int d = (int)px[i * C + ch] - (int)pal[(size_t)j * C + ch];
            total += d * d;
        }
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_Format(PyExc_ValueError, "index: expected values in 0..%d", K - 1);
        goto done;
    }
    result = PyLong_FromLongLong((long long)total);
done:
    release_held(&held);
    return result;
}

