"""Verdicts: what this run says about each claim of the papers, in one vocabulary.

Every tested figure states one **claim** of a paper (``CLAIMS``), declared here once: its
primary comparison (the paper's cell, k, setting or subtask), the paper's effect where the
paper gives a number, and a **smallest effect of interest** (SESOI) derived from it (half
the paper's effect) or, where the paper gives none, a declared convention (``sesoi_basis``
says which). A figure measures the primary comparison as an effect ``estimate`` with a 95%
interval and hands both to :func:`judge`, which returns the verdict and its reason:

- ``reproduced``: the interval excludes 0 on the claimed side (and a permutation p, where
  there is one, is at most 0.05) and the estimate reaches the SESOI;
- ``smaller than the paper``: the claimed direction is shown, the size is not (the ratio to
  the paper's effect is in the reason);
- ``absent``: the interval lies inside +/- the SESOI (an equivalence test: no effect of the
  size that matters);
- ``reversed``: the interval excludes 0 on the other side, beyond the equivalence band;
- ``inconclusive``: the interval holds both 0 and an effect of the SESOI;
- ``not testable on this model``: a precondition failed (the model cannot do the task, or the
  estimator changes the model): the reason says which;
- ``collapse``: the quality guard tripped (the intervention broke the model, so the change in
  behaviour is not the claimed one);
- ``descriptive``: the figure reports what was found, with no test.

The figure's title, its JSON ``headline`` and the summary row are the one :class:`Headline`
this module builds. Intervals hold at small n: t intervals for means of paired
differences, exact (Clopper-Pearson) intervals for proportions, Fisher's z for Pearson r,
BCa bootstrap for statistics without a closed form. A claim backed by a family of tests
(several k, several subtasks) gets Bonferroni-adjusted intervals (simultaneous 95%) and
Holm-adjusted p-values (statsmodels). Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats as st
from statsmodels.stats.multitest import multipletests

ALPHA = 0.05

REPRODUCED = "reproduced"
SMALLER = "smaller than the paper"
ABSENT = "absent"
REVERSED = "reversed"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable on this model"
COLLAPSE = "collapse"
DESCRIPTIVE = "descriptive"
VERDICTS = (REPRODUCED, SMALLER, ABSENT, REVERSED, INCONCLUSIVE, NOT_TESTABLE, COLLAPSE, DESCRIPTIVE)
# when several tests back one claim jointly (intersection: "both"), the claim's verdict is
# the weakest of theirs, in this order
_WEAKEST = (NOT_TESTABLE, COLLAPSE, REVERSED, ABSENT, INCONCLUSIVE, SMALLER, REPRODUCED, DESCRIPTIVE)


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, as this pipeline tests it."""

    study: str
    figure: str
    claim: str  # the paper's claim, in words
    paper: str  # the paper's number, model and setting
    primary: str  # the comparison tested (the paper's cell, k, setting or subtask): what ``estimate`` measures
    paper_effect: float | None  # the paper's effect on the same scale, where it gives one
    sesoi: float  # the smallest effect of interest, on the same scale (> 0)
    sesoi_basis: str  # where the SESOI comes from
    expected: int = 1  # the claimed sign of the effect


def claims(*declared: Claim) -> dict[str, Claim]:
    """A study's claims by figure, declared once in its ``cotlens.<study>.findings`` (only
    that study's figures import it, so editing a claim reruns that study's figures only)."""
    out = {c.figure: c for c in declared}
    if len(out) != len(declared) or len({c.study for c in declared}) > 1:
        raise ValueError("one claim per figure, all of one study")
    return out


@dataclass(frozen=True)
class Gate:
    """A precondition of a study (the model can do the task; the estimator does not change
    the model), computed from the run's own data. ``passed`` None: not computed."""

    name: str
    passed: bool | None
    detail: str

    def __str__(self) -> str:
        mark = "passed" if self.passed else "failed" if self.passed is False else "not computed"
        return f"{self.name}: {self.detail} ({mark})"


