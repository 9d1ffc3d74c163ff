"""An optional LLM judge: a local model from the registry answers questions, and every
answer is cached on disk.

Two kinds of question, both read from one next-token distribution (no sampling, so
deterministic):

- yes/no (Study 4's refusal judge): P(yes) = P(Yes tokens) / (P(Yes) + P(No)) after
  "Answer:".
- multiple choice (Study 2's neuron concepts): the options A-G are the concepts and H is
  "none of these"; four worked examples (answers A, H, D, H) come first, so "none" is
  a real choice and no single concept is primed. The label is the likeliest option.
  An earlier design asked yes/no per concept after one "yes" example on division; the
  1.5B judge then said "division" for 27 of 30 junk-token neurons.

A long frame shared by the questions is run once: its keys/values are kept and each
question runs only its own tokens. Answers are appended to a JSON-lines cache keyed by
the judge model's manifest hash and the question; a crash loses at most the line being
written.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cotlens.core.sampling import shared_prefix_len
from cotlens.core.stats import cohen_kappa

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


LETTERS = "ABCDEFGH"  # the concepts in CONCEPTS order, then "none of these"
FRAME = (
    "Each list holds the words that one neuron of a language model promotes. Pick the topic the words are "
    "mostly about.\nOptions: "
    + ", ".join(f"{LETTERS[i]}) {d}" for i, d in enumerate(CONCEPTS.values()))
    + ", H) none of these topics\n\n"
    "Words: ' plus', '+', ' sum', ' added', ' adding'\nTopic: A\n\n"
    "Words: ' cat', ' blue', 'ingly', ' river', ' sang'\nTopic: H\n\n"
    "Words: ' divide', '/', ' split', ' per', ' shared'\nTopic: D\n\n"
    "Words: '.\\n', ' Paris', 'ocr', ' the', '_id'\nTopic: H\n\n"
)


def question(tokens: Sequence[str]) -> str:
    """The multiple-choice question about a neuron's top tokens (blank tokens dropped)."""
    words = ", ".join(repr(t) for t in tokens if t.strip())
    return f"{FRAME}Words: {words}\nTopic:"


class Judge:
    def __init__(
        self, model: Any, tokenizer: Any, model_key: str, cache: str | Path, reuse_prefix: bool = True
    ) -> None:
        self.model, self.tok, self.key = model, tokenizer, model_key
        self.reuse_prefix = reuse_prefix
        self._prefix: tuple[list[int], Any] | None = None
        self.reused = 0  # questions that ran on top of the kept keys/values
        self.cache_path = Path(cache)
        self.cache: dict[str, float] = {}  # yes/no question key -> P(yes) / (P(yes) + P(no))
        self.choices: dict[str, list[float]] = {}  # multiple-choice question key -> P(option), A-H
        if self.cache_path.exists():
            for line in self.cache_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    if "probs" in row:
                        self.choices[row["key"]] = [float(x) for x in row["probs"]]
                    else:
                        self.cache[row["key"]] = float(row.get("p_yes", 1.0 if row["yes"] else 0.0))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a line cut short by a crash
        self.yes_ids = self._ids(["Yes", " Yes", "yes", " yes"])
        self.no_ids = self._ids(["No", " No", "no", " no"])
        self.letter_ids = [self._ids([x, f" {x}"]) for x in LETTERS]
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
        self._append({"key": k, "yes": py > 0.5, "p_yes": py, "question": q})
        return py

    def _append(self, row: dict[str, Any]) -> None:
        self.asked += 1
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.cache_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    @torch.no_grad()
    def option_probs(self, q: str) -> list[float]:
        """P(option) for A-H after multiple-choice question ``q``, normalised over them (cached)."""
        k = self._key(q)
        if k in self.choices:
            return self.choices[k]
        p = torch.softmax(self._last_logits(self.tok(q)["input_ids"]).float(), -1)
        mass = [float(p[ids].sum()) for ids in self.letter_ids]
        tot = sum(mass)
        probs = [round(m / tot, 6) if tot > 0 else 0.0 for m in mass]  # rounded as cached
        self.choices[k] = probs
        self._append({"key": k, "probs": probs, "question": q})
        return probs

    def _last_logits(self, ids: list[int]) -> torch.Tensor:
        """Next-token logits after ``ids``. Questions share a long frame: the keys/values of
        the last uncached prompt are kept, and a prompt that shares at least ``MIN_SHARED``
        leading tokens with it runs only the rest on top of them (cropped copy)."""
        dev = next(self.model.parameters()).device
        n = 0
        if self.reuse_prefix and self._prefix is not None:
            n = shared_prefix_len([self._prefix[0], ids], MIN_SHARED)  # 0 below MIN_SHARED
        if n and self._prefix is not None:
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

    def label(self, tokens: Sequence[str]) -> str | None:
        """The likeliest concept for a neuron's top tokens, or None when "none of these" is."""
        probs = self.option_probs(question(tokens))
        best = max(range(len(LETTERS)), key=lambda i: probs[i])
        return list(CONCEPTS)[best] if best < len(CONCEPTS) else None


def agreement(candidates: Sequence[tuple[str, Sequence[str], str | None]], judge: Judge) -> dict[str, Any]:
    """The judge's labels against the lexicon's on ``(name, top tokens, lexicon label)``:
    the share of equal labels, Cohen's kappa (no concept is a category), the confusion
    counts and the disagreements."""
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
