"""The assignment problem without scipy: a maximal-total-similarity permutation.

``head_matching`` assigns heads with scipy's ``linear_sum_assignment`` (a dependency of
mispec); this exact fallback keeps an environment without scipy working. It is the
Hungarian algorithm in its shortest-augmenting-path form (Kuhn–Munkres with potentials,
O(n^3)), on costs ``-similarity``.
"""

from __future__ import annotations

import numpy as np


def max_assignment(similarity: np.ndarray) -> np.ndarray:
    """For a square ``[n, n]`` matrix, the column of each row that maximises the total."""
    cost = -np.asarray(similarity, dtype=np.float64)
    n = cost.shape[0]
    if cost.shape != (n, n):
        raise ValueError(f"a square matrix is needed, got shape {cost.shape}")
    inf = float("inf")
    u = np.zeros(n + 1)  # row potentials (1-based; 0 is the virtual start)
    v = np.zeros(n + 1)  # column potentials
    row_of = np.zeros(n + 1, dtype=np.int64)  # row_of[j]: the row matched to column j (0: none)
    way = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        row_of[0] = i
        j0 = 0
        minv = np.full(n + 1, inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = row_of[j0]
            delta, j1 = inf, 0
            for j in range(1, n + 1):
                if used[j]:
                    continue
                cur = cost[i0 - 1, j - 1] - u[i0] - v[j]
                if cur < minv[j]:
                    minv[j], way[j] = cur, j0
                if minv[j] < delta:
                    delta, j1 = minv[j], j
            for j in range(n + 1):
                if used[j]:
                    u[row_of[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if row_of[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    out = np.empty(n, dtype=np.int64)
    for j in range(1, n + 1):
        out[row_of[j] - 1] = j - 1
    return out
