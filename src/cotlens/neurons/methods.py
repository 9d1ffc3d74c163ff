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
- :func:`label`: a deterministic concept lexicon over those tokens (>= 2 concept tokens).
- :func:`ablate`: Gaussian noise on the neurons' value vectors (Rai & Yao), or zero them,
  or set them to their mean activation.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

import pyarrow as pa
import torch
from torch import nn

from cotlens.core.contributions import out_columns
from cotlens.core.hooks import Hooked, edit_inputs, output_hooks, site_pre_hooks
from cotlens.core.sampling import Generation, SampleConfig, generate_all
from cotlens.core.types import ABLATIONS, AblationMode
from cotlens.errors import CotlensError
from cotlens.io.parquet import Columns
from cotlens.models.adapters import AdaptedModel, Adapter, Dims, get, layers, readout
from cotlens.models.checks import TOL, Check, _cmp
from cotlens.neurons import tables
from cotlens.neurons.prompts import VARIANTS, is_done, parse_answer

if TYPE_CHECKING:
    from cotlens.models.loading import Loaded

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
AMBIGUOUS = frozenset(
    {
        "-",
        "−",
        "/",
        "x",
        "is",
        "more",
        "less",
        "left",
        "away",
        "per",
        "half",
        "each",
        "so",
        "then",
        "since",
        "how",
        "many",
        "number",
        "total",
        "equal",
        "piles",
        "double",
        "result",
    }
)
LABEL_THRESHOLD = 0.5  # sum of weight/rank over a concept's top-10 tokens: an unambiguous token at rank 1-2 suffices


class NeuronScorer(Hooked):
    """Context manager: scores every FFN neuron at each generated token, per original row.

    Call :meth:`rows` (e.g. as ``generate_batch(..., on_step=scorer.rows)``) before each
    forward; forwards not announced since the last call are ignored. After generation,
    :meth:`commit` adds the rows that count (e.g. correct answers) to the totals.
    """

    def __init__(self, mh: AdaptedModel, k: int, batch: int) -> None:
        model, ad, dims = mh.model, mh.adapter, mh.dims
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

    def _register(self) -> list[Any]:
        return site_pre_hooks(self.model, self.ad, "mlp", {li: self._hook(li) for li in range(self.dims.n_layers)})

    def __enter__(self) -> NeuronScorer:
        return super().__enter__()

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
    model: nn.Module,
    ad: Adapter,
    tokenizer: Any,
    neurons: Sequence[tuple[int, int]],
    top: int = 10,
    chunk: int = 256,
    signs: Mapping[tuple[int, int], float] | None = None,
) -> dict[tuple[int, int], Projection]:
    """Output weights of ``neurons`` [(layer, index)] through the unembedding, with and
    without the final norm: ``chunk`` neurons per matrix product, so the unembedding (the
    largest matrix of a small model) is read once per chunk rather than once per neuron.

    ``signs``: the sign of each neuron's activation (default +1). A neuron that fires
    negative (gated FFNs: SwiGLU, GeGLU) writes minus its output weight, so the tokens it
    promotes are the top of ``-w``: its projection is read from ``sign * w``."""
    by_layer: dict[int, list[int]] = {}
    for layer, j in neurons:
        by_layer.setdefault(int(layer), []).append(int(j))
    out: dict[tuple[int, int], Projection] = {}
    for layer, idx in sorted(by_layer.items()):
        cols = out_columns(model, ad, layer)
        for s in range(0, len(idx), chunk):
            part = idx[s : s + chunk]
            w = cols[torch.tensor(part, device=cols.device)]
            if signs is not None:
                sg = [-1.0 if signs.get((layer, j), 1.0) < 0 else 1.0 for j in part]
                w = w * torch.tensor(sg, device=w.device, dtype=w.dtype)[:, None]
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


