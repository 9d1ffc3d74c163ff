"""Study 2's tables: prompts, concept neurons and neuron effects (documented in docs/design.md, "Parquet schemas").

``TABLES``: the tables a stage reads back, by ``neurons/<file stem>``: schema and row key
(collected by :func:`cotlens.io.schemas.tables`)."""

from __future__ import annotations

import pyarrow as pa

NEURONS_PROMPTS = pa.schema(
    [
        ("problem_id", pa.int32()),
        ("variant", pa.string()),  # full | text_only | formula_only | add_only | mul_only | wrong_results | names
        ("prompt", pa.string()),  # k-shot CoT exemplars + "Question: ...\nAnswer:"
        ("answer", pa.int64()),
        ("n_steps", pa.int8()),  # 0 for GSM8K problems (no step structure)
        ("ops", pa.string()),  # e.g. "+*-" (empty for GSM8K)
        ("source", pa.string()),  # generated | gsm8k
    ]
)


NEURONS = pa.schema(
    [
        ("layer", pa.int16()),
        ("neuron", pa.int32()),
        ("freq", pa.float32()),  # fraction of generated tokens (correct answers) in its layer's top-k
        ("mean_act", pa.float32()),  # mean activation at those tokens (the mean-ablation value)
        ("rank", pa.int32()),  # candidate rank by freq (0 = most frequent); -1 = not a candidate
        ("top_tokens", pa.list_(pa.string())),  # unembed(final_norm(w_out)) top 10; empty if not a candidate
        ("top_tokens_raw", pa.list_(pa.string())),  # unembed(w_out) top 10, no final norm
        ("concept", pa.string()),  # add, sub, mul, div, equals, connective, formula, or null
        ("labelled_by", pa.string()),  # lexicon | judge:<model> (null if not a candidate)
        ("lexicon", pa.string()),  # the lexicon's label even where a judge gave `concept` (agreement)
    ]
)


NEURON_EFFECTS = pa.schema(
    [
        ("condition", pa.string()),  # variant | concept | top (the top-n scored neurons) | random
        ("variant", pa.string()),
        ("mode", pa.string()),  # none | noise (Gaussian noise on value vectors) | zero | mean
        ("seed", pa.int32()),  # random-neuron draw (-1 otherwise)
        ("n_ablated", pa.int32()),  # size of the ablated set (random sets match a concept or top set)
        ("problem_id", pa.int32()),
        ("pred", pa.int64()),  # parsed answer, null if none
        ("correct", pa.bool_()),
        ("concept_act", pa.float32()),  # mean activation of the concept neurons at the generated tokens
        # Rai & Yao's activation level: concept neurons activated (> 0) per generated token, mean
        ("concept_active", pa.float32()),
        ("n_tokens", pa.int32()),
        ("text", pa.string()),
    ]
)


TABLES: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {
    "neurons/prompts": (NEURONS_PROMPTS, ("problem_id", "variant")),
    "neurons/neurons": (NEURONS, ("layer", "neuron")),
    "neurons/effects": (NEURON_EFFECTS, ("condition", "variant", "mode", "seed", "n_ablated", "problem_id")),
}
