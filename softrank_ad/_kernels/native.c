/* CPU soft-rank kernels, compiled on first use by native.py and called through ctypes.
 *
 * Forward:  r_i = 1/2 + Σ_j σ(γ (v_i − v_j))
 * Backward: ∂L/∂v_k = γ Σ_j σ'(γ (v_k − v_j)) (g_k − g_j)
 *
 * Plain C with no Python or torch headers, so it builds in well under a second with any C99
 * compiler. The per-row algorithm is in native_rows.h; this file instantiates it for float and
 * double.
 *
 * Threads: built with -fopenmp, a call splits its rows over `threads` OpenMP threads. The library
 * then links the OpenMP runtime torch has already loaded (libgomp.so.1, found by soname), so its
 * parallel regions reuse torch's own worker threads: after any torch op those workers spin-wait
 * for more work, and a second pool of threads would have to fight them for the cores. Built
 * without OpenMP, a call runs on the calling thread and the caller splits the rows.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define STATUS_NO_MEMORY 1
#define STATUS_NONFINITE 2
#define STATUS_ORDER_KEPT 4 /* a forward left some row's sorted order in `order` */

/* Whether this build runs its own parallel regions (the caller reads it once). */
int softrank_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* Where this library's omp_get_thread_num resolved to (NULL without OpenMP): lets a test check
 * that it is torch's runtime, even when other packages have loaded OpenMP runtimes of their own. */
void *softrank_openmp_symbol(void)
{
#ifdef _OPENMP
    return (void *)omp_get_thread_num;
#else
    return NULL;
#endif
}

/* The contiguous block of rows of the calling thread (all rows outside a parallel region).
 * Blocks, not an omp for: every thread sets up its own scratch first, and one that fails must
 * not skip a worksharing construct the others wait at. */
static void row_block(int64_t rows, int64_t *first, int64_t *last)
{
#ifdef _OPENMP
    const int64_t count = omp_get_num_threads(), id = omp_get_thread_num();
#else
    const int64_t count = 1, id = 0;
#endif
    const int64_t step = (rows + count - 1) / count;
    *first = id * step < rows ? id * step : rows;
    *last = *first + step < rows ? *first + step : rows;
}

/* The threads each row of a call on `rows` rows gets: all of them when there are fewer rows than
 * threads (one row at a time, split over the threads), else one (a block of rows per thread). */
static int row_threads(int64_t rows, int threads)
{
    return rows < threads ? threads : 1;
}

/* Rows shorter than this are never sorted: the sort would cost more than the pairs it skips. */
#define WINDOW_MIN_N 64
/* Window ends are rounded up to this many entries so the inner loop runs in whole vectors. */
#define VECTOR 16
/* A window's end moves this many entries per step (native_rows.h, window_end): of 1, 2, 3, 4, 6
 * and 8, 4 ran the windowed rows of n = 1,000, γ = 100 fastest, about 10% faster than 1. */
#define WINDOW_STEP 4
/* Entries that share one window end, their last's (native_rows.h, layout). On the windowed rows
 * of n = 1,000, γ = 100, 4 and 8 ran alike (backward about 1.1x, forward 1.04x faster than 1),
 * 2 gained less; 4 computes fewer pairs past the entries' own ends. */
#define WINDOW_GROUP 4
/* The widest vector register of the build target in bytes (64 AVX-512, 32 AVX2, 16 SSE2 or
 * NEON): gcc's __BIGGEST_ALIGNMENT__ is its size, so no ISA is named. clang's is the x86-64 ABI's
 * 16 whatever the target, so clang builds run 16-byte lanes and blocks; set to 64 there (from
 * __AVX512F__), clang 14 made a dense row's result depend on the rows in the lanes beside it
 * (tests/test_native_kernel.py), so they stay at 16. */
#if defined(__BIGGEST_ALIGNMENT__) && __BIGGEST_ALIGNMENT__ >= 16
#define TARGET_VECTOR_BYTES __BIGGEST_ALIGNMENT__
#else
#define TARGET_VECTOR_BYTES 16
#endif
/* The instruction sets this build was compiled for, as the compiler's macros say (what
 * -march=native chose, or whatever target the build was given): benchmark reports name it
 * beside the CPU, since the same CPU runs different code under different targets. */
const char *softrank_target(void)
{
    return ""
#ifdef __AVX512F__
           " avx512f"
#endif
#ifdef __AVX2__
           " avx2"
#endif
#ifdef __FMA__
           " fma"
#endif
#ifdef __AVX__
           " avx"
#endif
#ifdef __SSE4_2__
           " sse4_2"
#endif
#ifdef __ARM_NEON
           " neon"
#endif
#ifdef __ARM_FEATURE_SVE
           " sve"
#endif
        ;
}

/* The widest vector register of the build target, in bytes. */
int softrank_vector_bytes(void)
{
    return TARGET_VECTOR_BYTES;
}

/* The compiler may fuse a * b + c into one rounding in some lanes of a loop and not in others
 * (a vector part and a scalar rest): where every lane must do the same arithmetic, it may not. */
