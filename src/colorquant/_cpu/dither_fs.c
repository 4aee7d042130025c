/*
 * dither_fs.c: serpentine Floyd-Steinberg error diffusion. One loop (fs_rows) diffuses the error
 * of both pixel kinds; what differs is a parameter, the search that picks each pixel's palette
 * row:
 *  - dither_fs: 8-bit pixels of C <= 8 channels, the exact nearest row from the candidate grid
 *    (grid.c), the image cut into bands that threads share;
 *  - dither_fs_groups: float64 pixels of C <= 16 channels (premultiplied RGBA) in groups, the
 *    nearest row by a channel-weighted distance among the rows of the pixel's group, or a fixed
 *    row that takes and passes no error.
 *
 * Part of the one translation unit module.c builds (after grid.c). fs_rows is always inlined and
 * its search is a constant function at each call, so the compiler makes one loop per search (and
 * per channel count), as if each were written out.
 */

/* The most channels of a diffused pixel (dither_fs_groups' limit; dither_fs takes MAX_DIMS). */
#define FS_MAX_C 16

/* The image a diffusion runs over: h x w pixels of C channels, of one of two types. */
typedef struct {
    const uint8_t *bytes;  /* 8-bit pixels, or NULL */
    const double *values;  /* float64 pixels on the 0..255 scale, when bytes is NULL */
    const float *strength; /* per pixel, 0..1: how much of its error it passes on */
    int32_t *index;        /* per pixel: its palette row (the output) */
    Py_ssize_t w;
    double max_error;      /* the error a pixel takes, clamped to +-max_error per channel */
} FsImage;

/* The search of a diffusion: pixel i's value plus its error, v (C channels, clamped to 0..255;
   the search may change it, which changes the error passed on), to *row and *color, the palette
   point the error is measured from; *color = NULL: the pixel takes *row and passes no error.
   0, or -1 when out of memory. */
typedef int (*FsSearch)(void *search, Py_ssize_t i, double *v, int32_t *row, const double **color,
                        int C);

/* Rows y0..y1-1 of serpentine Floyd-Steinberg (even rows left to right), starting with no
   error, the rows from y_out on written to index; rows: 2 (w + 2) C doubles of scratch. The
   error a pixel passes ahead (7/16) stays in `carry`, added to what the row above left there:
   the same sum, in the same order, as adding it to the row buffer. 0, or -1 when out of
   memory. */
