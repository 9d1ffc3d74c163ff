"""Small statistics shared by methods and plots (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 0..n-1, ties get their average rank (as scipy's ``rankdata`` minus 1); one
    sort, O(n log n)."""
    a = np.asarray(x, dtype=float).ravel()
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    return (first + (counts - 1) / 2.0)[inverse.ravel()]


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation; NaN below 3 points or for a constant input."""
    if len(a) < 3:
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def wilson(k: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """Wilson 95% interval of a proportion k/n."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # the interval holds p; at p = 0 or 1 the formula's round-off can leave p just outside
    # (k = n = 31: hi = 1 - 1e-16), which a plot's error bars refuse as a negative length
    return (float(min(mid - half, p)), float(max(mid + half, p)))


def paired_bootstrap(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """mean(b - a) and its 95% percentile interval, resampling the pairs (seeded)."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if len(d) == 0:
        return (float("nan"), float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
    boots = d[idx].mean(1)
    return (float(d.mean()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)))


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two labelings of the same items (NaN if empty; 1.0 if both are one constant)."""
    if len(a) == 0:
        return float("nan")
    cats = sorted(set(a) | set(b))
    po = float(np.mean([x == y for x, y in zip(a, b, strict=True)]))
    pe = sum((list(a).count(c) / len(a)) * (list(b).count(c) / len(b)) for c in cats)
    return 1.0 if pe == 1.0 else (po - pe) / (1 - pe)


def bootstrap_mean(x: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """mean(x) and its 95% percentile interval, resampling the items (seeded)."""
    return paired_bootstrap(np.zeros(len(x)), x, n_boot, seed)
