#!/bin/sh
# A C compiler for timing the native kernels as another x86 target builds them, on this core:
# it passes everything through to the real compiler but puts -march=$MARCH where the library asks
# for -march=native. Give it a cache of its own, since the library's cache key does not see MARCH:
#
#   MARCH=x86-64-v3 CC=benchmarks/cc_march.sh SOFTRANK_AD_CACHE=/tmp/softrank-v3 \
#       python benchmarks/soft_rank_throughput.py --quick
#
# x86-64-v3 is AVX2 + FMA without AVX-512. The reports name the target the kernels were built
# for beside the CPU. Same core, other instructions: the clock, caches and division throughput
# stay this CPU's, so it is a proxy for an AVX2-only machine, not a measurement of one.
: "${MARCH:?set MARCH to a -march target, e.g. x86-64-v3}"
for argument do
    shift
    [ "$argument" = "-march=native" ] && argument="-march=$MARCH"
    set -- "$@" "$argument"
done
exec "${REAL_CC:-cc}" "$@"