def label(tokens: Sequence[str], threshold: float = LABEL_THRESHOLD, min_tokens: int = 2) -> str | None:
    """The concept whose lexicon covers the top tokens best (sum of weight/rank), or None.

    A token counts once per rank it holds; ambiguous tokens (``AMBIGUOUS``) weigh 1/4.
    Rai & Yao keep a neuron only when at least two of its top tokens express the concept:
    a concept needs ``min_tokens`` matching tokens among the top 10, at least one of them
    unambiguous, and the score."""
    best, best_score = None, 0.0
    for concept, words in LEXICON.items():
        hits = [(r, _norm_token(t)) for r, t in enumerate(tokens[:10]) if _norm_token(t) in words]
        if len(hits) < min_tokens or all(w in AMBIGUOUS for _, w in hits):
            continue  # two tokens, at least one unambiguous: "more more More" is not "add"
        score = sum((0.25 if w in AMBIGUOUS else 1.0) / (r + 1) for r, w in hits)
        if score > best_score:
            best, best_score = concept, score
    return best if best_score >= threshold else None


def candidates(freq: torch.Tensor, n: int) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """The ``n`` neurons most often in the top-k, as (layer, neuron), most frequent first,
    and each neuron's rank among them ([n_layers, d_mlp]; -1: not a candidate)."""
    order = freq.flatten().argsort(descending=True)[:n]
    rank = torch.full_like(freq, -1, dtype=torch.long).flatten()
    rank[order] = torch.arange(len(order))
    return [divmod(int(f), freq.shape[-1]) for f in order], rank.view_as(freq)


def neurons_table(
    freq: torch.Tensor,
    mean: torch.Tensor,
    rank: torch.Tensor,
    projections: Mapping[tuple[int, int], Projection],
    params: Mapping[str, Any],
    judge: Callable[[Sequence[str]], str | None] | None = None,
    judged_by: str | None = None,
) -> pa.Table:
    """neurons.parquet: every FFN neuron's frequency, mean activation, candidate rank and,
    for a projected candidate of layer >= ``min_layer``, its concept. Rai & Yao: value
    vectors projected without the final norm (``projection: raw``, their code), and at
    least ``min_concept_tokens`` of the top tokens expressing the concept; the ``judge_top``
    most frequent are labelled by ``judge`` (tokens -> concept, ``labelled_by`` = ``judged_by``)
    where one is given, the rest by the lexicon."""
    min_layer, min_tokens = int(params["min_layer"]), int(params["min_concept_tokens"])
    raw = params["projection"] == "raw"
    cols = Columns(tables.NEURONS)
    for layer in range(freq.shape[0]):
        for j in range(freq.shape[1]):
            r = int(rank[layer, j])
            proj = projections.get((layer, j))
            concept, lexicon, by = None, None, None
            if proj is not None and layer >= min_layer:
                tokens = proj.without_norm if raw else proj.with_norm
                concept = lexicon = label(tokens, min_tokens=min_tokens)
                by = "lexicon"
                if judge is not None and r < int(params["judge_top"]):
                    concept, by = judge(tokens), judged_by
            cols.add(
                layer=layer,
                neuron=j,
                freq=float(freq[layer, j]),
                mean_act=float(mean[layer, j]),
                rank=r,
                top_tokens=proj.with_norm if proj else [],
                top_tokens_raw=proj.without_norm if proj else [],
                concept=concept,
                labelled_by=by,
                lexicon=lexicon,
            )
    return cols.table()


