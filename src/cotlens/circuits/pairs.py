"""Clean/corrupt prompt pairs for every CoT step (Dutta et al. 2024, section 4).

For each word of the model's own CoT that is an entity, a concept or a property:

- the *clean* prompt is the few-shot exemplars and the test question (Dutta et al.; or
  the question alone, ``circuits.pairs.context: question``) plus the CoT prefix before
  the word;
- the *corrupt* prompt replaces the most recent earlier occurrence of that word (in the
  CoT prefix if it occurs there, otherwise in the question) with another word of the
  same type, with the same article ("a"/"an") and the same token length, so the two
  prompts align position by position;
- the *subtask* is read off the sentence the word sits in:

  ================================  =========  ===================================
  sentence / slot                   subtask    why
  ================================  =========  ===================================
  ``Every [X] is ...``              decision   choosing which fact to state next
  ``Every X is [not] a [Y]``        copy       copying the object of a context fact
  ``[E] is ...``                    copy       copying the entity's name
  first step ``E is a [X]``         copy       copying the entity's fact
  ``E is [not] a [Y]`` (later)      induction  completing ``Every X is Y`` + ``E is X``
  ================================  =========  ===================================

Pure tokenizer work: no torch. Which pairs the model predicts correctly is decided by
the ``pairs`` stage with one forward per prompt.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cotlens.circuits import fewshot
from cotlens.circuits.prompts import (
    ENTITIES,
    FICTIONAL_CONCEPTS,
    FICTIONAL_PROPERTIES,
    TRUE_PROPERTIES,
    TRUE_TAXONOMIES,
    response_text,
)
from cotlens.core.types import PAIR_CONTEXTS, SUBTASKS

WORD_TYPES: dict[str, tuple[str, ...]] = {
    "entity": ENTITIES,
    "concept_fictional": FICTIONAL_CONCEPTS,
    "concept_true": tuple(sorted({c for t in TRUE_TAXONOMIES for c in t})),
    "property": tuple(sorted(set(FICTIONAL_PROPERTIES) | {p for ps in TRUE_PROPERTIES.values() for p, _ in ps})),
}
_TYPE_OF = {w: t for t, ws in WORD_TYPES.items() for w in ws}

_PREMISE = re.compile(r"^Every (?P<x>[\w-]+) is (?:not )?(?:an? )?(?P<y>[\w-]+)\.$")
_FACT = re.compile(r"^(?P<e>[\w-]+) is (?:not )?(?:an? )?(?P<y>[\w-]+)\.$")


@dataclass(frozen=True)
class Target:
    start: int  # char offset of the word in the completion
    word: str
    subtask: str


@dataclass(frozen=True)
class Pair:
    prompt_id: int
    sample_idx: int
    step: int
    subtask: str
    word: str
    word_type: str
    replacement: str
    corrupted_in: str  # cot | question
    clean_ids: tuple[int, ...]
    corrupt_ids: tuple[int, ...]
    clean_tok: int
    corrupt_tok: int
    question_len: int  # tokens of the question; the CoT prefix follows
    corrupt_pos: int  # first token position where clean and corrupt differ


def step_targets(step: str, step_start: int, step_index: int) -> list[Target]:
    """The entity/concept/property words of one CoT sentence, with their subtask."""
    out: list[Target] = []
    if m := _PREMISE.match(step):
        out += [
            Target(step_start + m.start("x"), m["x"], "decision"),
            Target(step_start + m.start("y"), m["y"], "copy"),
        ]
    elif m := _FACT.match(step):
        out.append(Target(step_start + m.start("e"), m["e"], "copy"))
        out.append(Target(step_start + m.start("y"), m["y"], "copy" if step_index == 0 else "induction"))
    return [t for t in out if t.word in _TYPE_OF]


def _present(word: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text) is not None


def _last_occurrence(word: str, text: str) -> int:
    hits = [m.start() for m in re.finditer(rf"\b{re.escape(word)}\b", text)]
    return hits[-1] if hits else -1


def _ids(tok: Any, text: str) -> list[int]:
    return list(tok(text)["input_ids"])


def _next_token(tok: Any, prefix: str, cont: str, prefix_ids: Sequence[int]) -> int | None:
    """First token of ``cont`` after ``prefix``, if tokenizing them together keeps the prefix."""
    full = _ids(tok, prefix + cont)
    if len(full) <= len(prefix_ids) or full[: len(prefix_ids)] != list(prefix_ids):
        return None
    return full[len(prefix_ids)]


def make_pair(
    tok: Any,
    question: str,
    completion: str,
    target: Target,
    rng: random.Random,
    max_tries: int = 24,
    context: str = "",
) -> tuple[str, str, str, list[int], list[int], int, int, int] | None:
    """(replacement, corrupted_in, sep, clean_ids, corrupt_ids, clean_tok, corrupt_tok, corrupt_pos) or None.

    ``context`` (the few-shot exemplars) precedes the question in both prompts and is
    never corrupted: a replacement is searched in the CoT prefix, then in the question."""
    if context:
        made = make_pair(tok, context + question, completion, target, rng, max_tries)
        if made is None or (made[1] == "question" and not _in_question(made, tok, context)):
            return None
        return made
    start = target.start
    sep = " " if start > 0 and completion[start - 1] == " " else ""
    cot_prefix = completion[: start - len(sep)]
    clean_text = question + cot_prefix
    clean_ids = _ids(tok, clean_text)
    clean_tok = _next_token(tok, clean_text, sep + target.word, clean_ids)
    if clean_tok is not None and sep and not tok.decode([clean_tok]).strip():
        # the tokenizer splits the space off the word: the space joins the prompt, so
        # that the predicted token is the word's own first piece
        cot_prefix, sep = cot_prefix + sep, ""
        clean_text = question + cot_prefix
        clean_ids = _ids(tok, clean_text)
        clean_tok = _next_token(tok, clean_text, target.word, clean_ids)
    if clean_tok is None:
        return None
    at = _last_occurrence(target.word, cot_prefix)
    where, offset = "cot", len(question) + at
    if at < 0:
        at = _last_occurrence(target.word, question)
        where, offset = "question", at
    if at < 0:
        return None
    wtype = _TYPE_OF[target.word]
    vowel = target.word[0] in "aeiou"
    pool = [
        w
        for w in WORD_TYPES[wtype]
        if w != target.word and (w[0] in "aeiou") == vowel and not _present(w, question + completion)
    ]
    rng.shuffle(pool)
    for cand in pool[:max_tries]:
        corrupt_text = clean_text[:offset] + cand + clean_text[offset + len(target.word) :]
        corrupt_ids = _ids(tok, corrupt_text)
        if len(corrupt_ids) != len(clean_ids):
            continue
        diff = [i for i, (a, b) in enumerate(zip(clean_ids, corrupt_ids, strict=True)) if a != b]
        if not diff or diff[-1] - diff[0] >= len(_ids(tok, " " + cand)) + 1:
            continue
        corrupt_tok = _next_token(tok, corrupt_text, sep + cand, corrupt_ids)
        if corrupt_tok is None or corrupt_tok == clean_tok:
            continue
        return cand, where, sep, clean_ids, corrupt_ids, clean_tok, corrupt_tok, diff[0]
    return None


def _in_question(made: tuple[Any, ...], tok: Any, context: str) -> bool:
    """The corrupted position lies after the few-shot context."""
    return int(made[7]) >= len(_ids(tok, context))


def gold_samples(prompts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The gold chains as if a model had written them (``circuits.pairs.cot: gold``)."""
    out = []
    for p in prompts:
        text = response_text(p["gold_cot"], p["label"])
        out.append(
            {
                "prompt_id": p["prompt_id"],
                "sample_idx": 0,
                "completion": text,
                "steps": list(p["gold_cot"]),
                "step_correct": [True] * len(p["gold_cot"]),
            }
        )
    return out


