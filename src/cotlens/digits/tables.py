"""Study 3's tables: prompts and digit confidence (documented in docs/design.md, "Parquet schemas").

``TABLES``: the tables a stage reads back, by ``digits/<file stem>``: schema and row key
(collected by :func:`cotlens.io.schemas.tables`)."""

from __future__ import annotations

import pyarrow as pa

DIGITS_PROMPTS = pa.schema(
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
        # conditioned (correct higher digits given) | unconditioned (the model's own higher digits,
        # same product sequence) | direct (option: "a * b mod 10 =")
        ("setting", pa.string()),
        ("place", pa.int8()),  # 0 = most significant digit of the answer
        ("n_places", pa.int8()),  # digits in the answer
        ("digit", pa.int8()),  # the correct digit at this place
        ("prefix_correct", pa.bool_()),  # every earlier digit of the scored sequence is correct
        ("p_correct", pa.float32()),  # confidence in the correct digit (the estimator's: mean over MC samples)
        ("p_std", pa.float32()),  # std over MC-dropout samples (0 for softmax)
        ("argmax_digit", pa.int8()),  # the most probable digit given the scored prefix (the estimator's)
        # the model's own softmax (one plain forward), always: what an estimator that perturbs
        # the model is checked against (cotlens.digits.methods.estimator_check)
        ("p_plain", pa.float32()),
        ("argmax_plain", pa.int8()),
        ("p_max_plain", pa.float32()),  # the plain forward's largest digit probability (its confidence)
    ]
)


TABLES: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {
    "digits/prompts": (DIGITS_PROMPTS, ("problem_id",)),
    "digits/confidence": (DIGITS, ("problem_id", "setting", "place")),
}