def noise_vectors(
    model: nn.Module, ad: Adapter, neurons: Mapping[int, Sequence[int]], scale: float, seed: int
) -> dict[int, tuple[list[int], torch.Tensor]]:
    """{layer: (neuron ids, E [n, d_model])}: the Gaussian noise :func:`value_noise` adds to
    those neurons' value vectors, ``E_j ~ N(0, (scale * rms(w_j))^2 I)``, drawn from ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    blocks = layers(model, ad)
    out: dict[int, tuple[list[int], torch.Tensor]] = {}
    for layer in sorted(neurons):
        idx = list(neurons[layer])
        if not idx:
            continue
        down = get(blocks[layer], ad.mlp_out)
        w = down.weight  # [d_model, d_mlp] (Linear) or [d_mlp, d_model] (Conv1D)
        cols = (w.t() if isinstance(down, nn.Linear) else w)[idx].detach().float().cpu()  # [n, d_model]
        rms = cols.pow(2).mean(-1, keepdim=True).sqrt()
        out[layer] = (idx, (torch.randn(cols.shape, generator=gen) * scale * rms).to(w.device, w.dtype))
    return out


def value_noise(
    model: nn.Module, ad: Adapter, neurons: Mapping[int, Sequence[int]], scale: float, seed: int
) -> contextlib.AbstractContextManager[None]:
    """Gaussian noise on the value vectors of ``neurons`` (see :func:`ablate`), through hooks
    on the down projections' outputs (the self-check ``ablation`` proves it equals the
    forward with the edited weights)."""
    blocks = layers(model, ad)
    hooks = []
    for layer, (idx, e) in noise_vectors(model, ad, neurons, scale, seed).items():
        ix = torch.tensor(idx, device=e.device)

        def hook(_m: nn.Module, args: Any, out: torch.Tensor, ix: torch.Tensor = ix, e: torch.Tensor = e) -> Any:
            return out + args[0][..., ix].to(e.dtype) @ e

        hooks.append((get(blocks[layer], ad.mlp_out), hook))
    return output_hooks(hooks)


@contextlib.contextmanager
def ablate(
    model: nn.Module,
    ad: Adapter,
    neurons: Mapping[int, Sequence[int]],
    mode: AblationMode = "zero",
    means: torch.Tensor | None = None,
    noise_scale: float = 1.0,
    seed: int = 0,
) -> Iterator[None]:
    """Ablate ``neurons`` ({layer: indices}) through hooks, weights untouched:

    - ``zero``: their activations set to 0; ``mean``: to ``means`` [L, d_mlp];
    - ``noise`` (Rai & Yao): Gaussian noise added to their value vectors (the columns of
      the down projection), ``w_j + e_j`` with ``e_j ~ N(0, (noise_scale * rms(w_j))^2 I)``,
      drawn once from ``seed``; applied as ``out + a[..., idx] @ E`` on the down
      projection's output, which equals the forward with the perturbed weights."""
    if mode not in ABLATIONS:
        raise ValueError(f"ablation mode must be one of {ABLATIONS}, got {mode!r}")
    if mode == "mean" and means is None:
        raise ValueError("mean ablation needs the neurons' mean activations")
    if mode == "noise":
        with value_noise(model, ad, neurons, noise_scale, seed):
            yield
        return
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


