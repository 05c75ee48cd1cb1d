"""Row chunking that bounds the transient pairwise tensors of the torch backends."""

from __future__ import annotations

from collections.abc import Iterator

# Elements of one (rows, n, width) pairwise temporary. A few such temporaries are alive at
# once, so 2**22 float32 elements keeps the transient peak near 64 MiB whatever the batch.
PAIRWISE_ELEMENT_BUDGET = 1 << 22


def row_slices(rows: int, width_per_row: int) -> Iterator[slice]:
    """Slices of at most ``PAIRWISE_ELEMENT_BUDGET // width_per_row`` rows covering ``rows``."""
    step = max(1, PAIRWISE_ELEMENT_BUDGET // max(1, width_per_row))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def pairwise_blocks(rows: int, n: int) -> Iterator[tuple[slice, slice]]:
    """(row slice, entry slice) blocks whose (rows, entries, n) pairwise temporary stays within
    ``PAIRWISE_ELEMENT_BUDGET``: whole rows while n² fits, else one row in blocks of entries."""
    if n * n <= PAIRWISE_ELEMENT_BUDGET:
        for rs in row_slices(rows, n * n):
            yield rs, slice(0, n)
        return
    step = max(1, PAIRWISE_ELEMENT_BUDGET // n)
    for row in range(rows):
        for start in range(0, n, step):
            yield slice(row, row + 1), slice(start, min(start + step, n))
