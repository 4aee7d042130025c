/*
 * hist.c: the exact color histogram of 8-bit RGB pixels (a radix sort of their 24-bit keys, or a
 * dense 2^24 table for large images), and the coarse RGB cells of the binned fit (the occupied
 * cells of a 2^bits grid, their weighted means and scatter).
 *
 * Part of the one translation unit module.c builds (after common.h); radix_pass also orders the
 * points of nearest.c.
 */

#define RADIX_BITS 12
#define RADIX (1 << RADIX_BITS)
#define RADIX_MASK (RADIX - 1)
#define TABLE_SIZE (1 << 24)
#define TABLE_BLOCKS 256
#define TABLE_BLOCK (TABLE_SIZE / TABLE_BLOCKS)

static inline uint32_t pixel_key(const uint8_t *p)
{
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | (uint32_t)p[2];
}

/* One stable counting-sort pass on RADIX_BITS bits of the keys. With kin == NULL the keys come
   from the pixels and the ids are 0..n-1. cnt holds nt * RADIX counters. */
static void radix_pass(const uint8_t *px, const uint32_t *kin, const uint32_t *iin,
                       uint32_t *kout, uint32_t *iout, Py_ssize_t n, int shift, int nt,
                       Py_ssize_t *cnt)
{
#pragma omp parallel num_threads(nt) if (PAR_IF(nt, n / 4))
    {
        int t = THREAD_ID(), team = TEAM_SIZE();
        Py_ssize_t lo = n * t / team, hi = n * (t + 1) / team;
        Py_ssize_t *c = cnt + (size_t)t * RADIX;
        memset(c, 0, RADIX * sizeof *c);
        if (kin) {
            for (Py_ssize_t i = lo; i < hi; i++)
                c[(kin[i] >> shift) & RADIX_MASK]++;
        } else {
            for (Py_ssize_t i = lo; i < hi; i++)
                c[(pixel_key(px + 3 * i) >> shift) & RADIX_MASK]++;
        }
#pragma omp barrier
#pragma omp single
        {
            Py_ssize_t run = 0;
            for (int b = 0; b < RADIX; b++) {
                for (int u = 0; u < team; u++) {
                    Py_ssize_t v = cnt[(size_t)u * RADIX + b];
                    cnt[(size_t)u * RADIX + b] = run;
                    run += v;
                }
            }
        }
        if (kin) {
            for (Py_ssize_t i = lo; i < hi; i++) {
                uint32_t k = kin[i];
                Py_ssize_t p = c[(k >> shift) & RADIX_MASK]++;
                kout[p] = k;
                iout[p] = iin[i];
            }
        } else {
            for (Py_ssize_t i = lo; i < hi; i++) {
                uint32_t k = pixel_key(px + 3 * i);
                Py_ssize_t p = c[(k >> shift) & RADIX_MASK]++;
                kout[p] = k;
                iout[p] = (uint32_t)i;
            }
        }
    }
}

/* hist_sort(pixels, keys, ids, keys_tmp, ids_tmp, nthreads) -> number of distinct colors.
   Sorts the 24-bit keys of the pixels (LSD radix, two passes of 12 bits), carrying pixel ids;
   the sorted keys and ids end in keys and ids. */
static PyObject *py_hist_sort(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer px, ka, ia, kb, ib;
    int nt;
    if (!PyArg_ParseTuple(args, "y*w*w*w*w*i", &px, &ka, &ia, &kb, &ib, &nt))
        return NULL;
    Held held = HELD(&px, &ka, &ia, &kb, &ib);
    PyObject *result = NULL;
    Py_ssize_t n = px.len / 3;
    if (check_threads(nt) < 0)
        goto done;
    if (check_pixels(&px) < 0)
        goto done;
    if (check_len(&ka, 4 * n, "keys") < 0 || check_len(&ia, 4 * n, "ids") < 0 ||
        check_len(&kb, 4 * n, "keys_tmp") < 0 || check_len(&ib, 4 * n, "ids_tmp") < 0)
        goto done;
    Py_ssize_t *cnt = malloc((size_t)nt * RADIX * sizeof *cnt);
    if (!cnt) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t m = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *p = px.buf;
    uint32_t *k1 = ka.buf, *i1 = ia.buf, *k2 = kb.buf, *i2 = ib.buf;
    radix_pass(p, NULL, NULL, k2, i2, n, 0, nt, cnt);
    radix_pass(p, k2, i2, k1, i1, n, RADIX_BITS, nt, cnt);
    Py_ssize_t distinct = 1;
    Py_ssize_t i; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (PAR_IF(nt, n / 4)) reduction(+ : distinct)
    for (i = 1; i < n; i++)
        distinct += k1[i] != k1[i - 1];
    m = distinct;
    Py_END_ALLOW_THREADS
    free(cnt);
    result = PyLong_FromSsize_t(m);
done:
    release_held(&held);
    return result;
}