class RowAblations(Hooked):
    """Several ablations at once, one per group of batch rows: ``sets[g]`` ({layer:
    indices}, or None for none) ablated in the rows of group ``g`` only, with ``seeds[g]``
    (Rai & Yao's noise is drawn as :func:`ablate` draws it). :meth:`rows` takes the group
    of each row of the coming forward (:func:`cotlens.core.sampling.generate_batch`'s
    ``on_groups``). Each group's rows get exactly the operation :func:`ablate` applies to
    a whole batch, on their own slice."""

    def __init__(
        self,
        model: nn.Module,
        ad: Adapter,
        sets: Sequence[Mapping[int, Sequence[int]] | None],
        mode: AblationMode,
        means: torch.Tensor | None = None,
        noise_scale: float = 1.0,
        seeds: Sequence[int] = (),
    ) -> None:
        if mode not in ABLATIONS:
            raise ValueError(f"ablation mode must be one of {ABLATIONS}, got {mode!r}")
        if mode == "mean" and means is None:
            raise ValueError("mean ablation needs the neurons' mean activations")
        self.model, self.ad, self.mode = model, ad, mode
        dev = next(model.parameters()).device
        self._groups: torch.Tensor | None = None
        # per layer: [(group, neuron ids, noise [n, d_model] or the values they are set to)]
        self.edits: dict[int, list[tuple[int, torch.Tensor, torch.Tensor | None]]] = {}
        for g, which in enumerate(sets):
            if not which:
                continue
            if mode == "noise":
                for layer, (nid, e) in noise_vectors(model, ad, which, noise_scale, int(seeds[g]) + 1).items():
                    self.edits.setdefault(layer, []).append((g, torch.tensor(nid, device=e.device), e))
                continue
            for layer, sel in which.items():
                if len(sel):
                    ix = torch.tensor(list(sel), device=dev, dtype=torch.long)
                    val = None if mode == "zero" or means is None else means[layer, ix]
                    self.edits.setdefault(layer, []).append((g, ix, val))

    def rows(self, groups: Sequence[int]) -> None:
        self._groups = torch.tensor(list(groups))

    def _which(self, g: int) -> torch.Tensor:
        assert self._groups is not None, "RowAblations.rows was not called before the forward"
        return (self._groups == g).nonzero().squeeze(-1)

    def _noise_hook(self, layer: int) -> Any:
        def hook(_m: nn.Module, args: Any, out: torch.Tensor) -> Any:
            a = args[0]
            assert self._groups is not None
            b = len(self._groups)
            flat = out.dim() == 2  # OPT: [batch * position, d]
            o = out.view(b, -1, out.shape[-1]) if flat else out
            x = a.view(b, -1, a.shape[-1]) if flat else a
            o = o.clone()
            for g, ix, e in self.edits[layer]:
                r = self._which(g)
                if len(r):
                    assert e is not None
                    o[r] = o[r] + x[r][..., ix.to(x.device)].to(e.dtype) @ e
            return o.view(out.shape)

        return hook

    def _input_fn(self, layer: int) -> Any:
        def fn(x: torch.Tensor) -> torch.Tensor:
            x = x.clone()
            for g, ix, val in self.edits[layer]:
                r = self._which(g).to(x.device)
                if len(r):
                    sub = x[r]
                    sub[..., ix] = 0.0 if val is None else val.to(x.dtype)
                    x[r] = sub
            return x

        return fn

    def _register(self) -> list[Any]:
        if self.mode == "noise":
            blocks = layers(self.model, self.ad)
            return [get(blocks[li], self.ad.mlp_out).register_forward_hook(self._noise_hook(li)) for li in self.edits]
        return site_pre_hooks(self.model, self.ad, "mlp", {li: self._input_fn(li) for li in self.edits})

    def __enter__(self) -> RowAblations:
        return super().__enter__()

    @contextlib.contextmanager
    def removed(self) -> Iterator[None]:
        """The hooks off for the ``with`` block (a reference forward inside the context)."""
        self.__exit__()
        try:
            yield
        finally:
            self._handles = list(self._register())


def random_like(which: Mapping[int, Sequence[int]], dims: Dims, gen: torch.Generator) -> dict[int, list[int]]:
    """A random control matched by layer: in each layer of ``which``, as many neurons drawn
    uniformly from that layer's other neurons (a layer's neurons differ in norm and role, so
    an unmatched control mostly measures where the set sits)."""
    out: dict[int, list[int]] = {}
    for layer in sorted(which):
        taken = set(which[layer])
        if not taken:
            continue
        pool = torch.tensor([j for j in range(dims.d_mlp) if j not in taken])
        out[layer] = pool[torch.randperm(len(pool), generator=gen)[: len(taken)]].tolist()
    return out


def split(problem_id: int) -> str:
    """Which problems find the concept neurons and which measure their effects: discovery
    (even ids) and evaluation (odd ids) are disjoint, so an ablation is never scored on the
    problems its neurons were picked on."""
    return "discovery" if problem_id % 2 == 0 else "eval"


