/* Far-field expansion for long float32 rows: Σ_j w_j φ(t_i − t_j) for all i in O(n·P) plus a
 * small per-bin term, instead of O(n²), with φ = σ (forward) or σ' (backward). Included once by
 * native.c; works in double on a row t = γ·(v − min v) grouped by bin (below), bins ascending.
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
 * local expansions too small to matter are dropped within the other half (farfield_prune). Either
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
 * (deriv 1); the terms farfield_prune drops take the other half. */
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

/* Drops the terms too small to matter, setting their coefficients in the table to zero: a term
 * (d, k, l) adds at most |table[d][k][l]| (h/2)^{k+l} to a pair at bin distance d, so for each d
 * the smallest terms are dropped while their bounds sum to at most FARFIELD_TOL / 2 (the far,
 * flat part of σ loses most of its terms). */
struct farfield_bound {
    double bound;
    int64_t at;
};

static int farfield_bound_order(const void *a, const void *b)
{
    const double x = ((const struct farfield_bound *)a)->bound, y = ((const struct farfield_bound *)b)->bound;
    return (x > y) - (x < y);
}

static void farfield_prune(int order, int64_t reach, double *table)
{
    struct farfield_bound bounds[FARFIELD_MAX_ORDER * (FARFIELD_MAX_ORDER + 1) / 2];
    for (int64_t d = -reach; d <= reach; ++d) {
        double *entry = table + (d + reach) * order * order;
        int count = 0;
        for (int k = 0; k < order; ++k)
            for (int l = 0; k + l < order; ++l)
                bounds[count++] = (struct farfield_bound){fabs(entry[k * order + l]) * farfield_half_bin[k + l], k * order + l};
        qsort(bounds, (size_t)count, sizeof *bounds, farfield_bound_order);
        double dropped = 0;
        for (int i = 0; i < count && dropped + bounds[i].bound <= FARFIELD_TOL / 2; ++i) {
            dropped += bounds[i].bound;
            entry[bounds[i].at] = 0;
        }
    }
}

/* The expansion's surviving terms for φ = σ and σ' (deriv 0, 1): for each order l of the local
 * expansion, the (d, k) whose coefficient table[d][k][l] was not pruned. They depend on h and
 * the order only, so they are listed once, when the library loads (with farfield_half_bin);
 * a list that could not be allocated then is built per call instead. */
struct farfield_term {
    double coefficient;
    int k, d;
};
static struct farfield_term *farfield_lists[2];
static int64_t farfield_list_start[2][FARFIELD_MAX_ORDER + 1]; /* order l's terms: [start[l], start[l + 1]) */

#define FARFIELD_REACH ((int64_t)ceil(FARFIELD_SATURATION / FARFIELD_BIN) + 1)

/* Fills list and start for φ = σ (deriv 0) or σ' (deriv 1) from a pruned table of span·order²
 * entries; list == NULL only counts the terms into start. */
static void farfield_list(int deriv, const double *table, struct farfield_term *list, int64_t *start)
{
    const int order = farfield_order(deriv);
    const int64_t reach = FARFIELD_REACH;
    int64_t count = 0;
    for (int l = 0; l < order; ++l) {
        start[l] = count;
        for (int k = 0; k + l < order; ++k) /* k outer: a run of d reads one moment row */
            for (int64_t d = -reach; d <= reach; ++d) {
                const double coefficient = table[((d + reach) * order + k) * order + l];
                if (coefficient == 0)
                    continue;
                if (list)
                    list[count] = (struct farfield_term){coefficient, k, (int)d};
                ++count;
            }
    }
    start[order] = count;
}

/* The term lists of φ = σ and σ' into lists/start; 1 when memory ran out. */
static int farfield_build(int deriv, struct farfield_term **list, int64_t *start)
{
    const int order = farfield_order(deriv);
    const int64_t span = 2 * FARFIELD_REACH + 1;
    double *table = malloc((size_t)(span * order * order) * sizeof *table);
    if (table == NULL)
        return 1;
    farfield_table(order, deriv, FARFIELD_REACH, table);
    farfield_prune(order, FARFIELD_REACH, table);
    farfield_list(deriv, table, NULL, start);
    *list = malloc((size_t)start[order] * sizeof **list);
    if (*list != NULL)
        farfield_list(deriv, table, *list, start);
    free(table);
    return *list == NULL;
}

