/*
 * kmeanspp.c: greedy weighted k-means++ seeding, pruned by the triangle inequality, drawing what
 * a brute force draws.
 *
 * Part of the one translation unit module.c builds (after common.h and hist.c).
 */

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
    Held held = HELD(&pb, &wb, &ub, &ob);
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
    release_held(&held);
    return result;
}

