/*
 * nearest.c: every point's exact nearest palette row (search.c's structure), the points visited
 * along a Morton curve so that each search starts from a near answer.
 *
 * Part of the one translation unit module.c builds (after hist.c, whose radix_pass sorts the
 * Morton codes, and search.c).
 */

/* Searches start from the previous point's answer, which is only a good start when consecutive
   points are alike: they are visited along a Morton (Z-order) curve of their coordinates,
   quantized to 24 bits in all (3 x 8 for C = 3), one scale for every channel. Fills order (n)
   with the point indices in that order; 0, or -1 when out of memory. */
#define MORTON_FROM 1024

static int morton_order(const double *x, Py_ssize_t n, int C, uint32_t *order, int nt)
{
    uint32_t *code = malloc((size_t)n * sizeof *code), *code2 = malloc((size_t)n * sizeof *code2);
    uint32_t *ids = malloc((size_t)n * sizeof *ids);
    Py_ssize_t *cnt = malloc((size_t)nt * RADIX * sizeof *cnt);
    if (!code || !code2 || !ids || !cnt) {
        free(code);
        free(code2);
        free(ids);
        free(cnt);
        return -1;
    }
    double lo[MAX_DIMS], hi[MAX_DIMS], extent = 0.0;
    for (int ch = 0; ch < C; ch++)
        lo[ch] = hi[ch] = x[ch];
    for (Py_ssize_t i = 1; i < n; i++)
        for (int ch = 0; ch < C; ch++) {
            double v = x[i * C + ch];
            lo[ch] = v < lo[ch] ? v : lo[ch];
            hi[ch] = v > hi[ch] ? v : hi[ch];
        }
    for (int ch = 0; ch < C; ch++)
        extent = hi[ch] - lo[ch] > extent ? hi[ch] - lo[ch] : extent;
    int bits = 24 / C;
    double top = (double)((1u << bits) - 1), scale = extent > 0.0 ? top / extent : 0.0;
    Py_ssize_t i; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (PAR_IF(nt, n)) schedule(static)
    for (i = 0; i < n; i++) {
        uint32_t q[MAX_DIMS], c = 0;
        for (int ch = 0; ch < C; ch++) {
            double v = (x[i * C + ch] - lo[ch]) * scale;
            q[ch] = v <= 0.0 ? 0u : v >= top ? (uint32_t)top : (uint32_t)v;
        }
        for (int b = bits - 1; b >= 0; b--)
            for (int ch = 0; ch < C; ch++)
                c = (c << 1) | ((q[ch] >> b) & 1u);
        code[i] = c;
        ids[i] = (uint32_t)i;
    }
    radix_pass(NULL, code, ids, code2, order, n, 0, nt, cnt);
    radix_pass(NULL, code2, order, code, ids, n, RADIX_BITS, nt, cnt);
    memcpy(order, ids, (size_t)n * sizeof *order);
    free(code);
    free(code2);
    free(ids);
    free(cnt);
    return 0;
}


/* Positions lo..hi of the visiting order (NULL: index order), each point searched from the
   previous one's answer; a point equal to the previous one takes its answer. */
HOT void nearest_block(const Search *s, const double *x, const uint32_t *order, Py_ssize_t lo,
                       Py_ssize_t hi, int32_t *index, double *out, const int C)
{
    int32_t prev = 0;
    const double *xp = NULL;
    double prev_d2 = 0.0;
    Found f;
    for (Py_ssize_t q = lo; q < hi; q++) {
        Py_ssize_t i = order ? (Py_ssize_t)order[q] : q;
        const double *xi = x + i * C;
        int same = xp != NULL;
        for (int ch = 0; same && ch < C; ch++)
            same = xi[ch] == xp[ch];
        if (!same) {
            search_impl(s, xi, prev, dist2(xi, s->cent + (size_t)prev * C, C), 0, &f, C);
            prev = f.best;
            prev_d2 = f.bd2;
        }
        index[i] = prev;
        out[i] = prev_d2;
        xp = xi;
    }
}

/* nearest(points, palette, n, c, k, index, dist2, nthreads) */
static PyObject *py_nearest(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pb, cb, ib, db;
    Py_ssize_t n;
    int C, K, nt;
    if (!PyArg_ParseTuple(args, "y*y*niiw*w*i", &pb, &cb, &n, &C, &K, &ib, &db, &nt))
        return NULL;
    Held held = HELD(&pb, &cb, &ib, &db);
    PyObject *result = NULL;
    Search s;
    memset(&s, 0, sizeof s);
    if (check_threads(nt) < 0)
        goto done;
    if (check_sizes(n, C, K) < 0)
        goto done;
    if (check_len(&pb, 8 * n * C, "points") < 0 ||
        check_len(&cb, 8 * (Py_ssize_t)K * C, "palette") < 0 ||
        check_len(&ib, 4 * n, "index") < 0 || check_len(&db, 8 * n, "dist2") < 0)
        goto done;
    if (search_alloc(&s, K, C) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    const double *x = pb.buf, *pal = cb.buf;
    int failed = 0;
    s.cent = pal;
    s.axis = widest_axis(pal, K, C);
    if (build_sweep(&s) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    int32_t *index = ib.buf;
    double *out = db.buf;
    if (s.L > 0)
        build_lists(&s, nt);
    uint32_t *order = NULL;
    if (K > 1 && n >= MORTON_FROM) {
        order = malloc((size_t)n * sizeof *order);
        if (!order || morton_order(x, n, C, order, nt) < 0) {
            free(order);
            order = NULL;
            failed = 1;
        }
    }
    Py_ssize_t nblocks = (n + BLOCK - 1) / BLOCK;
    if (!failed) {
        Py_ssize_t b; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (PAR_IF(nt, n)) schedule(dynamic, 1)
        for (b = 0; b < nblocks; b++) {
            Py_ssize_t lo = b * BLOCK, hi = min_ssize(n, lo + BLOCK);
            BY_CHANNELS(C, nearest_block, &s, x, order, lo, hi, index, out);
        }
    }
    free(order);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    search_free(&s);
    release_held(&held);
    return result;
}