static inline void put_color(uint8_t *colors, Py_ssize_t r, uint32_t k)
{
    colors[3 * r] = (uint8_t)(k >> 16);
    colors[3 * r + 1] = (uint8_t)(k >> 8);
    colors[3 * r + 2] = (uint8_t)k;
}

/* hist_sort_finish(keys, ids, colors, counts, inverse, nthreads): from the sorted keys and ids,
   the distinct colors, their counts and every pixel's row. */
static PyObject *py_hist_sort_finish(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer kb, ib, cb, nb, vb;
    int nt;
    if (!PyArg_ParseTuple(args, "y*y*w*w*w*i", &kb, &ib, &cb, &nb, &vb, &nt))
        return NULL;
    Held held = HELD(&kb, &ib, &cb, &nb, &vb);
    PyObject *result = NULL;
    Py_ssize_t n = kb.len / 4, m = nb.len / 8;
    if (check_threads(nt) < 0 || check_len(&kb, 4 * n, "keys") < 0 ||
        check_len(&ib, 4 * n, "ids") < 0 || check_len(&vb, 4 * n, "inverse") < 0 ||
        check_len(&nb, 8 * m, "counts") < 0 || check_len(&cb, 3 * m, "colors") < 0)
        goto done;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "keys: expected at least one key");
        goto done;
    }
    const uint32_t *keys = kb.buf, *ids = ib.buf;
    uint8_t *colors = cb.buf;
    int64_t *counts = nb.buf;
    int32_t *inverse = vb.buf;
    int team_max = nt;
    Py_ssize_t *starts = calloc((size_t)team_max + 1, sizeof *starts);
    if (!starts) {
        PyErr_NoMemory();
        goto done;
    }
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel num_threads(nt) if (PAR_IF(nt, n / 4))
    {
        int t = THREAD_ID(), team = TEAM_SIZE();
        Py_ssize_t lo = n * t / team, hi = n * (t + 1) / team, runs = 0;
        for (Py_ssize_t i = lo; i < hi; i++)
            runs += i == 0 || keys[i] != keys[i - 1];
        starts[t + 1] = runs;
#pragma omp barrier
#pragma omp single
        {
            for (int u = 0; u < team; u++)
                starts[u + 1] += starts[u];
            bad = starts[team] != m;
        }
        if (!bad) {
            Py_ssize_t r = starts[t] - 1;
            for (Py_ssize_t i = lo; i < hi; i++) {
                uint32_t k = keys[i];
                if (i == 0 || k != keys[i - 1]) {
                    r++;
                    put_color(colors, r, k);
                    counts[r] = i;
                }
                uint32_t id = ids[i];
                if (id < (uint32_t)n)
                    inverse[id] = (int32_t)r;
            }
        }
    }
    if (!bad) {
        for (Py_ssize_t r = 0; r + 1 < m; r++)
            counts[r] = counts[r + 1] - counts[r];
        counts[m - 1] = n - counts[m - 1];
    }
    Py_END_ALLOW_THREADS
    free(starts);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "counts: its length is not the number of distinct keys");
        goto done;
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    release_held(&held);
    return result;
}

/* hist_dense_count(pixels, table, keys, blocks, nthreads) -> number of distinct colors.
   table: 2^24 uint32, zero on entry, the pixel count of every key on exit; keys: N uint32, each
   pixel's key; blocks: TABLE_BLOCKS int64, the distinct keys in each block of the table. */