HOT int fs_rows(const FsImage *im, Py_ssize_t y0, Py_ssize_t y_out, Py_ssize_t y1, FsSearch find,
                void *search, double *rows, const int C)
{
    /* The image's fields as locals: loop invariants the compiler can see as such. */
    const uint8_t *bytes = im->bytes;
    const double *values = im->values;
    const double max_error = im->max_error;
    const float *strength = im->strength;
    int32_t *index = im->index;
    const Py_ssize_t w = im->w;
    double *cur = rows, *next = rows + (size_t)(w + 2) * C; /* column x at offset (x + 1) C */
    memset(cur, 0, (size_t)(w + 2) * C * sizeof *cur);
    for (Py_ssize_t y = y0; y < y1; y++) {
        const int forward = (y % 2) == 0;
        const Py_ssize_t step = forward ? 1 : -1;
        memset(next, 0, (size_t)(w + 2) * C * sizeof *next);
        double carry[FS_MAX_C];
        for (int ch = 0; ch < C; ch++)
            carry[ch] = 0.0;
        Py_ssize_t x = forward ? 0 : w - 1;
        for (Py_ssize_t q = 0; q < w; q++, x += step) {
            Py_ssize_t i = y * w + x;
            double *below = next + (x + 1) * C;
            const double *above = cur + (x + 1) * C;
            double v[FS_MAX_C];
            for (int ch = 0; ch < C; ch++) {
                double e = min_d(max_d(above[ch] + carry[ch], -max_error), max_error);
                double p = bytes ? (double)bytes[i * C + ch] : values[i * C + ch];
                v[ch] = min_d(max_d(p + e, 0.0), 255.0);
            }
            const double *c;
            int32_t best;
            if (find(search, i, v, &best, &c, C) < 0)
                return -1;
            if (y >= y_out)
                index[i] = best;
            if (!c) { /* a fixed row: the error of the pixel before it goes nowhere */
                for (int ch = 0; ch < C; ch++)
                    carry[ch] = 0.0;
                continue;
            }
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

/* ------------------------------------------------------------------------------------------ */
/* Nearest row from the candidate grid (dither_fs)                                              */

/* A thread's grid and where its last query fell. */
typedef struct {
    Grid *g;
    GridCursor at;
} GridSearch;

static inline int fs_grid_search(void *search, Py_ssize_t i, double *v, int32_t *row,
                                 const double **color, int C)
{
    GridSearch *s = search;
    (void)i;
    if (grid_find(s->g, &s->at, v, C < GRID_DIMS ? C : GRID_DIMS, C) < 0)
        return -1;
    *row = grid_scan(&s->at, v, color, C);
    return 0;
}

/* Rows y0..y1-1 (written from y_out) with the grid g, for C channels as a constant. */
HOT int fs_band(const FsImage *im, Py_ssize_t y0, Py_ssize_t y_out, Py_ssize_t y1, Grid *g,
                double *rows, const int C)
{
    GridSearch s = {g, {-1, NULL, NULL, NULL, NULL, 0, 0}};
    return fs_rows(im, y0, y_out, y1, fs_grid_search, &s, rows, C);
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
    Held held = HELD(&pb, &cb, &sb, &ib);
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
    FsImage im = {pb.buf, NULL, sb.buf, ib.buf, w, max_error};
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t b; /* declared before the loop: OpenMP 2.0 (MSVC) */
#pragma omp parallel for num_threads(team) if (team > 1) schedule(dynamic, 1) reduction(| : failed)
    for (b = 0; b < bands; b++) {
        int t = THREAD_ID();
        Py_ssize_t y_out = b * band, y0 = y_out > warm ? y_out - warm : 0;
        failed |= BY_CHANNELS(C, fs_band, &im, y0, y_out, min_ssize(h, y_out + band), &grids[t],
                              rows + t * stride) < 0;
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
    release_held(&held);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* Nearest row of the pixel's group (dither_fs_groups: images with alpha)                       */

typedef struct {
    const double *px, *pal, *weight; /* pixels (h w x C), palette (K x C), channel weights (C) */
    const int8_t *pixel_group;       /* per pixel: its group 0..6, or -1 (a fixed row) */
    const int8_t *entry_groups;      /* per row: bit g set when the row serves group g */
    const int32_t *fixed;            /* per pixel: its row when it takes none of the palette */
    int K;
} GroupSearch;

static inline int fs_group_search(void *search, Py_ssize_t i, double *v, int32_t *row,
                                  const double **color, int C)
{
    const GroupSearch *s = search;
    int group = s->pixel_group[i];
    *color = NULL;
    *row = s->fixed[i];
    if (group < 0)
        return 0;
    if (group == 2) /* an opaque pixel keeps its alpha */
        v[C - 1] = s->px[i * C + C - 1];
    int32_t best = -1;
    double best_d = 0.0;
    for (int c = 0; c < s->K; c++) {
        if (group > 6 || !((s->entry_groups[c] >> group) & 1))
            continue;
        const double *pc = s->pal + (size_t)c * C;
        double d = 0.0;
        for (int ch = 0; ch < C; ch++) {
            double t = v[ch] - pc[ch];
            d += s->weight[ch] * t * t;
        }
        if (best < 0 || d < best_d) {
            best = c;
            best_d = d;
        }
    }
    if (best >= 0) { /* else no row of this group: the caller's fixed row, no error passed */
        *row = best;
        *color = s->pal + (size_t)best * C;
    }
    return 0;
}

/* dither_fs_groups(pixels, h, w, C, palette, k, weight, pixel_group, entry_groups, fixed,
   strength, max_error, index): serpentine Floyd-Steinberg on C-channel float64 pixels (RGBA
   premultiplied, on the 0..255 scale) where each pixel of group g (0..6) takes the nearest
   palette row, by the channel-weighted squared distance, among the rows whose entry_groups
   mask has bit g (lowest row on ties); a pixel of group 2 takes no error in its last channel
   (an opaque pixel keeps its alpha); a pixel of group -1, or of a group without rows, takes
   fixed[i] and neither takes nor passes error. Values plus error are clamped to +-max_error,
   then to 0..255, channel by channel. One thread, one band. */
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
    Held held = HELD(&pb, &cb, &wb, &gb, &eb, &fb, &sb, &ib);
    PyObject *result = NULL;
    double *rows = NULL;
    if (h < 1 || w < 1 || h * w > INT32_MAX || C < 1 || C > FS_MAX_C || K < 1 ||
        !(max_error >= 0.0)) {
        PyErr_Format(PyExc_ValueError,
                     "expected h, w >= 1 with h * w < 2^31, 1 <= C <= %d, k >= 1, max_error >= "
                     "0, got %zd %zd %d %d %g",
                     FS_MAX_C, h, w, C, K, max_error);
        goto done;
    }
    if (check_len(&pb, 8 * (Py_ssize_t)C * h * w, "pixels") < 0 ||
        check_len(&cb, 8 * (Py_ssize_t)C * K, "palette") < 0 ||
        check_len(&wb, 8 * (Py_ssize_t)C, "weight") < 0 ||
        check_len(&gb, h * w, "pixel_group") < 0 || check_len(&eb, K, "entry_group") < 0 ||
        check_len(&fb, 4 * h * w, "fixed") < 0 || check_len(&sb, 4 * h * w, "strength") < 0 ||
        check_len(&ib, 4 * h * w, "index") < 0)
        goto done;
    rows = malloc((size_t)2 * (w + 2) * C * sizeof *rows);
    if (!rows) {
        PyErr_NoMemory();
        goto done;
    }
    FsImage im = {NULL, pb.buf, sb.buf, ib.buf, w, max_error};
    GroupSearch s = {pb.buf, cb.buf, wb.buf, gb.buf, eb.buf, fb.buf, K};
    Py_BEGIN_ALLOW_THREADS
    fs_rows(&im, 0, 0, h, fs_group_search, &s, rows, C);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    free(rows);
    release_held(&held);
    return result;
}
