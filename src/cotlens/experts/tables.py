"""Study 4's tables: prompts, responses, routes, fTRI and switching effects (documented in docs/design.md, "Parquet schemas").

``TABLES``: the tables a stage reads back, by ``experts/<file stem>``: schema and row key
(collected by :func:`cotlens.io.schemas.tables`)."""

from __future__ import annotations

import pyarrow as pa

EXPERTS_PROMPTS = pa.schema(
    [
        ("prompt_id", pa.int32()),
        ("set", pa.string()),  # study | quality | reference
        ("split", pa.string()),  # study prompts: map (builds fTRI) | eval (held out, switches); "" otherwise
        ("contrast", pa.string()),  # events | instructions (study); "" otherwise
        ("kind", pa.string()),  # sensitive | neutral | harmful | benign | sum | text
        ("elicits", pa.bool_()),  # in the behaviour (refusal-eliciting) set
        ("question", pa.string()),
        ("reference", pa.string()),  # the right answer (quality) or reference answer (reference); "" for study
    ]
)


EXPERT_RESPONSES = pa.schema(
    [
        ("prompt_id", pa.int32()),
        ("response", pa.string()),
        ("refused", pa.bool_()),
        ("empty", pa.bool_()),
        ("classified_by", pa.string()),  # rules | judge:<model>
        ("prompt_tokens", pa.int32()),
        ("n_tokens", pa.int32()),
    ]
)


ROUTES = pa.schema(
    [
        ("prompt_id", pa.int32()),
        ("pos", pa.int32()),  # absolute token index in prompt + response
        ("phase", pa.string()),  # prompt | generated
        ("token_id", pa.int32()),
        ("layer", pa.int16()),
        ("experts", pa.list_(pa.int16())),  # the router's top-k, in its order
        ("weights", pa.list_(pa.float32())),  # their gate weights
    ]
)


FTRI = pa.schema(
    [
        ("contrast", pa.string()),  # all | events | instructions
        ("layer", pa.int16()),
        ("expert", pa.int16()),
        ("score", pa.float64()),  # freq_behaviour - freq_other
        ("freq_behaviour", pa.float64()),  # mean over behaviour prompts of the per-prompt selection frequency
        ("freq_other", pa.float64()),
        ("rank", pa.int32()),  # 0 = largest score within the contrast
        ("n_behaviour", pa.int32()),
        ("n_other", pa.int32()),
    ]
)


EXPERT_EFFECTS = pa.schema(
    [
        ("condition", pa.string()),  # baseline | top | random
        ("mode", pa.string()),  # none | off | on
        ("k", pa.int16()),  # experts switched (0 for baseline)
        ("seed", pa.int32()),  # random draw; -1 otherwise
        ("switched", pa.string()),  # e.g. "L2E5 L3E1"
        ("prompt_id", pa.int32()),
        ("set", pa.string()),  # study | quality | reference
        ("refused", pa.bool_()),  # study prompts (null otherwise)
        ("correct", pa.bool_()),  # quality prompts (null otherwise)
        ("nll", pa.float64()),  # reference prompts: summed NLL of the reference answer's tokens
        ("n_tokens", pa.int32()),  # generated tokens (study, quality) or reference tokens
        ("response", pa.string()),
        # study and quality responses: mean NLL per token of the response under the model with
        # no switch (the fluency the quality guard reads); null for reference rows / empty responses
        ("fluency_nll", pa.float64()),
    ]
)


TABLES: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {
    "experts/prompts": (EXPERTS_PROMPTS, ("prompt_id",)),
    "experts/responses": (EXPERT_RESPONSES, ("prompt_id",)),
    "experts/routes": (ROUTES, ("prompt_id", "phase", "pos", "layer")),
    "experts/ftri": (FTRI, ("contrast", "layer", "expert")),
    "experts/effects": (EXPERT_EFFECTS, ("condition", "mode", "k", "seed", "prompt_id")),
}