static PyObject *py_hist_dense_count(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer px, tb, kb, bb;
    int nt;
    if (!PyArg_ParseTuple(args, "y*w*w*w*i", &px, &tb, &kb, &bb, &nt))
        return NULL;
    Held held = HELD(&px, &tb, &kb, &bb);
    PyObject *result = NULL;
    Py_ssize_t n = px.len / 3;
    if (check_threads(nt) < 0)
        goto done;
    if (check_pixels(&px) < 0)
        goto done;
    if (check_len(&tb, 4 * (Py_ssize_t)TABLE_SIZE, "table") < 0 ||
        check_len(&kb, 4 * n, "keys") < 0 || check_len(&bb, 8 * TABLE_BLOCKS, "blocks") < 0)
        goto done;
    Py_ssize_t m = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *p = px.buf;
    uint32_t *table = tb.buf, *keys = kb.buf;
    int64_t *blocks = bb.buf;
    if (PAR_IF(nt, n / 4)) {
        Py_ssize_t i; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) schedule(static)
        for (i = 0; i < n; i++) {
            uint32_t k = pixel_key(p + 3 * i);
            keys[i] = k;
#pragma omp atomic
            table[k]++;
        }
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            uint32_t k = pixel_key(p + 3 * i);
            keys[i] = k;
            table[k]++;
        }
    }
    Py_ssize_t distinct = 0;
    int b; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (nt > 1) reduction(+ : distinct) schedule(static)
    for (b = 0; b < TABLE_BLOCKS; b++) {
        const uint32_t *t = table + (size_t)b * TABLE_BLOCK;
        int64_t c = 0;
        for (int j = 0; j < TABLE_BLOCK; j++)
            c += t[j] != 0;
        blocks[b] = c;
        distinct += c;
    }
    m = distinct;
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(m);
done:
    release_held(&held);
    return result;
}

/* hist_dense_finish(table, keys, blocks, colors, counts, nthreads): the colors and counts in key
   order; keys (N) become each pixel's row (the buffer is the int32 inverse). */
static PyObject *py_hist_dense_finish(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer tb, kb, bb, cb, nb;
    int nt;
    if (!PyArg_ParseTuple(args, "w*w*y*w*w*i", &tb, &kb, &bb, &cb, &nb, &nt))
        return NULL;
    Held held = HELD(&tb, &kb, &bb, &cb, &nb);
    PyObject *result = NULL;
    Py_ssize_t n = kb.len / 4, m = nb.len / 8;
    if (check_threads(nt) < 0 || check_len(&tb, 4 * (Py_ssize_t)TABLE_SIZE, "table") < 0 ||
        check_len(&kb, 4 * n, "keys") < 0 || check_len(&bb, 8 * TABLE_BLOCKS, "blocks") < 0 ||
        check_len(&nb, 8 * m, "counts") < 0 || check_len(&cb, 3 * m, "colors") < 0)
        goto done;
    uint32_t *table = tb.buf, *keys = kb.buf;
    const int64_t *blocks = bb.buf;
    uint8_t *colors = cb.buf;
    int64_t *counts = nb.buf;
    int64_t start[TABLE_BLOCKS + 1];
    start[0] = 0;
    for (int b = 0; b < TABLE_BLOCKS; b++)
        start[b + 1] = start[b] + (blocks[b] >= 0 ? blocks[b] : 0);
    if (start[TABLE_BLOCKS] != m) {
        PyErr_SetString(PyExc_ValueError, "counts: its length is not the sum of blocks");
        goto done;
    }
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    int b; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (nt > 1) reduction(| : bad) schedule(static)
    for (b = 0; b < TABLE_BLOCKS; b++) {
        int64_t r = start[b], end = start[b + 1];
        uint32_t k0 = (uint32_t)b * TABLE_BLOCK;
        for (uint32_t k = k0; k < k0 + TABLE_BLOCK; k++) {
            uint32_t c = table[k];
            if (c == 0)
                continue;
            if (r >= end) {
                bad = 1;
                break;
            }
            put_color(colors, r, k);
            counts[r] = c;
            table[k] = (uint32_t)r;
            r++;
        }
    }
    if (!bad) {
        Py_ssize_t i; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (PAR_IF(nt, n / 4)) schedule(static)
        for (i = 0; i < n; i++)
            keys[i] = table[keys[i] & (TABLE_SIZE - 1)];
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "blocks: not the counts of this table");
        goto done;
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    release_held(&held);
    return result;
}

/* bin_cells(colors, m, bits, table, cell) -> n_cells: the occupied cells of the 2^bits-per-
   channel RGB grid numbered in the order of their packed key, and each color's cell. `table`
   holds 2^(3 bits) int32 of scratch. */