__attribute__((constructor)) static void farfield_setup(void)
{
    farfield_half_bin[0] = 1;
    for (int m = 1; m < 2 * FARFIELD_MAX_ORDER; ++m)
        farfield_half_bin[m] = farfield_half_bin[m - 1] * FARFIELD_BIN / 2;
    for (int deriv = 0; deriv < 2; ++deriv)
        if (farfield_build(deriv, &farfield_lists[deriv], farfield_list_start[deriv])) {
            farfield_lists[deriv] = NULL; /* count every term: the cost is overestimated, never wrong */
            farfield_list_start[deriv][farfield_order(deriv)] =
                (2 * FARFIELD_REACH + 1) * farfield_order(deriv) * (farfield_order(deriv) + 1) / 2;
        }
}

/* How farfield_sum shares one row out over threads: over the bins from FARFIELD_SPLIT_N entries
 * (shorter rows are faster on one thread: the data another core has to fetch cost more than
 * its half of the work saves; on 2 cores 1.2x slower at n = 16,384, 1.3x faster at 32,768,
 * γ = 10), and below it one weight to a thread (the backward's two weights share only t: 1.7x
 * faster on 2 threads at n = 4,096). */
#define FARFIELD_SPLIT_N 32768
static int farfield_threads(int64_t n, int weights, int threads)
{
    if (n >= FARFIELD_SPLIT_N)
        return threads;
    return weights < threads ? weights : threads;
}

/* What the expansion costs for a row spanning t_max, with `weights` weight vectors, in
 * multiply-adds of its entry phases: 2P per entry and weight (moments and Horner), the
 * surviving terms once per FARFIELD_BLOCK bins and weight (one vector multiply-add each, worth
 * FARFIELD_BLOCK_TERM of those), and FARFIELD_ROW for binning the row and its allocations; on
 * T threads, FARFIELD_SPLIT_GAIN·T times less. Fitted to per-row times on 2 cores with AVX-512
 * (n = 512–8,192, γ = 0.1–100). */
#define FARFIELD_BLOCK 8
#define FARFIELD_BLOCK_TERM 2.6
#define FARFIELD_ROW 5000.0
#define FARFIELD_SPLIT_GAIN 0.85
static double farfield_cost(int64_t n, double t_max, int deriv, int weights, int threads)
{
    const double blocks = ceil((floor(t_max / FARFIELD_BIN) + 1) / FARFIELD_BLOCK);
    const double terms = (double)farfield_list_start[deriv][farfield_order(deriv)];
    const int used = farfield_threads(n, weights, threads);
    const double work = weights * ((double)n * 2 * farfield_order(deriv) + FARFIELD_BLOCK_TERM * blocks * terms);
    return (used > 1 ? work / (FARFIELD_SPLIT_GAIN * used) : work) + FARFIELD_ROW;
}

/* A block of bins as one vector (GCC/Clang vector extensions, like the __builtin_roundf of
 * native.c): left to itself, GCC vectorises the loop over terms instead, with gathers, and that
 * ran 2x slower than scalar code. Aligned to a double only: a block starts at any bin. */
typedef double farfield_block __attribute__((vector_size(FARFIELD_BLOCK * sizeof(double)), aligned(sizeof(double))));
/* The block of moments M_{a−d},k for a = a0 … a0 + BLOCK − 1, from base = moments + a0. */
#define FARFIELD_AT(base, offset) (*(const farfield_block *)((base) + (offset)))

/* farfield_sum for all `weights` at once, bins shared out over `threads` threads (each bin's
 * moments, local expansion and entries are its own); power is a work array of n entries. */
