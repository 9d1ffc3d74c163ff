"""An optional LLM judge for neuron concepts: a local model from the registry answers
yes/no questions, and every answer is cached on disk.

The judge reads the next-token distribution after "Answer:" and compares the total
probability of the "Yes" tokens with that of the "No" tokens, so it needs no sampling
and is deterministic. A neuron's label is asked concept by concept, each question
framed by two worked examples (one yes, one no, on other concepts); the label is the
concept with the highest P(yes) if that is above one half, so the order of the concepts
cannot decide it. Answers are appended to a JSON-lines cache keyed by the judge model's
manifest hash and the question; a crash loses at most the line being written.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

MIN_SHARED = 16  # leading tokens a prompt must share with the kept one to reuse its keys/values

CONCEPTS = {
    "add": "addition or the plus sign",
    "sub": "subtraction or the minus sign",
    "mul": "multiplication or the times sign",
    "div": "division",
    "equals": "equality or the equals sign",
    "connective": "a logical connective such as so, then or therefore",
    "formula": "stating a calculation or its result",
}


# Two worked examples before every neuron question: a small judge answers the frame
# "Words / Topic / Answer" far more sensibly than a bare question.
FRAME = (
    "Decide whether a list of words that a neuron promotes is mostly about a topic.\n\n"
    "Words: 'divide', ' split', '/', ' per', ' shared'\nTopic: division\nAnswer: Yes\n\n"
    "Words: ' cat', ' blue', ' the', ' river', ' sang'\nTopic: multiplication or the times sign\nAnswer: No\n\n"
)


def question(tokens: Sequence[str], concept: str) -> str:
    words = ", ".join(repr(t) for t in tokens if t.strip())
    return f"{FRAME}Words: {words}\nTopic: {CONCEPTS[concept]}"


class Judge:
    def __init__(
        self, model: Any, tokenizer: Any, model_key: str, cache: str | Path, reuse_prefix: bool = True
    ) -> None:
        self.model, self.tok, self.key = model, tokenizer, model_key
        self.reuse_prefix = reuse_prefix
        self._prefix: tuple[list[int], Any] | None = None
        self.reused = 0  # questions that ran on top of the kept keys/values
        self.cache_path = Path(cache)
        self.cache: dict[str, float] = {}  # question key -> P(yes) / (P(yes) + P(no))
        if self.cache_path.exists():
            for line in self.cache_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self.cache[row["key"]] = float(row.get("p_yes", 1.0 if row["yes"] else 0.0))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a line cut short by a crash
        self.yes_ids = self._ids(["Yes", " Yes", "yes", " yes"])
        self.no_ids = self._ids(["No", " No", "no", " no"])
        self.asked = 0

    def _ids(self, words: list[str]) -> list[int]:
        ids = {self.tok(w, add_special_tokens=False)["input_ids"][0] for w in words}
        return sorted(ids)

    def _key(self, q: str) -> str:
        return hashlib.sha256(f"{self.key}\n{q}".encode()).hexdigest()

    @torch.no_grad()
    def p_yes(self, q: str) -> float:
        """P(yes) / (P(yes) + P(no)) after ``q`` (cached)."""
        k = self._key(q)
        if k in self.cache:
            return self.cache[k]
        p = torch.softmax(self._last_logits(self.tok(f"{q}\nAnswer Yes or No.\nAnswer:")["input_ids"]).float(), -1)
        y, n = float(p[self.yes_ids].sum()), float(p[self.no_ids].sum())
        py = round(y / (y + n), 6) if y + n > 0 else 0.0  # rounded as cached: a rerun reads the same
        self.cache[k] = py
        self.asked += 1
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.cache_path, "a") as fh:
            fh.write(json.dumps({"key": k, "yes": py > 0.5, "p_yes": py, "question": q}) + "\n")
        return py

    def _last_logits(self, ids: list[int]) -> torch.Tensor:
        """Next-token logits after ``ids``. Questions share a long frame: the keys/values of
        the last uncached prompt are kept, and a prompt that shares at least ``MIN_SHARED``
        leading tokens with it runs only the rest on top of them (cropped copy)."""
        dev = next(self.model.parameters()).device
        n = 0
        if self.reuse_prefix and self._prefix is not None:
            pre = self._prefix[0]
            lim = min(len(pre), len(ids) - 1)
            while n < lim and pre[n] == ids[n]:
                n += 1
        if n >= MIN_SHARED and self._prefix is not None:
            kv = copy.deepcopy(self._prefix[1])
            try:
                kv.crop(n - len(self._prefix[0]))  # a negative count: tokens removed from the end
            except (ValueError, RuntimeError):  # a cache that cannot roll back (sliding window, recurrent)
                kv = None
            if kv is not None:
                self.reused += 1
                out = self.model(input_ids=torch.tensor([ids[n:]], device=dev), past_key_values=kv, use_cache=True)
                return out.logits[0, -1]
        out = self.model(input_ids=torch.tensor([ids], device=dev), use_cache=self.reuse_prefix)
        if self.reuse_prefix:
            self._prefix = (list(ids), out.past_key_values)
        return out.logits[0, -1]

    def yes(self, q: str) -> bool:
        return self.p_yes(q) > 0.5

    def scores(self, tokens: Sequence[str]) -> dict[str, float]:
        """P(yes) for every concept."""
        return {c: self.p_yes(question(tokens, c)) for c in CONCEPTS}

    def label(self, tokens: Sequence[str]) -> str | None:
        """The concept with the highest P(yes), if above one half; else None."""
        sc = self.scores(tokens)
        best = max(sc, key=lambda c: sc[c])
        return best if sc[best] > 0.5 else None


def agreement(candidates: Sequence[tuple[str, Sequence[str], str | None]], judge: Judge) -> dict[str, Any]:
    """The judge's labels against the lexicon's on ``(name, top tokens, lexicon label)``:
    the share of equal labels, Cohen's kappa (no concept is a category), the confusion
    counts and the disagreements."""
    from cotlens.stats import cohen_kappa

    lex = [c[2] or "none" for c in candidates]
    jud = [judge.label(c[1]) or "none" for c in candidates]
    confusion: dict[str, dict[str, int]] = {}
    for a, b in zip(lex, jud, strict=True):
        confusion.setdefault(a, {}).setdefault(b, 0)
        confusion[a][b] += 1
    n = len(candidates)
    return {
        "n": n,
        "agree": sum(a == b for a, b in zip(lex, jud, strict=True)) / n if n else float("nan"),
        "kappa": cohen_kappa(lex, jud),
        "lexicon_concepts": sum(a != "none" for a in lex),
        "judge_concepts": sum(b != "none" for b in jud),
        "confusion": confusion,
        "disagreements": [
            {"neuron": c[0], "tokens": list(c[1])[:6], "lexicon": a, "judge": b}
            for c, a, b in zip(candidates, lex, jud, strict=True)
            if a != b
        ],
    }