@dataclass(frozen=True)
class Headline:
    """The one statement of a tested figure: its title, its JSON headline and its summary row."""

    figure: str
    value: str  # this run's number in words
    estimate: float | None  # the effect on the claim's scale
    ci95: tuple[float, float] | None  # its 95% interval (simultaneous for a family)
    n: str  # what the number is over
    verdict: str  # one of VERDICTS
    reason: str  # why this verdict
    gates: tuple[str, ...] = field(default_factory=tuple)  # the study's preconditions, in words

    def ci_text(self) -> str:
        return f"[{self.ci95[0]:+.3f}, {self.ci95[1]:+.3f}]" if self.ci95 else ""

    def title(self, model: str) -> str:
        """The figure's title: the value, its interval, n and the verdict, then its reason."""
        ci = f" {self.ci_text()}" if self.ci95 else ""
        return f"{model}: {self.value}{ci}, n = {self.n}: {self.verdict}\n({self.reason})"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = list(self.ci95) if self.ci95 else None
        d["gates"] = list(self.gates)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Headline:
        ci = d.get("ci95")
        return cls(
            str(d["figure"]),
            str(d["value"]),
            None if d.get("estimate") is None else float(d["estimate"]),
            (float(ci[0]), float(ci[1])) if ci else None,
            str(d["n"]),
            str(d["verdict"]),
            str(d["reason"]),
            tuple(str(g) for g in d.get("gates", ())),
        )


def judge(
    claim: Claim,
    estimate: float,
    ci: tuple[float, float] | None,
    *,
    p: float | None = None,
    gates: Sequence[Gate] = (),
    collapse: str | None = None,
) -> tuple[str, str]:
    """(verdict, reason) for an effect ``estimate`` with its 95% interval ``ci`` (see the
    module doc). ``p``: a test's p-value that must also be <= ALPHA for the claimed
    direction to count as shown (a permutation test against random sets)."""
    failed = [g for g in gates if g.passed is False]
    if failed:
        return NOT_TESTABLE, "; ".join(f"{g.name}: {g.detail}" for g in failed)
    if collapse:
        return COLLAPSE, collapse
    if ci is None or not (math.isfinite(ci[0]) and math.isfinite(ci[1]) and math.isfinite(estimate)):
        return INCONCLUSIVE, "no interval (too few observations)"
    s, sesoi = claim.expected, claim.sesoi
    e = s * estimate
    lo, hi = sorted((s * ci[0], s * ci[1]))
    significant = lo > 0 and (p is None or p <= ALPHA)
    if significant and e >= sesoi:
        return REPRODUCED, f"interval excludes 0 and the effect {e:+.3g} reaches the smallest effect {sesoi:.3g}"
    if significant:
        ratio = (
            f"{e / claim.paper_effect:.2f} of the paper's {claim.paper_effect:.3g}"
            if claim.paper_effect
            else f"below the smallest effect {sesoi:.3g}"
        )
        return SMALLER, f"direction shown, size not: {e:+.3g} is {ratio}"
    if -sesoi < lo and hi < sesoi:
        return ABSENT, f"interval inside +/- the smallest effect {sesoi:.3g} (equivalence)"
    if hi < 0:
        return REVERSED, "interval excludes 0 on the other side of the claim"
    if lo > 0:  # the interval excludes 0 but the permutation test does not
        return INCONCLUSIVE, f"interval excludes 0 but p = {p:.3g} > {ALPHA} against the random sets"
    return INCONCLUSIVE, f"interval holds both 0 and an effect of {sesoi:.3g}"


# when any one of a family's members would show the claim ("some k", "some subtask"), the
# claim's verdict is its strongest member's, in this order: one absent member does not make
# the claim absent while another is inconclusive
_STRONGEST = (REPRODUCED, SMALLER, INCONCLUSIVE, ABSENT, REVERSED, COLLAPSE, NOT_TESTABLE, DESCRIPTIVE)


def strongest_first(verdicts: Sequence[str]) -> list[int]:
    """Indices of a family's members, the strongest verdict first (stable)."""
    return sorted(range(len(verdicts)), key=lambda i: _STRONGEST.index(verdicts[i]))