class ActivationMeter(Hooked):
    """Per original row, at the generated tokens: the mean activation of a neuron set and
    (Rai & Yao's activation level) the mean number of its neurons that are activated (> 0)."""

    def __init__(self, model: nn.Module, ad: Adapter, neurons: Mapping[int, Sequence[int]], batch: int) -> None:
        self.model, self.ad = model, ad
        dev = next(model.parameters()).device
        self.neurons = {li: torch.tensor(list(ix), device=dev) for li, ix in neurons.items() if len(ix)}
        self.sum = torch.zeros(batch, device=dev)
        self.count = torch.zeros(batch, device=dev)
        self.active = torch.zeros(batch, device=dev)
        self.steps = torch.zeros(batch, device=dev)
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
            self.active[self._rows] += (x > 0).float().sum(-1)
            if layer == self._last:
                self.steps[self._rows] += 1
                self._rows = None

        return pre

    def _register(self) -> list[Any]:
        return site_pre_hooks(self.model, self.ad, "mlp", {li: self._hook(li) for li in self.neurons})

    def __enter__(self) -> ActivationMeter:
        return super().__enter__()

    def take(self, n: int) -> list[tuple[float, float]]:
        """Per row of the first ``n``: (mean activation, mean activated neurons per token), then reset."""
        mean = (self.sum[:n] / self.count[:n].clamp(min=1)).tolist()
        level = (self.active[:n] / self.steps[:n].clamp(min=1)).tolist()
        for t in (self.sum, self.count, self.active, self.steps):
            t.zero_()
        return list(zip(mean, level, strict=True))


# --- greedy CoT and the measurements of the effects stage ---


class Condition(NamedTuple):
    condition: str  # variant | concept | top | random
    variant: str
    mode: AblationMode | Literal["none"]
    seed: int  # random draw, -1 otherwise
    n_ablated: int


@dataclass(frozen=True)
class Answer:
    text: str
    pred: int | None
    correct: bool
    n_tokens: int


def solve(
    lm: Loaded,
    prompts: Sequence[str],
    answers: Sequence[int],
    cfg: Mapping[str, Any],
    on_step: Callable[[list[int]], None] | None = None,
    after_batch: Callable[[list[Answer]], None] | None = None,
    groups: Sequence[int] | None = None,
    on_groups: Callable[[list[int]], None] | None = None,
) -> list[Answer]:
    """Greedy CoT for each prompt, in batches; ``after_batch`` sees each batch's answers.
    ``groups``/``on_groups``: several conditions in one batch (see ``generate_batch``)."""
    tok = lm.tokenizer
    sc = SampleConfig(max_new_tokens=int(cfg["max_new_tokens"]), batch_size=int(cfg["batch_size"]))

    def stop(ids: list[int]) -> str | None:
        return "answer" if is_done(tok.decode(ids)) else None

    out: list[Answer] = []

    def collect(start: int, _ids: list[list[int]], gens: list[Generation]) -> None:
        batch = []
        for g, gold in zip(gens, answers[start : start + len(gens)], strict=True):
            text = tok.decode(g.token_ids)
            pred = parse_answer(text)
            batch.append(Answer(text, pred, pred == int(gold), len(g.token_ids)))
        if after_batch is not None:
            after_batch(batch)
        out.extend(batch)

    ids = [tok(p, add_special_tokens=True)["input_ids"] for p in prompts]
    generate_all(lm, ids, sc, stop, on_step=on_step, groups=groups, on_groups=on_groups, after_batch=collect)
    return out


def variant_rows(
    rows: list[dict[str, Any]], variant: str, role: str | None = None
) -> tuple[list[int], list[str], list[int]]:
    """(problem ids, prompts, answers) of one prompt variant; with ``role``, only the
    problems of that :func:`split` (discovery | eval)."""
    t = [r for r in rows if r["variant"] == variant and (role is None or split(r["problem_id"]) == role)]
    return [r["problem_id"] for r in t], [r["prompt"] for r in t], [r["answer"] for r in t]


def concept_neurons(neurons: Any) -> tuple[dict[int, list[int]], Any]:
    """({layer: [neuron]} of the labelled candidates, [L, d_mlp] mean activations) from neurons.parquet."""
    t = neurons.to_pydict()
    n_layers, d_mlp = max(t["layer"]) + 1, max(t["neuron"]) + 1
    means = torch.zeros(n_layers, d_mlp)
    chosen: dict[int, list[int]] = {}
    for layer, j, m, c in zip(t["layer"], t["neuron"], t["mean_act"], t["concept"], strict=True):
        means[layer, j] = m
        if c is not None:
            chosen.setdefault(int(layer), []).append(int(j))
    return chosen, means


