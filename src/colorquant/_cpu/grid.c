/*
 * grid.c: the candidate grid, the exact nearest palette point of points that leave the image's
 * histogram (dithered pixels): cells of a key cube, each with the palette points that can be
 * nearest in it, built when first reached.
 *
 * Part of the one translation unit module.c builds (after color.c, whose embed_box bounds the
 * cells of ordered dithering).
 */

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

