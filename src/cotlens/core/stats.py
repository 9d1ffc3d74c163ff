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


def wilson(k: float, n: float) -> tuple[float, float]:
    """Wilson 95% interval of a proportion k/n (statsmodels' ``proportion_confint``)."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return (0.0, 0.0)
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    p = k / n
    # the interval holds p; at p = 0 or 1 round-off can leave p just outside (k = n = 31:
    # hi = 1 - 1e-16), which a plot's error bars refuse as a negative length
    return (float(min(lo, p)), float(max(hi, p)))


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
    """Cohen's kappa of two labelings of the same items (statsmodels' ``cohens_kappa`` of
    their contingency table; NaN if empty; 1.0 if both are the one same constant)."""
    from statsmodels.stats.inter_rater import cohens_kappa

    if len(a) == 0:
        return float("nan")
    cats = sorted(set(a) | set(b))
    if len(cats) == 1:
        return 1.0  # every item the same label in both: perfect agreement, chance agreement 1
    index = {c: i for i, c in enumerate(cats)}
    table = np.zeros((len(cats), len(cats)))
    for x, y in zip(a, b, strict=True):
        table[index[x], index[y]] += 1
    return float(cohens_kappa(table).kappa)


def bootstrap_mean(x: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """mean(x) and its 95% percentile interval, resampling the items (seeded)."""
    return paired_bootstrap(np.zeros(len(x)), x, n_boot, seed)
