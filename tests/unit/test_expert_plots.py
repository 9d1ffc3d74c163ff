"""Study 4's quality guard and verdicts: broken text is not a refusal and never a change, a
collapsed model gets "collapse", and the top-k effect is judged against random k-sets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cotlens.experts.analysis import (
    competence,
    outcomes,
    quality_summary,
    switch_headline,
    switch_summary,
    switch_verdicts,
)


def runs(
    top_off_rate: float, broken_top: bool, seeds: int, quality_top: float = 0.9, broken_first: int = 0
) -> pd.DataFrame:
    """``broken_first``: the top set garbles only the first N eliciting prompts (fluent
    refusals elsewhere): a garbled refusal."""
    rng = np.random.default_rng(0)
    rows = []

    def add(cond: str, mode: str, k: int, seed: int, rate: float, broken: bool, acc: float) -> None:
        for pid in range(40):  # 20 eliciting (0-19), 20 control (20-39)
            el = pid < 20
            refused = bool(rng.random() < (rate if el else 0.0))
            garbled = broken or (cond == "top" and pid < broken_first)
            fl = 9.0 if garbled else float(rng.normal(1.0, 0.2))
            if cond == "top" and pid < broken_first:
                refused = False  # "I cannotg?": the rule set no longer sees a refusal
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


def verdicts(df: pd.DataFrame) -> dict:
    st = outcomes(df, PROMPTS)
    return switch_verdicts(st, quality_summary(df), quality_summary(df, per_set=True))


def headline(df: pd.DataFrame) -> dict:
    return switch_headline(verdicts(df), competence(outcomes(df, PROMPTS))).to_json()


def test_a_real_drop_against_99_random_sets_is_reproduced() -> None:
    v = verdicts(runs(0.1, False, 99))["off k=2"]
    assert v["p_vs_random"] <= 0.05 and v["effect"] > 0.5 and v["ci95"][0] > 0.26
    h = headline(runs(0.1, False, 99))
    assert h["verdict"] == "reproduced", h


def test_broken_text_is_not_a_refusal_and_collapse_is_flagged() -> None:
    df = runs(0.95, True, 19)  # the rule set says "refused", but every response is broken
    s = switch_summary(df, PROMPTS)
    top = s[(s["condition"] == "top") & s["elicits"]].iloc[0]
    assert top["rate"] == 0.0 and top["broken"] == 1.0
    assert bool(quality_summary(df).set_index("condition").loc["top", "collapsed"])
    assert headline(df)["verdict"] in ("collapse", "not testable on this model")
    v = verdicts(df)["off k=2"]
    assert v["top_collapsed"] and v["effect"] == 0.0  # broken responses: no change, not a refusal cut


def test_a_garbled_refusal_is_not_a_refusal_reduction() -> None:
    df = runs(1.0, False, 99, broken_first=1)  # one "I cannotg?", 19 fluent refusals
    v = verdicts(df)["off k=2"]
    assert v["top_broken"] == 0.05 and v["effect"] <= 0.0  # the garbled one keeps its no-switch outcome
    assert headline(df)["verdict"] != "reproduced"


def test_too_few_random_sets_cannot_say_reproduced() -> None:
    h = headline(runs(0.1, False, 19))
    assert h["verdict"] == "not testable on this model" and "19 random k-sets" in h["reason"]
    h = headline(runs(0.95, False, 99))
    assert h["verdict"] in ("absent", "inconclusive")


def test_an_empty_response_is_broken() -> None:
    df = runs(0.95, False, 3)
    df.loc[(df["condition"] == "top") & (df["prompt_id"] == 0), ["n_tokens", "fluency_nll"]] = [0, None]
    st = outcomes(df, PROMPTS)
    assert bool(st[(st["condition"] == "top") & (st["prompt_id"] == 0)]["broken"].iloc[0])


def test_a_model_that_does_not_refuse_cannot_test_the_claim() -> None:
    df = runs(0.1, False, 99)
    df.loc[df["condition"] == "baseline", "refused"] = False
    assert headline(df)["verdict"] == "not testable on this model"
