"""An optional LLM judge for neuron concepts: a local model from the registry answers
yes/no questions, and every answer is cached on disk.

The judge reads the next-token distribution after "Answer:" and compares the total
probability of the "Yes" tokens with that of the "No" tokens, so it needs no sampling
and is deterministic. Answers are appended to a JSON-lines cache keyed by the judge
model's manifest hash and the question; a crash loses at most the line being written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

CONCEPTS = {
    "add": "addition or the plus sign",
    "sub": "subtraction or the minus sign",
    "mul": "multiplication or the times sign",
    "div": "division",
    "equals": "equality or the equals sign",
    "connective": "a logical connective such as so, then or therefore",
    "formula": "stating a calculation or its result",
}


def question(tokens: Sequence[str], concept: str) -> str:
    words = ", ".join(repr(t.strip()) for t in tokens if t.strip())
    return f"A neuron promotes these words: {words}.\nAre these words mostly about {CONCEPTS[concept]}?"


class Judge:
    def __init__(self, model: Any, tokenizer: Any, model_key: str, cache: str | Path) -> None:
        self.model, self.tok, self.key = model, tokenizer, model_key
        self.cache_path = Path(cache)
        self.cache: dict[str, bool] = {}
        if self.cache_path.exists():
            for line in self.cache_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self.cache[row["key"]] = bool(row["yes"])
                except (json.JSONDecodeError, KeyError, TypeError):
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
    def yes(self, q: str) -> bool:
        k = self._key(q)
        if k in self.cache:
            return self.cache[k]
        dev = next(self.model.parameters()).device
        ids = self.tok(f"{q}\nAnswer Yes or No.\nAnswer:", return_tensors="pt")["input_ids"].to(dev)
        p = torch.softmax(self.model(input_ids=ids).logits[0, -1].float(), -1)
        ans = bool(p[self.yes_ids].sum() > p[self.no_ids].sum())
        self.cache[k] = ans
        self.asked += 1
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.cache_path, "a") as fh:
            fh.write(json.dumps({"key": k, "yes": ans, "question": q}) + "\n")
        return ans

    def label(self, tokens: Sequence[str]) -> str | None:
        """The first concept (in ``CONCEPTS`` order) the judge says yes to, or None."""
        for concept in CONCEPTS:
            if self.yes(question(tokens, concept)):
                return concept
        return None
