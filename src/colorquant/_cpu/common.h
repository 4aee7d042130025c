/*
 * common.h: what every stage of colorquant's compiled CPU core shares (C99 + OpenMP): the
 * includes, the compiler and OpenMP macros, the argument checks, the squared distance, and the
 * buffers an entry point holds.
 *
 * The core is one translation unit: module.c includes this header, then every stage file in
 * pipeline order (each may use what the files before it define), so the compiler sees one file
 * and inlines across stages as it would there. The stage files are not compiled on their own.
 *
 * Every array comes in through the buffer protocol; the Python wrappers (colorquant._cpu)
 * validate dtypes and shapes and allocate every output, the C side only checks byte sizes. All
 * distances are float64 and computed directly, sum over channels 0..C-1 of (x - c)^2, so every
 * nearest decision equals a float64 brute force (lowest index on ties). Build with
 * -ffp-contract=off so that no multiply-add is fused (that would change the rounding of those
 * sums).
 *
 * Determinism: partial sums are taken over fixed blocks of points (BLOCK, or a size that only
 * depends on N, K and C) and merged in block order, so results do not depend on the number of
 * threads. Parallel regions carry an if() clause: small inputs run on the calling thread.
 */
#ifndef COLORQUANT_COMMON_H
#define COLORQUANT_COMMON_H

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

/* n points (or pixels) of C channels against K palette rows: n >= 0, 1 <= C <= MAX_DIMS, K >= 1. */
static int check_sizes(Py_ssize_t n, int C, int K)
{
    if (n < 0 || C < 1 || C > MAX_DIMS || K < 1) {
        PyErr_Format(PyExc_ValueError, "expected n >= 0, 1 <= c <= %d, k >= 1, got %zd %d %d",
                     MAX_DIMS, n, C, K);
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
/* Held buffers                                                                                 */

/* PyArg_ParseTuple acquires all the buffers of its "y*" and "w*" arguments or none (it releases
   what it took when it fails). An entry point names them once, right after a successful parse,
   and releases them together on its one way out:

       Py_buffer pb, cb;
       if (!PyArg_ParseTuple(args, "y*w*", &pb, &cb))
           return NULL;
       Held held = HELD(&pb, &cb);
       ...
   done:
       release_held(&held);

   More than MAX_HELD buffers is a compile-time warning (excess initializers). */
#define MAX_HELD 8

typedef struct {
    Py_buffer *buf[MAX_HELD];
    int n;
} Held;

#define HELD(...)                                                                                 \
    {                                                                                             \
        {__VA_ARGS__}, (int)(sizeof((Py_buffer *[]){__VA_ARGS__}) / sizeof(Py_buffer *))          \
    }

/* Release every held buffer, the last acquired first; the set is empty after. */
static void release_held(Held *h)
{
    while (h->n > 0)
        PyBuffer_Release(h->buf[--h->n]);
}

#endif /* COLORQUANT_COMMON_H */