#if defined(__GNUC__) && !defined(__clang__)
#define FP_CONTRACT_OFF __attribute__((optimize("fp-contract=off")))
#else
#define FP_CONTRACT_OFF /* clang contracts only within one expression, the same in every lane */
#endif
/* A loop over the lanes of one vector must stay a loop until the vectoriser sees it: with a few
 * lanes (8 floats with AVX2, 4 doubles) gcc 12 unrolled it whole first and then vectorised the
 * loop around it across entries instead, and the lanes forward of rows of 100 ran 2.3x slower
 * on an AVX2 build than on an AVX-512 one (float64 and SSE2 builds 1.3-1.8x slower than with
 * this). clang is left as it was (its 16-byte lanes above). */
#if defined(__GNUC__) && !defined(__clang__)
#define LANE_LOOP _Pragma("GCC unroll 1")
#else
#define LANE_LOOP
#endif
/* Dense rows shorter than this, in calls on at least a vector's worth of rows, are ranked a
 * vector of rows at a time, one row per lane (native_rows.h, lanes). */
#define LANES_MAX_N 512
/* Entries per block: the block's REAL partial sums are then added into double totals, so float
 * rows of any length keep double-precision sums at float speed. */
#define BLOCK 64

/* Per-row work arrays, allocated once per call for rows of length n. */
struct scratch {
    void *key, *key_tmp, *values, *grad, *exps, *part;
    int32_t *index, *index_tmp;
    const int32_t *sorted_index; /* the sort's index, or an order the forward kept */
    double *total;
    int64_t *count, *end, *block;
    double *wide[4]; /* far field: the row grouped by bin, its weights, its second output,
                      * and t in column order */
};

static void scratch_free(struct scratch *s)
{
    free(s->key); free(s->key_tmp); free(s->values); free(s->grad); free(s->exps); free(s->part);
    free(s->index); free(s->index_tmp); free(s->total); free(s->count); free(s->end);
    free(s->block);
    for (int w = 0; w < 4; ++w)
        free(s->wide[w]);
}

static int scratch_alloc(struct scratch *s, int64_t n, size_t real_size)
{
    const size_t m = (size_t)n + 1;
    s->key = malloc(m * 8);
    s->key_tmp = malloc(m * 8);
    s->values = malloc(m * real_size);
    s->grad = malloc(m * real_size);
    s->exps = malloc(m * real_size);
    s->part = malloc(m * real_size);
    s->index = malloc(m * sizeof(int32_t));
    s->index_tmp = malloc(m * sizeof(int32_t));
    s->total = malloc(m * sizeof(double));
    s->count = malloc(m * sizeof(int64_t));
    s->end = malloc(m * sizeof(int64_t));
    s->block = malloc(m * sizeof(int64_t));
    for (int w = 0; w < 4; ++w)
        s->wide[w] = malloc(m * sizeof(double));
    s->sorted_index = s->index;
    if (s->key && s->key_tmp && s->values && s->grad && s->exps && s->part && s->index &&
        s->index_tmp && s->total && s->count && s->end && s->block && s->wide[0] && s->wide[1] &&
        s->wide[2] && s->wide[3])
        return 1;
    scratch_free(s);
    return 0;
}

/* Each thread's scratch, kept between calls and regrown only for a longer row or a wider type:
 * fresh allocations of long rows' scratch are mapped afresh by malloc, and their page faults can
 * cost more than the work. A thread keeps O(n) bytes for the longest row it has ranked. */
static _Thread_local struct scratch kept;
static _Thread_local int64_t kept_n = -1;
static _Thread_local size_t kept_size;

/* This thread's scratch for rows of n entries of real_size bytes, or NULL when out of memory. */
static struct scratch *scratch_get(int64_t n, size_t real_size)
{
    if (kept_n >= n && kept_size >= real_size)
        return &kept;
    if (kept_n >= 0)
        scratch_free(&kept);
    kept_n = -1;
    if (!scratch_alloc(&kept, n, real_size))
        return NULL;
    kept_n = n;
    kept_size = real_size;
    return &kept;
}

/* exp for float, |x| ≤ 88: Cephes' expf polynomial (about 1 ulp) written branch-free so the
 * compiler vectorises it; libm's expf would be one scalar call per entry. */
static inline float exp_f32(float x)
{
    const float k = __builtin_roundf(x * 1.44269504088896341f);
    float r = x - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#include "native_farfield.h"

#define REAL float
#define FARFIELD 1         /* long float32 rows may take the far-field expansion */
#define UKEY uint32_t
#define PACKED_SORT 1
#define NAME(x) x##_f32
#define EXP exp_f32
#define SATURATION 17.0f   /* σ(−17) is below half a float ulp of any rank (≥ 1) */
#define BLOCK_SPREAD 20.0f
#define MAX_EXPONENT 40.0f /* ≥ BLOCK_SPREAD + SATURATION; 2 exp(40) is far from overflow */
#include "native_rows.h"
#undef REAL
#undef FARFIELD
#undef UKEY
#undef PACKED_SORT
#undef NAME
#undef EXP
#undef SATURATION
#undef BLOCK_SPREAD
#undef MAX_EXPONENT

#define REAL double
#define FARFIELD 0         /* float64 stays exact to rounding */
#define UKEY uint64_t
#define PACKED_SORT 0
#define NAME(x) x##_f64
#define EXP exp
#define SATURATION 37.0
#define BLOCK_SPREAD 40.0
#define MAX_EXPONENT 80.0
#include "native_rows.h"
