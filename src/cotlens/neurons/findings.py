"""Study 2 (Rai & Yao, ACL 2024): the claims its figures test (``cotlens.core.verdicts.claims``)."""

from __future__ import annotations

from cotlens.core.verdicts import Claim, claims

CLAIMS = claims(
    Claim(
        "neurons",
        "neuron_concepts",
        "FFN neurons project to operator and connective concepts",
        "concept neurons found (Llama-2-7B)",
        "count of concept neurons",
        None,
        1.0,
        "descriptive: no test",
    ),
    Claim(
        "neurons",
        "neuron_ablation",
        "ablating concept neurons hurts accuracy more than random neurons",
        "accuracy drops (Llama-2-7B, GSM8K, noise ablation); no comparable number",
        "full-CoT accuracy with random neurons noise-ablated minus with the concept neurons noise-ablated "
        "(the paper's noise ablation, the first top_n), paired by problem",
        None,
        0.1,
        "no comparable number in the paper; declared: one problem in ten",
    ),
    Claim(
        "neurons",
        "neuron_activation",
        "activation level tracks accuracy across CoT prompt variants",
        "positive correlation (Llama-2-7B); no r given",
        "Pearson r of concept-neuron activation and accuracy across prompt variants",
        None,
        0.3,
        "no number in the paper; declared: a medium correlation (Cohen)",
    ),
)