def top_neurons(neurons: Any, n: int, source: str = "neurons.parquet") -> dict[int, list[int]]:
    """{layer: [neuron]} of the ``n`` best-ranked candidates (most often in their layer's
    top-k), whatever their concept."""
    t = neurons.to_pydict()
    ranked = sorted((r, layer, j) for layer, j, r in zip(t["layer"], t["neuron"], t["rank"], strict=True) if r >= 0)
    if n > len(ranked):
        raise CotlensError(
            f"effects.top_n asks for the top {n} neurons, but {source} holds {len(ranked)} candidates",
            "lower neurons.effects.top_n or raise neurons.discovery.n_candidates",
        )
    out: dict[int, list[int]] = {}
    for _, layer, j in ranked[:n]:
        out.setdefault(int(layer), []).append(int(j))
    return out


def effect_conditions(cfg: Mapping[str, Any], n_concept: int, top_n: Sequence[int]) -> list[Condition]:
    """The measurements of ``neurons_effects``, in order, one resumable shard each: every
    variant unablated; then per mode the concept set and its random controls, and per
    top-n the top set and its random controls. A random draw needed twice (a top-n as
    large as the concept set) is measured once."""
    conditions = [Condition("variant", v, "none", -1, 0) for v in VARIANTS if v in cfg["variants"]]
    seeds = range(int(cfg["random_seeds"]))
    for mode in cfg["modes"]:
        conditions += [Condition("concept", "full", mode, -1, n_concept)]
        conditions += [Condition("random", "full", mode, s, n_concept) for s in seeds]
        for n in top_n:
            conditions += [Condition("top", "full", mode, -1, n)] + [
                Condition("random", "full", mode, s, n) for s in seeds
            ]
    return list(dict.fromkeys(conditions))


def side_by_side(conditions: Sequence[Condition], todo: Sequence[int], per_batch: int) -> list[list[int]]:
    """``todo`` (indices into ``conditions``, in order) cut into the chunks one batch
    measures: up to ``per_batch`` prompt variants unablated together (each with its own
    exemplars, run once: ``generate_batch``'s groups), or up to ``per_batch`` ablations of
    the same variant and mode together (their rows side by side, :class:`RowAblations`)."""

    def kind(c: Condition) -> tuple[str, ...]:
        return ("variant",) if c.condition == "variant" else ("ablation", c.variant, c.mode)

    out: list[list[int]] = []
    for k in todo:
        c = conditions[k]
        last = conditions[out[-1][0]] if out else None
        if last is not None and kind(last) == kind(c) and len(out[-1]) < per_batch:
            out[-1].append(k)
        else:
            out.append([k])
    return out


