/*
 * search.c: the exact nearest-centroid search structure that nearest.c and lloyd.c share
 * (neighbour lists and a sorted sweep over the centroids), and its answer, Found.
 *
 * Part of the one translation unit module.c builds (after common.h).
 */

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

