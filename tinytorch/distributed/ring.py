"""The ring all-reduce, step by step in NumPy: what MPI does for ``all_reduce`` on large arrays.

p ranks stand in a ring; each sends only to its right-hand neighbour. Each rank's array is cut
into p chunks. In the *reduce-scatter* phase (p - 1 steps) every rank passes one chunk on and adds
the chunk it receives to its own; afterwards rank r holds the complete sum of chunk (r + 1) mod p.
In the *all-gather* phase (p - 1 more steps) the finished chunks travel once around the ring, each
rank overwriting its stale copy. Every rank has sent 2(p - 1) chunks of n/p numbers:
2(p - 1)/p * n in all, under 2n however many ranks there are, and all ranks send at once.

Sending everything to one rank and back instead (reduce to rank 0, then broadcast) makes rank 0
send (p - 1) * n numbers and receive as many: its link is the bottleneck, and it gets worse with
every rank added.

>>> import numpy as np
>>> results, sent = ring_all_reduce([np.arange(6.0), np.ones(6), np.full(6, 2.0)])
>>> results[0]
array([3., 4., 5., 6., 7., 8.])
>>> sent                                   # 2 * (3 - 1) / 3 * 6 numbers per rank
[8, 8, 8]
"""

from __future__ import annotations

import numpy as np


def ring_all_reduce(arrays: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """Sum ``arrays`` (one per rank, all of one shape) the way a ring all-reduce does; nothing is modified.

    Each array is flattened and cut into p chunks with ``np.array_split`` (chunk k of every rank
    has the same length). Reduce-scatter: at step s = 0 .. p-2, rank r sends chunk (r - s) mod p to
    rank (r + 1) mod p, which adds it to its own copy of that chunk. All-gather: at step
    s = 0 .. p-2, rank r sends chunk (r + 1 - s) mod p, which rank (r + 1) mod p stores in place
    of its own. Within a step, every rank sends what it held at the start of the step.

    Returns
    -------
    results : list of np.ndarray
        Each rank's result: the element-wise sum of all the arrays, in their shape.
    sent : list of int
        How many numbers each rank sent, counting every element of every chunk it passed on.
    """
    if not arrays:
        raise ValueError("ring_all_reduce: needs one array per rank, got none")
    shape = np.shape(arrays[0])
    if any(np.shape(a) != shape for a in arrays):
        raise ValueError(f"ring_all_reduce: every rank's array must have one shape, got {[np.shape(a) for a in arrays]}")
    p = len(arrays)
    chunks = [np.array_split(np.array(a, dtype=np.result_type(*arrays)).ravel(), p) for a in arrays]
    sent = [0] * p
    for phase in ("reduce-scatter", "all-gather"):
        for step in range(p - 1):
            outgoing = []
            for r in range(p):
                k = (r - step) % p if phase == "reduce-scatter" else (r + 1 - step) % p
                outgoing.append((k, chunks[r][k].copy()))  # what rank r holds at the start of the step
                sent[r] += chunks[r][k].size
            for r, (k, chunk) in enumerate(outgoing):
                right = (r + 1) % p
                chunks[right][k] = chunks[right][k] + chunk if phase == "reduce-scatter" else chunk
    return [np.concatenate(c).reshape(shape) for c in chunks], sent
