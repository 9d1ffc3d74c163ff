"""FFN neurons as a lens on arithmetic CoT (Study 2, Rai & Yao 2024).

A neuron is one coordinate of the FFN down projection's input (hook site ``mlp``):
its activation a_j times its output weight column w_j is what it writes to the
residual stream. Methods, all through the hook layer (weights are never edited):

- :class:`NeuronScorer`: during generation, in the same forwards, scores every neuron
  of every layer at the position that predicts each generated token by
  |a_j| * ||w_j|| and counts how often each neuron is in its layer's top-k; also sums
  a_j (for mean ablation and for activation levels).
- :func:`project_many` / :func:`project`: w_j (with and without the final norm) through the
  unembedding -> its top tokens, a chunk of neurons per matrix product.
- :func:`label`: a deterministic concept lexicon over those tokens.
- :func:`ablate`: zero the given neurons, or set them to their mean activation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cotlens.hooks import edit_inputs, hooked, site_pre_hooks
from cotlens.models.adapters import Adapter, Dims, readout
from cotlens.writes import out_columns  # what a neuron writes per unit activation (post norms included)

# Concept lexicon: a neuron's top tokens (lower-cased, stripped) are matched against it.
LEXICON: dict[str, frozenset[str]] = {
    "add": frozenset({"+", "plus", "add", "adding", "added", "adds", "sum", "more", "total", "increase"}),
    "sub": frozenset({"-", "−", "minus", "subtract", "subtracting", "less", "fewer", "left", "remaining", "away"}),
    "mul": frozenset({"*", "×", "x", "times", "multiply", "multiplied", "multiplying", "product", "twice", "double"}),
    "div": frozenset({"/", "÷", "divide", "divided", "dividing", "split", "half", "per", "quotient", "piles"}),
    "equals": frozenset({"=", "equals", "equal", "==", "is"}),
    "connective": frozenset({"so", "then", "therefore", "thus", "hence", "because", "since"}),
    "formula": frozenset({"answer", "calculate", "compute", "result", "formula", "how", "many", "number"}),
}
# Tokens that are mostly something else (a hyphen, a slash, "is", "more"): they count a
# quarter, so alone they never label a neuron; an operator symbol or word counts fully.
AMBIGUOUS = frozenset({"-", "−", "/", "x", "is", "more", "less", "left", "away", "per", "half", "each", "so", "then",
                       "since", "how", "many", "number", "total", "equal", "piles", "double", "result"})  # fmt: skip
LABEL_THRESHOLD = 0.5  # sum of weight/rank over a concept's top-10 tokens: an unambiguous token at rank 1-2 suffices


class NeuronScorer:
    """Context manager: scores every FFN neuron at each generated token, per original row.

    Call :meth:`rows` (e.g. as ``generate_batch(..., on_step=scorer.rows)``) before each
    forward; forwards not announced since the last call are ignored. After generation,
    :meth:`commit` adds the rows that count (e.g. correct answers) to the totals.
    """

    def __init__(self, model: nn.Module, ad: Adapter, dims: Dims, k: int, batch: int) -> None:
        self.model, self.ad, self.dims, self.k = model, ad, dims, k
        dev = next(model.parameters()).device
        self.norms = [out_columns(model, ad, li).float().norm(dim=1) for li in range(dims.n_layers)]
        shape = (batch, dims.n_layers, dims.d_mlp)
        self.top = torch.zeros(shape, device=dev)  # times in its layer's top-k, per row
        self.act = torch.zeros(shape, device=dev)  # sum of activations, per row
        self.tokens = torch.zeros(batch, device=dev)
        self.total_top = torch.zeros(shape[1:], device=dev)
        self.total_act = torch.zeros(shape[1:], device=dev)
        self.total_tokens = 0.0
        self._rows: torch.Tensor | None = None

    def rows(self, active: Sequence[int]) -> None:
        self._rows = torch.tensor(list(active), device=self.top.device)
        self.tokens[self._rows] += 1

    def reset(self) -> None:
        self.top.zero_()
        self.act.zero_()
        self.tokens.zero_()

    def commit(self, keep: Sequence[int]) -> None:
        """Add rows ``keep`` of the finished batch to the totals, then clear the per-row state."""
        if keep:
            idx = torch.tensor(list(keep), device=self.top.device)
            self.total_top += self.top[idx].sum(0)
            self.total_act += self.act[idx].sum(0)
            self.total_tokens += float(self.tokens[idx].sum())
        self.reset()

    def _hook(self, layer: int) -> Any:
        def pre(a: torch.Tensor) -> None:
            if self._rows is None:
                return
            x = a[:, -1].float()  # [b, d_mlp]: the position that predicts the next token
            rows = self._rows
            score = x.abs() * self.norms[layer]
            top = score.topk(self.k, dim=-1).indices
            self.top[rows, layer] += torch.zeros_like(x).scatter_(1, top, 1.0)
            self.act[rows, layer] += x
            if layer == self.dims.n_layers - 1:
                self._rows = None  # one announcement covers one forward

        return pre

    def __enter__(self) -> NeuronScorer:
        self._ctx = hooked(
            lambda: site_pre_hooks(self.model, self.ad, "mlp", {li: self._hook(li) for li in range(self.dims.n_layers)})
        )
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)

    def frequency(self) -> torch.Tensor:
        """[L, d_mlp] fraction of committed tokens at which each neuron was in its layer's top-k."""
        return self.total_top / max(self.total_tokens, 1.0)

    def mean_activation(self) -> torch.Tensor:
        return self.total_act / max(self.total_tokens, 1.0)


@dataclass(frozen=True)
class Projection:
    with_norm: list[str]
    without_norm: list[str]


