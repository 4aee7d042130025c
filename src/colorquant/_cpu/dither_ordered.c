/*
 * dither_ordered.c: ordered (8x8 Bayer) dithering of 8-bit RGB to the nearest palette point in a
 * color space, each pixel shifted by its level's offset (exact, lowest index on ties).
 *
 * Part of the one translation unit module.c builds (after color.c and grid.c).
 */

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
    Held held = HELD(&pb, &rb, &lb, &qb, &cb, &ib);
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
    release_held(&held);
    return result;
}
