/*
 * lloyd.c: weighted Lloyd iterations with exact assignments (Hamerly's bounds over search.c's
 * structure), fixed-order partial sums, empty clusters refilled with the worst-fitting points.
 *
 * Part of the one translation unit module.c builds (after search.c).
 */

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
    Held held = HELD(&pb, &wb, &cb, &lb, &ob, &hb);
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
    release_held(&held);
    return result;
}

