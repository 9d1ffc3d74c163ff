"""The small statistics the figures share (the verdict rules: tests/unit/test_verdicts.py)."""

from __future__ import annotations

import numpy as np
import pytest

from cotlens.core import stats as S
from cotlens.core.stats import bootstrap_mean
from cotlens.core.verdicts import empirical_p


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(0)
    small, big = rng.normal(0.2, 1, 20), rng.normal(0.2, 1, 2000)
    m, lo, hi = bootstrap_mean(small)
    assert lo < m < hi and m == pytest.approx(small.mean())
    _, lo2, hi2 = bootstrap_mean(big)
    assert hi2 - lo2 < (hi - lo) / 5
    assert lo2 > 0  # 0.2 at n = 2000 is detected


def test_empirical_p() -> None:
    null = np.arange(99) / 100  # 0.00 .. 0.98
    assert empirical_p(2.0, null) == pytest.approx(1 / 100)
    assert empirical_p(-1.0, null) == pytest.approx(1.0)
    assert empirical_p(0.5, null) == pytest.approx((1 + 49) / 100)


def test_ranks_average_ties_like_rankdata() -> None:
    """Against a brute-force average rank (scipy's rankdata minus 1): ties, repeats, one value."""
    rng = np.random.default_rng(0)
    for x in (rng.integers(0, 5, 40).astype(float), rng.normal(size=25), np.array([3.0]), np.array([2.0, 2.0, 2.0])):
        brute = np.array([(x < v).sum() + ((x == v).sum() - 1) / 2 for v in x])
        np.testing.assert_array_equal(S.ranks(x), brute)
    assert S.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert S.spearman([1, 2, 3, 4], [4, 3, 3, 1]) == pytest.approx(-0.9486833, abs=1e-6)


def test_the_wilson_interval_holds_its_proportion_at_0_and_1() -> None:
    """The qwen2.5-1.5b digits run: 31 of 31 right gave hi = 1 - 1e-16, a negative error
    bar, and the figure stage failed. statsmodels' Wilson interval agrees to round-off."""
    from statsmodels.stats.proportion import proportion_confint

    from cotlens.core.stats import wilson

    for n in range(1, 300):
        for k in (0, n // 3, n):
            lo, hi = wilson(k, n)
            assert lo <= k / n <= hi, (k, n)
            ref = proportion_confint(k, n, alpha=0.05, method="wilson")
            assert abs(lo - ref[0]) < 1e-12 and abs(hi - ref[1]) < 1e-12, (k, n)


def test_kappa_is_cohens_against_a_hand_count() -> None:
    from cotlens.core.stats import cohen_kappa

    a = ["y", "y", "n", "n", "y", "n", "y", "y"]
    b = ["y", "n", "n", "n", "y", "y", "y", "y"]
    po = 6 / 8  # agreements
    pe = (5 / 8) * (5 / 8) + (3 / 8) * (3 / 8)  # chance: both y, both n
    assert cohen_kappa(a, b) == pytest.approx((po - pe) / (1 - pe))
    assert cohen_kappa(["y"] * 3, ["y"] * 3) == 1.0
    assert np.isnan(cohen_kappa([], []))
    assert cohen_kappa(["y", "n"], ["n", "y"]) == pytest.approx(-1.0)
