"""Head-level readings of the clean runs: per-head logit lens (the rift), direct logit
attribution (answer-writing heads) and circuit sufficiency (keep top-k heads, mean-ablate
the rest). Everything goes through the adapter table and the hook layer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cotlens.core.contributions import direct_logits, head_writes
from cotlens.core.hooks import Capture, edit_inputs
from cotlens.errors import CotlensError
from cotlens.io.parquet import read_table
from cotlens.models.adapters import AdaptedModel, final_norm, get, readout

Head = tuple[int, int]


@dataclass
class HeadReading:
    dla: torch.Tensor  # [L, H] logit[a] - logit[b] written directly by each head
    dla_answer: torch.Tensor  # [L, H] logit[a] alone
    top_token: torch.Tensor  # [L, H] logit-lens argmax of each head's write
    final_resid: torch.Tensor  # [d]
    attn_answer: torch.Tensor  # [L, H] attention from the last position to the prompt positions holding a


# Words that occur in every prompt whatever its content: a head whose lens reads one of
# them says nothing about where information comes from (not "context", not "prior").
FUNCTION_WORDS = frozenset(
    "the and not every each are was were for with that this from have has its all any some one two "
    "true false what who which where when there their then than also but into onto".split()
)


def content_tokens(tokenizer: Any, vocab: int) -> set[int]:
    """Token ids that decode to a content word: >= 3 letters, not a function word."""
    out = set()
    texts = tokenizer.batch_decode([[i] for i in range(min(vocab, len(tokenizer)))])
    for i, t in enumerate(texts):
        w = t.strip()
        if len(w) >= 3 and w.isalpha() and w.lower() not in FUNCTION_WORDS:
            out.add(i)
    return out


@torch.no_grad()
def read_heads(mh: AdaptedModel, ids: Sequence[int], tok_a: int, tok_b: int) -> HeadReading:
    """Per-head DLA and logit-lens top token at the last position of one prompt."""
    model, ad, dims = mh.model, mh.adapter, mh.dims
    dev = next(model.parameters()).device
    x = torch.tensor([list(ids)], device=dev)
    with Capture(model, ad, sites=("resid", "attn_heads"), positions=torch.tensor([[len(ids) - 1]], device=dev)) as cap:
        out = get(model, ad.base)(input_ids=x, use_cache=False, output_attentions=True)
    where = x[0, :-1] == tok_a  # the answer token's occurrences in the prompt (not the last position)
    if out.attentions is None or any(a is None for a in out.attentions):
        raise ValueError("read_heads needs attention weights: load the model with attn='eager'")
    attn = torch.stack([a[0, :, -1, :-1][:, where].sum(-1) for a in out.attentions]).float()  # [L, H]
    final = cap.out["resid"][-1]
    assert final is not None
    final = final[0, 0]
    norm, unembed = final_norm(model, ad), get(model, ad.unembed)
    writes = []
    for layer in range(dims.n_layers):
        z = cap.out["attn_heads"][layer]
        assert z is not None
        writes.append(head_writes(model, ad, dims, layer, z[0, 0]))  # [H, d]
    # every head of every layer through the unembedding at once ([L*H, d]: the unembedding's
    # weights read twice a prompt, not four times a layer; the stage was ~80% read-outs)
    w = torch.cat(writes)
    # the final norm frozen at the final residual; logits before any soft-cap (linear),
    # without the unembedding's bias (no head owns it): checks.check_dla proves the sum
    logits = direct_logits(model, ad, final, w).float()  # [L*H, V]
    dla = (logits[:, tok_a] - logits[:, tok_b]).reshape(dims.n_layers, -1)
    dla_a = logits[:, tok_a].reshape(dims.n_layers, -1)
    del logits
    # the logit lens of each head's write alone (normed at its own scale), without the
    # unembedding's bias (which would pull every head towards the same tokens)
    x = norm(w).to(unembed.weight.dtype)
    top = (unembed(x) - unembed(torch.zeros_like(x[:1]))).argmax(-1).reshape(dims.n_layers, -1)
    return HeadReading(dla, dla_a, top, final, attn)


@torch.no_grad()
def mean_head_outputs(mh: AdaptedModel, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
    """[L, n_heads * head_dim]: every head's output averaged over all tokens of ``prompts``."""
    model, ad, dims = mh.model, mh.adapter, mh.dims
    dev = next(model.parameters()).device
    total = torch.zeros(dims.n_layers, dims.n_heads * dims.head_dim, device=dev, dtype=torch.float64)
    n = 0
    for ids in prompts:
        with Capture(model, ad, sites=("attn_heads",)) as cap:
            get(model, ad.base)(input_ids=torch.tensor([list(ids)], device=dev), use_cache=False)
        for layer, t in enumerate(cap.out["attn_heads"]):
            assert t is not None
            total[layer] += t[0].double().sum(0)
        n += len(ids)
    if n == 0:
        raise ValueError("mean_head_outputs needs at least one prompt")
    return (total / n).float()


