/*
 * color.c: the color spaces of ordered dithering in C (colorquant.color's formulas in float64):
 * one pixel's coordinates (embed_pixel), and a box holding the coordinates of every color of an
 * sRGB box (embed_box: interval arithmetic, for the candidate grid).
 *
 * Part of the one translation unit module.c builds (after common.h).
 */

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

