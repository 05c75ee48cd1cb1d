/* Far-field expansion for long float32 rows: Σ_j w_j φ(t_i − t_j) for all i in O(n·P) plus a
 * small per-bin term, instead of O(n²), with φ = σ (forward) or σ' (backward). Included once by
 * native.c; works in double on a sorted row t (t_0 = 0, ascending, t = γ·(v − min v)).
 *
 * Why it works: σ is analytic in the strip |Im z| < π (its poles are at ±iπ, ±3iπ, …), so its
 * Taylor series about any real d converges for every |u| < π, whatever d is. Cut the row into
 * bins of width h < π with centres c_b. For i in bin a and j in bin b, with ε_i = t_i − c_a and
 * δ_j = t_j − c_b (both within ±h/2), write d = c_a − c_b = (a − b)·h and u = ε_i − δ_j:
 *
 *     φ(t_i − t_j) = Σ_{m<P} A_m(d) (ε_i − δ_j)^m + error,   A_m(d) = φ^(m)(d) / m!
 *                  = Σ_{k+l<P} A_{k+l}(d) C(k+l, l) ε_i^l (−δ_j)^k
 *
 * so each bin needs only its moments M_b,k = Σ_{j∈b} w_j (−δ_j)^k, each bin a a local expansion
 * L_a,l = Σ_b Σ_k A_{k+l}(d_ab) C(k+l, l) M_b,k, and each entry Σ_l L_a,l ε_i^l. A_m(d) depends
 * on a − b only (one small table). Bins further apart than R = ⌈S/h⌉ + 1 hold only pairs with
 * |t_i − t_j| > S, taken as σ = 0 or 1 and σ' = 0: they add the weight of every entry in bins
 * below a − R. S = 21 makes that error, below e^{−S} = 7.6e-10 per pair, part of the bound.
 *
 * Error bound (per pair, before the sum over j): by Cauchy's estimate on the circle of radius ρ
 * (< π) around d, |A_m(d)| ≤ K_ρ / ρ^m with K_ρ = max |φ| on that circle, so the dropped terms
 * m ≥ P add at most K_ρ (h/ρ)^P / (1 − h/ρ) for |u| ≤ h. K_ρ, maximised over d numerically (and
 * rounded up): σ: 1.2 at ρ = 2, 1.8 at ρ = 2.5; σ': 0.95 at ρ = 2, 2.7 at ρ = 2.5. The order P is
 * the smallest for which the tighter of the two bounds is below FARFIELD_TOL / 2; terms of the
 * local expansions too small to matter are skipped within the other half (farfield_sum). Either
 * way a pair is off by at most FARFIELD_TOL, so a sum over n pairs of weights w by
 * n·max|w|·FARFIELD_TOL.
 */

/* When float32 rows take the expansion: FARFIELD_AUTO (where it costs less than the exact sweep),
 * or, for tests and benchmarks comparing the two on one input, never or always. Set between
 * calls, never during one. */
enum { FARFIELD_NEVER, FARFIELD_AUTO, FARFIELD_ALWAYS };
static int farfield_mode = FARFIELD_AUTO;

void softrank_set_farfield(int mode)
{
    farfield_mode = mode;
}

#define FARFIELD_MAX_ORDER 32
#define FARFIELD_BIN 0.5    /* h, in units of γ·v */
#define FARFIELD_TOL 1e-9   /* per pair: summed over n pairs, far below float32 rounding of ranks */
#define FARFIELD_SATURATION 21.0 /* σ(−21) and σ'(21) are below FARFIELD_TOL */

/* The order P whose truncation stays below FARFIELD_TOL / 2 per pair, for φ = σ (deriv 0) or σ'
 * (deriv 1); the terms skipped in farfield_sum take the other half. */
static int farfield_order(int deriv)
{
    static const double radius[2] = {2.0, 2.5}, bound[2][2] = {{1.2, 1.8}, {0.95, 2.7}};
    int best = FARFIELD_MAX_ORDER;
    for (int r = 0; r < 2; ++r) {
        const double q = FARFIELD_BIN / radius[r];
        int order = 1;
        while (order < FARFIELD_MAX_ORDER && bound[deriv][r] * pow(q, order) / (1 - q) > FARFIELD_TOL / 2)
            ++order;
        best = order < best ? order : best;
    }
    return best;
}

/* a[m] = σ^(m)(d) / m! for m ≤ order: the series of 1 / (1 + e^{−d} e^{−u}) in u, by the
 * recurrence for a reciprocal series. Taken about |d| (so e^{−|d|} ≤ 1 and the recurrence cannot
 * grow) and reflected with σ(−x) = 1 − σ(x) for d < 0. */