@torch.no_grad()
def check_ablation(mh: AdaptedModel, ids: torch.Tensor, tol: float = TOL) -> Check:
    """Study 2's ablations, through hooks, vs the forward with the edited weights: noise on
    three neurons' value vectors per layer (the columns of the down projection get the same
    noise), and zero ablation (those columns zeroed). Weights are restored afterwards."""
    model, ad, d = mh.model, mh.adapter, mh.dims
    if ad.router is not None:
        return Check("ablation", False, float("nan"), 0.0, "a mixture of experts has no single FFN neuron vector")
    which = {li: [0, d.d_mlp // 2, d.d_mlp - 1] for li in range(d.n_layers)}
    worst: Check | None = None
    for mode in ("noise", "zero"):
        with ablate(model, ad, which, mode, noise_scale=1.0, seed=0):
            hooked_logits = model(input_ids=ids, use_cache=False).logits
        edits = noise_vectors(model, ad, which, 1.0, 0)
        saved = []
        for li, block in enumerate(layers(model, ad)):
            down = get(block, ad.mlp_out)
            w = down.weight
            saved.append(w.detach().clone())
            idx, e = edits[li]
            cols = w.t() if isinstance(down, nn.Linear) else w  # a view: [d_mlp, d_model]
            if mode == "noise":
                cols[idx] += e
            else:
                cols[idx] = 0.0
        try:
            edited = model(input_ids=ids, use_cache=False).logits
        finally:
            for block, w0 in zip(layers(model, ad), saved, strict=True):
                get(block, ad.mlp_out).weight.copy_(w0)
        c = _cmp("ablation", hooked_logits, edited, f"{mode} ablation by hooks vs edited weights", tol=tol)
        worst = c if worst is None or (not c.ok) or c.rel > worst.rel and worst.ok else worst
    assert worst is not None
    return worst


def solve_metered(
    lm: Loaded,
    chosen: Mapping[int, Sequence[int]],
    texts: list[str],
    golds: list[int],
    generation: Mapping[str, Any],
    groups: list[int] | None = None,
    rows: RowAblations | None = None,
) -> tuple[list[Answer], list[tuple[float, float]]]:
    """:func:`solve` with the concept neurons' activation of each answer (``ActivationMeter``);
    with ``groups``, one batch of conditions side by side (``rows``: their ablations)."""
    acts: list[tuple[float, float]] = []
    bs = len(texts) if groups else int(generation["batch_size"])
    with ActivationMeter(lm.model, lm.adapter, chosen, bs) as meter:
        answers = solve(
            lm,
            texts,
            golds,
            {**generation, "batch_size": bs},
            on_step=meter.rows,
            after_batch=lambda b: acts.extend(meter.take(len(b))),
            groups=groups,
            on_groups=None if rows is None else rows.rows,
        )
    return answers, acts


def ablated_set(
    c: Condition, chosen: dict[int, list[int]], tops: Mapping[int, dict[int, list[int]]], dims: Dims
) -> dict[int, list[int]]:
    """The neurons condition ``c`` ablates: the concept set, a top-n set, or a random set
    matched by layer to the one it controls (seeded by the condition)."""
    if c.condition == "concept":
        return chosen
    if c.condition == "top":
        return tops[c.n_ablated]
    n_concept = sum(len(v) for v in chosen.values())
    like = chosen if c.n_ablated == n_concept else tops[c.n_ablated]
    return random_like(like, dims, torch.Generator().manual_seed(c.seed))


def measure(
    lm: Loaded,
    chunk: Sequence[Condition],
    table: list[dict[str, Any]],
    chosen: dict[int, list[int]],
    tops: Mapping[int, dict[int, list[int]]],
    means: torch.Tensor,
    params: Mapping[str, Any],
) -> list[tuple[list[Answer], list[tuple[float, float]]]]:
    """The answers and activations of each condition of ``chunk`` on the evaluation problems:
    a prompt variant alone, or ablations of one variant and mode side by side in one batch
    (one group of rows each, ``RowAblations``)."""
    first = chunk[0]
    if first.condition == "variant":  # each variant its own group: its exemplars run once
        parts = [variant_rows(table, c.variant, "eval") for c in chunk]
        groups = [g for g, (ids, _, _) in enumerate(parts) for _ in ids]
        answers, acts = solve_metered(
            lm, chosen, [t for _, ts, _ in parts for t in ts], [a for _, _, gs in parts for a in gs], params, groups
        )
        ends = [0, *itertools.accumulate(len(ids) for ids, _, _ in parts)]
        return [(answers[a:b], acts[a:b]) for a, b in zip(ends, ends[1:], strict=False)]
    _, texts, golds = variant_rows(table, first.variant, "eval")
    sets = [ablated_set(c, chosen, tops, lm.dims) for c in chunk]
    mode = cast(AblationMode, first.mode)  # every condition but the variants ablates
    groups = [g for g in range(len(chunk)) for _ in texts]
    with RowAblations(
        lm.model, lm.adapter, sets, mode, means, float(params["noise_scale"]), [c.seed for c in chunk]
    ) as rows:
        answers, acts = solve_metered(lm, chosen, texts * len(chunk), golds * len(chunk), params, groups, rows)
    n = len(texts)
    return [(answers[g * n : (g + 1) * n], acts[g * n : (g + 1) * n]) for g in range(len(chunk))]
