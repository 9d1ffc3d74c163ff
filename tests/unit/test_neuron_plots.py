"""Study 2 summaries behind the figures: accuracies, intervals, correlation inputs."""

from __future__ import annotations

import pandas as pd
import pytest

from cotlens.plotting.neurons import ablation_summary, variant_summary
from cotlens.stats import wilson


def _runs() -> pd.DataFrame:
    rows = []
    for pid in range(10):
        rows.append(("variant", "full", "none", -1, pid, pid < 6, 1.0))
        rows.append(("variant", "text_only", "none", -1, pid, pid < 3, 0.5))
        rows.append(("concept", "full", "zero", -1, pid, pid < 1, 0.0))
        for seed in (0, 1):
            rows.append(("random", "full", "zero", seed, pid, pid < 5 + seed, 1.0))
    cols = ["condition", "variant", "mode", "seed", "problem_id", "correct", "concept_act"]
    return pd.DataFrame(rows, columns=cols)


def test_ablation_summary() -> None:
    s = ablation_summary(_runs()).set_index(["condition", "mode"])
    assert s.loc[("none", "none"), "acc"] == pytest.approx(0.6)
    assert s.loc[("concept", "zero"), "acc"] == pytest.approx(0.1)
    assert s.loc[("random", "zero"), "acc"] == pytest.approx(0.55)  # pooled over seeds
    assert s.loc[("random", "zero"), "seed_sd"] == pytest.approx(0.05)
    lo, hi = s.loc[("concept", "zero"), "ci"]
    assert lo < 0.1 < hi


def test_variant_summary_and_wilson() -> None:
    v = variant_summary(_runs())
    assert list(v.index) == ["full", "text_only"]
    assert v.loc["text_only", "acc"] == pytest.approx(0.3) and v.loc["text_only", "act"] == pytest.approx(0.5)
    lo, hi = wilson(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.2 < hi < 0.35
    assert wilson(5, 0) == (0.0, 0.0)