@torch.no_grad()
def circuit_logits(mh: AdaptedModel, ids: Sequence[int], keep: set[Head], means: torch.Tensor) -> torch.Tensor:
    """Last-position logits with every head outside ``keep`` replaced by its mean output."""
    model, ad, dims = mh.model, mh.adapter, mh.dims
    dev = next(model.parameters()).device
    drop = torch.ones(dims.n_layers, dims.n_heads, dtype=torch.bool, device=dev)
    for layer, h in keep:
        drop[layer, h] = False
    mask = drop.repeat_interleave(dims.head_dim, dim=1)  # [L, H*dh]

    def make(layer: int):  # type: ignore[no-untyped-def]
        def fn(x: torch.Tensor) -> torch.Tensor:
            return torch.where(mask[layer], means[layer].to(x.dtype), x)

        return fn

    with edit_inputs(model, ad, "attn_heads", {layer: make(layer) for layer in range(dims.n_layers)}):
        h = get(model, ad.base)(input_ids=torch.tensor([list(ids)], device=dev), use_cache=False).last_hidden_state
    return readout(model, ad, h[:, -1], normed=True)[0].float()


CIRCUIT_ROWS = 32  # circuits (rows) a forward of circuit_logits_many


@torch.no_grad()
def circuit_logits_many(
    mh: AdaptedModel, ids: Sequence[int], keeps: Sequence[set[Head]], means: torch.Tensor, batch: int = CIRCUIT_ROWS
) -> torch.Tensor:
    """[len(keeps), vocab]: :func:`circuit_logits` of one prompt for several circuits at
    once, one row per circuit (each row's own mask of kept heads), ``batch`` rows a forward."""
    model, ad, dims = mh.model, mh.adapter, mh.dims
    dev = next(model.parameters()).device
    out = []
    for s in range(0, len(keeps), batch):
        part = keeps[s : s + batch]
        drop = torch.ones(len(part), dims.n_layers, dims.n_heads, dtype=torch.bool, device=dev)
        for i, keep in enumerate(part):
            for layer, h in keep:
                drop[i, layer, h] = False
        mask = drop.repeat_interleave(dims.head_dim, dim=2)  # [B, L, H*dh]

        def make(layer: int, mask: torch.Tensor = mask):  # type: ignore[no-untyped-def]
            def fn(x: torch.Tensor) -> torch.Tensor:
                return torch.where(mask[:, layer][:, None, :], means[layer].to(x.dtype), x)

            return fn

        rows_ids = torch.tensor([list(ids)] * len(part), device=dev)
        with edit_inputs(model, ad, "attn_heads", {layer: make(layer) for layer in range(dims.n_layers)}):
            h = get(model, ad.base)(input_ids=rows_ids, use_cache=False).last_hidden_state
        out.append(readout(model, ad, h[:, -1], normed=True).float())
    return torch.cat(out)


def head_ranking(
    patching: str | Path, n_layers: int, n_heads: int, pair_ids: set[int] | None = None
) -> list[tuple[int, int]]:
    """Heads by mean exact all-position patching score over the fully swept pairs (of
    ``pair_ids`` when given: one subtask's circuit).

    Where no pair was fully swept (``exact_pairs: 0``): the heads patched exactly (each
    pair's screen top-K) by their mean exact score, then the rest by the screen."""
    df = read_table(patching).to_pandas()
    df = df[df["positions"] == "all"]
    if pair_ids is not None:
        df = df[df["pair_id"].isin(pair_ids)]
    exact = df[df["method"] == "exact"]
    swept = exact[exact["selection"] == "all_heads"]
    if len(swept):
        score = swept.groupby(["layer", "head"])["nkl"].mean()
        order = list(score.sort_values(ascending=False, kind="mergesort").index)
    else:
        ex = exact.groupby(["layer", "head"])["nkl"].mean().sort_values(ascending=False, kind="mergesort")
        screen = df[df["method"] == "attribution"].groupby(["layer", "head"])["nkl"].mean()
        rest = screen.drop(ex.index, errors="ignore").sort_values(ascending=False, kind="mergesort")
        order = list(ex.index) + list(rest.index)
    return [(int(a), int(b)) for a, b in order]


Ranking = list[tuple[int, int]]


def cross_fit(
    rows: Sequence[Mapping[str, Any]], rank: Callable[[set[int]], Ranking], per_subtask: bool, source: str = "pairs"
) -> tuple[dict[int, int], dict[tuple[str, int], Ranking]]:
    """Two-fold cross-fitting by prompt: ``(fold of each pair, ranking per (subtask, fold))``,
    where the ranking used on a fold is ``rank(pair ids)`` of the *other* fold only (that
    subtask's pairs with ``per_subtask``, else all of them; a subtask absent from the other
    fold gets its pooled ranking). Pairs of one prompt share a fold."""
    fold = {int(r["pair_id"]): int(r["prompt_id"]) % 2 for r in rows}
    if len(set(fold.values())) < 2:
        raise CotlensError(
            f"circuit sufficiency ranks heads on one half of the prompts and scores the other, but the pairs in "
            f"{source} come from prompts of one parity only",
            "raise circuits.pairs.per_subtask or the number of prompts",
        )
    ranking: dict[tuple[str, int], Ranking] = {}
    for f in (0, 1):
        other = {p for p, g in fold.items() if g != f}
        pooled = rank(other)
        for s in sorted({str(r["subtask"]) for r in rows}):
            ids = {int(r["pair_id"]) for r in rows if r["subtask"] == s and fold[int(r["pair_id"])] != f}
            ranking[(s, f)] = rank(ids) if per_subtask and ids else pooled
    return fold, ranking
