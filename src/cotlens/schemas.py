"""The Parquet schemas of every stage (documented in docs/design.md)."""

from __future__ import annotations

import pyarrow as pa

PROMPTS = pa.schema(
    [
        ("prompt_id", pa.int32()),
        ("ontology", pa.string()),  # fictional | true | false
        ("hops", pa.int8()),
        ("distractors", pa.string()),  # none | relevant
        ("negation", pa.bool_()),  # the property rule is negated
        ("entity", pa.string()),
        ("facts", pa.list_(pa.string())),  # shuffled context sentences
        ("query", pa.string()),  # without the final period
        ("label", pa.bool_()),
        ("gold_cot", pa.list_(pa.string())),  # gold chain, one sentence per step
        ("prompt", pa.string()),  # k-shot prompt ending in "### Response:\n"
        ("prompt_nofacts", pa.string()),  # same prompt with the test facts removed
    ]
)

SAMPLES = pa.schema(
    [
        ("prompt_id", pa.int32()),
        ("sample_idx", pa.int16()),
        ("prompt_token_ids", pa.list_(pa.int32())),
        ("prompt_nofacts_token_ids", pa.list_(pa.int32())),
        ("token_ids", pa.list_(pa.int32())),  # generated tokens only
        ("completion", pa.string()),
        ("stop_reason", pa.string()),  # answer | eos | delimiter | max_tokens
        ("answer", pa.string()),  # "True" | "False" | null when unparsed
        ("answer_correct", pa.bool_()),
        ("steps", pa.list_(pa.string())),
        ("step_correct", pa.list_(pa.bool_())),  # against gold_cot, index by index
        ("step_end_token", pa.list_(pa.int32())),  # index into token_ids of each step's last token
        ("answer_token", pa.int32()),  # index into token_ids of the answer word, -1 if none
        ("cot_exact", pa.bool_()),  # steps == gold_cot
    ]
)


def activations(d_model: int, d_heads: int, d_mlp: int | None) -> pa.Schema:
    """One row per (prompt, sample, position, layer); vectors are float32 bytes.

    ``resid``: residual stream after the block; ``attn_heads``: the o_proj input,
    heads concatenated [n_heads * head_dim] (head h is slice h*head_dim:(h+1)*head_dim);
    ``mlp``: the down-projection input (FFN neurons), present only when requested.
    """
    fields = [
        ("prompt_id", pa.int32()),
        ("sample_idx", pa.int16()),
        ("pos", pa.int32()),  # absolute token index in prompt + completion
        ("pos_kind", pa.string()),  # last_prompt | step_end | answer
        ("step", pa.int16()),  # CoT step index, -1 for last_prompt/answer
        ("layer", pa.int16()),
        ("next_token", pa.int32()),  # the token that follows pos in the sequence (-1 at end)
        ("context_token", pa.int32()),  # final-layer argmax with the facts in context
        ("prior_token", pa.int32()),  # final-layer argmax with the facts removed
        ("resid", pa.binary(4 * d_model)),
        ("attn_heads", pa.binary(4 * d_heads)),
    ]
    if d_mlp:
        fields.append(("mlp", pa.binary(4 * d_mlp)))
    return pa.schema(fields)


LENS = pa.schema(
    [
        ("prompt_id", pa.int32()),
        ("sample_idx", pa.int16()),
        ("pos", pa.int32()),
        ("pos_kind", pa.string()),
        ("step", pa.int16()),
        ("layer", pa.int16()),
        ("context_token", pa.int32()),
        ("prior_token", pa.int32()),
        ("p_context", pa.float32()),  # lens probability of the in-context token
        ("p_prior", pa.float32()),  # lens probability of the no-context prior token
        ("rank_context", pa.int32()),  # 0 = top-1
        ("top_token", pa.int32()),  # the lens argmax at this layer
    ]
)

MULT_PROMPTS = pa.schema(
    [
        ("problem_id", pa.int32()),
        ("n", pa.int8()),  # digits of a
        ("m", pa.int8()),  # digits of b
        ("a", pa.int64()),
        ("b", pa.int64()),
        ("product", pa.int64()),
        ("prompt", pa.string()),  # k-shot, ends right before the answer text
        ("answer", pa.string()),  # e.g. " 408"
        ("direct_prompt", pa.string()),  # k-shot "a * b mod 10 =" style
        ("direct_answer", pa.string()),  # e.g. " 8"
    ]
)

DIGITS = pa.schema(
    [
        ("problem_id", pa.int32()),
        ("n", pa.int8()),
        ("m", pa.int8()),
        ("setting", pa.string()),  # full (teacher-forced product) | direct (last digit right after "=")
        ("place", pa.int8()),  # 0 = most significant digit of the answer
        ("n_places", pa.int8()),  # digits in the answer
        ("digit", pa.int8()),  # the correct digit
        ("p_correct", pa.float32()),  # confidence in the correct digit (mean over MC samples)
        ("p_std", pa.float32()),  # std over MC-dropout samples (0 for softmax)
        ("argmax_digit", pa.int8()),  # the most probable digit: greedy accuracy under teacher forcing
    ]
)
