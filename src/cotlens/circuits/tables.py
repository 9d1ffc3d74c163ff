"""Study 1's tables: prompts, samples (and their shards), activations, lens, pairs, patching,
pathways, heads, sufficiency, probe (documented in docs/design.md, "Parquet schemas").

``TABLES``: the tables a stage reads back, by ``circuits/<file stem>``: schema and row key
(collected by :func:`cotlens.io.schemas.tables`)."""

from __future__ import annotations

import pyarrow as pa

from cotlens.io.schemas import vector_field

CIRCUITS_PROMPTS = pa.schema(
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


# One shard of the sample stage (``<samples>.partial/``): one batch's generations.
SAMPLE_SHARD = pa.schema(
    [
        ("prompt_idx", pa.int32()),  # row of prompts.parquet
        ("sample_idx", pa.int16()),
        ("token_ids", pa.list_(pa.int32())),
        ("stop_reason", pa.string()),
    ]
)


def activations(d_model: int, n_heads: int, head_dim: int, d_mlp: int | None) -> pa.Schema:
    """One row per (prompt, sample, position, layer); vectors are float32 bytes, with their
    dtype and shape in the field metadata.

    ``resid``: residual stream after the block [d_model]; ``attn_heads``: the o_proj input
    per head [n_heads, head_dim]; ``mlp``: the down-projection input (FFN neurons) [d_mlp],
    present only when requested.
    """
    fields = [
        pa.field("prompt_id", pa.int32()),
        pa.field("sample_idx", pa.int16()),
        pa.field("pos", pa.int32()),  # absolute token index in prompt + completion
        pa.field("pos_kind", pa.string()),  # last_prompt | step_end | answer
        pa.field("step", pa.int16()),  # CoT step index, -1 for last_prompt/answer
        pa.field("layer", pa.int16()),
        pa.field("next_token", pa.int32()),  # the token that follows pos in the sequence (-1 at end)
        pa.field("context_token", pa.int32()),  # final-layer argmax with the facts in context
        pa.field("prior_token", pa.int32()),  # final-layer argmax with the facts removed
        vector_field("resid", (d_model,), "residual stream after the block"),
        vector_field("attn_heads", (n_heads, head_dim), "attention output per head, before o_proj"),
    ]
    if d_mlp:
        fields.append(vector_field("mlp", (d_mlp,), "FFN neuron activations (the down-projection input)"))
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


PAIRS = pa.schema(
    [
        ("pair_id", pa.int32()),
        ("prompt_id", pa.int32()),
        ("sample_idx", pa.int16()),
        ("ontology", pa.string()),
        ("step", pa.int16()),  # CoT sentence index of the predicted word
        ("subtask", pa.string()),  # decision | copy | induction
        ("word", pa.string()),  # the word the clean prompt predicts
        ("word_type", pa.string()),  # entity | concept_fictional | concept_true | property
        ("replacement", pa.string()),  # the same-type word put in its place
        ("corrupted_in", pa.string()),  # cot | question: where its latest earlier occurrence was
        ("clean_ids", pa.list_(pa.int32())),  # question (0-shot) + CoT prefix
        ("corrupt_ids", pa.list_(pa.int32())),  # same length by construction
        ("clean_tok", pa.int32()),  # first token of the word (the clean argmax)
        ("corrupt_tok", pa.int32()),  # first token of the replacement
        ("question_len", pa.int32()),  # tokens [0, question_len) are the question
        ("corrupt_pos", pa.int32()),  # first position where the prompts differ
        ("p_clean", pa.float32()),  # clean run's probability of clean_tok
        ("kl_clean_corrupt", pa.float32()),  # KL(clean || corrupt) at the last position
        ("ld_clean", pa.float32()),  # logit[clean_tok] - logit[corrupt_tok], clean run
        ("ld_corrupt", pa.float32()),  # the same in the corrupt run
    ]
)


PATCHING = pa.schema(
    [
        ("pair_id", pa.int32()),
        ("subtask", pa.string()),  # decision | copy | induction (as in pairs.parquet)
        ("method", pa.string()),  # exact | attribution (the screen's first-order estimate)
        # the attribution screen run on this pair: "eap-ig:<steps>" | "atp"
        ("screen", pa.string()),
        # all_heads: every head has a row of this method on this pair (attribution rows; exact
        # rows of a full sweep) | screen_top_k: exact rows of the screen's top-K heads only, so
        # a per-head mean over such pairs is selection-biased (average over all_heads rows)
        ("selection", pa.string()),
        # all: every position patched at once | corrupt: the first position where the prompts
        # differ | end-<k>: k positions before the last (end-0: the last, whose next token is scored)
        ("positions", pa.string()),
        ("pos", pa.int32()),  # the patched token index; null where positions = all
        ("layer", pa.int16()),
        ("head", pa.int16()),
        ("nkl", pa.float32()),  # normalised KL (attribution: its first-order estimate)
        ("logit_diff", pa.float32()),  # patched logit[clean] - logit[corrupt]; null for attribution
    ]
)


PATHWAYS = pa.schema(
    [
        ("pair_id", pa.int32()),
        ("positions", pa.string()),  # cotlens.core.types.PathwaySet: where every head was patched (clean into corrupt)
        ("nkl", pa.float32()),
        ("logit_diff", pa.float32()),
    ]
)


HEADS = pa.schema(
    [
        ("pair_id", pa.int32()),
        ("layer", pa.int16()),
        ("head", pa.int16()),
        ("dla", pa.float32()),  # direct logit attribution to clean_tok - corrupt_tok (frozen final norm)
        ("dla_answer", pa.float32()),  # direct logit attribution to clean_tok alone
        ("top_token", pa.int32()),  # logit-lens argmax of the head's write at the last position
        ("in_context", pa.bool_()),  # top_token occurs in the prompt
        # context: a content word of the prompt | prior: a content word not in the prompt |
        # function: punctuation, a number, a short or a function word (not counted by the rift)
        ("top_kind", pa.string()),
        ("context_chance", pa.float32()),  # share of the vocabulary's content tokens that are in the prompt
        # attention of the head from the last position to the prompt positions that hold the
        # answer token (clean_tok): the paper's evidence that answer-writing heads copy it
        ("attn_answer", pa.float32()),
    ]
)


SUFFICIENCY = pa.schema(
    [
        ("k", pa.int32()),  # heads kept (top-k by mean exact patching score, of the pair's subtask by default)
        ("pair_id", pa.int32()),
        ("subtask", pa.string()),
        ("agree", pa.bool_()),  # argmax with only the circuit equals the clean argmax
        ("p_clean_tok", pa.float32()),  # probability of the clean token with only the circuit
        ("random", pa.bool_()),  # k random heads instead of the top-k (control)
        ("draw", pa.int16()),  # which random draw (-1: the top-k circuit)
    ]
)


PROBE = pa.schema(
    [
        ("layer", pa.int16()),
        # relation: related / negated / unrelated | control: Hewitt & Liang's control task (each
        # word-pair type a random label, same class distribution), the floor for selectivity
        ("task", pa.string()),
        # train: fit and scored on the selection prompts | cv: grouped k-fold over the selection
        # prompts (picks the layer) | test: held-out prompts, never used to pick
        ("split", pa.string()),
        ("accuracy", pa.float32()),
        ("majority", pa.float32()),  # accuracy on this split of the training labels' majority class
        ("n", pa.int32()),  # examples scored
        ("selected", pa.bool_()),  # the layer picked by relation cv accuracy (same on every row of it)
    ]
)


TABLES: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {
    "circuits/prompts": (CIRCUITS_PROMPTS, ("prompt_id",)),
    "circuits/samples": (SAMPLES, ("prompt_id", "sample_idx")),
    "circuits/lens": (LENS, ("prompt_id", "sample_idx", "pos_kind", "pos", "layer")),
    "circuits/pairs": (PAIRS, ("pair_id",)),
    "circuits/patching": (PATCHING, ("pair_id", "method", "positions", "layer", "head")),
    "circuits/pathways": (PATHWAYS, ("pair_id", "positions")),
    "circuits/heads": (HEADS, ("pair_id", "layer", "head")),
    "circuits/sufficiency": (SUFFICIENCY, ("k", "subtask", "pair_id", "random", "draw")),
    "circuits/probe": (PROBE, ("layer", "task", "split")),
}
