/* Soft rank of one row and its backward, instantiated by native.c once per floating type.
 *
 * Before including, define REAL (float or double), UKEY (the unsigned integer of REAL's width),
 * PACKED_SORT (1 when UKEY has 32 bits), NAME(x) (a suffix for the type) and EXP (exp for REAL).
 *
 * Four identities keep the work per pair to half a division and a few multiply-adds:
 *  - σ(γ(v_i − v_j)) = E_i / (E_i + E_j) with E_k = exp(γ (v_k − c)) for any shift c, so a row
 *    needs n exponentials, not n²; c is chosen so no E over- or underflows.
 *  - σ(t) + σ(−t) = 1, so each unordered pair is visited once for both r_i and r_j; σ' is even,
 *    so the backward pair term is added to one entry and subtracted from the other.
 *  - 1/p = q/(pq) and 1/q = p/(pq): two entries sweep the same j together and one division
 *    serves both their pairs (pairs2, lanes); the division was the loops' bottleneck.
 *  - σ(t) rounds to 0 or 1 once |t| > SATURATION. Rows where some pair passes it are sorted
 *    (radix sort, O(n)); entry i then visits its right neighbours only up to where σ saturates,
 *    and each pair beyond adds exactly 1 to the larger entry (a prefix count).
 *
 * Long float32 rows whose pairs the window cannot skip (γ·spread small next to n) take the
 * far-field expansion of native_farfield.h instead, O(n·P) with an error bound below float32
 * rounding; each row takes whichever of the two costs less (use_farfield).
 */

/* Order-preserving map from REAL's bits to an unsigned key: flip all bits of negatives, the
 * sign bit of the rest. */
static UKEY NAME(key)(REAL value)
{
    UKEY bits;
    memcpy(&bits, &value, sizeof bits);
    const UKEY sign = (UKEY)1 << (8 * sizeof(UKEY) - 1);
    return (bits & sign) ? ~bits : (bits | sign);
}

/* Sorts x[0..n) into s->values, with s->sorted_index[k] the column of the k-th smallest. LSD
 * radix sort, 8 bits a pass, skipping passes where every key shares the digit; the histograms of
 * all passes are counted in the first sweep over the row. With PACKED_SORT (32-bit keys) each key
 * moves with its column as one 64-bit word, key above: one load and one store an entry per pass
 * instead of two of each (the forward of rows of 1,000 at γ = 100 ran about 14% faster). */
#if PACKED_SORT
static void NAME(sort_row)(const REAL *x, int64_t n, struct scratch *s)
{
    uint64_t *item = (uint64_t *)s->key, *item_tmp = (uint64_t *)s->key_tmp;
    int64_t count[4][257] = {{0}};
    for (int64_t j = 0; j < n; ++j) {
        const uint32_t key = (uint32_t)NAME(key)(x[j]);
        item[j] = (uint64_t)key << 32 | (uint64_t)j;
        for (int digit = 0; digit < 4; ++digit)
            ++count[digit][((key >> (8 * digit)) & 0xFF) + 1];
    }
    for (int digit = 0; digit < 4; ++digit) {
        const unsigned shift = 32 + 8 * digit;
        int64_t *at = count[digit];
        if (at[((item[0] >> shift) & 0xFF) + 1] == n)
            continue;
        for (int d = 0; d < 256; ++d)
            at[d + 1] += at[d];
        for (int64_t j = 0; j < n; ++j)
            item_tmp[at[(item[j] >> shift) & 0xFF]++] = item[j];
        uint64_t *swap = item; item = item_tmp; item_tmp = swap;
    }
    REAL *values = (REAL *)s->values;
    int32_t *index = s->index;
    for (int64_t k = 0; k < n; ++k) {
        index[k] = (int32_t)(uint32_t)item[k];
        values[k] = x[index[k]];
    }
    s->sorted_index = index;
}
#else
static void NAME(sort_row)(const REAL *x, int64_t n, struct scratch *s)
{
    enum { DIGITS = sizeof(UKEY) };
    UKEY *key = (UKEY *)s->key, *key_tmp = (UKEY *)s->key_tmp;
    int32_t *index = s->index, *index_tmp = s->index_tmp;
    int64_t count[DIGITS][257] = {{0}};
    for (int64_t j = 0; j < n; ++j) {
        key[j] = NAME(key)(x[j]);
        index[j] = (int32_t)j;
        for (int digit = 0; digit < DIGITS; ++digit)
            ++count[digit][((key[j] >> (8 * digit)) & 0xFF) + 1];
    }
    for (int digit = 0; digit < DIGITS; ++digit) {
        const unsigned shift = 8 * digit;
        int64_t *at = count[digit];
        if (at[((key[0] >> shift) & 0xFF) + 1] == n)
            continue;
        for (int d = 0; d < 256; ++d)
            at[d + 1] += at[d];
        for (int64_t j = 0; j < n; ++j) {
            const int64_t to = at[(key[j] >> shift) & 0xFF]++;
            key_tmp[to] = key[j];
            index_tmp[to] = index[j];
        }
        UKEY *swap_key = key; key = key_tmp; key_tmp = swap_key;
        int32_t *swap_index = index; index = index_tmp; index_tmp = swap_index;
    }
    REAL *values = (REAL *)s->values;
    for (int64_t k = 0; k < n; ++k)
        values[k] = x[index[k]];
    s->sorted_index = index;
}
#endif