static void farfield_sigmoid_series(double d, int order, double *a)
{
    const double q = exp(-fabs(d));
    double denominator[FARFIELD_MAX_ORDER + 2], factorial = 1;
    denominator[0] = 1 + q;
    for (int j = 1; j <= order; ++j) {
        factorial *= j;
        denominator[j] = (j % 2 ? -q : q) / factorial;
    }
    a[0] = 1 / denominator[0];
    for (int m = 1; m <= order; ++m) {
        double sum = 0;
        for (int j = 1; j <= m; ++j)
            sum += denominator[j] * a[m - j];
        a[m] = -sum / denominator[0];
    }
    if (d < 0) { /* σ(d + u) = 1 − σ(|d| − u) */
        a[0] = 1 - a[0];
        for (int m = 1; m <= order; ++m)
            a[m] = m % 2 ? a[m] : -a[m];
    }
}

/* table[d][k][l] = A_{k+l}(d·h) C(k+l, l) for d = a − b in [−reach, reach], k + l < order. */
static void farfield_table(int order, int deriv, int64_t reach, double *table)
{
    for (int64_t d = -reach; d <= reach; ++d) {
        double a[FARFIELD_MAX_ORDER + 2];
        farfield_sigmoid_series((double)d * FARFIELD_BIN, order + deriv, a);
        if (deriv) /* σ'(d + u) = Σ_m (m + 1) a_{m+1} u^m */
            for (int m = 0; m < order; ++m)
                a[m] = (m + 1) * a[m + 1];
        double *entry = table + (d + reach) * order * order;
        for (int k = 0; k < order; ++k) {
            double binomial = 1; /* C(k + l, l), built up over l */
            for (int l = 0; k + l < order; ++l) {
                entry[k * order + l] = a[k + l] * binomial;
                binomial = binomial * (k + l + 1) / (l + 1);
            }
        }
    }
}

/* (h/2)^m for m < 2·FARFIELD_MAX_ORDER. */
static double farfield_half_bin[2 * FARFIELD_MAX_ORDER];

/* Whether term (k, l) with this table coefficient can be skipped: it adds at most
 * |coefficient| (h/2)^{k+l} to a pair, and all skipped terms together stay below FARFIELD_TOL / 2. */
static inline int farfield_negligible(double coefficient, int k, int l, int order)
{
    return fabs(coefficient) * farfield_half_bin[k + l] <= FARFIELD_TOL / (order * (order + 1.0));
}

/* The tables for φ = σ and σ', and how many of their (d, k, l) terms survive: they depend on h
 * and the order only, so they are built once, when the library loads (with farfield_half_bin).
 * A table that could not be allocated then is built per call instead. */
static double *farfield_tables[2];
static double farfield_terms[2];

__attribute__((constructor)) static void farfield_setup(void)
{
    farfield_half_bin[0] = 1;
    for (int m = 1; m < 2 * FARFIELD_MAX_ORDER; ++m)
        farfield_half_bin[m] = farfield_half_bin[m - 1] * FARFIELD_BIN / 2;
    const int64_t reach = (int64_t)ceil(FARFIELD_SATURATION / FARFIELD_BIN) + 1;
    for (int deriv = 0; deriv < 2; ++deriv) {
        const int order = farfield_order(deriv);
        double *table = malloc((size_t)(2 * reach + 1) * order * order * sizeof *table);
        farfield_tables[deriv] = table;
        if (table == NULL) { /* count every term: the cost is overestimated, never wrong */
            farfield_terms[deriv] = (2.0 * reach + 1) * order * (order + 1) / 2;
            continue;
        }
        farfield_table(order, deriv, reach, table);
        for (int64_t d = -reach; d <= reach; ++d)
            for (int k = 0; k < order; ++k)
                for (int l = 0; k + l < order; ++l)
                    farfield_terms[deriv] += !farfield_negligible(table[((d + reach) * order + k) * order + l], k, l, order);
    }
}

/* What the expansion costs for a sorted row spanning t_max, with `weights` weight vectors, in
 * multiply-adds: 2P per entry and weight (moments and Horner), and the surviving terms per bin
 * and weight, which run along the bins in vectors of about FARFIELD_VECTOR. */
#define FARFIELD_VECTOR 4.0
static double farfield_cost(int64_t n, double t_max, int deriv, int weights)
{
    const double bins = floor(t_max / FARFIELD_BIN) + 1;
    return weights * ((double)n * 2 * farfield_order(deriv) + bins * farfield_terms[deriv] / FARFIELD_VECTOR);
}

/* out[w][i] = Σ_j weight[w][j] φ(t_i − t_j) for w < weights (weight[w] == NULL: all ones), with
 * φ = σ (deriv 0) or σ' (deriv 1); t sorted ascending from t[0] = 0. Bins are shared out over
 * `threads` threads (each bin's moments, local expansion and entries are its own). power is the
 * caller's work array of n entries. Returns 0, or 1 when memory could not be allocated. */
