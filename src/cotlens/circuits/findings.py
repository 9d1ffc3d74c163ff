"""Study 1 (Dutta et al., TMLR 2024): the claims its figures test (``cotlens.core.verdicts.claims``)."""

from __future__ import annotations

from cotlens.core.verdicts import Claim, claims

CLAIMS = claims(
    Claim(
        "circuits",
        "rift",
        "in-context reading steps up at mid-depth (the functional rift)",
        "block ~16 of 32 (Llama-2-7B)",
        "the relative depth (0 = first block, 1 = last) of the step in the share of in-context head "
        "readings, tested against shuffled layers and located with a bootstrap interval over pairs",
        0.5,
        1 / 6,
        "mid-depth is the band [1/3, 2/3] around the paper's 16/32: reproduced when the step's interval "
        "lies inside it, absent when it lies outside",
    ),
    Claim(
        "circuits",
        "answer_heads",
        "answer-writing heads sit late and attend to the answer token",
        "late layers (Llama-2-7B); no share given",
        "share of positive head DLA in the upper half of the layers, minus 0.5; and Spearman rho of DLA "
        "with attention to the answer",
        None,
        0.25,
        "no number in the paper; declared: three quarters of the positive DLA in the upper half (0.75 - 0.5)",
    ),
    Claim(
        "circuits",
        "sufficiency",
        "a small set of heads suffices; top-k beats random k",
        "a few heads per subtask suffice (Llama-2-7B); no agreement number given",
        "each tested k (a family, Bonferroni intervals, Holm p): top-k agreement with the clean answer "
        "minus random k-sets', paired by pair",
        None,
        0.2,
        "no number in the paper; declared: one pair in five more answered as in the clean run",
    ),
    Claim(
        "circuits",
        "pathways",
        "the answer is read in parallel from the question and from the CoT",
        "both pathways (Llama-2-7B); no number given",
        "per subtask (a family, Bonferroni intervals): nKL recovered by patching the question and by "
        "patching the CoT; the weaker of the two in the best subtask",
        None,
        0.1,
        "no number in the paper; declared: a tenth of the clean-vs-corrupt KL recovered",
    ),
    Claim(
        "circuits",
        "probe",
        "relation information is linearly readable, above a control task",
        "no number in the paper; selectivity > 0 (Hewitt & Liang)",
        "held-out accuracy at the layer picked by cross-validation minus max(control task, majority class)",
        None,
        0.1,
        "no number in the paper; declared: ten points above the control (Hewitt & Liang's selective probes)",
    ),
)