def build_pairs(
    tok: Any,
    prompts: Sequence[dict[str, Any]],
    samples: Sequence[dict[str, Any]],
    seed: int = 0,
    context: str = "question",
) -> Iterator[Pair]:
    """Every candidate pair of every sample, over the correct prefix of its CoT.

    ``context``: ``fewshot`` puts the prompt's few-shot exemplars (the prompt the model
    wrote its CoT after, as in Dutta et al.) before the question in both prompts;
    ``question`` uses the test question alone (0-shot)."""
    if context not in PAIR_CONTEXTS:
        raise ValueError(f"pairs context must be one of {PAIR_CONTEXTS}, got {context!r}")
    by_id = {int(p["prompt_id"]): p for p in prompts}
    for s in samples:
        p = by_id[int(s["prompt_id"])]
        question = fewshot.question_text(p["facts"], p["query"])
        shots = ""
        if context == "fewshot":
            if not p["prompt"].endswith(question):
                raise ValueError(f"prompt {p['prompt_id']} does not end with its question")
            shots = p["prompt"][: len(p["prompt"]) - len(question)]
        q_ids = _ids(tok, shots + question)
        completion = s["completion"]
        pos = 0
        for k, (step, ok) in enumerate(zip(s["steps"], s["step_correct"], strict=True)):
            if not ok:
                break  # only a correct CoT prefix
            step_start = completion.find(step, pos)
            if step_start < 0:
                break
            pos = step_start + len(step)
            for t in step_targets(step, step_start, k):
                rng = random.Random(f"{seed}|{s['prompt_id']}|{s['sample_idx']}|{k}|{t.start}")
                made = make_pair(tok, question, completion, t, rng, context=shots)
                if made is None:
                    continue
                cand, where, _sep, c_ids, x_ids, c_tok, x_tok, cpos = made
                if c_ids[: len(q_ids)] != q_ids:
                    continue
                yield Pair(
                    prompt_id=int(s["prompt_id"]),
                    sample_idx=int(s["sample_idx"]),
                    step=k,
                    subtask=t.subtask,
                    word=t.word,
                    word_type=_TYPE_OF[t.word],
                    replacement=cand,
                    corrupted_in=where,
                    clean_ids=tuple(c_ids),
                    corrupt_ids=tuple(x_ids),
                    clean_tok=c_tok,
                    corrupt_tok=x_tok,
                    question_len=len(q_ids),
                    corrupt_pos=cpos,
                )


def balance(pairs: Sequence[Pair], per_subtask: int, seed: int = 0) -> list[Pair]:
    """At most ``per_subtask`` pairs of each subtask, seeded, in a stable order."""
    rng = random.Random(seed)
    out: list[Pair] = []
    for sub in SUBTASKS:
        group = [p for p in pairs if p.subtask == sub]
        if len(group) > per_subtask:
            group = sorted(rng.sample(group, per_subtask), key=lambda p: (p.prompt_id, p.sample_idx, p.step))
        out += group
    return out