static int farfield_sum(const double *t, int64_t n, int deriv, int weights, const double *const *weight,
                        double *const *out, double *power, int threads)
{
    const int order = farfield_order(deriv);
    const double h = FARFIELD_BIN;
    const int64_t bins = (int64_t)floor(t[n - 1] / h) + 1;
    const int64_t reach = (int64_t)ceil(FARFIELD_SATURATION / h) + 1;
    const int64_t span = 2 * reach + 1;
    int64_t *start = malloc((size_t)(bins + 1) * sizeof *start);
    double *moment = calloc((size_t)(bins * order * weights), sizeof *moment);
    double *local = calloc((size_t)(bins * order * weights), sizeof *local);
    double *own_table = farfield_tables[deriv] ? NULL : malloc((size_t)(span * order * order) * sizeof *own_table);
    const double *table = farfield_tables[deriv] ? farfield_tables[deriv] : own_table;
    double *below = calloc((size_t)(bins * weights), sizeof *below);
    if (!start || !moment || !local || !table || !below) {
        free(start); free(moment); free(local); free(own_table); free(below);
        return 1;
    }
    if (own_table)
        farfield_table(order, deriv, reach, own_table);
    /* Bins as ranges of the sorted row: bin b holds t in [b·h, (b + 1)·h). */
    start[0] = 0;
    for (int64_t i = 0, b = 0; i <= n; ++i) {
        const int64_t bin = i < n ? (int64_t)(t[i] / h) : bins;
        while (b < bin)
            start[++b] = i;
    }
    /* Moments M_b,k = Σ_j w_j (−δ_j)^k, k outermost so the sums over j vectorise. Moments and
     * local expansions are stored [w][k][b], so that the sweeps below run along the bins. */
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t b = 0; b < bins; ++b) {
        const double centre = ((double)b + 0.5) * h;
        const int64_t first = start[b], count = start[b + 1] - start[b];
        for (int w = 0; w < weights; ++w) {
            double *p = power + first;
            for (int64_t j = 0; j < count; ++j)
                p[j] = weight[w] ? weight[w][first + j] : 1.0;
            for (int k = 0; k < order; ++k) {
                double sum = 0;
                for (int64_t j = 0; j < count; ++j) {
                    sum += p[j];
                    p[j] *= centre - t[first + j];
                }
                moment[(w * order + k) * bins + b] = sum;
            }
        }
    }
    /* Local expansions L_a,l = Σ_d Σ_k table[d][k][l] M_{a−d},k: for each (d, k, l) one sweep
     * along the bins, which vectorises. A term can add at most |table[d][k][l]| (h/2)^{k+l} to a
     * pair; the negligible ones (the far, flat part of σ) are skipped. */
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(dynamic)
    for (int wl = 0; wl < weights * order; ++wl) {
        const int w = wl / order, l = wl % order;
        double *l_out = local + (int64_t)wl * bins;
        for (int64_t d = -reach; d <= reach; ++d) {
            const int64_t lo = d > 0 ? d : 0, hi = d < 0 ? bins + d : bins; /* a with a − d in [0, bins) */
            const double *entry = table + (d + reach) * order * order;
            for (int k = 0; k + l < order && lo < hi; ++k) {
                const double coefficient = entry[k * order + l];
                if (farfield_negligible(coefficient, k, l, order))
                    continue;
                const double *m = moment + (int64_t)(w * order + k) * bins - d;
                for (int64_t a = lo; a < hi; ++a)
                    l_out[a] += coefficient * m[a];
            }
        }
    }
    /* The weight of the bins saturated below a. */
    if (!deriv)
        for (int w = 0; w < weights; ++w)
            for (int64_t a = reach + 1; a < bins; ++a)
                below[a * weights + w] = below[(a - 1) * weights + w] + moment[(int64_t)w * order * bins + a - reach - 1];
    /* Each entry: Σ_l L_a,l ε^l by Horner, entries innermost so the steps vectorise, plus the
     * saturated bins below. */
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t a = 0; a < bins; ++a) {
        const double centre = ((double)a + 0.5) * h;
        const int64_t first = start[a], count = start[a + 1] - start[a];
        for (int w = 0; w < weights; ++w) {
            const double *l_in = local + (int64_t)w * order * bins + a; /* L_a,l at l_in[l * bins] */
            double *sum = out[w] + first;
            for (int64_t i = 0; i < count; ++i)
                sum[i] = l_in[(order - 1) * bins];
            for (int l = order - 2; l >= 0; --l)
                for (int64_t i = 0; i < count; ++i)
                    sum[i] = sum[i] * (t[first + i] - centre) + l_in[l * bins];
            for (int64_t i = 0; i < count; ++i)
                sum[i] += below[a * weights + w];
        }
    }
    free(start); free(moment); free(local); free(own_table); free(below);
    return 0;
}