static PyObject *py_bin_cells(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer cb, tb, ob;
    Py_ssize_t m;
    int bits;
    if (!PyArg_ParseTuple(args, "y*niw*w*", &cb, &m, &bits, &tb, &ob))
        return NULL;
    Held held = HELD(&cb, &tb, &ob);
    PyObject *result = NULL;
    if (m < 0 || m > INT32_MAX || bits < 1 || bits > 8) {
        PyErr_Format(PyExc_ValueError, "expected 0 <= m < 2^31 and 1 <= bits <= 8, got %zd %d", m,
                     bits);
        goto done;
    }
    Py_ssize_t size = (Py_ssize_t)1 << (3 * bits);
    if (check_len(&cb, 3 * m, "colors") < 0 || check_len(&tb, 4 * size, "table") < 0 ||
        check_len(&ob, 4 * m, "cell") < 0)
        goto done;
    int32_t n_cells = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *c = cb.buf;
    int32_t *table = tb.buf, *cell = ob.buf;
    const int shift = 8 - bits;
    memset(table, 0, (size_t)size * sizeof *table);
    for (Py_ssize_t i = 0; i < m; i++) {
        const uint8_t *p = c + 3 * i;
        cell[i] = ((int32_t)(p[0] >> shift) << (2 * bits)) | ((int32_t)(p[1] >> shift) << bits) |
                  (int32_t)(p[2] >> shift);
        table[cell[i]] = 1;
    }
    for (Py_ssize_t q = 0; q < size; q++)
        if (table[q])
            table[q] = n_cells++;
    for (Py_ssize_t i = 0; i < m; i++)
        cell[i] = table[cell[i]];
    Py_END_ALLOW_THREADS
    result = PyLong_FromLong(n_cells);
done:
    release_held(&held);
    return result;
}

/* cell_means(points, weights, cell, m, c, n_cells, means, cell_weight) -> scatter: weighted
   mean and weight of every cell (sums in index order, as numpy.bincount), and the weighted
   mean squared distance of the points to their cell's mean. */
static PyObject *py_cell_means(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pb, wb, cb, mb, gb;
    Py_ssize_t m, n_cells;
    int C;
    if (!PyArg_ParseTuple(args, "y*y*y*ninw*w*", &pb, &wb, &cb, &m, &C, &n_cells, &mb, &gb))
        return NULL;
    Held held = HELD(&pb, &wb, &cb, &mb, &gb);
    PyObject *result = NULL;
    if (m < 1 || C < 1 || C > MAX_DIMS || n_cells < 1) {
        PyErr_Format(PyExc_ValueError, "expected m >= 1, 1 <= c <= %d, n_cells >= 1, got %zd %d %zd",
                     MAX_DIMS, m, C, n_cells);
        goto done;
    }
    if (check_len(&pb, 8 * m * C, "points") < 0 || check_len(&wb, 8 * m, "weights") < 0 ||
        check_len(&cb, 4 * m, "cell") < 0 || check_len(&mb, 8 * n_cells * C, "means") < 0 ||
        check_len(&gb, 8 * n_cells, "cell_weight") < 0)
        goto done;
    const int32_t *cell = cb.buf;
    for (Py_ssize_t i = 0; i < m; i++)
        if (cell[i] < 0 || cell[i] >= n_cells) {
            PyErr_Format(PyExc_ValueError, "cell[%zd] = %d is outside 0..%zd", i, cell[i],
                         n_cells - 1);
            goto done;
        }
    double scatter = 0.0;
    Py_BEGIN_ALLOW_THREADS
    const double *x = pb.buf, *w = wb.buf;
    double *means = mb.buf, *cw = gb.buf, total = 0.0;
    memset(means, 0, (size_t)n_cells * C * sizeof *means);
    memset(cw, 0, (size_t)n_cells * sizeof *cw);
    for (Py_ssize_t i = 0; i < m; i++) {
        double *row = means + (size_t)cell[i] * C;
        cw[cell[i]] += w[i];
        for (int ch = 0; ch < C; ch++)
            row[ch] += w[i] * x[i * C + ch];
    }
    for (Py_ssize_t q = 0; q < n_cells; q++)
        for (int ch = 0; ch < C; ch++)
            means[q * C + ch] /= cw[q];
    for (Py_ssize_t i = 0; i < m; i++) {
        scatter += w[i] * dist2(x + i * C, means + (size_t)cell[i] * C, C);
        total += w[i];
    }
    scatter /= total;
    Py_END_ALLOW_THREADS
    result = PyFloat_FromDouble(scatter);
done:
    release_held(&held);
    return result;
}