@torch.no_grad()
def project_many(
    model: nn.Module, ad: Adapter, tokenizer: Any, neurons: Sequence[tuple[int, int]], top: int = 10,
    chunk: int = 256,
) -> dict[tuple[int, int], Projection]:  # fmt: skip
    """Output weights of ``neurons`` [(layer, index)] through the unembedding, with and
    without the final norm: ``chunk`` neurons per matrix product, so the unembedding (the
    largest matrix of a small model) is read once per chunk rather than once per neuron."""
    by_layer: dict[int, list[int]] = {}
    for layer, j in neurons:
        by_layer.setdefault(int(layer), []).append(int(j))
    out: dict[tuple[int, int], Projection] = {}
    for layer, idx in sorted(by_layer.items()):
        cols = out_columns(model, ad, layer)
        for s in range(0, len(idx), chunk):
            part = idx[s : s + chunk]
            w = cols[torch.tensor(part, device=cols.device)]
            tops = [
                readout(model, ad, w, normed=normed).float().topk(top, dim=-1).indices.tolist()
                for normed in (False, True)
            ]  # with the final norm, then without it
            for k, j in enumerate(part):
                out[(layer, j)] = Projection(*[[tokenizer.decode([i]) for i in t[k]] for t in tops])
    return out


def project(model: nn.Module, ad: Adapter, tokenizer: Any, layer: int, neuron: int, top: int = 10) -> Projection:
    """One neuron's output weight through the unembedding, with and without the final norm."""
    return project_many(model, ad, tokenizer, [(layer, neuron)], top)[(layer, neuron)]


def _norm_token(t: str) -> str:
    return t.replace("Ġ", "").replace("▁", "").strip().lower()


def label(tokens: Sequence[str], threshold: float = LABEL_THRESHOLD) -> str | None:
    """The concept whose lexicon covers the top tokens best (sum of weight/rank), or None.

    A token counts once per rank it holds; ambiguous tokens (``AMBIGUOUS``) weigh 1/4."""
    best, best_score = None, 0.0
    for concept, words in LEXICON.items():
        hits = [(r, _norm_token(t)) for r, t in enumerate(tokens[:10]) if _norm_token(t) in words]
        score = sum((0.25 if w in AMBIGUOUS else 1.0) / (r + 1) for r, w in hits)
        if score > best_score:
            best, best_score = concept, score
    return best if best_score >= threshold else None


@contextlib.contextmanager
def ablate(
    model: nn.Module, ad: Adapter, neurons: Mapping[int, Sequence[int]], mode: str = "zero",
    means: torch.Tensor | None = None,
) -> Iterator[None]:  # fmt: skip
    """Zero ``neurons`` ({layer: indices}) or set them to ``means`` [L, d_mlp], through hooks."""
    if mode not in ("zero", "mean"):
        raise ValueError(f"ablation mode must be zero or mean, got {mode!r}")
    if mode == "mean" and means is None:
        raise ValueError("mean ablation needs the neurons' mean activations")
    dev = next(model.parameters()).device

    def make(layer: int, idx: Sequence[int]) -> Any:
        ix = torch.tensor(list(idx), device=dev, dtype=torch.long)
        val = None if means is None else means[layer, ix]

        def fn(x: torch.Tensor) -> torch.Tensor:
            x = x.clone()
            x[..., ix] = 0.0 if mode == "zero" or val is None else val.to(x.dtype)
            return x

        return fn

    with edit_inputs(model, ad, "mlp", {layer: make(layer, idx) for layer, idx in neurons.items() if len(idx)}):
        yield


def random_neurons(dims: Dims, n: int, gen: torch.Generator) -> dict[int, list[int]]:
    """``n`` distinct neurons drawn uniformly from all layers and all neurons."""
    flat = torch.randperm(dims.n_layers * dims.d_mlp, generator=gen)[:n].tolist()
    out: dict[int, list[int]] = {}
    for f in flat:
        out.setdefault(f // dims.d_mlp, []).append(f % dims.d_mlp)
    return out


class ActivationMeter:
    """Mean activation of a neuron set at the generated tokens, per original row."""

    def __init__(self, model: nn.Module, ad: Adapter, neurons: Mapping[int, Sequence[int]], batch: int) -> None:
        self.model, self.ad = model, ad
        dev = next(model.parameters()).device
        self.neurons = {li: torch.tensor(list(ix), device=dev) for li, ix in neurons.items() if len(ix)}
        self.sum = torch.zeros(batch, device=dev)
        self.count = torch.zeros(batch, device=dev)
        self._rows: torch.Tensor | None = None
        self._last = max(self.neurons) if self.neurons else -1

    def rows(self, active: Sequence[int]) -> None:
        self._rows = torch.tensor(list(active), device=self.sum.device)

    def _hook(self, layer: int) -> Any:
        ix = self.neurons[layer]

        def pre(a: torch.Tensor) -> None:
            if self._rows is None:
                return
            x = a[:, -1, ix].float()
            self.sum[self._rows] += x.sum(-1)
            self.count[self._rows] += x.shape[-1]
            if layer == self._last:
                self._rows = None

        return pre

    def __enter__(self) -> ActivationMeter:
        self._ctx = hooked(
            lambda: site_pre_hooks(self.model, self.ad, "mlp", {li: self._hook(li) for li in self.neurons})
        )
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)

    def take(self, n: int) -> list[float]:
        """Per-row means of the first ``n`` rows, then reset."""
        out = (self.sum[:n] / self.count[:n].clamp(min=1)).tolist()
        self.sum.zero_()
        self.count.zero_()
        return out