/* How a row is swept: densely (every pair, one shift c for the row) or sorted with windows. */
struct NAME(plan) {
    int nonfinite, window;
    REAL lo, hi, shift, spread; /* the row's extremes, a shift c, and γ·(max − min) */
};

/* The REAL whose key is `key` (the inverse of NAME(key)). */
static REAL NAME(unkey)(UKEY key)
{
    const UKEY sign = (UKEY)1 << (8 * sizeof(UKEY) - 1);
    const UKEY bits = (key & sign) ? (key & ~sign) : ~key;
    REAL value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static struct NAME(plan) NAME(plan_row)(const REAL *x, int64_t n, REAL gamma)
{
    /* On the integer keys, which order as the values do: integer min, max and the exponent test
     * for NaN/inf vectorise, where float compares would not (NaN rules). */
    const REAL infinity = (REAL)INFINITY;
    UKEY exponent, lo_key = ~(UKEY)0, hi_key = 0, nonfinite = 0;
    memcpy(&exponent, &infinity, sizeof exponent);
    for (int64_t j = 0; j < n; ++j) {
        UKEY bits;
        memcpy(&bits, x + j, sizeof bits);
        nonfinite |= (bits & exponent) == exponent;
        const UKEY key = NAME(key)(x[j]);
        lo_key = key < lo_key ? key : lo_key;
        hi_key = key > hi_key ? key : hi_key;
    }
    const REAL lo = NAME(unkey)(lo_key), hi = NAME(unkey)(hi_key);
    const REAL spread = gamma * (hi - lo);
    /* Dense needs every E = exp(γ(v − c)) within exp(±MAX_EXPONENT / 2); sorting pays off once
     * some pair saturates on rows long enough to skip many. */
    const int window = spread > MAX_EXPONENT || (n >= WINDOW_MIN_N && spread > SATURATION);
    const struct NAME(plan) plan = {nonfinite != 0, window, lo, hi, lo + (hi - lo) / 2, spread}; /* no overflow */
    return plan;
}

/* Moves *hi to one past the last neighbour of i that needs σ: the first k with
 * γ(v[k] − v[i]) > SATURATION. *hi only moves right, so the calls for i = 0, 1, … cost O(n) in
 * all. It moves WINDOW_STEP entries at a time: v is sorted, so those within reach are a prefix,
 * counted with independent compares; stepping one entry at a time mispredicted the loop's exit
 * for nearly every i. */
static void NAME(window_end)(const REAL *v, int64_t n, int64_t i, int64_t *hi, REAL reach)
{
    int64_t h = *hi > i ? *hi : i + 1;
    for (;;) {
        if (h + WINDOW_STEP > n) {
            while (h < n && v[h] - v[i] <= reach)
                ++h;
            break;
        }
        int64_t advance = 0;
        for (int k = 0; k < WINDOW_STEP; ++k)
            advance += v[h + k] - v[i] <= reach;
        h += advance;
        if (advance < WINDOW_STEP)
            break;
    }
    *hi = h;
}

/* The pairs (i, j), i < j < end, for entry i: returns entry i's share and adds entry j's share to
 * part[j]. Forward: σ(γ(v_i − v_j)) to i, σ(γ(v_j − v_i)) to j. Backward (g != NULL):
 * w = σ'(γ(v_i − v_j)) (g_i − g_j) to i and −w to j; the caller multiplies by γ. Entry i's
 * share is summed in REAL over BLOCK pairs at a time, then in double. */
static inline double NAME(pairs)(const REAL *E, const REAL *g, int64_t i, int64_t end, REAL *part)
{
    const REAL ei = E[i];
    double total = 0;
    for (int64_t from = i + 1; from < end; from += BLOCK) {
        const int64_t to = end - from > BLOCK ? from + BLOCK : end;
        REAL acc = 0;
        if (g == NULL) {
            for (int64_t j = from; j < to; ++j) {
                const REAL inv = (REAL)1 / (ei + E[j]);
                acc += ei * inv;
                part[j] += E[j] * inv;
            }
        } else {
            const REAL gi = g[i];
            for (int64_t j = from; j < to; ++j) {
                const REAL inv = (REAL)1 / (ei + E[j]);
                const REAL w = (ei * inv) * (E[j] * inv) * (gi - g[j]);
                acc += w;
                part[j] -= w;
            }
        }
        total += acc;
    }
    return total;
}

/* The pairs of entries a and b = a + 1 together: (a, b), then (a, j) and (b, j) for b < j < end
 * (layout gives both entries that end). Each j is loaded and its part updated once for both,
 * and one division serves both pairs: with r = 1 / (D_a D_b), 1 / D_a = D_b r and 1 / D_b = D_a r
 * (D_a = E_a + E_j; no overflow: E ≤ exp(MAX_EXPONENT) keeps D_a D_b within REAL's range). Adds
 * the two entries' shares to *share_a and *share_b. */
static inline void NAME(pairs2)(const REAL *E, const REAL *g, int64_t a, int64_t end, REAL *part, double *share_a,
                                double *share_b)
{
    const int64_t b = a + 1;
    const REAL ea = E[a], eb = E[b], inv = (REAL)1 / (ea + eb);
    double total_a = 0, total_b = 0;
    if (g == NULL) {
        total_a = ea * inv;
        part[b] += eb * inv;
    } else {
        const REAL w = (ea * inv) * (eb * inv) * (g[a] - g[b]);
        total_a = w;
        part[b] -= w;
    }
    for (int64_t from = b + 1; from < end; from += BLOCK) {
        const int64_t to = end - from > BLOCK ? from + BLOCK : end;
        REAL acc_a = 0, acc_b = 0;
        if (g == NULL) {
            for (int64_t j = from; j < to; ++j) {
                const REAL da = ea + E[j], db = eb + E[j], r = (REAL)1 / (da * db);
                const REAL inv_a = db * r, inv_b = da * r;
                acc_a += ea * inv_a;
                acc_b += eb * inv_b;
                part[j] += E[j] * (inv_a + inv_b);
            }
        } else {
            const REAL ga = g[a], gb = g[b];
            for (int64_t j = from; j < to; ++j) {
                const REAL da = ea + E[j], db = eb + E[j], r = (REAL)1 / (da * db);
                const REAL inv_a = db * r, inv_b = da * r;
                const REAL w_a = (ea * inv_a) * (E[j] * inv_a) * (ga - g[j]);
                const REAL w_b = (eb * inv_b) * (E[j] * inv_b) * (gb - g[j]);
                acc_a += w_a;
                acc_b += w_b;
                part[j] -= w_a + w_b;
            }
        }
        total_a += acc_a;
        total_b += acc_b;
    }
    *share_a += total_a;
    *share_b += total_b;
}

/* Splits a row into blocks of entries and finds each entry's window; sequential, O(n). Leaves the
 * block starts in s->block (returns their count; s->block[count] = n), end[i] in s->end and, when
 * plan.window and saturated_counts (the forward), in s->count how many saturated pairs each sorted
 * position is the larger entry of. */
static int64_t NAME(layout)(const REAL *v, int64_t n, REAL gamma, struct NAME(plan) plan,
                            struct scratch *s, int saturated_counts)
{
    int64_t *end = s->end, *saturated = s->count, blocks = 0, hi = 0;
    for (int64_t j = 0; saturated_counts && j <= n; ++j)
        saturated[j] = 0;
    const REAL reach = (REAL)SATURATION / gamma;
    for (int64_t start = 0; start < n; ++blocks) {
        /* A block ends after BLOCK entries (so REAL partial sums stay short) and, when sorted,
         * before γ(v_i − v_start) passes BLOCK_SPREAD, so that E relative to v_start stays in
         * [1, exp(MAX_EXPONENT)]: E_i ≤ exp(BLOCK_SPREAD) inside the block and a neighbour past
         * its window is clamped far enough out for σ to read 0 either way. */
        int64_t stop = start + 1;
        while (stop < n && stop - start < BLOCK &&
               (!plan.window || gamma * (v[stop] - v[start]) <= BLOCK_SPREAD))
            ++stop;
        /* The entries of a group take the window of its last (ends only move right, so it covers
         * theirs; the few pairs past their own ends are computed, not counted): one search of
         * window_end for WINDOW_GROUP entries, where one per entry waited on the one before.
         * Each end is rounded up to whole vectors from its entry (those extra pairs are computed
         * rather than counted as 1). */
        for (int64_t group = start; group < stop; group += WINDOW_GROUP) {
            const int64_t last = stop - group > WINDOW_GROUP ? group + WINDOW_GROUP : stop;
            if (plan.window)
                NAME(window_end)(v, n, last - 1, &hi, reach);
            for (int64_t i = group; i < last; ++i) {
                /* sweep_blocks takes the entries two at a time from the block's start (pairs2): the
                 * first of two takes the second's end, so that both sweep the same whole vectors */
                const int64_t from = (i - start) % 2 == 0 && i + 1 < stop ? i + 1 : i;
                const int64_t rounded = from + 1 + ((hi - from - 1 + VECTOR - 1) / VECTOR) * VECTOR;
                end[i] = plan.window && rounded < n ? rounded : n;
                if (saturated_counts) /* the backward needs none */
                    ++saturated[end[i]];
            }
        }
        s->block[blocks] = start;
        start = stop;
    }
    s->block[blocks] = n;
    return blocks;
}

/* The pairs of blocks first, first + stride, … of the layout: adds into total[] each entry's sum
 * over the pairs it was visited in (sorted order when plan.window). E and part are the caller's
 * work arrays of n + 1 entries, part all zero on entry and on return. */
static void NAME(sweep_blocks)(const REAL *v, const REAL *g, int64_t n, REAL gamma,
                               struct NAME(plan) plan, const struct scratch *s, int64_t blocks,
                               int64_t first, int64_t stride, REAL *E, REAL *part, double *total)
{
    const int64_t *end = s->end;
    if (!plan.window)
        for (int64_t j = 0; j < n; ++j)
            E[j] = EXP(gamma * (v[j] - plan.shift));
    for (int64_t b = first; b < blocks; b += stride) {
        const int64_t start = s->block[b], stop = s->block[b + 1];
        int64_t last = stop; /* max of end[i]: rounding up to vectors makes end not monotone */
        for (int64_t i = start; i < stop; ++i)
            last = end[i] > last ? end[i] : last;
        if (plan.window)
            for (int64_t j = start; j < last; ++j) {
                const REAL t = gamma * (v[j] - v[start]);
                E[j] = EXP(t < MAX_EXPONENT ? t : (REAL)MAX_EXPONENT);
            }
        int64_t i = start;
        for (; i + 1 < stop; i += 2)
            NAME(pairs2)(E, g, i, end[i], part, &total[i], &total[i + 1]);
        if (i < stop)
            total[i] += NAME(pairs)(E, g, i, end[i], part);
        for (int64_t j = start; j < last; ++j) {
            total[j] += part[j];
            part[j] = 0;
        }
    }
}

/* Sweeps a row, its blocks shared out over `threads` threads (each with its own E, part and
 * totals, added up at the end) when the row is long enough to be worth it. Leaves s->total and
 * s->count as layout and sweep_blocks describe; returns STATUS_NO_MEMORY or 0. */
static int NAME(sweep)(const REAL *v, const REAL *g, int64_t n, REAL gamma,
                       struct NAME(plan) plan, struct scratch *s, int threads)
{
    const int64_t blocks = NAME(layout)(v, n, gamma, plan, s, g == NULL);
    for (int64_t j = 0; j <= n; ++j) {
        s->total[j] = 0;
        ((REAL *)s->part)[j] = 0;
    }
    if (threads <= 1 || blocks < 2 * threads) {
        NAME(sweep_blocks)(v, g, n, gamma, plan, s, blocks, 0, 1, (REAL *)s->exps, (REAL *)s->part, s->total);
        return 0;
    }
    int status = 0;
#pragma omp parallel num_threads(threads) reduction(|:status)
    {
#ifdef _OPENMP
        const int64_t id = omp_get_thread_num(), count = omp_get_num_threads();
#else
        const int64_t id = 0, count = 1;
#endif
        REAL *E = malloc((size_t)(n + 1) * sizeof(REAL));
        REAL *part = calloc((size_t)(n + 1), sizeof(REAL));
        double *total = calloc((size_t)(n + 1), sizeof(double));
        if (E && part && total) {
            /* Interleaved blocks: dense rows' blocks shrink towards the end, so each thread gets
             * a similar share of pairs. */
            NAME(sweep_blocks)(v, g, n, gamma, plan, s, blocks, id, count, E, part, total);
#pragma omp critical
            for (int64_t j = 0; j <= n; ++j)
                s->total[j] += total[j];
        } else
            status |= STATUS_NO_MEMORY;
        free(E);
        free(part);
        free(total);
    }
    return status;
}

/* A row holding NaN or ±inf comes back all NaN: the dense formula gives NaN there too (NaN or
 * inf − inf in its pairs), and a whole NaN row cannot be mistaken for ranks. */
static int NAME(nonfinite_row)(struct NAME(plan) plan, REAL *out, int64_t n)
{
    if (plan.nonfinite)
        for (int64_t j = 0; j < n; ++j)
            out[j] = (REAL)NAN;
    return plan.nonfinite;
}

/* About how many pairs the exact sweep of a windowed row visits, for the choice of the far
 * field, without sorting the row: the share of close pairs (|γ(v_i − v_j)| ≤ SATURATION) among
 * WINDOW_SAMPLES entries at evenly spaced positions. A cost estimate only: a poor sample can cost
 * time, never accuracy. */
#define WINDOW_SAMPLES 64
static double NAME(window_pairs)(const REAL *x, int64_t n, REAL gamma)
{
    REAL sample[WINDOW_SAMPLES];
    const int count = n < WINDOW_SAMPLES ? (int)n : WINDOW_SAMPLES;
    for (int k = 0; k < count; ++k) { /* insertion sort as they come */
        const REAL value = x[(int64_t)k * n / count];
        int at = k;
        for (; at > 0 && sample[at - 1] > value; --at)
            sample[at] = sample[at - 1];
        sample[at] = value;
    }
    const REAL reach = (REAL)SATURATION / gamma;
    int64_t close = 0;
    for (int i = 0, hi = 0; i < count; ++i) {
        while (hi < count && sample[hi] - sample[i] <= reach)
            ++hi;
        close += hi - i - 1;
    }
    const double share = count > 1 ? (double)close / ((double)count * (count - 1) / 2) : 1.0;
    return (double)n + share * (double)n * (double)(n - 1) / 2;
}

/* Rows shorter than this always take the exact sweep: below it the expansion's fixed costs
 * per row (tables, allocations, the threads' hand-offs) outweigh what it saves. */
#define FARFIELD_MIN_N 512
/* What a pair of the exact sweep (forward, backward) and sorting one entry for its windows cost,
 * in units of the expansion's multiply-adds (farfield_cost): fitted to per-row times of both on
 * 2 cores with AVX-512, n = 512–8,192, γ = 0.1–100 (0.42 and 0.73), then multiplied by what one
 * division per two pairs saved on the calibration row (2026-12-04, Xeon with AVX-512: the
 * calibrated scales went from 1.27 to 0.82 forward and from 1.03 to 0.82 backward, medians of
 * four). The pair's cost is then scaled by
 * exact_cost_scale, which the loader measures on the CPU it runs on (softrank_set_exact_cost;
 * native.py): the sweep's divisions and the expansion's multiply-adds vectorise differently, so
 * their ratio is the CPU's, not a constant. */
#define FARFIELD_PAIR_COST(deriv) (((deriv) ? 0.58 : 0.27) * exact_cost_scale[deriv])
#define FARFIELD_SORT_COST 100.0 /* scalar code: the same on any vector width, so not scaled */
/* The exact sweep of one row split over T threads ran about this times T faster (T = 2). */
#define SWEEP_SPLIT_GAIN 0.7

/* Whether the expansion costs less than the exact sweep for a row given `threads` threads.
 * `sorted`: a backward whose forward kept the row's order, so that its windows cost no sort.
 * (A forward that also weighed what its sort would spare the backward was tried, 2026-12-05:
 * 1.1-1.2x faster on single rows of 1,536-4,096 at γ = 20-50, 0.91-0.97x on batches of 128 of
 * them; not kept.) */
static int NAME(farfield_cheaper)(const REAL *x, int64_t n, REAL gamma, struct NAME(plan) plan, int deriv,
                                  int weights, int threads, int sorted)
{
    if (n < FARFIELD_MIN_N)
        return 0;
    const double expansion = farfield_cost(n, (double)plan.spread, deriv, weights, threads);
    const double speedup = threads > 1 ? SWEEP_SPLIT_GAIN * threads : 1.0;
    const double all_pairs = (double)n * (double)(n - 1) / 2;
    const double pair = FARFIELD_PAIR_COST(deriv);
    const double sort = sorted ? 0.0 : FARFIELD_SORT_COST * (double)n;
    if ((pair * all_pairs + sort) / speedup <= expansion)
        return 0; /* it would lose even to every pair */
    const double exact = plan.window ? pair * NAME(window_pairs)(x, n, gamma) + sort : pair * all_pairs;
    return exact / speedup > expansion;
}

/* Groups the row by far-field bin, in ascending bin order (a counting sort: the expansion needs
 * no order within a bin): t = γ (v − min v) in double into s->wide[0], s->sorted_index[k] the
 * column of the k-th. Returns 0, or 1 when memory could not be allocated. */
static int NAME(bin_row)(const REAL *x, int64_t n, REAL gamma, struct NAME(plan) plan, struct scratch *s)
{
    double *t = s->wide[3], *grouped = s->wide[0];
    for (int64_t j = 0; j < n; ++j)
        t[j] = (double)gamma * ((double)x[j] - (double)plan.lo);
    const double t_max = (double)gamma * ((double)plan.hi - (double)plan.lo); /* t of the largest */
    const int64_t bins = (int64_t)(t_max / FARFIELD_BIN) + 1;
    int64_t *start = calloc((size_t)bins + 1, sizeof *start);
    if (start == NULL)
        return 1;
    for (int64_t j = 0; j < n; ++j)
        ++start[(int64_t)(t[j] / FARFIELD_BIN) + 1];
    for (int64_t b = 0; b < bins; ++b)
        start[b + 1] += start[b];
    int32_t *index = s->index;
    for (int64_t j = 0; j < n; ++j) {
        const int64_t at = start[(int64_t)(t[j] / FARFIELD_BIN)]++;
        grouped[at] = t[j];
        index[at] = (int32_t)j;
    }
    s->sorted_index = index;
    free(start);
    return 0;
}

/* Whether a row takes the far-field expansion (native_farfield.h): float32 rows where it costs
 * less than the exact sweep (or as farfield_mode forces). Leaves the row grouped by bin (bin_row)
 * when it returns 1, and sorted in s->values when it returns 0 and plan.window: by `order`, the
 * sorted columns the forward kept for this row (order[0] < 0 or NULL: none), else by sorting. */
static int NAME(use_farfield)(const REAL *x, int64_t n, REAL gamma, struct NAME(plan) plan,
                              struct scratch *s, int deriv, int weights, int threads, const int32_t *order)
{
    const int take = FARFIELD && (farfield_mode == FARFIELD_ALWAYS ||
                                  (farfield_mode == FARFIELD_AUTO &&
                                   NAME(farfield_cheaper)(x, n, gamma, plan, deriv, weights, threads,
                                                          order != NULL && order[0] >= 0)));
    if (take && !NAME(bin_row)(x, n, gamma, plan, s))
        return 1;
    if (plan.window && order != NULL && order[0] >= 0) {
        REAL *values = (REAL *)s->values;
        for (int64_t k = 0; k < n; ++k)
            values[k] = x[order[k]];
        s->sorted_index = order;
    } else if (plan.window) /* the exact sweep's windows need the row sorted */
        NAME(sort_row)(x, n, s);
    return 0;
}

/* Exported: the cost model's estimates for one row on `threads` threads, in the expansion's
 * units: out[0] the exact sweep (with the current exact_cost_scale), out[1] the expansion. The
 * loader's calibration divides measured times by them. */
void NAME(softrank_costs)(const REAL *x, int64_t n, double gamma, int backward, int threads, double *out)
{
    const struct NAME(plan) plan = NAME(plan_row)(x, n, (REAL)gamma);
    const double speedup = threads > 1 ? SWEEP_SPLIT_GAIN * threads : 1.0;
    const double pairs = plan.window ? NAME(window_pairs)(x, n, (REAL)gamma) : (double)n * (double)(n - 1) / 2;
    out[0] = (FARFIELD_PAIR_COST(backward) * pairs + (plan.window ? FARFIELD_SORT_COST * (double)n : 0.0)) /
             speedup;
    out[1] = farfield_cost(n, (double)plan.spread, backward, backward ? 2 : 1, threads);
}

/* Exported: how a row would be swept in a call on `rows` rows over `threads` threads (0 dense,
 * 1 sorted windows, 2 far-field expansion; -1 for a row holding NaN/inf), for tests
 * and benchmarks of the choice; `sorted`: a backward whose forward kept the row's order. */
int NAME(softrank_method)(const REAL *x, int64_t n, double gamma, int backward, int64_t rows, int threads,
                          int sorted)
{
    threads = row_threads(rows, threads);
    const struct NAME(plan) plan = NAME(plan_row)(x, n, (REAL)gamma);
    if (plan.nonfinite)
        return -1;
    const int deriv = backward != 0;
    const int take = FARFIELD && (farfield_mode == FARFIELD_ALWAYS ||
                                  (farfield_mode == FARFIELD_AUTO &&
                                   NAME(farfield_cheaper)(x, n, (REAL)gamma, plan, deriv, deriv ? 2 : 1, threads,
                                                          deriv && sorted)));
    return take ? 2 : plan.window;
}

/* Row x, whose plan_row is `plan`. Returns STATUS_NONFINITE for a row holding NaN/inf, else 0.
 * When `order` is not NULL, leaves in it the row's sorted columns for the backward and returns
 * STATUS_ORDER_KEPT (order[0] = -1 where the row was not sorted). */
static int NAME(forward_row)(struct NAME(plan) plan, const REAL *x, REAL *out, int32_t *order, int64_t n,
                             REAL gamma, struct scratch *s, int threads)
{
    if (order != NULL)
        order[0] = -1;
    if (NAME(nonfinite_row)(plan, out, n))
        return STATUS_NONFINITE;
    if (NAME(use_farfield)(x, n, gamma, plan, s, 0, 1, threads, NULL)) {
        const double *no_weights[1] = {NULL};
        double *const sums[1] = {s->total};
        if (farfield_sum(s->wide[0], n, 0, 1, no_weights, sums, threads))
            return STATUS_NO_MEMORY;
        for (int64_t k = 0; k < n; ++k)
            out[s->sorted_index[k]] = (REAL)(s->total[k] + 0.5);
        return 0;
    }
    const REAL *v = plan.window ? (const REAL *)s->values : x;
    if (NAME(sweep)(v, NULL, n, gamma, plan, s, threads))
        return STATUS_NO_MEMORY;
    const int kept = order != NULL && plan.window;
    if (kept)
        memcpy(order, s->sorted_index, (size_t)n * sizeof *order);
    /* + 1: σ(0) of the pair (i, i) and the offset 1/2; + below: saturated pairs. */
    int64_t below = 0;
    for (int64_t k = 0; k < n; ++k) {
        below += plan.window ? s->count[k] : 0;
        out[plan.window ? s->sorted_index[k] : k] = (REAL)(s->total[k] + 1.0 + (double)below);
    }
    return kept ? STATUS_ORDER_KEPT : 0;
}

/* Row x, whose plan_row is `plan`; `order`: what forward_row kept for this row, or NULL. */
static int NAME(backward_row)(struct NAME(plan) plan, const REAL *x, const REAL *grad, const int32_t *order,
                              REAL *out, int64_t n, REAL gamma, struct scratch *s, int threads)
{
    if (NAME(nonfinite_row)(plan, out, n))
        return STATUS_NONFINITE;
    if (NAME(use_farfield)(x, n, gamma, plan, s, 1, 2, threads, order)) {
        /* ∂L/∂v_k = γ (g_k Σ_j σ'(t_k − t_j) − Σ_j σ'(t_k − t_j) g_j) */
        double *sorted_grad = s->wide[1];
        for (int64_t k = 0; k < n; ++k)
            sorted_grad[k] = (double)grad[s->sorted_index[k]];
        const double *weight[2] = {NULL, sorted_grad};
        double *const sums[2] = {s->total, s->wide[2]};
        if (farfield_sum(s->wide[0], n, 1, 2, weight, sums, threads))
            return STATUS_NO_MEMORY;
        for (int64_t k = 0; k < n; ++k)
            out[s->sorted_index[k]] = (REAL)((double)gamma * (sorted_grad[k] * s->total[k] - s->wide[2][k]));
        return 0;
    }
    const REAL *v = x, *g = grad;
    if (plan.window) {
        v = (const REAL *)s->values;
        REAL *sorted_grad = (REAL *)s->grad;
        for (int64_t k = 0; k < n; ++k)
            sorted_grad[k] = grad[s->sorted_index[k]];
        g = sorted_grad;
    }
    if (NAME(sweep)(v, g, n, gamma, plan, s, threads))
        return STATUS_NO_MEMORY;
    for (int64_t k = 0; k < n; ++k)
        out[plan.window ? s->sorted_index[k] : k] = (REAL)((double)gamma * s->total[k]);
    return 0;
}

/* One row forward (grad == NULL) or backward, whose plan_row is `plan`; `order` as forward_row
 * leaves it (or NULL). */
static int NAME(planned_row)(struct NAME(plan) plan, const REAL *x, const REAL *grad, int32_t *order, REAL *out,
                             int64_t n, REAL gamma, struct scratch *s, int threads)
{
    return grad ? NAME(backward_row)(plan, x, grad, order, out, n, gamma, s, threads)
                : NAME(forward_row)(plan, x, out, order, n, gamma, s, threads);
}

/* The same, planning the row first. */
static int NAME(row)(const REAL *x, const REAL *grad, int32_t *order, REAL *out, int64_t n, REAL gamma,
                     struct scratch *s, int threads)
{
    return NAME(planned_row)(NAME(plan_row)(x, n, gamma), x, grad, order, out, n, gamma, s, threads);
}

/* Rows a vector at a time, one row per lane: the pairs of a short dense row run in loops of a
 * few dozen, and per entry the loop's setup, remainder and reduction cost as much as its
 * divisions (the forward of rows of 100 ran at 1.9x the time of its divisions alone). Across
 * rows every lane runs the same pair (i, j), so the loops are whole vectors with no reduction.
 * Each lane does exactly the arithmetic of the others, so a row's result does not depend on the
 * rows beside it. Sums as in sweep_blocks: REAL over BLOCK pairs, then double; one division for
 * the pairs (a, j) and (b, j) as in pairs2. */
#define LANES ((int)(TARGET_VECTOR_BYTES / sizeof(REAL)))
FP_CONTRACT_OFF static void NAME(lanes)(const REAL *const x[], const REAL *const grad[], REAL *const out[],
                                        const REAL shift[], int64_t n, REAL gamma, REAL *restrict E,
                                        REAL *restrict G, REAL *restrict part, double *restrict total)
{
    const int backward = grad[0] != NULL;
    for (int64_t j = 0; j < n; ++j)
        LANE_LOOP for (int l = 0; l < LANES; ++l) {
            E[j * LANES + l] = x[l][j] - shift[l];
            G[j * LANES + l] = backward ? grad[l][j] : 0;
            part[j * LANES + l] = 0;
            total[j * LANES + l] = 0;
        }
    for (int64_t k = 0; k < n * LANES; ++k) /* apart from the transposition, so that it vectorises */
        E[k] = EXP(gamma * E[k]);
    for (int64_t start = 0; start < n; start += BLOCK) {
        const int64_t stop = n - start > BLOCK ? start + BLOCK : n;
        /* Entries two at a time, a = i and b = i + 1: after their own pair, each j > b is loaded and
         * its part updated once for both. */
        for (int64_t i = start; i < stop; i += 2) {
            const int64_t b = i + 1 < stop ? i + 1 : i; /* b = a: a last entry alone */
            const REAL *ea = E + i * LANES, *eb = E + b * LANES, *ga = G + i * LANES, *gb = G + b * LANES;
            const REAL with_b = b > i ? (REAL)1 : (REAL)0; /* alone, b's pairs all add exactly 0 */
            REAL acc_a[LANES], acc_b[LANES];
            LANE_LOOP for (int l = 0; l < LANES; ++l) { /* the pair (a, b) */
                const REAL inv = with_b / (ea[l] + eb[l]);
                const REAL w = backward ? (ea[l] * inv) * (eb[l] * inv) * (ga[l] - gb[l]) : ea[l] * inv;
                acc_a[l] = w;
                acc_b[l] = 0;
                part[b * LANES + l] += backward ? -w : eb[l] * inv;
            }
            for (int64_t from = b + 1; from < n; from += BLOCK) {
                const int64_t to = n - from > BLOCK ? from + BLOCK : n;
                if (!backward)
                    for (int64_t j = from; j < to; ++j) {
                        const REAL *ej = E + j * LANES;
                        REAL *pj = part + j * LANES;
                        LANE_LOOP for (int l = 0; l < LANES; ++l) {
                            const REAL da = ea[l] + ej[l], db = eb[l] + ej[l], r = (REAL)1 / (da * db);
                            const REAL inv_a = db * r, inv_b = with_b * (da * r);
                            acc_a[l] += ea[l] * inv_a;
                            acc_b[l] += eb[l] * inv_b;
                            pj[l] += ej[l] * (inv_a + inv_b);
                        }
                    }
                else
                    for (int64_t j = from; j < to; ++j) {
                        const REAL *ej = E + j * LANES, *gj = G + j * LANES;
                        REAL *pj = part + j * LANES;
                        LANE_LOOP for (int l = 0; l < LANES; ++l) {
                            const REAL da = ea[l] + ej[l], db = eb[l] + ej[l], r = (REAL)1 / (da * db);
                            const REAL inv_a = db * r, inv_b = with_b * (da * r);
                            const REAL w_a = (ea[l] * inv_a) * (ej[l] * inv_a) * (ga[l] - gj[l]);
                            const REAL w_b = (eb[l] * inv_b) * (ej[l] * inv_b) * (gb[l] - gj[l]);
                            acc_a[l] += w_a;
                            acc_b[l] += w_b;
                            pj[l] -= w_a + w_b;
                        }
                    }
                LANE_LOOP for (int l = 0; l < LANES; ++l) {
                    total[i * LANES + l] += acc_a[l];
                    total[b * LANES + l] += acc_b[l];
                    acc_a[l] = acc_b[l] = 0;
                }
            }
            LANE_LOOP for (int l = 0; l < LANES; ++l) { /* when no j > b is left */
                total[i * LANES + l] += acc_a[l];
                total[b * LANES + l] += acc_b[l];
            }
        }
        for (int64_t j = start + 1; j < n; ++j) /* the block's shares to later entries, into double */
            LANE_LOOP for (int l = 0; l < LANES; ++l) {
                total[j * LANES + l] += part[j * LANES + l];
                part[j * LANES + l] = 0;
            }
    }
    for (int64_t j = 0; j < n; ++j)
        LANE_LOOP for (int l = 0; l < LANES; ++l) /* forward: + 1 for σ(0) of the pair (i, i) and the offset 1/2 */
            out[l][j] = (REAL)(backward ? (double)gamma * total[j * LANES + l] : total[j * LANES + l] + 1.0);
}

/* Rows [first, last) of a call, their dense rows through lanes() a vector's worth at a time (the
 * last group filled up with constant rows whose results are dropped), the others one by one.
 * Returns STATUS_* bits as rows() does. */
static int NAME(rows_in_lanes)(const REAL *x, const REAL *grad, int32_t *order, REAL *out, int64_t first,
                               int64_t last, int64_t n, REAL gamma, struct scratch *s)
{
    REAL *work = malloc((size_t)(3 * LANES + 2) * (size_t)n * sizeof(REAL));
    double *total = malloc((size_t)LANES * (size_t)n * sizeof(double));
    if (work == NULL || total == NULL) {
        free(work);
        free(total);
        return STATUS_NO_MEMORY;
    }
    REAL *E = work, *G = E + LANES * n, *part = G + LANES * n, *filler = part + LANES * n, *dropped = filler + n;
    for (int64_t j = 0; j < n; ++j)
        filler[j] = 0;
    const REAL *in[LANES], *g[LANES];
    REAL *to[LANES], shift[LANES];
    int status = 0, used = 0;
    for (int64_t row = first; row < last || used > 0; ++row) {
        if (row < last) {
            const REAL *xr = x + row * n, *gr = grad ? grad + row * n : NULL;
            const struct NAME(plan) plan = NAME(plan_row)(xr, n, gamma);
            if (plan.nonfinite || plan.window) {
                int32_t *kept = order ? order + row * n : NULL;
                status |= NAME(planned_row)(plan, xr, gr, kept, out + row * n, n, gamma, s, 1);
                continue;
            }
            if (order != NULL)
                order[row * n] = -1; /* not sorted */
            in[used] = xr, g[used] = gr, to[used] = out + row * n, shift[used] = plan.shift;
            if (++used < LANES)
                continue;
        }
        for (int l = used; l < LANES; ++l)
            in[l] = filler, g[l] = grad ? filler : NULL, to[l] = dropped, shift[l] = 0;
        NAME(lanes)(in, g, to, shift, n, gamma, E, G, part, total);
        used = 0;
    }
    free(work);
    free(total);
    return status;
}

/* rows × n, row-major, over `threads` threads (OpenMP builds; without OpenMP the caller runs one
 * block of rows per thread of its own). With at least as many rows as threads, each thread takes
 * a contiguous block of rows; with fewer, the rows go one at a time, each split over all the
 * threads. `order` (rows × n, or NULL): the forward leaves each sorted row's columns in it, the
 * backward reads them instead of sorting again. Returns STATUS_* bits: no scratch memory, a row
 * held NaN/inf (that row comes back all NaN), some row's order was kept. */
static int NAME(rows)(const REAL *x, const REAL *grad, int32_t *order, REAL *out, int64_t rows, int64_t n,
                      double gamma, int threads)
{
    int status = 0;
#define ROW_ARGS(row) x + (row) * n, grad ? grad + (row) * n : NULL, order ? order + (row) * n : NULL, \
                      out + (row) * n, n, (REAL)gamma
    if (row_threads(rows, threads) > 1) {
        struct scratch *s = scratch_get(n, sizeof(REAL));
        if (s == NULL)
            return STATUS_NO_MEMORY;
        for (int64_t row = 0; row < rows; ++row)
            status |= NAME(row)(ROW_ARGS(row), s, threads);
        return status;
    }
    /* Whether dense rows go a vector of rows at a time: decided by the call, not by each
     * thread's share of it, so that a row's result does not depend on the number of threads. */
    const int in_lanes = rows >= LANES && n < LANES_MAX_N;
#pragma omp parallel num_threads(threads) reduction(|:status) if (threads > 1)
    {
        int64_t first, last;
        row_block(rows, &first, &last);
        struct scratch *s = first < last ? scratch_get(n, sizeof(REAL)) : NULL;
        if (first < last && s == NULL)
            status |= STATUS_NO_MEMORY;
        else if (in_lanes && first < last)
            status |= NAME(rows_in_lanes)(x, grad, order, out, first, last, n, (REAL)gamma, s);
        else
            for (int64_t row = first; s != NULL && row < last; ++row)
                status |= NAME(row)(ROW_ARGS(row), s, 1);
    }
#undef ROW_ARGS
    return status;
}

/* Exported: see NAME(rows). `order` may be NULL. */
int NAME(softrank_forward)(const REAL *x, int32_t *order, REAL *out, int64_t rows, int64_t n, double gamma,
                           int threads)
{
    return NAME(rows)(x, NULL, order, out, rows, n, gamma, threads);
}

int NAME(softrank_backward)(const REAL *x, const REAL *grad, const int32_t *order, REAL *out, int64_t rows,
                            int64_t n, double gamma, int threads)
{
    return NAME(rows)(x, grad, (int32_t *)order, out, rows, n, gamma, threads); /* only read */
}

#undef LANES
