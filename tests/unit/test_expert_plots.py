"""Study 4's quality guard and verdicts: broken text is not a refusal, a collapsed model
gets no "reproduced", and the top-k effect is judged against random k-sets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cotlens.plotting.experts import quality_summary, switch_summary, switch_verdicts


def runs(top_off_rate: float, broken_top: bool, seeds: int, quality_top: float = 0.9) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []

    def add(cond: str, mode: str, k: int, seed: int, rate: float, broken: bool, acc: float) -> None:
        for pid in range(40):  # 20 eliciting (0-19), 20 control (20-39)
            el = pid < 20
            refused = bool(rng.random() < (rate if el else 0.0))
            fl = 9.0 if broken else float(rng.normal(1.0, 0.2))
            rows.append(
                dict(
                    condition=cond,
                    mode=mode,
                    k=k,
                    seed=seed,
                    prompt_id=pid,
                    set="study",
                    refused=refused,
                    correct=None,
                    nll=None,
                    n_tokens=5,
                    fluency_nll=fl,
                )
            )
        for pid in range(40, 60):
            rows.append(
                dict(
                    condition=cond,
                    mode=mode,
                    k=k,
                    seed=seed,
                    prompt_id=pid,
                    set="quality",
                    refused=None,
                    correct=bool(rng.random() < acc),
                    nll=None,
                    n_tokens=3,
                    fluency_nll=9.0 if broken else 1.0,
                )
            )
        rows.append(
            dict(
                condition=cond,
                mode=mode,
                k=k,
                seed=seed,
                prompt_id=99,
                set="reference",
                refused=None,
                correct=None,
                nll=20.0,
                n_tokens=10,
                fluency_nll=None,
            )
        )

    add("baseline", "none", 0, -1, 0.95, False, 0.9)
    add("top", "off", 2, -1, top_off_rate, broken_top, quality_top)
    for s in range(seeds):
        add("random", "off", 2, s, 0.95, False, 0.9)
    return pd.DataFrame(rows)


PROMPTS = pd.DataFrame({"prompt_id": range(100), "elicits": [i < 20 for i in range(100)]})


def verdict(df: pd.DataFrame) -> dict:
    return switch_verdicts(switch_summary(df, PROMPTS), quality_summary(df))["off k=2"]


def test_a_real_drop_against_random_sets_is_reproduced() -> None:
    v = verdict(runs(0.1, False, 19))
    assert v["verdict"] == "reproduced" and v["p_vs_random"] <= 0.05 and v["effect"] > 0.5


def test_broken_text_is_not_a_refusal_and_collapse_is_flagged() -> None:
    df = runs(0.95, True, 19)  # the rule set says "refused", but every response is broken
    s = switch_summary(df, PROMPTS)
    top = s[(s["condition"] == "top") & s["elicits"]].iloc[0]
    assert top["rate"] == 0.0 and top["broken"] == 1.0
    assert bool(quality_summary(df).set_index("condition").loc["top", "collapsed"])
    assert verdict(df)["verdict"] == "collapse (quality guard)"


def test_too_few_random_sets_cannot_say_reproduced() -> None:
    assert verdict(runs(0.1, False, 3))["verdict"].startswith("not testable")
    assert verdict(runs(0.95, False, 19))["verdict"] == "not detected at this n"
