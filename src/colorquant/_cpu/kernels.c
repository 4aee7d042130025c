/*
 * colorquant._cpu._kernels: the compiled CPU core of colorquant (C99 + OpenMP).
 *
 * Every array comes in through the buffer protocol; the Python wrappers in __init__.py validate
 * dtypes and shapes and allocate every output, this file only checks byte sizes. All distances
 * are float64 and computed directly, sum over channels 0..C-1 of (x - c)^2, so every nearest
 * decision equals a float64 brute force (lowest index on ties). Build with -ffp-contract=off so
 * that no multiply-add is fused (that would change the rounding of those sums).
 *
 * Determinism: partial sums are taken over fixed blocks of points (BLOCK, or a size that only
 * depends on N, K and C) and merged in block order, so results do not depend on the number of
 * threads. Parallel regions carry an if() clause: small inputs run on the calling thread.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define THREAD_ID() omp_get_thread_num()
#define TEAM_SIZE() omp_get_num_threads()
#else
#define THREAD_ID() 0
#define TEAM_SIZE() 1
#endif

/* Compiler specifics behind macros: GCC and clang spell them with attributes, MSVC with
   declspecs; another compiler gets plain C99. */
#if defined(_MSC_VER)
#define CQ_INLINE __forceinline
#define CQ_NOINLINE __declspec(noinline)
#define CQ_RESTRICT __restrict
#elif defined(__GNUC__) || defined(__clang__)
#define CQ_INLINE inline __attribute__((always_inline))
#define CQ_NOINLINE __attribute__((noinline))
#define CQ_RESTRICT restrict
#else
#define CQ_INLINE inline
#define CQ_NOINLINE
#define CQ_RESTRICT restrict
#endif

#define MAX_DIMS 8
/* Points per block of the fixed-order partial sums. */
#define BLOCK 4096
/* At most this many doubles of per-block cluster accumulators in Lloyd (8 MB). */
#define MAX_ACC_DOUBLES (1 << 20)
/* Neighbours kept per centroid, and the largest K for which the K x K gaps are computed. */
#define NB_LIST 24
#define NB_MAX_K 1024
/* Relative rounding slack of distances (their float64 error is ~1e-15), and the absolute slack
   of the drifting Hamerly lower bounds, relative to the diameter of the data. */
#define REL_SLACK 1e-10
#define ABS_SLACK 1e-9

/* Work items under which a kernel stays on one thread (tests lower it to exercise threads). */
static Py_ssize_t g_par_min = 16384;
#ifdef CQ_PROFILE
#include <stdio.h>
#include <time.h>
static long g_searches = 0, g_sweeps = 0;
static double now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec * 1e-6; }
#endif

#define PAR_IF(nt, work) ((nt) > 1 && (Py_ssize_t)(work) >= g_par_min)

/* ------------------------------------------------------------------------------------------ */
/* Shared helpers                                                                               */

static int check_len(const Py_buffer *b, Py_ssize_t want, const char *name)
{
    if (b->len != want) {
        PyErr_Format(PyExc_ValueError, "%s: expected a buffer of %zd bytes, got %zd", name, want,
                     b->len);
        return -1;
    }
    return 0;
}

/* An (N, 3) uint8 pixel buffer with 1 <= N < 2^31. */
static int check_pixels(const Py_buffer *px)
{
    if (px->len % 3 != 0 || px->len < 3 || px->len / 3 > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "pixels: expected 3 * N bytes with 1 <= N < 2^31, got %zd",
                     px->len);
        return -1;
    }
    return 0;
}

static int check_threads(int nt)
{
    if (nt < 1) {
        PyErr_Format(PyExc_ValueError, "nthreads must be >= 1, got %d", nt);
        return -1;
    }
    return 0;
}

/* Hot functions take the channel count as a parameter and are always inlined, so that each is
   compiled for C = 3 (rgb and the perceptual spaces) and C = 6 (hybrid) with unrolled loops,
   and once for any C. BY_CHANNELS(C, f, args...) calls f(args..., C) with C a constant. */
#define HOT static CQ_INLINE
#define BY_CHANNELS(C, f, ...)                                                                   \
    ((C) == 3 ? f(__VA_ARGS__, 3) : (C) == 6 ? f(__VA_ARGS__, 6) : f(__VA_ARGS__, (C)))

/* Squared distance, channels summed in order 0..C-1 (as NumPy's .sum(-1) does for C < 8). */
HOT double dist2(const double *x, const double *c, const int C)
{
    if (C == 3) {
        double t0 = x[0] - c[0], t1 = x[1] - c[1], t2 = x[2] - c[2];
        double s = t0 * t0;
        s += t1 * t1;
        s += t2 * t2;
        return s;
    }
    double s = 0.0;
    for (int ch = 0; ch < C; ch++) {
        double t = x[ch] - c[ch];
        s += t * t;
    }
    return s;
}

/* A key and the index of what it belongs to (sorting). */
typedef struct {
    double v;
    int32_t i;
} KeyIndex;

static inline Py_ssize_t min_ssize(Py_ssize_t a, Py_ssize_t b) { return a < b ? a : b; }
/* fmin and fmax are library calls without -ffast-math (NaN rules); no NaN reaches these. */
static inline double min_d(double a, double b) { return a < b ? a : b; }
static inline double max_d(double a, double b) { return a > b ? a : b; }

/* ------------------------------------------------------------------------------------------ */
/* Histogram                                                                                    */

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
    PyBuffer_Release(&px);
    PyBuffer_Release(&ka);
    PyBuffer_Release(&ia);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&ib);
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
    PyBuffer_Release(&kb);
    PyBuffer_Release(&ib);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&nb);
    PyBuffer_Release(&vb);
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
    PyBuffer_Release(&px);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&bb);
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
    PyBuffer_Release(&tb);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&nb);
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
    PyBuffer_Release(&cb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&ob);
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
    PyBuffer_Release(&pb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&mb);
    PyBuffer_Release(&gb);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* k-means++                                                                                    */

