"""Study 4 (MoTE, 2025): the claims its figures test (``cotlens.core.verdicts.claims``)."""

from __future__ import annotations

from cotlens.core.verdicts import Claim, claims

CLAIMS = claims(
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