static int farfield_pass(const double *t, int64_t n, int deriv, int weights, const double *const *weight,
                         double *const *out, double *power, int threads)
{
    const int order = farfield_order(deriv);
    const double h = FARFIELD_BIN;
    const int64_t bins = (int64_t)floor(t[n - 1] / h) + 1;
    const int64_t reach = FARFIELD_REACH;
    /* Moments are stored [w][k][b] with `reach` zeros before bin 0 and reach + FARFIELD_BLOCK
     * after the last, so that every term reads a whole block of bins without bounds checks. */
    const int64_t stride = reach + bins + reach + FARFIELD_BLOCK;
    int64_t *start = malloc((size_t)(bins + 1) * sizeof *start);
    double *padded = calloc((size_t)(stride * order * weights), sizeof *padded);
    double *local = malloc((size_t)(bins * order * weights) * sizeof *local);
    double *below = calloc((size_t)(bins * weights), sizeof *below);
    int64_t own_start[FARFIELD_MAX_ORDER + 1];
    struct farfield_term *own_list = NULL;
    if (!farfield_lists[deriv] && farfield_build(deriv, &own_list, own_start))
        own_list = NULL;
    const struct farfield_term *list = farfield_lists[deriv] ? farfield_lists[deriv] : own_list;
    const int64_t *list_start = farfield_lists[deriv] ? farfield_list_start[deriv] : own_start;
    int64_t *offset = list ? malloc((size_t)list_start[order] * sizeof *offset) : NULL;
    if (!start || !padded || !local || !below || !list || !offset) {
        free(start); free(padded); free(local); free(below); free(own_list); free(offset);
        return 1;
    }
    /* Where each term reads its moments, M_{a−d},k at a = 0, for this row's stride. */
    for (int64_t term = 0; term < list_start[order]; ++term)
        offset[term] = list[term].k * stride - list[term].d;
    double *const moment = padded + reach; /* moment[(w·order + k)·stride + b], b in [−reach, bins + reach + BLOCK) */
    /* Bins as ranges of the sorted row: bin b holds t in [b·h, (b + 1)·h). */
    start[0] = 0;
    for (int64_t i = 0, b = 0; i <= n; ++i) {
        const int64_t bin = i < n ? (int64_t)(t[i] / h) : bins;
        while (b < bin)
            start[++b] = i;
    }
    /* Moments M_b,k = Σ_j w_j (−δ_j)^k, k outermost so the sums over j vectorise. */
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
                moment[(w * order + k) * stride + b] = sum;
            }
        }
    }
    /* Local expansions L_a,l = Σ_(d,k) table[d][k][l] M_{a−d},k over the surviving terms (the
     * pruned ones are not listed), FARFIELD_BLOCK bins a at a time:
     * each term is then one vector multiply-add into a block held in registers. Stored [w][l][a]. */
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(dynamic)
    for (int wl = 0; wl < weights * order; ++wl) {
        const int w = wl / order, l = wl % order;
        double *l_out = local + (int64_t)wl * bins;
        const double *m = moment + (int64_t)w * order * stride;
        for (int64_t a0 = 0; a0 < bins; a0 += FARFIELD_BLOCK) {
            /* Four sums, so four multiply-adds are in flight rather than each waiting on the last. */
            farfield_block sum[4];
            memset(sum, 0, sizeof sum);
            const double *base = m + a0;
            int64_t term = list_start[l];
            for (; term + 4 <= list_start[l + 1]; term += 4)
                for (int u = 0; u < 4; ++u)
                    sum[u] += list[term + u].coefficient * FARFIELD_AT(base, offset[term + u]);
            for (; term < list_start[l + 1]; ++term)
                sum[0] += list[term].coefficient * FARFIELD_AT(base, offset[term]);
            sum[0] += sum[1] + sum[2] + sum[3];
            const double *block = (const double *)&sum[0];
            for (int q = 0; q < FARFIELD_BLOCK && a0 + q < bins; ++q)
                l_out[a0 + q] = block[q];
        }
    }
    /* The weight of the bins saturated below a. */
    if (!deriv)
        for (int w = 0; w < weights; ++w)
            for (int64_t a = reach + 1; a < bins; ++a)
                below[a * weights + w] = below[(a - 1) * weights + w] + moment[(int64_t)w * order * stride + a - reach - 1];
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
    free(start); free(padded); free(local); free(below); free(own_list); free(offset);
    return 0;
}

/* out[w][i] = Σ_j weight[w][j] φ(t_i − t_j) for w < weights (weight[w] == NULL: all ones), with
 * φ = σ (deriv 0) or σ' (deriv 1); t ≥ 0 grouped by bin ⌊t / h⌋, bins ascending (any order within
 * a bin; sorted ascending will do). Uses up to `threads` threads as farfield_threads says; power
 * holds a work array of n entries for each weight. Returns 0, or 1 when memory could not be
 * allocated. */
static int farfield_sum(const double *t, int64_t n, int deriv, int weights, const double *const *weight,
                        double *const *out, double *const *power, int threads)
{
    const int used = farfield_threads(n, weights, threads);
    if (n >= FARFIELD_SPLIT_N || used == 1)
        return farfield_pass(t, n, deriv, weights, weight, out, power[0], used);
    int status = 0;
#pragma omp parallel for num_threads(used) schedule(static, 1) reduction(|:status)
    for (int w = 0; w < weights; ++w)
        status |= farfield_pass(t, n, deriv, 1, weight + w, out + w, power[w], 1);
    return status;
}
