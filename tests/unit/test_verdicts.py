"""The verdict rules on synthetic effects of known size: a paper-sized effect is
reproduced, a tenth of it is smaller than the paper, none (with enough n) is absent, and
the best of four tests without correction is not reproduced."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from cotlens.core.verdicts import (
    Gate,
    bca,
    family_level,
    headline,
    holm,
    judge,
    mean_ci,
    pearson_ci,
    proportion_ci,
    weakest,
)
from cotlens.digits.findings import CLAIMS

CLAIM = CLAIMS["digit_conditioning"]  # paper +0.30, smallest effect of interest 0.15


def sample(mean: float, sd: float, n: int) -> np.ndarray:
    """n values with exactly this mean and sd (a standardised normal draw, rescaled)."""
    z = np.random.default_rng(0).normal(size=n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


def verdict_of(x: np.ndarray, level: float = 0.95) -> str:
    m, lo, hi = mean_ci(x, level)
    return judge(CLAIM, m, (lo, hi))[0]


def test_paper_sized_effect_is_reproduced() -> None:
    assert verdict_of(sample(0.30, 0.3, 40)) == "reproduced"


def test_a_tenth_of_the_paper_is_smaller_than_the_paper() -> None:
    x = sample(0.03, 0.05, 400)
    m, lo, hi = mean_ci(x)
    v, why = judge(CLAIM, m, (lo, hi))
    assert v == "smaller than the paper" and "0.10 of the paper's 0.3" in why


def test_no_effect_with_enough_n_is_absent_and_with_little_n_inconclusive() -> None:
    assert verdict_of(sample(0.0, 0.2, 200)) == "absent"
    assert verdict_of(sample(0.0, 0.2, 5)) == "inconclusive"


def test_a_clear_opposite_effect_is_reversed() -> None:
    assert verdict_of(sample(-0.3, 0.2, 40)) == "reversed"


def test_best_of_four_without_correction_is_not_reproduced() -> None:
    # four tests; the best one alone clears 0 at 95%, but not at the family's 98.75%
    best = sample(0.23, 0.1 * np.sqrt(20), 20)
    assert verdict_of(best) == "reproduced"  # what picking the best without correction says
    assert family_level(4) == pytest.approx(0.9875)
    assert verdict_of(best, family_level(4)) == "inconclusive"
    p = [
        float(st.ttest_1samp(sample(m, 0.1 * np.sqrt(20), 20), 0, alternative="greater").pvalue)
        for m in (0.23, 0, 0, 0)
    ]
    assert p[0] < 0.05 and holm(p)[0] > 0.05
    adj = holm([0.01, float("nan"), 0.04])
    assert adj[0] == pytest.approx(0.02) and np.isnan(adj[1]) and adj[2] == pytest.approx(0.04)


def test_a_failed_precondition_or_a_collapse_decides_before_the_numbers() -> None:
    ci = (0.2, 0.4)
    gate = Gate("answer accuracy", False, "0.42 [0.31, 0.54] (chance 0.5)")
    v, why = judge(CLAIM, 0.3, ci, gates=[gate, Gate("other", True, "fine")])
    assert v == "not testable on this model" and why == "answer accuracy: 0.42 [0.31, 0.54] (chance 0.5)"
    assert judge(CLAIM, 0.3, ci, collapse="the switch broke 70% of responses")[0] == "collapse"
    assert judge(CLAIM, 0.3, ci, gates=[Gate("x", None, "not computed")])[0] == "reproduced"


def test_a_permutation_p_must_agree() -> None:
    assert judge(CLAIM, 0.3, (0.2, 0.4), p=0.2)[0] == "inconclusive"
    assert judge(CLAIM, 0.3, (0.2, 0.4), p=0.01)[0] == "reproduced"


def test_a_degenerate_interval_at_zero_is_absent_not_inconclusive() -> None:
    assert verdict_of(np.zeros(16)) == "absent"


def test_a_negative_claim_is_judged_on_its_own_side() -> None:
    from dataclasses import replace

    neg = replace(CLAIM, expected=-1)
    assert judge(neg, -0.3, (-0.4, -0.2))[0] == "reproduced"
    assert judge(neg, 0.3, (0.2, 0.4))[0] == "reversed"


def test_intervals_hold_at_small_n() -> None:
    lo, hi = proportion_ci(0, 8)
    assert lo == 0.0 and hi == pytest.approx(0.369, abs=1e-3)  # Clopper-Pearson
    r, rlo, rhi = pearson_ci([1, 2, 3, 4, 5, 6, 7], [1, 3, 2, 5, 4, 7, 6])
    assert rlo < r < rhi and rhi - rlo > 0.3
    x = np.random.default_rng(1).normal(size=30)
    lo, hi = bca(lambda idx: float(x[idx].mean()), 30)
    m, tlo, thi = mean_ci(x)
    assert lo == pytest.approx(tlo, abs=0.12) and hi == pytest.approx(thi, abs=0.12)


def test_weakest_and_headline() -> None:
    assert weakest(["reproduced", "inconclusive"]) == "inconclusive"
    assert weakest(["reproduced", "not testable on this model"]) == "not testable on this model"
    h = headline(CLAIM, "0.13 -> 0.43", 0.30, (0.2, 0.4), "24 problems")
    assert h.title("m").startswith("m: 0.13 -> 0.43 [+0.200, +0.400], n = 24 problems: reproduced\n(interval")
    assert h.to_json()["ci95"] == [0.2, 0.4]


def test_a_study_declares_each_claim_once() -> None:
    from dataclasses import replace

    from cotlens.core.verdicts import claims

    assert claims(CLAIM) == {"digit_conditioning": CLAIM}
    with pytest.raises(ValueError, match="one claim per figure"):
        claims(CLAIM, replace(CLAIM, claim="again"))
    with pytest.raises(ValueError, match="all of one study"):
        claims(CLAIM, replace(CLAIM, figure="other", study="neurons"))