def weakest(verdicts: Sequence[str]) -> str:
    """The verdict of a claim that needs all its tests (an intersection: 'both pathways')."""
    return min(verdicts, key=_WEAKEST.index) if verdicts else INCONCLUSIVE


def headline(
    claim: Claim,
    value: str,
    estimate: float,
    ci: tuple[float, float] | None,
    n: str,
    *,
    p: float | None = None,
    gates: Sequence[Gate] = (),
    collapse: str | None = None,
    verdict: tuple[str, str] | None = None,
) -> Headline:
    """The figure's one statement; ``verdict`` overrides :func:`judge` (a combined claim)."""
    v, why = verdict or judge(claim, estimate, ci, p=p, gates=gates, collapse=collapse)
    rounded = None if ci is None else (round(float(ci[0]), 4), round(float(ci[1]), 4))
    est = round(float(estimate), 4) if math.isfinite(estimate) else None
    return Headline(claim.figure, value, est, rounded, n, v, why, tuple(str(g) for g in gates))


# ---- intervals that hold at small n -------------------------------------------------


def mean_ci(x: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """mean(x) and its t interval (NaN below 2 values; a constant sample gives a point)."""
    a = np.asarray(x, dtype=float)
    a = a[np.isfinite(a)]
    if len(a) == 0:
        return (float("nan"),) * 3
    m = float(a.mean())
    if len(a) < 2:
        return m, float("nan"), float("nan")
    if np.all(a == a[0]):
        return m, m, m
    r = st.ttest_1samp(a, 0.0).confidence_interval(confidence_level=level)
    return m, float(r.low), float(r.high)


def paired_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """mean(b - a) over paired items and its t interval."""
    return mean_ci(np.asarray(b, dtype=float) - np.asarray(a, dtype=float), level)


def t_p(x: Sequence[float] | np.ndarray, expected: int = 1) -> float:
    """One-sided p of the t test that mean(x) is on the claimed side of 0."""
    a = np.asarray(x, dtype=float)
    a = a[np.isfinite(a)]
    if len(a) < 2 or np.all(a == a[0]):
        return 1.0 if len(a) == 0 or expected * float(a.mean()) <= 0 else 0.0
    return float(st.ttest_1samp(a, 0.0, alternative="greater" if expected > 0 else "less").pvalue)


def proportion_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of k successes in n."""
    if n == 0:
        return (float("nan"), float("nan"))
    r = st.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return float(r.low), float(r.high)


def pearson_ci(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Pearson r with its Fisher-z interval (NaN below 4 points or for a constant input)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 4 or a.std() == 0 or b.std() == 0:
        return (float("nan"),) * 3
    r = st.pearsonr(a, b)
    c = r.confidence_interval(confidence_level=level)
    return float(r.statistic), float(c.low), float(c.high)


def bca(
    statistic: Callable[[np.ndarray], float], n: int, level: float = 0.95, n_boot: int = 999, seed: int = 0
) -> tuple[float, float]:
    """BCa interval of ``statistic(indices)`` over ``n`` items resampled with replacement
    (duplicates kept: the statistic gets the index array, repeats included)."""
    if n < 3:
        return (float("nan"), float("nan"))
    res = st.bootstrap(
        (np.arange(n),),
        lambda idx: statistic(np.asarray(idx, dtype=int)),
        vectorized=False,
        n_resamples=n_boot,
        confidence_level=level,
        method="BCa",
        random_state=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values of a family (statsmodels); a NaN (an untested member) stays
    NaN and does not count in the family."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
    return [float(x) for x in out]


def family_level(m: int) -> float:
    """The per-test confidence level that gives simultaneous 95% over ``m`` tests (Bonferroni)."""
    return 1 - ALPHA / max(1, m)


def empirical_p(observed: float, null: Sequence[float]) -> float:
    """One-sided p against a null sample (random sets), P(null >= observed), +1 corrected."""
    a = np.asarray(null, dtype=float)
    return float((1 + np.sum(a >= observed)) / (1 + len(a)))