/* First index i with a[i] > v (numpy.searchsorted side="right"). */
static Py_ssize_t search_right(const double *a, Py_ssize_t n, double v)
{
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (a[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Greedy k-means++ pruned by the triangle inequality. Every point sits in the member list of its
 * nearest chosen centroid o, at squared distance closest[j]; each list is sorted by closest[],
 * largest first. A candidate c can bring a member j of o closer only if d(x_j, c) < d(x_j, o),
 * which needs d(c, o) < 2 d(x_j, o): the scan of o's list stops at the first member with
 * 4 closest[j] <= d(c, o)^2 (empty for most clusters). A candidate's score is its reduction of
 * the potential, sum over the points it brings closer of w (closest - d); the largest wins (the
 * smallest potential), the first on ties. closest[] equals what a brute force computes (the
 * slack only makes the stop conservative), and so do the draws made from it.
 */
#define KPP_SKIP_SLACK (1.0 + 1e-9)

/* Whether a member at squared distance `own` from its centroid may come closer to a candidate
   at squared distance `dco2` from that centroid. */
static inline int kpp_reachable(double dco2, double own) { return dco2 < 4.0 * own * KPP_SKIP_SLACK; }

/* Reduction of the potential by candidate cx. */
HOT double kpp_reduction(const double *x, const double *w, const double *closest,
                         const int32_t *head, const int32_t *next, const int64_t *chosen,
                         Py_ssize_t m, const double *cx, const int C)
{
    double red = 0.0;
    for (Py_ssize_t o = 0; o < m; o++) {
        int32_t j = head[o];
        if (j < 0)
            continue;
        double dco2 = dist2(cx, x + chosen[o] * C, C);
        for (; j >= 0 && kpp_reachable(dco2, closest[j]); j = next[j]) {
            double d = dist2(x + (Py_ssize_t)j * C, cx, C);
            if (d < closest[j])
                red += w[j] * (closest[j] - d);
        }
    }
    return red;
}

/* k-means++ sorts its points by key descending, index ascending on ties. */
static inline int ki_before(KeyIndex a, KeyIndex b) { return a.v > b.v || (a.v == b.v && a.i < b.i); }

/* Quicksort (median of three, insertion sort below 16) of a[0..n-1] by ki_before. */
static void ki_sort(KeyIndex *a, Py_ssize_t n)
{
    while (n > 16) {
        Py_ssize_t mid = n / 2;
        KeyIndex t;
        if (ki_before(a[mid], a[0])) { t = a[mid]; a[mid] = a[0]; a[0] = t; }
        if (ki_before(a[n - 1], a[0])) { t = a[n - 1]; a[n - 1] = a[0]; a[0] = t; }
        if (ki_before(a[n - 1], a[mid])) { t = a[n - 1]; a[n - 1] = a[mid]; a[mid] = t; }
        KeyIndex pivot = a[mid];
        Py_ssize_t i = 0, j = n - 1;
        for (;;) {
            while (ki_before(a[i], pivot))
                i++;
            while (ki_before(pivot, a[j]))
                j--;
            if (i >= j)
                break;
            t = a[i]; a[i] = a[j]; a[j] = t;
            i++;
            j--;
        }
        /* Recurse into the smaller part, loop on the larger. */
        if (j + 1 < n - j - 1) {
            ki_sort(a, j + 1);
            a += j + 1;
            n -= j + 1;
        } else {
            ki_sort(a + j + 1, n - j - 1);
            n = j + 1;
        }
    }
    for (Py_ssize_t i = 1; i < n; i++) {
        KeyIndex t = a[i];
        Py_ssize_t q = i;
        for (; q > 0 && ki_before(t, a[q - 1]); q--)
            a[q] = a[q - 1];
        a[q] = t;
    }
}

/* Link the sorted points of `moved` as one list; its head. */
static int32_t ki_link(const KeyIndex *moved, Py_ssize_t count, int32_t *next)
{
    for (Py_ssize_t q = 0; q < count; q++)
        next[moved[q].i] = q + 1 < count ? moved[q + 1].i : -1;
    return count ? moved[0].i : -1;
}

/* Add the m-th centroid: the points it brings closer leave their lists for list m, which is
   sorted like the others (`moved`: scratch of n entries). */
HOT Py_ssize_t kpp_commit(const double *x, double *closest, int32_t *head, int32_t *next,
                    const int64_t *chosen, Py_ssize_t m, KeyIndex *moved, const int C)
{
    const double *bx = x + chosen[m] * C;
    Py_ssize_t count = 0;
    for (Py_ssize_t o = 0; o < m; o++) {
        int32_t *link = &head[o];
        if (*link < 0)
            continue;
        double dco2 = dist2(bx, x + chosen[o] * C, C);
        for (int32_t j = *link; j >= 0 && kpp_reachable(dco2, closest[j]); j = *link) {
            double d = dist2(x + (Py_ssize_t)j * C, bx, C);
            if (d < closest[j]) {
                closest[j] = d;
                *link = next[j];
                moved[count++] = (KeyIndex){d, j};
            } else {
                link = &next[j];
            }
        }
    }
    ki_sort(moved, count);
    head[m] = ki_link(moved, count, next);
    return count;
}

/* The potential w * closest is drawn from in two levels: blocks of KPP_BLOCK points (their
   sums, kept up to date for the blocks whose points moved), then a point in the block. The
   result is searchsorted(cumsum(w * closest), u * total, side="right") up to rounding: a point
   of zero potential (a chosen centroid) is never drawn. */
#define KPP_BLOCK 128

static Py_ssize_t kpp_draw(const double *w, const double *closest, Py_ssize_t n,
                           const double *bsum, Py_ssize_t nb, double total, double u)
{
    double target = u * total, run = 0.0;
    Py_ssize_t b = 0, last = -1;
    for (; b < nb; b++) {
        if (bsum[b] > 0.0)
            last = b;
        if (run + bsum[b] > target)
            break;
        run += bsum[b];
    }
    if (b == nb) /* rounding: the last block with any potential */
        b = last < 0 ? 0 : last;
    Py_ssize_t lo = b * KPP_BLOCK, hi = min_ssize(n, lo + KPP_BLOCK), found = -1;
    double r = target - run, acc = 0.0;
    for (Py_ssize_t j = lo; j < hi; j++) {
        double p = w[j] * closest[j];
        acc += p;
        if (p > 0.0) {
            found = j;
            if (acc > r)
                break;
        }
    }
    return found < 0 ? lo : found;
}

static double kpp_block_sum(const double *w, const double *closest, Py_ssize_t n, Py_ssize_t b)
{
    Py_ssize_t lo = b * KPP_BLOCK, hi = min_ssize(n, lo + KPP_BLOCK);
    double acc = 0.0;
    for (Py_ssize_t j = lo; j < hi; j++)
        acc += w[j] * closest[j];
    return acc;
}

HOT void kpp_run(const double *x, const double *w, Py_ssize_t n, Py_ssize_t k, Py_ssize_t trials,
                 double u_first, const double *u, int64_t *chosen, double *closest, double *cum,
                 int32_t *head, int32_t *next, KeyIndex *moved, Py_ssize_t *cand, double *red,
                 double *bsum, uint8_t *dirty, int nt, const int C)
{
    double s = 0.0;
    for (Py_ssize_t j = 0; j < n; j++) {
        s += w[j];
        cum[j] = s;
    }
    Py_ssize_t first = search_right(cum, n, u_first * cum[n - 1]);
    chosen[0] = first > n - 1 ? n - 1 : first;
    const double *xf = x + chosen[0] * C;
    for (Py_ssize_t j = 0; j < n; j++) {
        closest[j] = dist2(x + j * C, xf, C);
        moved[j] = (KeyIndex){closest[j], (int32_t)j};
    }
    ki_sort(moved, n);
    head[0] = ki_link(moved, n, next);
    Py_ssize_t nb = (n + KPP_BLOCK - 1) / KPP_BLOCK;
    for (Py_ssize_t b = 0; b < nb; b++)
        bsum[b] = kpp_block_sum(w, closest, n, b);
    for (Py_ssize_t i = 1; i < k; i++) {
        double total = 0.0;
        for (Py_ssize_t b = 0; b < nb; b++)
            total += bsum[b];
        const double *draw = u + (i - 1) * trials;
        for (Py_ssize_t t = 0; t < trials; t++)
            cand[t] = kpp_draw(w, closest, n, bsum, nb, total, draw[t]);
        /* Early on every candidate scans most points; later only a few members. */
        Py_ssize_t t; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (PAR_IF(nt, n * trials / i)) schedule(dynamic, 1)
        for (t = 0; t < trials; t++)
            red[t] = kpp_reduction(x, w, closest, head, next, chosen, i, x + cand[t] * C, C);
        Py_ssize_t best = 0;
        for (Py_ssize_t t = 1; t < trials; t++)
            if (red[t] > red[best])
                best = t;
        chosen[i] = cand[best];
        Py_ssize_t count = kpp_commit(x, closest, head, next, chosen, i, moved, C);
        for (Py_ssize_t q = 0; q < count; q++)
            dirty[moved[q].i / KPP_BLOCK] = 1;
        for (Py_ssize_t b = 0; b < nb; b++)
            if (dirty[b]) {
                bsum[b] = kpp_block_sum(w, closest, n, b);
                dirty[b] = 0;
            }
    }
}

/* kmeanspp(points, weights, n, c, k, trials, u_first, u, chosen, nthreads) */
static PyObject *py_kmeanspp(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pb, wb, ub, ob;
    Py_ssize_t n, k, trials;
    int C, nt;
    double u_first;
    if (!PyArg_ParseTuple(args, "y*y*ninndy*w*i", &pb, &wb, &n, &C, &k, &trials, &u_first, &ub,
                          &ob, &nt))
        return NULL;
    PyObject *result = NULL;
    double *closest = NULL, *cum = NULL, *red = NULL, *bsum = NULL;
    uint8_t *dirty = NULL;
    int32_t *head = NULL, *next = NULL;
    KeyIndex *moved = NULL;
    Py_ssize_t *cand = NULL;
    if (check_threads(nt) < 0)
        goto done;
    if (n < 1 || n > INT32_MAX || C < 1 || C > MAX_DIMS || k < 1 || k > n ||
        trials < (k > 1 ? 1 : 0)) {
        PyErr_Format(PyExc_ValueError,
                     "expected 1 <= n < 2^31, 1 <= c <= %d, 1 <= k <= n, trials >= 1, got n=%zd "
                     "c=%d k=%zd trials=%zd",
                     MAX_DIMS, n, C, k, trials);
        goto done;
    }
    if (check_len(&pb, 8 * n * C, "points") < 0 || check_len(&wb, 8 * n, "weights") < 0 ||
        check_len(&ub, 8 * (k - 1) * trials, "u") < 0 || check_len(&ob, 8 * k, "chosen") < 0)
        goto done;
    Py_ssize_t tr = trials > 0 ? trials : 1;
    closest = malloc((size_t)n * sizeof *closest);
    cum = malloc((size_t)n * sizeof *cum);
    next = malloc((size_t)n * sizeof *next);
    head = malloc((size_t)k * sizeof *head);
    moved = malloc((size_t)n * sizeof *moved);
    bsum = malloc((size_t)(n / KPP_BLOCK + 1) * sizeof *bsum);
    dirty = calloc((size_t)(n / KPP_BLOCK + 1), 1);
    red = malloc((size_t)tr * sizeof *red);
    cand = malloc((size_t)tr * sizeof *cand);
    if (!closest || !cum || !next || !head || !moved || !bsum || !dirty || !red || !cand) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    BY_CHANNELS(C, kpp_run, pb.buf, wb.buf, n, k, trials, u_first, ub.buf, ob.buf, closest, cum,
                head, next, moved, cand, red, bsum, dirty, nt);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    free(closest);
    free(cum);
    free(next);
    free(head);
    free(moved);
    free(bsum);
    free(dirty);
    free(red);
    free(cand);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&ub);
    PyBuffer_Release(&ob);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* Exact nearest-centroid search                                                                */

/*
 * Two structures over the K centroids:
 *  - neighbour lists (K <= NB_MAX_K): for every centroid a its L nearest other centroids,
 *    ascending by distance ("gap"), ties by index. A centroid j can beat or tie the best so far
 *    b only if gap(a, j) <= d(x, a) + d(x, b) (triangle inequality), so a scan of a's list stops
 *    at the first gap beyond that (plus a relative rounding slack);
 *  - a sweep over the centroids sorted by one coordinate ("axis"): |x_axis - c_axis|^2 is, after
 *    rounding too, at most the computed squared distance, so walking outwards from x_axis in
 *    order of |x_axis - c_axis| can stop as soon as that square exceeds the best distance. Exact
 *    without any slack; used when a list runs out and for large K.
 */
typedef struct {
    int K, C;
    const double *cent; /* K x C */
    int L;              /* neighbours per centroid; 0: no lists */
    int32_t *nb;        /* K x L */
    double *nbgap;      /* K x L, the gaps when the lists were built */
    const double *drift; /* K: how far each centroid moved since the lists were built, or NULL */
    double dmax;         /* the largest drift: any gap shrank by at most drift[a] + dmax */
    double eps;          /* absolute slack of the list tests (Lloyd's drifting bounds) */
    int axis;
    int32_t *order; /* K: centroids ascending by coordinate `axis`, ties by index */
    double *skey;   /* K: that coordinate, in that order */
    double *sc;     /* K x C: the centroids in that order */
    int sorted;     /* order holds a previous sort (insertion sort refreshes it) */
} Search;

static void search_free(Search *s)
{
    free(s->nb);
    free(s->nbgap);
    free(s->order);
    free(s->skey);
    free(s->sc);
    memset(s, 0, sizeof *s);
}

/* Allocates the arrays for K centroids of C channels; 0 on success. */
static int search_alloc(Search *s, int K, int C)
{
    memset(s, 0, sizeof *s);
    s->K = K;
    s->C = C;
    s->L = (K >= 2 && K <= NB_MAX_K) ? (K - 1 < NB_LIST ? K - 1 : NB_LIST) : 0;
    if (s->L > 0) {
        s->nb = malloc((size_t)K * s->L * sizeof *s->nb);
        s->nbgap = malloc((size_t)K * s->L * sizeof *s->nbgap);
        if (!s->nb || !s->nbgap)
            return -1;
    }
    s->order = malloc((size_t)K * sizeof *s->order);
    s->skey = malloc((size_t)K * sizeof *s->skey);
    s->sc = malloc((size_t)K * C * sizeof *s->sc);
    if (!s->order || !s->skey || !s->sc)
        return -1;
    return 0;
}

static int cmp_key_index(const void *pa, const void *pb)
{
    const KeyIndex *a = pa, *b = pb;
    if (a->v < b->v)
        return -1;
    if (a->v > b->v)
        return 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* The L nearest other centroids of every centroid (insertion into a sorted list). */
static void build_lists(Search *s, int nt)
{
    int K = s->K, C = s->C, L = s->L;
    const double *cent = s->cent;
    int a; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (PAR_IF(nt, (Py_ssize_t)K * K / 4)) schedule(static)
    for (a = 0; a < K; a++) {
        int32_t *nb = s->nb + (size_t)a * L;
        double *g = s->nbgap + (size_t)a * L;
        const double *ca = cent + (size_t)a * C;
        int cnt = 0;
        for (int j = 0; j < K; j++) {
            if (j == a)
                continue;
            double d = dist2(ca, cent + (size_t)j * C, C);
            if (cnt == L && !(d < g[L - 1]))
                continue;
            int p = cnt < L ? cnt++ : L - 1;
            while (p > 0 && g[p - 1] > d) {
                g[p] = g[p - 1];
                nb[p] = nb[p - 1];
                p--;
            }
            g[p] = d;
            nb[p] = j;
        }
        for (int p = 0; p < L; p++)
            g[p] = sqrt(g[p]);
    }
}

/* Sort the centroids by coordinate `axis` (insertion sort from the previous order when there is
   one: centroids move little between Lloyd steps), then copy them in that order. */
static int build_sweep(Search *s)
{
    int K = s->K, C = s->C, axis = s->axis;
    const double *cent = s->cent;
    if (!s->sorted) {
        KeyIndex *tmp = malloc((size_t)K * sizeof *tmp);
        if (!tmp)
            return -1;
        for (int j = 0; j < K; j++) {
            tmp[j].v = cent[(size_t)j * C + axis];
            tmp[j].i = j;
        }
        qsort(tmp, (size_t)K, sizeof *tmp, cmp_key_index);
        for (int p = 0; p < K; p++) {
            s->order[p] = tmp[p].i;
            s->skey[p] = tmp[p].v;
        }
        free(tmp);
        s->sorted = 1;
    } else {
        for (int p = 0; p < K; p++) {
            int32_t j = s->order[p];
            double v = cent[(size_t)j * C + axis];
            int q = p;
            while (q > 0 && (s->skey[q - 1] > v || (s->skey[q - 1] == v && s->order[q - 1] > j))) {
                s->skey[q] = s->skey[q - 1];
                s->order[q] = s->order[q - 1];
                q--;
            }
            s->skey[q] = v;
            s->order[q] = j;
        }
    }
    for (int p = 0; p < K; p++)
        memcpy(s->sc + (size_t)p * C, cent + (size_t)s->order[p] * C, (size_t)C * sizeof(double));
    return 0;
}

/* The channel of largest spread among n rows of C channels. */
static int widest_axis(const double *x, Py_ssize_t n, int C)
{
    double lo[MAX_DIMS], hi[MAX_DIMS];
    for (int ch = 0; ch < C; ch++)
        lo[ch] = hi[ch] = x[ch];
    for (Py_ssize_t i = 1; i < n; i++)
        for (int ch = 0; ch < C; ch++) {
            double v = x[i * C + ch];
            if (v < lo[ch])
                lo[ch] = v;
            if (v > hi[ch])
                hi[ch] = v;
        }
    int axis = 0;
    for (int ch = 1; ch < C; ch++)
        if (hi[ch] - lo[ch] > hi[axis] - lo[axis])
            axis = ch;
    return axis;
}

typedef struct {
    int32_t best;  /* nearest centroid, lowest index on ties */
    int32_t sidx;  /* the runner-up among the centroids scanned, or -1 */
    double bd2;    /* squared distance to best */
    double second; /* squared distance to sidx */
    double third;  /* smallest squared distance of the other centroids scanned */
    double rest;   /* lower bound on the distance to the centroids not scanned */
} Found;

/* Take centroid j at squared distance d2 into account; returns whether best or second changed.
   Invariant: bd2 <= second <= third. */
HOT int consider(Found *f, int32_t j, double d2)
{
    if (d2 > f->third)
        return 0;
    if (d2 < f->bd2 || (d2 == f->bd2 && j < f->best)) {
        f->third = f->second;
        f->second = f->bd2;
        f->sidx = f->best;
        f->best = j;
        f->bd2 = d2;
        return 1;
    }
    if (d2 < f->second) {
        f->third = f->second;
        f->second = d2;
        f->sidx = j;
        return 1;
    }
    if (d2 < f->third)
        f->third = d2;
    return 0;
}

/* The squared distance a scan must confirm: the nearest (tight 0), the runner-up (1), the third
   (2). */
#define LIMIT(f, tight) ((tight) == 2 ? (f)->third : (tight) == 1 ? (f)->second : (f)->bd2)

/* Sweep over all centroids, except `exclude`, from f's state. With tight, it runs until the
   second nearest is exact too (Lloyd's lower bounds); otherwise until the nearest is. */
HOT void sweep_impl(const Search *s, const double *x, int32_t exclude, int tight, Found *f,
                   const int C)
{
    int K = s->K;
    double xa = x[s->axis];
    const double *skey = s->skey;
    int lo = 0, hi = K;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (skey[mid] < xa)
            lo = mid + 1;
        else
            hi = mid;
    }
    int r = lo, l = lo - 1;
    f->rest = INFINITY;
    for (;;) {
        double tr = r < K ? skey[r] - xa : INFINITY;
        double tl = l >= 0 ? xa - skey[l] : INFINITY;
        int p;
        double t;
        if (tr <= tl) {
            t = tr;
            p = r;
        } else {
            t = tl;
            p = l;
        }
        if (p < 0 || p >= K)
            break;
        double limit = LIMIT(f, tight);
        if (t * t > limit) {
            f->rest = t;
            break;
        }
        if (p == r)
            r++;
        else
            l--;
        int32_t j = s->order[p];
        if (j == exclude || j == f->best || j == f->sidx)
            continue;
        consider(f, j, dist2(x, s->sc + (size_t)p * C, C));
    }
}

/* Exact nearest centroid of x, starting from centroid a (at squared distance d2a). With tight,
   f->second and f->rest make a good lower bound on the distance to every other centroid. */
HOT void search_impl(const Search *s, const double *x, int32_t a, double d2a, int tight, Found *f,
                    const int C)
{
    f->best = a;
    f->sidx = -1;
    f->bd2 = d2a;
    f->second = INFINITY;
    f->third = INFINITY;
    f->rest = INFINITY;
    int K = s->K, L = s->L;
    if (K == 1)
        return;
    if (L > 0) {
        int32_t center = a;
        for (int round = 0; round < 2; round++) {
            const int32_t *nb = s->nb + (size_t)center * L;
            const double *g = s->nbgap + (size_t)center * L;
            /* The lists may predate the last moves: every gap shrank by at most corr. */
            double corr = (s->drift ? s->drift[center] + s->dmax : 0.0) + s->eps;
            double dc = sqrt(f->bd2);
            /* Stop at the first g with (g - corr) / (1 + slack) - dc > sqrt(lim2), compared
               squared: no square root in the loop. */
            double lim2 = LIMIT(f, tight);
            int p;
            for (p = 0; p < L; p++) {
                double h = (g[p] - corr) * (1.0 - REL_SLACK) - dc;
                if (h > 0.0 && h * h > lim2)
                    break;
                int32_t j = nb[p];
                if (j == f->best || j == f->sidx)
                    continue;
                consider(f, j, dist2(x, s->cent + (size_t)j * C, C));
                lim2 = LIMIT(f, tight);
            }
            if (p < L) {
                f->rest = g[p] - corr - dc;
                return;
            }
            if (L == K - 1) {
                f->rest = INFINITY;
                return;
            }
            /* Out of neighbours: the centroids beyond lie at least g[L-1] - corr - dc away. */
            double last = g[L - 1] - corr;
            if (last > (dc + sqrt(f->bd2)) * (1.0 + REL_SLACK)) {
                f->rest = last - dc;
                return;
            }
            if (f->best == center)
                break;
            center = f->best;
        }
    }
    sweep_impl(s, x, -1, tight, f, C);
}

static void sweep(const Search *s, const double *x, int32_t exclude, int tight, Found *f)
{
    BY_CHANNELS(s->C, sweep_impl, s, x, exclude, tight, f);
}

/* ------------------------------------------------------------------------------------------ */
/* Processing order                                                                             */

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

/* ------------------------------------------------------------------------------------------ */
/* nearest                                                                                      */

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
    PyObject *result = NULL;
    Search s;
    memset(&s, 0, sizeof s);
    if (check_threads(nt) < 0)
        goto done;
    if (n < 0 || C < 1 || C > MAX_DIMS || K < 1) {
        PyErr_Format(PyExc_ValueError, "expected n >= 0, 1 <= c <= %d, k >= 1, got %zd %d %d",
                     MAX_DIMS, n, C, K);
        goto done;
    }
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
    PyBuffer_Release(&pb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&ib);
    PyBuffer_Release(&db);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* Color spaces                                                                                 */

/* Color spaces of dither_ordered (colorquant.color.COLOR_SPACES, in order), and the layout of
   its constants: two 3x3 matrices (row-major), the white point, DIN99b's constants and the
   hybrid weight. */
enum { SPACE_RGB, SPACE_LAB, SPACE_OKLAB, SPACE_DIN99, SPACE_HYBRID, N_SPACES };
enum { P_M1 = 0, P_M2 = 9, P_WHITE = 18, P_DIN = 21, P_WEIGHT = 28, N_PARAMS = 29 };

/* The cube root of a positive normal x, to a few units in the last place (twice as fast as
   libm's cbrt): a first guess from the bits of x (its exponent divided by 3), two Halley steps
   and a Newton step. */
static inline double cube_root(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits = bits / 3 + UINT64_C(0x2A9F7893782DA1CE);
    double y;
    memcpy(&y, &bits, sizeof y);
    for (int k = 0; k < 2; k++) {
        double y3 = y * y * y;
        y = y * (y3 + 2.0 * x) / (2.0 * y3 + x);
    }
    double y2 = y * y;
    return y - (y2 * y - x) / (3.0 * y2);
}

/* y = M x for a row-major 3x3 M, each output summed in order. */
static inline void mat3(const double *m, const double *x, double *y)
{
    for (int r = 0; r < 3; r++) {
        double s = m[3 * r] * x[0];
        s += m[3 * r + 1] * x[1];
        s += m[3 * r + 2] * x[2];
        y[r] = s;
    }
}

/* The coordinates of `space` (colorquant.color.embed) from a pixel's sRGB on the 0..255 scale
   (rgb) and in linear light (lin): the formulas of color.py, in float64 (cube roots by
   cube_root: the last bits may differ from NumPy's power). out: 3 coordinates, 6 for hybrid. */
static inline void embed_pixel(int space, const double *p, const double *rgb, const double *lin,
                               double *out)
{
    double t[3], u[3];
    if (space == SPACE_RGB) {
        out[0] = rgb[0];
        out[1] = rgb[1];
        out[2] = rgb[2];
        return;
    }
    if (space == SPACE_OKLAB) {
        mat3(p + P_M1, lin, t);
        for (int ch = 0; ch < 3; ch++) {
            double m = fabs(t[ch]);
            u[ch] = m > 1e-30 ? (t[ch] < 0.0 ? -1.0 : 1.0) * cube_root(m) : 0.0;
        }
        mat3(p + P_M2, u, out);
        return;
    }
    /* CIELAB: XYZ over the white point, CIELAB's piecewise cube root. */
    const double delta = 6.0 / 29.0, d3 = delta * delta * delta;
    mat3(p + P_M1, lin, t);
    for (int ch = 0; ch < 3; ch++) {
        double r = t[ch] / p[P_WHITE + ch];
        u[ch] = r > d3 ? cube_root(r) : r / (3 * delta * delta) + 4.0 / 29.0;
    }
    double light = 116.0 * u[1] - 16.0, a = 500.0 * (u[0] - u[1]), b = 200.0 * (u[1] - u[2]);
    if (space == SPACE_LAB) {
        out[0] = light;
        out[1] = a;
        out[2] = b;
        return;
    }
    /* DIN99b: log lightness, rotated and squeezed chroma on a log scale. */
    const double *c = p + P_DIN; /* c1, c2, cos, sin, squeeze, c5, c6 */
    double e = a * c[2] + b * c[3], f = c[4] * (b * c[2] - a * c[3]);
    double g2 = e * e + f * f, ratio = c[5] * c[6];
    if (g2 > 1e-24) {
        double g = sqrt(g2);
        ratio = c[5] * log1p(c[6] * g) / g;
    }
    double din[3] = {c[0] * log1p(c[1] * light), ratio * (e * c[2] - f * c[3]),
                     ratio * (f * c[2] + e * c[3])};
    if (space == SPACE_DIN99) {
        memcpy(out, din, sizeof din);
        return;
    }
    for (int ch = 0; ch < 3; ch++) {
        out[ch] = rgb[ch];
        out[3 + ch] = din[ch] * p[P_WEIGHT];
    }
}

/* sRGB in [0, 1] to linear light (IEC 61966-2-1), as colorquant.color.srgb_to_linear. */
static inline double srgb_linear(double u)
{
    return u <= 0.04045 ? u / 12.92 : pow((u + 0.055) / 1.055, 2.4);
}

/* y = M x over intervals (lo, hi) of x: each output's bounds. */
static void mat3_box(const double *m, const double *lo, const double *hi, double *ylo, double *yhi)
{
    for (int r = 0; r < 3; r++) {
        double a = 0.0, b = 0.0;
        for (int c = 0; c < 3; c++) {
            double u = m[3 * r + c] * lo[c], v = m[3 * r + c] * hi[c];
            a += min_d(u, v);
            b += max_d(u, v);
        }
        ylo[r] = a;
        yhi[r] = b;
    }
}

/* Bounds of p * q for p in [plo, phi] with 0 < plo, and q in [qlo, qhi]. */
static inline void scale_box(double plo, double phi, double qlo, double qhi, double *lo, double *hi)
{
    *lo = qlo >= 0.0 ? plo * qlo : phi * qlo;
    *hi = qhi >= 0.0 ? phi * qhi : plo * qhi;
}

/* A box that holds the coordinates of `space` (embed_pixel) of every sRGB color in the box
   klo..khi (0..255 scale): interval arithmetic through the formulas, every step monotone or
   bounded by its corners, then widened by a relative 1e-8 for rounding. out: C bounds. */
static void embed_box(int space, const double *p, const double *klo, const double *khi,
                      double *lo, double *hi)
{
    int C = space == SPACE_HYBRID ? 6 : 3;
    if (space == SPACE_RGB) {
        memcpy(lo, klo, 3 * sizeof *lo);
        memcpy(hi, khi, 3 * sizeof *hi);
    } else {
        double llo[3], lhi[3], tlo[3], thi[3], ulo[3], uhi[3];
        for (int ch = 0; ch < 3; ch++) {
            double a = klo[ch] / 255.0, b = khi[ch] / 255.0;
            llo[ch] = srgb_linear(a);
            lhi[ch] = srgb_linear(b);
            if (a <= 0.04045 && 0.04045 <= b) /* the two pieces do not quite meet there */
                lhi[ch] = max_d(lhi[ch], 0.04045 / 12.92);
        }
        mat3_box(p + P_M1, llo, lhi, tlo, thi);
        if (space == SPACE_OKLAB) {
            for (int ch = 0; ch < 3; ch++) {
                ulo[ch] = cbrt(tlo[ch]);
                uhi[ch] = cbrt(thi[ch]);
            }
            mat3_box(p + P_M2, ulo, uhi, lo, hi);
        } else {
            const double delta = 6.0 / 29.0, d3 = delta * delta * delta;
            for (int ch = 0; ch < 3; ch++) {
                double a = tlo[ch] / p[P_WHITE + ch], b = thi[ch] / p[P_WHITE + ch];
                ulo[ch] = a > d3 ? cbrt(a) : a / (3 * delta * delta) + 4.0 / 29.0;
                uhi[ch] = b > d3 ? cbrt(b) : b / (3 * delta * delta) + 4.0 / 29.0;
            }
            double L0 = 116.0 * ulo[1] - 16.0, L1 = 116.0 * uhi[1] - 16.0;
            double a0 = 500.0 * (ulo[0] - uhi[1]), a1 = 500.0 * (uhi[0] - ulo[1]);
            double b0 = 200.0 * (ulo[1] - uhi[2]), b1 = 200.0 * (uhi[1] - ulo[2]);
            if (space == SPACE_LAB) {
                lo[0] = L0, lo[1] = a0, lo[2] = b0;
                hi[0] = L1, hi[1] = a1, hi[2] = b1;
            } else {
                const double *c = p + P_DIN; /* c1, c2, cos, sin, squeeze, c5, c6 */
                /* (e, f) and (e cos - f sin, f cos + e sin) are linear in (fx, fy, fz): bound
                   them in one step from the box of (fx, fy, fz), not step by step (each step
                   of interval arithmetic would widen the box again). */
                double ab[6] = {500.0, -500.0, 0.0, 0.0, 200.0, -200.0}; /* (a, b) */
                double ef[6], uv[6];
                for (int q = 0; q < 3; q++) {
                    ef[q] = c[2] * ab[q] + c[3] * ab[3 + q];
                    ef[3 + q] = c[4] * (c[2] * ab[3 + q] - c[3] * ab[q]);
                }
                for (int q = 0; q < 3; q++) {
                    uv[q] = c[2] * ef[q] - c[3] * ef[3 + q];
                    uv[3 + q] = c[2] * ef[3 + q] + c[3] * ef[q];
                }
                double efl[2], efh[2], uvl[2], uvh[2], x0, x1, y0, y1;
                for (int r = 0; r < 2; r++) {
                    efl[r] = efh[r] = uvl[r] = uvh[r] = 0.0;
                    for (int q = 0; q < 3; q++) {
                        double m = ef[3 * r + q], n = uv[3 * r + q];
                        efl[r] += min_d(m * ulo[q], m * uhi[q]);
                        efh[r] += max_d(m * ulo[q], m * uhi[q]);
                        uvl[r] += min_d(n * ulo[q], n * uhi[q]);
                        uvh[r] += max_d(n * ulo[q], n * uhi[q]);
                    }
                }
                double e0 = efl[0], e1 = efh[0], f0 = efl[1], f1 = efh[1];
                /* g = |(e, f)| and the factor c5 log1p(c6 g) / g, decreasing in g. */
                double ge = e0 > 0.0 ? e0 : e1 < 0.0 ? -e1 : 0.0;
                double gf = f0 > 0.0 ? f0 : f1 < 0.0 ? -f1 : 0.0;
                double gmin = sqrt(ge * ge + gf * gf);
                double me = max_d(fabs(e0), fabs(e1)), mf = max_d(fabs(f0), fabs(f1));
                double gmax = sqrt(me * me + mf * mf);
                double rhi = gmin > 1e-12 ? c[5] * log1p(c[6] * gmin) / gmin : c[5] * c[6];
                double rlo = gmax > 1e-12 ? c[5] * log1p(c[6] * gmax) / gmax : c[5] * c[6];
                rlo = min_d(rlo, rhi);
                /* (a99, b99) = ratio (u, v): no longer than C99(gmax) either. */
                scale_box(rlo, rhi, uvl[0], uvh[0], &x0, &x1);
                scale_box(rlo, rhi, uvl[1], uvh[1], &y0, &y1);
                double reach = c[5] * log1p(c[6] * gmax);
                double din_lo[3] = {c[0] * log1p(c[1] * L0), max_d(x0, -reach), max_d(y0, -reach)};
                double din_hi[3] = {c[0] * log1p(c[1] * L1), min_d(x1, reach), min_d(y1, reach)};
                if (space == SPACE_DIN99) {
                    memcpy(lo, din_lo, sizeof din_lo);
                    memcpy(hi, din_hi, sizeof din_hi);
                } else {
                    for (int ch = 0; ch < 3; ch++) {
                        lo[ch] = klo[ch];
                        hi[ch] = khi[ch];
                        lo[3 + ch] = din_lo[ch] * p[P_WEIGHT];
                        hi[3 + ch] = din_hi[ch] * p[P_WEIGHT];
                    }
                }
            }
        }
    }
    for (int d = 0; d < C; d++) {
        double pad = 1e-8 * (1.0 + fabs(lo[d]) + fabs(hi[d]));
        lo[d] -= pad;
        hi[d] += pad;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Candidate grid: exact nearest palette point of dithered pixels                              */

/*
 * Dithered pixels leave the image's histogram (error or an offset moves them), so every pixel
 * needs its own exact search. Each point has a key in [0, 255]^D: its first D = min(C,
 * GRID_DIMS) channels (Floyd-Steinberg), or its sRGB color when the point is that color's
 * coordinates in a color space (ordered dithering). The key cube is cut into cells of side
 * 2^shift, and a cell's box in point space bounds the points of its keys: the key box itself
 * (the channels past D spanning 0..255 whole), or embed_box's. A cell's candidates are the
 * palette points that can be the nearest, or tie with it, somewhere in that box: those whose
 * smallest squared distance to the box is at most the smallest, over all palette points, of the
 * largest squared distance to the box (times 1 + GRID_SLACK, for rounding). The nearest point
 * is then the first smallest float64 distance among the candidates, kept in index order: the
 * same as a brute force over the whole palette, lowest index on ties. A cell is built when a
 * key first falls in it (a photo visits a few thousand cells).
 */
#define GRID_DIMS 4
#define GRID_SLACK 1e-9
#define GRID_PARTS 2

typedef struct {
    int K, C, D, shift, bits;
    int space;             /* points: the keys themselves (-1), or their coordinates in a space */
    const double *params;  /* that space's constants */
    const double *pal;     /* K x C */
    int32_t *cells;    /* per cell: where its candidates begin in idx (and coord), -1 while not
                          built, then how many */
    int32_t *coarse;   /* the same for cells of side 2^(shift + 2), each fine cell built from
                          the candidates of the coarse cell around it */
    int32_t *idx;      /* candidates of the built cells, each cell's in ascending index order */
    double *coord;     /* their colors, C each */
    double *near;      /* their smallest squared distance to their cell's box */
    double *rest;      /* the smallest and largest squared distance over channels 3.. alone */
    int sorted;        /* lists of the fine cells ascending by `near` (ties by index) */
    double *low;       /* K: scratch, each color's smallest squared distance to a cell */
    int32_t *sel;      /* K: scratch, the colors kept for a cell */
    Py_ssize_t used, cap;
} Grid;

static void grid_free(Grid *g)
{
    free(g->cells);
    free(g->coarse);
    free(g->idx);
    free(g->coord);
    free(g->low);
    free(g->sel);
    free(g->near);
    free(g->rest);
    memset(g, 0, sizeof *g);
}

/* Cells of side 2^shift over the first D channels: 2^16 at most. */
static int grid_shift(int D) { return D <= 2 ? 0 : D == 3 ? 3 : 4; }

/* 0 on success, -1 when out of memory. */
static int grid_init(Grid *g, const double *pal, int K, int C, int D, int space,
                     const double *params)
{
    memset(g, 0, sizeof *g);
    g->K = K;
    g->C = C;
    g->D = D;
    g->space = space;
    g->params = params;
    g->sorted = space >= 0;
    g->pal = pal;
    /* Ordered dithering: cells of 16 levels from K = 32 on (fewer to build; measured faster). */
    g->shift = space >= 0 && K >= 32 ? 4 : grid_shift(g->D);
    g->bits = 8 - g->shift;
    size_t cells = (size_t)1 << (g->D * g->bits), coarse = (size_t)1 << (g->D * (g->bits - 2));
    g->cells = malloc(2 * cells * sizeof *g->cells);
    g->coarse = malloc(2 * coarse * sizeof *g->coarse);
    g->low = malloc((size_t)K * sizeof *g->low);
    g->sel = malloc((size_t)K * sizeof *g->sel);
    g->cap = 4 * (Py_ssize_t)K + 1024;
    g->idx = malloc((size_t)g->cap * sizeof *g->idx);
    g->coord = malloc((size_t)g->cap * C * sizeof *g->coord);
    g->near = malloc((size_t)g->cap * sizeof *g->near);
    g->rest = malloc((size_t)g->cap * 2 * sizeof *g->rest);
    if (!g->cells || !g->coarse || !g->low || !g->sel || !g->idx || !g->coord || !g->near ||
        !g->rest)
        return -1;
    memset(g->cells, 0xff, 2 * cells * sizeof *g->cells);
    memset(g->coarse, 0xff, 2 * coarse * sizeof *g->coarse);
    return 0;
}

/* The candidates for the box lo..hi among the n colors at `from` in the pool (the whole
   palette when from < 0), appended to the pool; slot[0], slot[1]: where they begin, how many.
   0, or -1 when out of memory. */
static int grid_fill(Grid *g, const double *lo, const double *hi, Py_ssize_t from, int n,
                     int sorted, int32_t *slot)
{
    int C = g->C;
    double bound = INFINITY;
    for (int t = 0; t < n; t++) {
        const double *c = from < 0 ? g->pal + (size_t)t * C : g->coord + (size_t)(from + t) * C;
        double near = 0.0, far = 0.0;
        for (int d = 0; d < C; d++) {
            double a = lo[d] - c[d], b = c[d] - hi[d];
            double out = max_d(0.0, max_d(a, b)), wide = max_d(-a, -b);
            near += out * out;
            far += wide * wide;
        }
        g->low[t] = near;
        bound = min_d(bound, far);
    }
    bound = bound * (1.0 + GRID_SLACK) + GRID_SLACK;
    Py_ssize_t m = 0;
    for (int t = 0; t < n; t++)
        m += g->low[t] <= bound;
    if (g->used + m > INT32_MAX)
        return -1;
    if (g->used + m > g->cap) {
        Py_ssize_t cap = min_ssize(2 * g->cap + m, INT32_MAX);
        int32_t *idx = realloc(g->idx, (size_t)cap * sizeof *idx);
        if (!idx)
            return -1;
        g->idx = idx;
        double *coord = realloc(g->coord, (size_t)cap * C * sizeof *coord);
        if (!coord)
            return -1;
        g->coord = coord;
        double *near = realloc(g->near, (size_t)cap * sizeof *near);
        if (!near)
            return -1;
        g->near = near;
        double *rest = realloc(g->rest, (size_t)cap * 2 * sizeof *rest);
        if (!rest)
            return -1;
        g->rest = rest;
        g->cap = cap;
    }
    /* The chosen ones in index order, then (sorted) stably by their distance to the box. */
    int32_t *sel = g->sel;
    int count = 0;
    for (int t = 0; t < n; t++)
        if (g->low[t] <= bound) {
            int q = count++;
            if (sorted)
                for (; q > 0 && g->low[sel[q - 1]] > g->low[t]; q--)
                    sel[q] = sel[q - 1];
            sel[q] = t;
        }
    slot[0] = (int32_t)g->used;
    slot[1] = (int32_t)m;
    for (int q = 0; q < count; q++) {
        int t = sel[q];
        Py_ssize_t u = g->used++;
        const double *src = from < 0 ? g->pal + (size_t)t * C : g->coord + (from + t) * C;
        double *c = g->coord + u * C;
        g->idx[u] = from < 0 ? t : g->idx[from + t];
        for (int d = 0; d < C; d++)
            c[d] = src[d];
        g->near[u] = g->low[t];
        double r0 = 0.0, r1 = 0.0;
        for (int d = 3; d < C; d++) {
            double a = lo[d] - c[d], b = c[d] - hi[d];
            double out = max_d(0.0, max_d(a, b)), wide = max_d(-a, -b);
            r0 += out * out;
            r1 += wide * wide;
        }
        g->rest[2 * u] = r0;
        g->rest[2 * u + 1] = r1;
    }
    return 0;
}

/* The box in point space of a cell of side 2^shift (bits = 8 - shift per key channel). */
static void grid_box(const Grid *g, Py_ssize_t cell, int shift, double *lo, double *hi)
{
    int bits = 8 - shift;
    double klo[GRID_DIMS], khi[GRID_DIMS];
    for (int d = 0; d < g->D; d++) {
        int q = (int)((cell >> (d * bits)) & ((1 << bits) - 1));
        klo[d] = (double)(q << shift);
        khi[d] = min_d((double)((q + 1) << shift), 255.0);
    }
    if (g->space >= 0) {
        /* The union of the boxes of parts of the cell: interval arithmetic overestimates in
           proportion to the width it starts from. */
        const int parts = GRID_PARTS;
        for (int d = 0; d < g->C; d++) {
            lo[d] = INFINITY;
            hi[d] = -INFINITY;
        }
        for (int q = 0; q < parts * parts * parts; q++) {
            double plo[3], phi[3], blo[MAX_DIMS] = {0.0}, bhi[MAX_DIMS] = {0.0};
            for (int d = 0, r = q; d < 3; d++, r /= parts) {
                double step = (khi[d] - klo[d]) / parts;
                plo[d] = klo[d] + (r % parts) * step;
                phi[d] = r % parts == parts - 1 ? khi[d] : klo[d] + (r % parts + 1) * step;
            }
            embed_box(g->space, g->params, plo, phi, blo, bhi);
            for (int d = 0; d < g->C; d++) {
                lo[d] = min_d(lo[d], blo[d]);
                hi[d] = max_d(hi[d], bhi[d]);
            }
        }
        return;
    }
    for (int d = 0; d < g->C; d++) {
        lo[d] = d < g->D ? klo[d] : 0.0;
        hi[d] = d < g->D ? khi[d] : 255.0;
    }
}

/* The candidates of cell `cell`, from those of its coarse cell (built first if need be): a color
   that can be the nearest somewhere in the cell can be so in the coarse cell. 0, or -1 when out
   of memory. */
static int grid_build(Grid *g, Py_ssize_t cell)
{
    double lo[MAX_DIMS], hi[MAX_DIMS];
    int bits = g->bits, mask = (1 << bits) - 1;
    Py_ssize_t parent = 0;
    for (int d = 0; d < g->D; d++)
        parent |= (Py_ssize_t)(((cell >> (d * bits)) & mask) >> 2) << (d * (bits - 2));
    int32_t *up = g->coarse + 2 * parent;
    if (up[0] < 0) {
        grid_box(g, parent, g->shift + 2, lo, hi);
        if (grid_fill(g, lo, hi, -1, g->K, 0, up) < 0)
            return -1;
    }
    grid_box(g, cell, g->shift, lo, hi);
    return grid_fill(g, lo, hi, up[0], up[1], g->sorted, g->cells + 2 * cell);
}

/* Where the last query fell: consecutive pixels mostly share a cell. */
typedef struct {
    Py_ssize_t cell;      /* -1: none yet */
    const int32_t *idx;   /* its candidates */
    const double *coord;  /* their colors */
    const double *near;   /* their smallest squared distance to the cell's box */
    const double *rest;   /* over channels 3.. alone, the smallest and the largest */
    int n;
    int last;             /* the place of the last answer among them */
} GridCursor;

/* Points the cursor at the cell of `key` (each of its D channels in [0, 255]), built first if
   need be; 0, or -1 when out of memory. */
HOT int grid_find(Grid *g, GridCursor *at, const double *key, const int D, const int C)
{
    const int shift = g->shift, bits = 8 - shift;
    Py_ssize_t cell = 0;
    for (int d = 0; d < D; d++)
        cell |= (Py_ssize_t)((int)key[d] >> shift) << (d * bits);
    if (cell != at->cell) {
        if (g->cells[2 * cell] < 0 && grid_build(g, cell) < 0)
            return -1;
        at->cell = cell;
        at->idx = g->idx + g->cells[2 * cell];
        at->coord = g->coord + (size_t)g->cells[2 * cell] * C;
        at->near = g->near + g->cells[2 * cell];
        at->rest = g->rest + 2 * (size_t)g->cells[2 * cell];
        at->n = g->cells[2 * cell + 1];
        at->last = 0;
    }
    return 0;
}

/* The nearest palette row to v among the cursor's candidates (v in its cell's box): exact,
   lowest index on ties. *color points to that row's point. */
HOT int32_t grid_scan(const GridCursor *at, const double *v, const double **color, const int C)
{
    const double *c = at->coord;
    int n = at->n, t_best = 0;
    double bd = dist2(v, c, C);
    for (int t = 1; t < n; t++) {
        double d = dist2(v, c + (size_t)t * C, C);
        if (d < bd) {
            bd = d;
            t_best = t;
        }
    }
    *color = c + (size_t)t_best * C;
    return at->idx[t_best];
}

/* grid_scan over a cell's candidates sorted by their distance to the cell's box (ordered
   dithering): from the last answer, a candidate is only finished when the sum of its first P
   channels' squares (a lower bound, and the start of the same sum in the same order) does not
   exceed the best distance, and the scan stops at the first candidate whose box distance
   (less a relative 1e-9 for rounding) does. Exact, lowest index on ties. */
HOT int32_t grid_scan_sorted(GridCursor *at, const double *v, const int C)
{
    const int P = C == 6 ? 3 : 1;
    const double *c = at->coord, *near = at->near;
    const int32_t *idx = at->idx;
    int n = at->n, t_best = at->last;
    double bd = dist2(v, c + (size_t)t_best * C, C);
    for (int t = 0; t < n && near[t] * (1.0 - 1e-9) <= bd; t++) {
        const double *ct = c + (size_t)t * C;
        double s = 0.0;
        for (int ch = 0; ch < P; ch++) {
            double d = v[ch] - ct[ch];
            s += d * d;
        }
        if (s > bd || t == t_best)
            continue;
        for (int ch = P; ch < C; ch++) {
            double d = v[ch] - ct[ch];
            s += d * d;
        }
        if (s < bd || (s == bd && idx[t] < idx[t_best])) {
            bd = s;
            t_best = t;
        }
    }
    at->last = t_best;
    return idx[t_best];
}

/* Hybrid points (C = 6) whose first 3 coordinates are known (the sRGB key), the others only to
   lie in the cell's box: the nearest candidate when that decides it (bounds of every distance,
   the other channels' part from the cell), else -1. Used up to BOUNDS_MAX candidates. */
#define BOUNDS_MAX 8

HOT int32_t grid_decide(GridCursor *at, const double *key)
{
    const double *c = at->coord, *rest = at->rest;
    int n = at->n, t_best = 0;
    double lower[BOUNDS_MAX], upper = INFINITY;
    for (int t = 0; t < n; t++) {
        const double *ct = c + (size_t)t * 6;
        double d0 = key[0] - ct[0], d1 = key[1] - ct[1], d2 = key[2] - ct[2];
        double s = d0 * d0;
        s += d1 * d1;
        s += d2 * d2;
        lower[t] = (s + rest[2 * t]) * (1.0 - 1e-9);
        double up = (s + rest[2 * t + 1]) * (1.0 + 1e-9);
        if (up < upper) {
            upper = up;
            t_best = t;
        }
    }
    for (int t = 0; t < n; t++)
        if (t != t_best && !(lower[t] > upper))
            return -1;
    at->last = t_best;
    return at->idx[t_best];
}

/* ------------------------------------------------------------------------------------------ */
/* Floyd-Steinberg error diffusion                                                              */

/* Rows y0..y1-1 of serpentine Floyd-Steinberg (even rows left to right), starting with no
   error, the rows from y_out on written to index; rows: 2 (w + 2) C doubles of scratch. The
   error a pixel passes ahead (7/16) stays in `carry`, added to what the row above left there:
   the same sum, in the same order, as adding it to the row buffer. 0, or -1 when out of
   memory. */
HOT int fs_rows(const uint8_t *px, Py_ssize_t y0, Py_ssize_t y_out, Py_ssize_t y1, Py_ssize_t w,
                const float *strength, double max_error, Grid *g, double *rows, int32_t *index,
                const int C)
{
    GridCursor at = {-1, NULL, NULL, NULL, NULL, 0, 0};
    double *cur = rows, *next = rows + (size_t)(w + 2) * C; /* column x at offset (x + 1) C */
    memset(cur, 0, (size_t)(w + 2) * C * sizeof *cur);
    for (Py_ssize_t y = y0; y < y1; y++) {
        const int forward = (y % 2) == 0;
        const Py_ssize_t step = forward ? 1 : -1;
        memset(next, 0, (size_t)(w + 2) * C * sizeof *next);
        double carry[MAX_DIMS];
        for (int ch = 0; ch < C; ch++)
            carry[ch] = 0.0;
        Py_ssize_t x = forward ? 0 : w - 1;
        for (Py_ssize_t q = 0; q < w; q++, x += step) {
            Py_ssize_t i = y * w + x;
            double *below = next + (x + 1) * C;
            const double *above = cur + (x + 1) * C;
            double v[MAX_DIMS];
            for (int ch = 0; ch < C; ch++) {
                double e = min_d(max_d(above[ch] + carry[ch], -max_error), max_error);
                v[ch] = min_d(max_d(px[i * C + ch] + e, 0.0), 255.0);
            }
            if (grid_find(g, &at, v, C < GRID_DIMS ? C : GRID_DIMS, C) < 0)
                return -1;
            const double *c;
            int32_t best = grid_scan(&at, v, &c, C);
            if (y >= y_out)
                index[i] = best;
            double k = (double)strength[i] / 16.0;
            for (int ch = 0; ch < C; ch++) {
                double err = (v[ch] - c[ch]) * k;
                carry[ch] = 7.0 * err;
                below[ch - step * C] += 3.0 * err;
                below[ch] += 5.0 * err;
                below[ch + step * C] += err;
            }
        }
        double *t = cur;
        cur = next;
        next = t;
    }
    return 0;
}

/* dither_fs(pixels, h, w, c, palette, k, strength, max_error, index, band, warm, nthreads):
   serpentine Floyd-Steinberg on 8-bit channels. Each pixel plus the error diffused into it
   (each channel clamped to +-max_error, then to 0..255) takes its nearest palette color (exact,
   lowest index on ties, from the candidate grid); strength[i] (0..1, per pixel) scales the
   error it passes on: less on edges and noise. Rows alternate direction; the error runs in two
   row buffers. Error diffusion is sequential: the image is cut into bands of `band` rows (band =
   h: one), each run on its own from `warm` rows above it with no error there, and the bands are
   shared among the threads (each with its own grid): the result depends on band and warm, never
   on the number of threads. */
static PyObject *py_dither_fs(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pb, cb, sb, ib;
    Py_ssize_t h, w, band, warm;
    int C, K, nt;
    double max_error;
    if (!PyArg_ParseTuple(args, "y*nniy*iy*dw*nni", &pb, &h, &w, &C, &cb, &K, &sb, &max_error,
                          &ib, &band, &warm, &nt))
        return NULL;
    PyObject *result = NULL;
    Grid *grids = NULL;
    double *rows = NULL;
    int ngrids = 0;
    if (check_threads(nt) < 0)
        goto done;
    if (h < 1 || w < 1 || h * w > INT32_MAX || C < 1 || C > MAX_DIMS || K < 1 ||
        !(max_error >= 0.0) || band < 1 || warm < 0) {
        PyErr_Format(PyExc_ValueError,
                     "expected h, w >= 1 with h * w < 2^31, 1 <= c <= %d, k >= 1, max_error >= 0, "
                     "band >= 1, warm >= 0, got %zd %zd %d %d %g %zd %zd",
                     MAX_DIMS, h, w, C, K, max_error, band, warm);
        goto done;
    }
    if (check_len(&pb, C * h * w, "pixels") < 0 ||
        check_len(&cb, 8 * (Py_ssize_t)C * K, "palette") < 0 ||
        check_len(&sb, 4 * h * w, "strength") < 0 || check_len(&ib, 4 * h * w, "index") < 0)
        goto done;
    Py_ssize_t bands = (h + band - 1) / band, stride = (Py_ssize_t)2 * (w + 2) * C;
    int team = PAR_IF(nt, h * w) ? (int)min_ssize(nt, bands) : 1;
    grids = calloc((size_t)team, sizeof *grids);
    rows = malloc((size_t)team * stride * sizeof *rows);
    if (!grids || !rows) {
        PyErr_NoMemory();
        goto done;
    }
    for (; ngrids < team; ngrids++)
        if (grid_init(&grids[ngrids], cb.buf, K, C, C < GRID_DIMS ? C : GRID_DIMS, -1, NULL) < 0) {
            ngrids++;
            PyErr_NoMemory();
            goto done;
        }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t b; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(team) if (team > 1) schedule(dynamic, 1) reduction(| : failed)
    for (b = 0; b < bands; b++) {
        int t = THREAD_ID();
        Py_ssize_t y_out = b * band, y0 = y_out > warm ? y_out - warm : 0;
        failed |= BY_CHANNELS(C, fs_rows, pb.buf, y0, y_out, min_ssize(h, y_out + band), w,
                              sb.buf, max_error, &grids[t], rows + t * stride, ib.buf) < 0;
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    for (int t = 0; t < ngrids; t++)
        grid_free(&grids[t]);
    free(grids);
    free(rows);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&ib);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* Ordered dithering                                                                            */

/* Rows y0..y1-1 of the ordered map: each pixel's level (its place in the 8x8 tile) selects a row
   of the tables, which give each channel shifted by the level's offset. Its point in `space`
   is computed only when its cell has more than one candidate. */
/* Answers remembered per thread: 2^MEMO_BITS slots, each a (level, color) key and its row. */
#define MEMO_BITS 16

HOT int ordered_rows(const uint8_t *px, Py_ssize_t y0, Py_ssize_t y1, Py_ssize_t w,
                     const double *rgb_table, const double *lin_table, int space,
                     const double *params, Grid *g, uint64_t *memo, int32_t *index, const int C)
{
    GridCursor at = {-1, NULL, NULL, NULL, NULL, 0, 0};
    for (Py_ssize_t y = y0; y < y1; y++) {
        for (Py_ssize_t x = 0; x < w; x++) {
            Py_ssize_t i = y * w + x, level = (y % 8) * 8 + x % 8;
            const uint8_t *p = px + i * 3;
            /* The same color at the same level gives the same answer: remembered. */
            uint32_t key = (uint32_t)level << 24 | (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8;
            key |= p[2];
            uint64_t *slot = memo + ((key * UINT32_C(0x9E3779B1)) >> (32 - MEMO_BITS));
            if ((uint32_t)(*slot >> 32) == key) {
                index[i] = (int32_t)(uint32_t)*slot;
                continue;
            }
            const double *rt = rgb_table + level * 256, *lt = lin_table + level * 256;
            double rgb[3] = {rt[p[0]], rt[p[1]], rt[p[2]]};
            if (grid_find(g, &at, rgb, 3, C) < 0)
                return -1;
            int32_t j = at.idx[0];
            if (at.n == 1) {
            } else if (C == 3 && space == SPACE_RGB) {
                j = grid_scan_sorted(&at, rgb, C);
            } else { /* C is 6 for hybrid alone */
                j = C == 6 && at.n <= BOUNDS_MAX ? grid_decide(&at, rgb) : -1;
                if (j < 0) {
                    double lin[3] = {lt[p[0]], lt[p[1]], lt[p[2]]}, v[MAX_DIMS];
                    embed_pixel(C == 6 ? SPACE_HYBRID : space, params, rgb, lin, v);
                    j = grid_scan_sorted(&at, v, C);
                }
            }
            index[i] = j;
            *slot = (uint64_t)key << 32 | (uint32_t)j;
        }
    }
    return 0;
}

/* Rows of the ordered map per task: fixed, so that the work splits the same for any thread
   count (the result does not depend on it anyway: every pixel gets its exact nearest color). */
#define ORDERED_ROWS 16

/* dither_ordered(pixels, h, w, rgb_table, lin_table, space, params, palette, k, c, index,
   nthreads): every pixel of an (h, w, 3) uint8 image, shifted by its ordered-dither offset, to
   its nearest palette point in `space` (exact for the point as computed, lowest index on ties).
   rgb_table and lin_table: (64, 256) float64, each channel value shifted by the offset of each
   level of the 8x8 tile (row-major), in `space`'s rgb scale (0..255) and in linear light. */
static PyObject *py_dither_ordered(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pb, rb, lb, qb, cb, ib;
    Py_ssize_t h, w;
    int space, K, C, nt;
    if (!PyArg_ParseTuple(args, "y*nny*y*iy*y*iiw*i", &pb, &h, &w, &rb, &lb, &space, &qb, &cb,
                          &K, &C, &ib, &nt))
        return NULL;
    PyObject *result = NULL;
    Grid *grids = NULL;
    uint64_t *memo = NULL;
    int ngrids = 0;
    if (check_threads(nt) < 0)
        goto done;
    if (h < 1 || w < 1 || h * w > INT32_MAX || space < 0 || space >= N_SPACES || K < 1 ||
        C != (space == SPACE_HYBRID ? 6 : 3)) {
        PyErr_Format(PyExc_ValueError,
                     "expected h, w >= 1 with h * w < 2^31, a space in 0..%d, k >= 1 and c = 3 "
                     "(6 for hybrid), got %zd %zd %d %d %d",
                     N_SPACES - 1, h, w, space, K, C);
        goto done;
    }
    if (check_len(&pb, 3 * h * w, "pixels") < 0 || check_len(&rb, 8 * 64 * 256, "rgb_table") < 0 ||
        check_len(&lb, 8 * 64 * 256, "lin_table") < 0 ||
        check_len(&qb, 8 * N_PARAMS, "params") < 0 ||
        check_len(&cb, 8 * (Py_ssize_t)K * C, "palette") < 0 ||
        check_len(&ib, 4 * h * w, "index") < 0)
        goto done;
    Py_ssize_t tasks = (h + ORDERED_ROWS - 1) / ORDERED_ROWS;
    int team = PAR_IF(nt, h * w) ? (int)min_ssize(nt, tasks) : 1;
    /* A grid and a memo per thread: cells are built as its pixels reach them. */
    grids = calloc((size_t)team, sizeof *grids);
    memo = malloc(((size_t)team << MEMO_BITS) * sizeof *memo);
    if (!grids || !memo) {
        PyErr_NoMemory();
        goto done;
    }
    memset(memo, 0xff, ((size_t)team << MEMO_BITS) * sizeof *memo);
    for (; ngrids < team; ngrids++)
        if (grid_init(&grids[ngrids], cb.buf, K, C, 3, space, qb.buf) < 0) {
            ngrids++;
            PyErr_NoMemory();
            goto done;
        }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t task; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(team) if (team > 1) schedule(dynamic, 1) reduction(| : failed)
    for (task = 0; task < tasks; task++) {
        Py_ssize_t y0 = task * ORDERED_ROWS, y1 = min_ssize(h, y0 + ORDERED_ROWS);
        int t = THREAD_ID();
        uint64_t *m = memo + ((size_t)t << MEMO_BITS);
        if (C == 6)
            failed |= ordered_rows(pb.buf, y0, y1, w, rb.buf, lb.buf, space, qb.buf, &grids[t], m,
                                   ib.buf, 6) < 0;
        else
            failed |= ordered_rows(pb.buf, y0, y1, w, rb.buf, lb.buf, space, qb.buf, &grids[t], m,
                                   ib.buf, 3) < 0;
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    for (int t = 0; t < ngrids; t++)
        grid_free(&grids[t]);
    free(grids);
    free(memo);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&lb);
    PyBuffer_Release(&qb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&ib);
    return result;
}

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
    PyObject *result = NULL;
    if (check_threads(nt) < 0)
        goto done;
    if (n < 0 || C < 1 || C > MAX_DIMS || K < 1) {
        PyErr_Format(PyExc_ValueError, "expected n >= 0, 1 <= c <= %d, k >= 1, got %zd %d %d",
                     MAX_DIMS, n, C, K);
        goto done;
    }
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
    PyBuffer_Release(&pb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&ib);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* Lloyd                                                                                        */

/*
 * Bounds per point (Hamerly): `own`, its exact squared distance to its centroid a (recomputed
 * every step: the objective needs it), and `lower`, a lower bound on its distance to every other
 * centroid. A point is sure of its label when sqrt(own) < max(lower, half the gap from a to
 * its nearest other centroid), with slack for rounding; otherwise it is searched (exactly).
 *
 * After a step moves the centroids, Hamerly lowers every bound by the largest move. Late in a
 * fit a few centroids still move while most stand still, so here the MOVERS largest movers B
 * are taken apart: a bound drops by the largest move outside B, and a centroid j in B is at
 * least gap(a, j) - d(x, a) away, with that gap fresh. The neighbour lists are rebuilt only
 * once the centroids have drifted by a fraction of their gaps since the last build; in between
 * the search lowers the listed gaps by the drift.
 */
#ifndef TIGHT
#define TIGHT 2
#endif
#ifndef MOVERS
#define MOVERS 8
#endif
#ifndef REBUILD_FRACTION
#define REBUILD_FRACTION 0.3
#endif

typedef struct {
    Py_ssize_t n;
    int C, K, nt;
    int n_fixed; /* the first n_fixed centroids never move (and are never refilled) */
    const double *x, *w;
    double *cent;  /* K x C, the centroids of the current assignment */
    double *means; /* K x C */
    double *cw;    /* K: cluster weights */
    double *sums;  /* K x C */
    int32_t *labels;
    int32_t *sec;  /* N: runner-up centroid at the point's last search, or -1 */
    double *l2;    /* N: lower bound on the distance to sec */
    double *lower; /* N: lower bound on the distance to every centroid but label and sec */
    double *own;
    double *halfgap; /* K: half the gap to the nearest other centroid, a lower bound */
    double *hg0;     /* K: that half gap when the lists were built */
    double *delta;   /* K: last move of each centroid */
    double *drift;   /* K: moves since the lists were built */
    double *beta;    /* K: gap to the nearest centroid of the big movers B */
    double *mgap;    /* K x m: gap from every centroid to the movers, ascending */
    int32_t *mid;    /* K x m: those movers (-1 past the end) */
    int m;           /* size of B, the largest movers of the last step */
    double rest; /* largest move outside B */
    double rebuild_at;
    Search s;
    Py_ssize_t bs, nblocks;
    double *acc; /* nblocks x K x (C + 1): per-block weight and weighted coordinates */
    double *bj;  /* nblocks: per-block sum of w * own */
    double eps;  /* absolute slack of the bounds */
} Lloyd;

enum { PASS_WARM, PASS_STEP };

/* Exact half gaps (hg0) for the current centroids, from the lists or by sweeps. */
static void exact_halfgap(Lloyd *ll)
{
    Search *s = &ll->s;
    int K = ll->K, C = ll->C, nt = ll->nt;
    (void)nt; /* only the OpenMP pragmas read it */
    if (s->L > 0) {
        for (int a = 0; a < K; a++)
            ll->hg0[a] = 0.5 * s->nbgap[(size_t)a * s->L];
        return;
    }
    int a; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (PAR_IF(nt, (Py_ssize_t)K * 16)) schedule(dynamic, 64)
    for (a = 0; a < K; a++) {
        Found f = {-1, -1, INFINITY, INFINITY, INFINITY, INFINITY};
        sweep(s, s->cent + (size_t)a * C, a, 0, &f);
        ll->hg0[a] = 0.5 * sqrt(f.bd2);
    }
}

/* Search structures and half gaps for the current centroids; `fresh` forces new lists. */
static int lloyd_prepare(Lloyd *ll, int fresh)
{
    int K = ll->K;
    if (K == 1) {
        ll->halfgap[0] = INFINITY;
        return 0;
    }
    if (build_sweep(&ll->s) < 0)
        return -1;
    if (fresh || ll->s.dmax > ll->rebuild_at) {
        if (ll->s.L > 0)
            build_lists(&ll->s, ll->nt);
        exact_halfgap(ll);
        memset(ll->drift, 0, (size_t)K * sizeof *ll->drift);
        ll->s.dmax = 0.0;
        double sum = 0.0;
        int cnt = 0;
        for (int a = 0; a < K; a++)
            if (isfinite(ll->hg0[a])) {
                sum += ll->hg0[a];
                cnt++;
            }
        ll->rebuild_at = cnt ? REBUILD_FRACTION * sum / cnt : 0.0;
    }
    for (int a = 0; a < K; a++)
        ll->halfgap[a] = ll->hg0[a] - 0.5 * (ll->drift[a] + ll->s.dmax);
    return 0;
}

/* After a step moved the centroids by delta: drifts, the big movers' gaps and the rest's move. */
static void lloyd_movers(Lloyd *ll)
{
    int K = ll->K, C = ll->C;
    double dmax = ll->s.dmax;
    for (int k = 0; k < K; k++) {
        ll->drift[k] += ll->delta[k];
        if (ll->drift[k] > dmax)
            dmax = ll->drift[k];
    }
    ll->s.dmax = dmax;
    int m = K - 1 < MOVERS ? K - 1 : MOVERS, cnt = 0;
    int32_t top[MOVERS];
    double tv[MOVERS], rest = 0.0;
    for (int k = 0; k < K; k++) {
        double v = ll->delta[k];
        if (cnt == m) {
            if (!(v > tv[m - 1])) {
                if (v > rest)
                    rest = v;
                continue;
            }
            if (tv[m - 1] > rest)
                rest = tv[m - 1];
        }
        int p = cnt < m ? cnt++ : m - 1;
        while (p > 0 && tv[p - 1] < v) {
            tv[p] = tv[p - 1];
            top[p] = top[p - 1];
            p--;
        }
        tv[p] = v;
        top[p] = k;
    }
    /* A mover that moved no more than the rest needs no bound of its own. */
    while (m > 0 && !(tv[m - 1] > rest))
        m--;
    ll->rest = rest;
    ll->m = m;
    const double *cent = ll->cent;
    int a; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(ll->nt) if (PAR_IF(ll->nt, (Py_ssize_t)K * m)) \
    schedule(static)
    for (a = 0; a < K; a++) {
        /* a's movers ascending by gap (insertion sort of at most MOVERS), a itself left out */
        double *gq = ll->mgap + (size_t)a * m;
        int32_t *jq = ll->mid + (size_t)a * m;
        int cnt_a = 0;
        for (int q = 0; q < m; q++) {
            if (top[q] == a)
                continue;
            double g = sqrt(dist2(cent + (size_t)a * C, cent + (size_t)top[q] * C, C));
            int p = cnt_a++;
            while (p > 0 && gq[p - 1] > g) {
                gq[p] = gq[p - 1];
                jq[p] = jq[p - 1];
                p--;
            }
            gq[p] = g;
            jq[p] = top[q];
        }
        for (int p = cnt_a; p < m; p++) {
            gq[p] = INFINITY;
            jq[p] = -1;
        }
        ll->beta[a] = m > 0 ? gq[0] : INFINITY;
    }
}

/* The search, out of line: it is the rare path of a pass, and kept apart the pass's loop stays
   small. */
static CQ_NOINLINE void search_out(const Search *s, const double *x, int32_t a,
                                                 double d2a, Found *f)
{
    BY_CHANNELS(s->C, search_impl, s, x, a, d2a, TIGHT, f);
}

/* Lower `low` (the old bound `old` less rest) for the big movers other than a and sec: mover j
   is at least max(gap(a, j) - sqrt(own), old - delta_j) away. Movers come by ascending gap, so
   the first whose gap term cannot lower the bound ends the loop. */
static CQ_NOINLINE double movers_bound(const Lloyd *ll, int32_t a, int32_t sec,
                                                     double own, double old, double low)
{
    double od = sqrt(own);
    const double *gq = ll->mgap + (size_t)a * ll->m;
    const int32_t *jq = ll->mid + (size_t)a * ll->m;
    for (int q = 0; q < ll->m; q++) {
        double gt = gq[q] - od;
        if (!(gt < low))
            break;
        int32_t j = jq[q];
        if (j == sec)
            continue;
        double v = max_d(gt, old - ll->delta[j]);
        if (v < low)
            low = v;
    }
    return low;
}

/* One assignment pass over block b; accumulates the block's sums. Returns whether a label
   changed. */
HOT int lloyd_block_impl(Lloyd *ll, Py_ssize_t b, int mode, const int C)
{
    const int K = ll->K, stride = C + 1;
    const Py_ssize_t lo = b * ll->bs, hi = min_ssize(ll->n, lo + ll->bs);
    double *CQ_RESTRICT acc = ll->acc + (size_t)b * K * stride;
    memset(acc, 0, (size_t)K * stride * sizeof *acc);
    const double *CQ_RESTRICT x = ll->x;
    const double *CQ_RESTRICT w = ll->w;
    const double *CQ_RESTRICT cent = ll->cent;
    const double *CQ_RESTRICT halfgap = ll->halfgap;
    const double *CQ_RESTRICT beta = ll->beta;
    const double *CQ_RESTRICT delta = ll->delta;
    int32_t *CQ_RESTRICT labels = ll->labels;
    int32_t *CQ_RESTRICT secs = ll->sec;
    double *CQ_RESTRICT l2s = ll->l2;
    double *CQ_RESTRICT lower = ll->lower;
    double *CQ_RESTRICT owns = ll->own;
    const Search *s = &ll->s;
    const double eps = ll->eps, rest = ll->rest, grow = 1.0 + 4.0 * REL_SLACK;
    double jsum = 0.0;
    int changed = 0;
    Found f;
    for (Py_ssize_t i = lo; i < hi; i++) {
        const double *xi = x + i * C;
        const double wi = w[i];
        int32_t label, sec;
        double own, l2, low;
        if (K == 1) {
            label = 0;
            own = dist2(xi, cent, C);
            sec = -1;
            l2 = low = INFINITY;
        } else {
            int searched = 0;
            {
                label = labels[i];
                own = dist2(xi, cent + (size_t)label * C, C);
                sec = secs[i];
                l2 = l2s[i];
                low = lower[i];
                if (mode == PASS_STEP) {
                    if (sec >= 0)
                        l2 -= delta[sec];
                    /* Centroids outside the big movers moved at most `rest`; beta[a], the
                       smallest gap from a to them, tells when the movers need a look. */
                    double old = low;
                    low -= rest;
                    double t = beta[label] - low;
                    if (!(t > 0.0 && t * t >= own))
                        low = movers_bound(ll, label, sec, own, old, low);
                }
                double hg = halfgap[label];
                double bound = max_d(hg, min_d(l2, low)) - eps;
                if (!(bound > 0.0 && own * grow < bound * bound)) {
                    /* The runner-up exactly, the others by their bound; else a search. */
                    searched = 1;
                    if (sec >= 0) {
                        double d2s = dist2(xi, cent + (size_t)sec * C, C);
                        double b3 = max_d(hg, low) - eps;
                        if ((own < d2s || (own == d2s && label < sec)) && b3 > 0.0 &&
                            own * grow < b3 * b3) {
                            searched = 0;
                            l2 = sqrt(d2s);
                        }
                    }
                }
            }
            if (searched) {
                int32_t a = label;
                search_out(s, xi, a, own, &f);
#ifdef CQ_PROFILE
                __atomic_fetch_add(&g_searches, 1, __ATOMIC_RELAXED);
#endif
                label = f.best;
                own = f.bd2;
                sec = f.sidx;
                l2 = sqrt(f.second);
                low = min_d(sqrt(f.third), f.rest);
                changed |= label != a;
            }
        }
        secs[i] = sec;
        l2s[i] = l2;
        labels[i] = label;
        lower[i] = low;
        owns[i] = own;
        jsum += wi * own;
        double *row = acc + (size_t)label * stride;
        row[0] += wi;
        for (int ch = 0; ch < C; ch++)
            row[1 + ch] += wi * xi[ch];
    }
    ll->bj[b] = jsum;
    return changed;
}

static int lloyd_block(Lloyd *ll, Py_ssize_t b, int mode)
{
    return BY_CHANNELS(ll->C, lloyd_block_impl, ll, b, mode);
}

/* First assignment without labels: positions lo..hi of the visiting order searched, each from
   the previous point's answer. */
HOT void lloyd_cold_impl(Lloyd *ll, const uint32_t *order, Py_ssize_t lo, Py_ssize_t hi,
                         const int C)
{
    int32_t prev = 0;
    Found f;
    for (Py_ssize_t q = lo; q < hi; q++) {
        Py_ssize_t i = order ? (Py_ssize_t)order[q] : q;
        const double *xi = ll->x + i * C;
        if (ll->K == 1) {
            ll->labels[i] = 0;
            ll->own[i] = dist2(xi, ll->cent, C);
            ll->sec[i] = -1;
            ll->l2[i] = ll->lower[i] = INFINITY;
            continue;
        }
        search_impl(&ll->s, xi, prev, dist2(xi, ll->cent + (size_t)prev * C, C), TIGHT, &f, C);
        prev = f.best;
        ll->labels[i] = f.best;
        ll->own[i] = f.bd2;
        ll->sec[i] = f.sidx;
        ll->l2[i] = sqrt(f.second);
        ll->lower[i] = min_d(sqrt(f.third), f.rest);
    }
}

/* Block b's weighted sums and objective from the labels and own distances, in index order. */
HOT void lloyd_sum_impl(Lloyd *ll, Py_ssize_t b, const int C)
{
    const int K = ll->K, stride = C + 1;
    const Py_ssize_t lo = b * ll->bs, hi = min_ssize(ll->n, lo + ll->bs);
    double *CQ_RESTRICT acc = ll->acc + (size_t)b * K * stride;
    memset(acc, 0, (size_t)K * stride * sizeof *acc);
    double jsum = 0.0;
    for (Py_ssize_t i = lo; i < hi; i++) {
        const double *xi = ll->x + i * C;
        const double wi = ll->w[i];
        jsum += wi * ll->own[i];
        double *row = acc + (size_t)ll->labels[i] * stride;
        row[0] += wi;
        for (int ch = 0; ch < C; ch++)
            row[1 + ch] += wi * xi[ch];
    }
    ll->bj[b] = jsum;
}

/* The first assignment without a warm start; 0, or -1 when out of memory. */
static int lloyd_cold(Lloyd *ll)
{
    Py_ssize_t n = ll->n;
    int nt = ll->nt, C = ll->C;
    uint32_t *order = NULL;
    if (ll->K > 1 && n >= MORTON_FROM) {
        order = malloc((size_t)n * sizeof *order);
        if (!order || morton_order(ll->x, n, C, order, nt) < 0) {
            free(order);
            return -1;
        }
    }
    Py_ssize_t nblocks = (n + BLOCK - 1) / BLOCK;
    Py_ssize_t b; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (PAR_IF(nt, n)) schedule(dynamic, 1)
    for (b = 0; b < nblocks; b++) {
        Py_ssize_t lo = b * BLOCK, hi = min_ssize(n, lo + BLOCK);
        BY_CHANNELS(C, lloyd_cold_impl, ll, order, lo, hi);
    }
    free(order);
#pragma omp parallel for num_threads(nt) if (PAR_IF(nt, n)) schedule(static)
    for (b = 0; b < ll->nblocks; b++) {
        BY_CHANNELS(C, lloyd_sum_impl, ll, b);
    }
    return 0;
}

static int lloyd_pass(Lloyd *ll, int mode)
{
    int changed = 0;
    Py_ssize_t b; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(ll->nt) if (PAR_IF(ll->nt, ll->n)) schedule(dynamic, 1) \
    reduction(| : changed)
    for (b = 0; b < ll->nblocks; b++)
        changed |= lloyd_block(ll, b, mode);
    return changed;
}

/* Cluster weights and sums: the blocks' accumulators added in block order. */
static void lloyd_merge(Lloyd *ll)
{
    int K = ll->K, C = ll->C, stride = C + 1;
    Py_ssize_t nb = ll->nblocks;
    int k; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(ll->nt) if (PAR_IF(ll->nt, (Py_ssize_t)K * stride * nb)) \
    schedule(static)
    for (k = 0; k < K; k++) {
        double row[MAX_DIMS + 1];
        const double *src = ll->acc + (size_t)k * stride;
        for (int q = 0; q < stride; q++)
            row[q] = src[q];
        for (Py_ssize_t b = 1; b < nb; b++) {
            src = ll->acc + ((size_t)b * K + k) * stride;
            for (int q = 0; q < stride; q++)
                row[q] += src[q];
        }
        ll->cw[k] = row[0];
        for (int ch = 0; ch < C; ch++)
            ll->sums[(size_t)k * C + ch] = row[1 + ch];
    }
}

typedef struct {
    double v;
    Py_ssize_t i;
} Worst;

static int cmp_worst(const void *pa, const void *pb)
{
    const Worst *a = pa, *b = pb;
    if (a->v > b->v)
        return -1;
    if (a->v < b->v)
        return 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Indices of the `e` points of largest w * own (ties: lowest index first), in that order. */
static int worst_points(const Lloyd *ll, Py_ssize_t e, Py_ssize_t *out)
{
    Py_ssize_t n = ll->n;
    if (e <= 32) {
        Worst top[32];
        Py_ssize_t cnt = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            double v = ll->w[i] * ll->own[i];
            if (cnt == e && !(v > top[e - 1].v))
                continue;
            Py_ssize_t p = cnt < e ? cnt++ : e - 1;
            while (p > 0 && top[p - 1].v < v) {
                top[p] = top[p - 1];
                p--;
            }
            top[p].v = v;
            top[p].i = i;
        }
        for (Py_ssize_t r = 0; r < e; r++)
            out[r] = top[r].i;
        return 0;
    }
    Worst *all = malloc((size_t)n * sizeof *all);
    if (!all)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        all[i].v = ll->w[i] * ll->own[i];
        all[i].i = i;
    }
    qsort(all, (size_t)n, sizeof *all, cmp_worst);
    for (Py_ssize_t r = 0; r < e; r++)
        out[r] = all[r].i;
    free(all);
    return 0;
}

static void lloyd_free(Lloyd *ll)
{
    free(ll->means);
    free(ll->cw);
    free(ll->sums);
    free(ll->own);
    free(ll->sec);
    free(ll->l2);
    free(ll->halfgap);
    free(ll->hg0);
    free(ll->delta);
    free(ll->drift);
    free(ll->beta);
    free(ll->mgap);
    free(ll->mid);
    free(ll->acc);
    free(ll->bj);
    search_free(&ll->s);
}

/* The steps after the first assignment; returns 0, or -1 when out of memory. */
static int lloyd_run(Lloyd *ll, Py_ssize_t max_iter, double tol, double total, double *history,
                     Py_ssize_t *worst, int32_t *empty, Py_ssize_t *iters, double *inertia,
                     int *converged)
{
    int K = ll->K, C = ll->C, nt = ll->nt;
    Py_ssize_t n = ll->n;
    int changed = 1;
    (void)nt; /* only the OpenMP pragmas read it */
    if (max_iter == 0) {
        for (Py_ssize_t i = 0; i < n; i++)
            ll->lower[i] = min_d(ll->l2[i], ll->lower[i]);
        return 0;
    }
    for (Py_ssize_t it = 0; it < max_iter; it++) {
        double jsum = 0.0;
        for (Py_ssize_t b = 0; b < ll->nblocks; b++)
            jsum += ll->bj[b];
        double objective = jsum / total;
        history[it] = objective;
        *iters = it + 1;
        lloyd_merge(ll);
        double shift = 0.0;
        Py_ssize_t n_empty = 0;
        for (int k = 0; k < K; k++) {
            double *m = ll->means + (size_t)k * C;
            const double *c = ll->cent + (size_t)k * C;
            if (k < ll->n_fixed) {
                memcpy(m, c, (size_t)C * sizeof(double));
            } else if (ll->cw[k] > 0.0) {
                for (int ch = 0; ch < C; ch++)
                    m[ch] = ll->sums[(size_t)k * C + ch] / ll->cw[k];
                shift += ll->cw[k] * dist2(c, m, C);
            } else {
                memcpy(m, c, (size_t)C * sizeof(double));
                empty[n_empty++] = k;
            }
        }
        *inertia = objective - shift / total;
        if (*inertia < 0.0)
            *inertia = 0.0;
        if (n_empty > 0) {
            Py_ssize_t e = n_empty < n ? n_empty : n;
            if (worst_points(ll, e, worst) < 0)
                return -1;
            for (Py_ssize_t r = 0; r < e; r++)
                memcpy(ll->means + (size_t)empty[r] * C, ll->x + worst[r] * C,
                       (size_t)C * sizeof(double));
        }
        int stop = !changed || (it > 0 && history[it - 1] - objective <= tol * history[it - 1]);
        for (int k = 0; k < K; k++)
            ll->delta[k] = sqrt(dist2(ll->means + (size_t)k * C, ll->cent + (size_t)k * C, C));
        memcpy(ll->cent, ll->means, (size_t)K * C * sizeof(double));
        if (stop || it == max_iter - 1 || K == 1) {
            *converged = stop || K == 1;
            if (K == 1) {
                for (Py_ssize_t i = 0; i < n; i++)
                    ll->lower[i] = INFINITY;
            } else {
                /* Keep the lower bounds valid for the returned centroids (Hamerly's update). */
                int32_t top = 0;
                for (int k = 1; k < K; k++)
                    if (ll->delta[k] > ll->delta[top])
                        top = k;
                double biggest = ll->delta[top], runner = 0.0;
                for (int k = 0; k < K; k++)
                    if (k != top && ll->delta[k] > runner)
                        runner = ll->delta[k];
                Py_ssize_t i; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(nt) if (PAR_IF(nt, n)) schedule(static)
                for (i = 0; i < n; i++)
                    ll->lower[i] = min_d(ll->l2[i], ll->lower[i]) -
                                   (ll->labels[i] == top ? runner : biggest);
            }
            return 0;
        }
#ifdef CQ_PROFILE
        double t0 = now_ms();
#endif
        lloyd_movers(ll);
        if (lloyd_prepare(ll, 0) < 0)
            return -1;
#ifdef CQ_PROFILE
        double t1 = now_ms();
        g_searches = g_sweeps = 0;
#endif
        changed = lloyd_pass(ll, PASS_STEP);
#ifdef CQ_PROFILE
        double t2 = now_ms();
        fprintf(stderr, "it %zd prepare %.3f pass %.3f searches %ld sweeps %ld\n", it, t1 - t0,
                t2 - t1, g_searches, g_sweeps);
#endif
    }
    return 0;
}

/* lloyd(points, weights, n, c, k, centroids, labels, lower, warm, max_iter, tol, history,
         nthreads, n_fixed) -> (iterations, inertia, converged).
   centroids: init on entry, the means of the last assignment on exit. labels, lower: the warm
   start on entry when warm, the last assignment and its lower bounds (valid for the returned
   centroids) on exit. history: max_iter doubles, the objective before each update. */
static PyObject *py_lloyd(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pb, wb, cb, lb, ob, hb;
    Py_ssize_t n, max_iter;
    int C, K, warm, nt, n_fixed;
    double tol;
    if (!PyArg_ParseTuple(args, "y*y*niiw*w*w*indw*ii", &pb, &wb, &n, &C, &K, &cb, &lb, &ob,
                          &warm, &max_iter, &tol, &hb, &nt, &n_fixed))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t *worst = NULL;
    int32_t *empty = NULL;
    Lloyd ll;
    memset(&ll, 0, sizeof ll);
    if (check_threads(nt) < 0)
        goto done;
    if (n < 1 || n > INT32_MAX || C < 1 || C > MAX_DIMS || K < 1 || max_iter < 0 ||
        n_fixed < 0 || n_fixed > K) {
        PyErr_Format(PyExc_ValueError,
                     "expected 1 <= n < 2^31, 1 <= c <= %d, k >= 1, max_iter >= 0, "
                     "0 <= n_fixed <= k, got %zd %d %d %zd %d",
                     MAX_DIMS, n, C, K, max_iter, n_fixed);
        goto done;
    }
    if (check_len(&pb, 8 * n * C, "points") < 0 || check_len(&wb, 8 * n, "weights") < 0 ||
        check_len(&cb, 8 * (Py_ssize_t)K * C, "centroids") < 0 ||
        check_len(&lb, 4 * n, "labels") < 0 || check_len(&ob, 8 * n, "lower") < 0 ||
        check_len(&hb, 8 * max_iter, "history") < 0)
        goto done;
    ll.n = n;
    ll.C = C;
    ll.K = K;
    ll.nt = nt;
    ll.n_fixed = n_fixed;
    ll.x = pb.buf;
    ll.w = wb.buf;
    ll.cent = cb.buf;
    ll.labels = lb.buf;
    ll.lower = ob.buf;
    if (warm) {
        for (Py_ssize_t i = 0; i < n; i++)
            if (ll.labels[i] < 0 || ll.labels[i] >= K) {
                PyErr_Format(PyExc_ValueError, "labels: expected values in 0..%d, got %d at %zd",
                             K - 1, (int)ll.labels[i], i);
                goto done;
            }
    }
    /* Blocks: BLOCK points, fewer blocks when their accumulators would pass MAX_ACC_DOUBLES. */
    Py_ssize_t per_block = (Py_ssize_t)K * (C + 1);
    Py_ssize_t nblocks = (n + BLOCK - 1) / BLOCK;
    Py_ssize_t cap = MAX_ACC_DOUBLES / per_block;
    if (cap < 1)
        cap = 1;
    if (nblocks > cap)
        nblocks = cap;
    ll.bs = (n + nblocks - 1) / nblocks;
    ll.nblocks = (n + ll.bs - 1) / ll.bs;
    size_t kd = (size_t)K * sizeof(double);
    ll.means = malloc(kd * C);
    ll.cw = malloc(kd);
    ll.sums = malloc(kd * C);
    ll.own = malloc((size_t)n * sizeof(double));
    ll.sec = malloc((size_t)n * sizeof(int32_t));
    ll.l2 = malloc((size_t)n * sizeof(double));
    ll.halfgap = malloc(kd);
    ll.hg0 = malloc(kd);
    ll.delta = malloc(kd);
    ll.drift = calloc((size_t)K, sizeof(double));
    ll.beta = malloc(kd);
    ll.mgap = malloc(kd * MOVERS);
    ll.mid = malloc((size_t)K * MOVERS * sizeof(int32_t));
    ll.acc = malloc((size_t)ll.nblocks * per_block * sizeof(double));
    ll.bj = malloc((size_t)ll.nblocks * sizeof(double));
    worst = malloc((size_t)K * sizeof *worst);
    empty = malloc((size_t)K * sizeof *empty);
    if (!ll.means || !ll.cw || !ll.sums || !ll.own || !ll.sec || !ll.l2 || !ll.halfgap || !ll.hg0 || !ll.delta ||
        !ll.drift || !ll.beta || !ll.mgap || !ll.mid || !ll.acc || !ll.bj || !worst || !empty ||
        search_alloc(&ll.s, K, C) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    ll.s.cent = ll.cent;
    ll.s.drift = ll.drift;
    for (Py_ssize_t i = 0; i < n; i++) {
        ll.sec[i] = -1;
        ll.l2[i] = INFINITY;
    }
    double *history = hb.buf;
    Py_ssize_t iters = 0;
    double inertia = INFINITY;
    int converged = 0, failed = 0;
    Py_BEGIN_ALLOW_THREADS
    /* Sweep axis and bound slack from the extent of the points and the initial centroids. */
    double lo[MAX_DIMS], hi[MAX_DIMS], diam = 0.0;
    for (int ch = 0; ch < C; ch++)
        lo[ch] = hi[ch] = ll.x[ch];
    for (Py_ssize_t i = 0; i < n + K; i++) {
        const double *v = i < n ? ll.x + i * C : ll.cent + (i - n) * C;
        for (int ch = 0; ch < C; ch++) {
            if (v[ch] < lo[ch])
                lo[ch] = v[ch];
            if (v[ch] > hi[ch])
                hi[ch] = v[ch];
        }
    }
    int axis = 0;
    for (int ch = 0; ch < C; ch++) {
        diam += (hi[ch] - lo[ch]) * (hi[ch] - lo[ch]);
        if (hi[ch] - lo[ch] > hi[axis] - lo[axis])
            axis = ch;
    }
    ll.s.axis = axis;
    ll.eps = ll.s.eps = ABS_SLACK * sqrt(diam);
    double total = 0.0;
    for (Py_ssize_t b = 0; b < ll.nblocks; b++) {
        double part = 0.0;
        for (Py_ssize_t i = b * ll.bs; i < min_ssize(n, (b + 1) * ll.bs); i++)
            part += ll.w[i];
        total += part;
    }
    if (lloyd_prepare(&ll, 1) < 0) {
        failed = 1;
    } else {
        if (warm)
            lloyd_pass(&ll, PASS_WARM);
        else
            failed = lloyd_cold(&ll) < 0;
        if (!failed)
            failed = lloyd_run(&ll, max_iter, tol, total, history, worst, empty, &iters, &inertia,
                           &converged) < 0;
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_BuildValue("ndO", iters, inertia, converged ? Py_True : Py_False);
done:
    free(worst);
    free(empty);
    lloyd_free(&ll);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&lb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&hb);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* Module                                                                                       */

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

/* ------------------------------------------------------------------------------------------ */
/* Error diffusion in groups (images with alpha)                                               */

/* dither_fs_groups(pixels, h, w, C, palette, k, weight, pixel_group, entry_groups, fixed,
   strength, max_error, index): serpentine Floyd-Steinberg on C-channel float64 pixels (RGBA
   premultiplied, on the 0..255 scale) where each pixel of group g (0..6) takes the nearest
   palette row, by the channel-weighted squared distance, among the rows whose entry_groups
   mask has bit g (lowest row on ties); a pixel of group 2 takes no error in its last channel
   (an opaque pixel keeps its alpha); a pixel of group -1, or of a group without rows, takes
   fixed[i] and neither takes nor passes error. Values plus error are clamped to +-max_error, then to 0..255, channel by
   channel. */
static PyObject *py_dither_fs_groups(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pb, cb, wb, gb, eb, fb, sb, ib;
    Py_ssize_t h, w;
    int C, K;
    double max_error;
    if (!PyArg_ParseTuple(args, "y*nniy*iy*y*y*y*y*dw*", &pb, &h, &w, &C, &cb, &K, &wb, &gb,
                          &eb, &fb, &sb, &max_error, &ib))
        return NULL;
    PyObject *result = NULL;
    double *rows = NULL;
    if (h < 1 || w < 1 || h * w > INT32_MAX || C < 1 || C > 16 || K < 1 ||
        !(max_error >= 0.0)) {
        PyErr_Format(PyExc_ValueError,
                     "expected h, w >= 1 with h * w < 2^31, 1 <= C <= 16, k >= 1, max_error >= "
                     "0, got %zd %zd %d %d %g",
                     h, w, C, K, max_error);
        goto done;
    }
    if (check_len(&pb, 8 * (Py_ssize_t)C * h * w, "pixels") < 0 ||
        check_len(&cb, 8 * (Py_ssize_t)C * K, "palette") < 0 ||
        check_len(&wb, 8 * (Py_ssize_t)C, "weight") < 0 ||
        check_len(&gb, h * w, "pixel_group") < 0 || check_len(&eb, K, "entry_group") < 0 ||
        check_len(&fb, 4 * h * w, "fixed") < 0 || check_len(&sb, 4 * h * w, "strength") < 0 ||
        check_len(&ib, 4 * h * w, "index") < 0)
        goto done;
    rows = calloc((size_t)2 * (w + 2) * C, sizeof *rows);
    if (!rows) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const double *px = pb.buf, *pal = cb.buf, *wt = wb.buf;
    const int8_t *pg = gb.buf, *eg = eb.buf;
    const int32_t *fixed = fb.buf;
    const float *strength = sb.buf;
    int32_t *index = ib.buf;
    double *cur = rows, *next = rows + (size_t)(w + 2) * C; /* column c at (c + 1) * C */
    for (Py_ssize_t y = 0; y < h; y++) {
        int forward = (y % 2) == 0;
        memset(next, 0, (size_t)(w + 2) * C * sizeof *next);
        for (Py_ssize_t q = 0; q < w; q++) {
            Py_ssize_t x = forward ? q : w - 1 - q, i = y * w + x;
            if (pg[i] < 0) {
                index[i] = fixed[i];
                continue;
            }
            double v[16];
            for (int ch = 0; ch < C; ch++) {
                double e = cur[(x + 1) * C + ch];
                e = e > max_error ? max_error : e < -max_error ? -max_error : e;
                double t = px[i * C + ch] + e;
                v[ch] = t < 0.0 ? 0.0 : t > 255.0 ? 255.0 : t;
            }
            int group = pg[i];
            if (group == 2)
                v[C - 1] = px[i * C + C - 1];
            int32_t best = -1;
            double best_d = 0.0;
            for (int c = 0; c < K; c++) {
                if (group > 6 || !((eg[c] >> group) & 1))
                    continue;
                double d = 0.0;
                for (int ch = 0; ch < C; ch++) {
                    double t = v[ch] - pal[(size_t)c * C + ch];
                    d += wt[ch] * t * t;
                }
                if (best < 0 || d < best_d) {
                    best = c;
                    best_d = d;
                }
            }
            if (best < 0) { /* no row of this group: the caller's fixed row, no error passed */
                index[i] = fixed[i];
                continue;
            }
            index[i] = best;
            double k = (double)strength[i] / 16.0;
            Py_ssize_t ahead = forward ? x + 1 : x - 1, behind = forward ? x - 1 : x + 1;
            for (int ch = 0; ch < C; ch++) {
                double err = (v[ch] - pal[(size_t)best * C + ch]) * k;
                cur[(ahead + 1) * C + ch] += 7.0 * err;
                next[(behind + 1) * C + ch] += 3.0 * err;
                next[(x + 1) * C + ch] += 5.0 * err;
                next[(ahead + 1) * C + ch] += err;
            }
        }
        double *t = cur;
        cur = next;
        next = t;
    }
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    free(rows);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&gb);
    PyBuffer_Release(&eb);
    PyBuffer_Release(&fb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&ib);
    return result;
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
    {"dither_ordered", py_dither_ordered, METH_VARARGS, "Ordered dithering to the nearest color."},
    {"squared_error", py_squared_error, METH_VARARGS, "Exact squared error of a palette map."},
    {"lloyd", py_lloyd, METH_VARARGS, "Weighted Lloyd iterations with exact assignments."},
    {"set_parallel_min", py_set_parallel_min, METH_VARARGS,
     "Work size from which kernels use threads; returns the previous value."},
    {"openmp", py_openmp, METH_NOARGS, "Whether the module was built with OpenMP."},
    {"dither_fs_groups", py_dither_fs_groups, METH_VARARGS,
     "Serpentine Floyd-Steinberg with a nearest row per pixel group."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "colorquant's compiled CPU kernels.", -1, methods,
    NULL,                  NULL,       NULL,                                  NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
