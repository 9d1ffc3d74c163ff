"""Study 4 (MoTE, 2025): the claims its figures test, declared once (the verdict
rules they are judged by: :mod:`cotlens.core.verdicts`). Only this study's figures import
it, so editing a claim reruns this study's figures and no other."""

from __future__ import annotations

from cotlens.core.verdicts import Claim

CLAIMS: dict[str, Claim] = {
    c.figure: c
    for c in (
        Claim(
            "experts",
            "expert_switch",
            "switching off the behaviour's top experts cuts it far more than random experts",
            "top 10 experts off: refusals -52%, random little (DeepSeek-R1)",
            "top-k off at the smallest k (closest to MoTE's 0.07% of experts): share of the baseline's fluent "
            "refusals cut, minus the mean over random k-sets; broken responses count as no change",
            0.52,
            0.26,
            "half the paper's -52% (DeepSeek-R1)",
        ),
    )
}
