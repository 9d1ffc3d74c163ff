"""Exact per-head activation patching, and the attribution-patching screen.

A head's output is its slice of the attention output projection's input
(``adapter.attn_out``). Patching copies the clean run's head output into the corrupt
run and reads the last position's next-token distribution:

- normalised KL: (KL(clean||corrupt) - KL(clean||patched)) / KL(clean||corrupt);
  1 = the head alone restores the clean distribution, 0 = no effect;
- logit difference: logit[clean answer] - logit[corrupt answer] in the patched run.

The engine is exact and avoids the naive one-forward-per-head loop three ways:
1. many heads ride in one forward along the batch axis (row b patches head b);
2. the corrupt run's block inputs and keyword arguments are recorded once
   (:class:`cotlens.hooks.BlockCalls`), so a patch at layer l reruns blocks l.. only;
3. per-position patches at position p rerun positions p.. only, on top of the corrupt
   run's key/value cache of the positions before p.

:func:`naive_patch` is the reference loop the tests and benchmarks compare against.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cotlens.hooks import BlockCalls, Capture, edit_inputs, replay
from cotlens.models.adapters import Adapter, Dims, get, layers, lens_logits
from cotlens.stats import spearman

__all__ = [
    "Baseline",
    "baseline",
    "naive_patch",
    "patch_heads",
    "patch_heads_at",
    "patch_positions",
    "scores",
    "spearman",
]

Head = tuple[int, int]


@dataclass
class Baseline:
    """Everything the patching methods reuse for one clean/corrupt pair."""

    clean_ids: torch.Tensor  # [1, T]
    corrupt_ids: torch.Tensor  # [1, T]
    clean_tok: int
    corrupt_tok: int
    clean_logp: torch.Tensor  # [V] last-position log-probs of the clean run
    corrupt_logp: torch.Tensor  # [V]
    kl_clean_corrupt: float
    ld_clean: float
    ld_corrupt: float
    clean_heads: list[torch.Tensor]  # per layer [T, n_heads * head_dim]
    corrupt_heads: list[torch.Tensor]
    block_inputs: list[torch.Tensor]  # corrupt run, per layer [1, T, d]
    block_kwargs: list[dict[str, Any]]
    attribution: torch.Tensor | None = None  # [L, H] estimated normalised KL
    corrupt_kv: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list, repr=False)  # per layer

    @property
    def length(self) -> int:
        return int(self.clean_ids.shape[1])


def _last_logits(model: nn.Module, ad: Adapter, ids: torch.Tensor) -> torch.Tensor:
    h = get(model, ad.base)(input_ids=ids, use_cache=False).last_hidden_state
    return get(model, ad.unembed)(h[:, -1]).float()


def _last_logits_and_kv(
    model: nn.Module, ad: Adapter, ids: torch.Tensor
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Last-position logits and every layer's keys/values (kept for per-position patching)."""
    out = get(model, ad.base)(input_ids=ids, use_cache=True)
    kv = [(lay.keys.detach(), lay.values.detach()) for lay in out.past_key_values.layers]
    return get(model, ad.unembed)(out.last_hidden_state[:, -1]).float(), kv


def kl_to(clean_logp: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(clean || softmax(logits)) per row."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return (clean_logp.exp() * (clean_logp - logp)).sum(-1)


def scores(base: Baseline, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised KL and logit difference of patched last-position logits [B, V]."""
    nkl = (base.kl_clean_corrupt - kl_to(base.clean_logp, logits)) / base.kl_clean_corrupt
    ld = logits[:, base.clean_tok] - logits[:, base.corrupt_tok]
    return nkl, ld


def baseline(
    model: nn.Module, ad: Adapter, dims: Dims, clean_ids: Sequence[int], corrupt_ids: Sequence[int],
    clean_tok: int, corrupt_tok: int, attribution: bool = False,
) -> Baseline:  # fmt: skip
    """One clean and one corrupt forward (plus, optionally, one backward for attribution).

    With ``attribution``, the corrupt forward keeps a graph from every head output to
    KL(clean || corrupt) and one backward (activation gradients only, no weight
    gradients) scores all heads at once: -grad . (clean - corrupt), over positions,
    divided by KL(clean || corrupt), the first-order estimate of the normalised KL.
    """
    if len(clean_ids) != len(corrupt_ids):
        raise ValueError(f"clean and corrupt prompts differ in length ({len(clean_ids)} vs {len(corrupt_ids)})")
    dev = next(model.parameters()).device
    c_ids = torch.tensor([list(clean_ids)], device=dev)
    x_ids = torch.tensor([list(corrupt_ids)], device=dev)
    with torch.no_grad(), Capture(model, ad, sites=("attn_heads",)) as cap:
        clean_logits = _last_logits(model, ad, c_ids)[0]
    clean_heads = [t[0] for t in cap.out["attn_heads"] if t is not None]
    clean_logp = torch.log_softmax(clean_logits, -1)

    store: dict[int, torch.Tensor] = {}

    def keep(layer: int) -> Any:
        def fn(x: torch.Tensor) -> torch.Tensor:
            if attribution:
                x = x.detach().requires_grad_(True)
            store[layer] = x
            return x

        return fn

    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with (
            torch.set_grad_enabled(attribution),
            BlockCalls(model, ad) as calls,
            edit_inputs(model, ad, "attn_heads", {li: keep(li) for li in range(dims.n_layers)}),
        ):
            corrupt_logits, kv = _last_logits_and_kv(model, ad, x_ids)
            corrupt_logits = corrupt_logits[0]
            kl = kl_to(clean_logp, corrupt_logits[None])[0]
            attr = None
            if attribution:
                grads = torch.autograd.grad(kl, [store[li] for li in range(dims.n_layers)])
                kl_cc = float(kl.detach())
                attr = torch.stack(
                    [
                        -(g[0] * (clean_heads[li] - store[li][0].detach()))
                        .view(-1, dims.n_heads, dims.head_dim)
                        .sum((0, 2))
                        / kl_cc
                        for li, g in enumerate(grads)
                    ]
                ).detach()
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
    corrupt_logits = corrupt_logits.detach()
    return Baseline(
        clean_ids=c_ids, corrupt_ids=x_ids, clean_tok=int(clean_tok), corrupt_tok=int(corrupt_tok),
        clean_logp=clean_logp, corrupt_logp=torch.log_softmax(corrupt_logits, -1),
        kl_clean_corrupt=float(kl.detach()),
        ld_clean=float(clean_logits[clean_tok] - clean_logits[corrupt_tok]),
        ld_corrupt=float(corrupt_logits[clean_tok] - corrupt_logits[corrupt_tok]),
        clean_heads=clean_heads, corrupt_heads=[store[li][0].detach() for li in range(dims.n_layers)],
        block_inputs=calls.inputs, block_kwargs=calls.kwargs, attribution=attr, corrupt_kv=kv,
    )  # fmt: skip


def _setter(clean: torch.Tensor, heads: Sequence[int], dims: Dims, pos: int | None) -> Any:
    """Edit fn: batch row b takes head heads[b] from ``clean`` (all positions, or only ``pos``)."""
    hidx = torch.tensor(list(heads), device=clean.device)
    rows = torch.arange(len(heads), device=clean.device)
    src = clean.view(clean.shape[0], dims.n_heads, dims.head_dim)  # [T, H, dh]

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        v = x.view(x.shape[0], x.shape[1], dims.n_heads, dims.head_dim)
        if pos is None:
            v[rows, :, hidx] = src[:, hidx].transpose(0, 1).to(x.dtype)
        else:  # x holds positions pos.. only: relative position 0 is ``pos``
            v[rows, 0, hidx] = src[pos, hidx].to(x.dtype)
        return x

    return fn


def _group(heads: Iterable[Head]) -> dict[int, list[int]]:
    by: dict[int, list[int]] = {}
    for layer, h in heads:
        by.setdefault(int(layer), []).append(int(h))
    return by


@torch.no_grad()
def patch_heads(
    model: nn.Module, ad: Adapter, dims: Dims, base: Baseline, heads: Iterable[Head] | None = None,
    batch: int = 64,
) -> dict[Head, tuple[float, float]]:  # fmt: skip
    """Exact all-position patching of ``heads`` (default: every head) -> {(l, h): (nkl, ld)}."""
    todo = _group(heads) if heads is not None else {li: list(range(dims.n_heads)) for li in range(dims.n_layers)}
    blocks = layers(model, ad)
    out: dict[Head, tuple[float, float]] = {}
    for layer in sorted(todo):
        hs = todo[layer]
        for s in range(0, len(hs), batch):
            chunk = hs[s : s + batch]
            hidden = base.block_inputs[layer].expand(len(chunk), -1, -1)
            with edit_inputs(model, ad, "attn_heads", {layer: _setter(base.clean_heads[layer], chunk, dims, None)}):
                h = replay(blocks, layer, hidden, base.block_kwargs)
            nkl, ld = scores(base, lens_logits(model, ad, h[:, -1]).float())
            for i, head in enumerate(chunk):
                out[(layer, head)] = (float(nkl[i]), float(ld[i]))
    return out


def _prefix_cache(kv: Sequence[tuple[torch.Tensor, torch.Tensor]], start: int, pos: int, n: int) -> Any:
    from transformers import DynamicCache

    data: list[tuple[torch.Tensor | None, torch.Tensor | None]] = [(None, None)] * start
    data += [(k[:, :, :pos].expand(n, -1, -1, -1), v[:, :, :pos].expand(n, -1, -1, -1)) for k, v in kv[start:]]
    return DynamicCache(ddp_cache_data=data)


@torch.no_grad()
def patch_heads_at(
    model: nn.Module, ad: Adapter, dims: Dims, base: Baseline, positions: Iterable[int],
    heads: Iterable[Head] | None = None, batch: int = 64,
) -> dict[tuple[int, int, int], tuple[float, float]]:  # fmt: skip
    """Exact per-position patching -> {(pos, l, h): (nkl, ld)}.

    For position p the forward restarts at block l *and* at position p: positions
    before p are unchanged by the patch, so their keys/values come from the corrupt
    run's cache and only positions p..T-1 are recomputed.
    """
    todo = _group(heads) if heads is not None else {li: list(range(dims.n_heads)) for li in range(dims.n_layers)}
    blocks = layers(model, ad)
    kv = base.corrupt_kv
    base_model = get(model, ad.base)
    out: dict[tuple[int, int, int], tuple[float, float]] = {}
    for pos in positions:
        pos = int(pos) % base.length
        if pos == 0:  # nothing to reuse: record the suffix calls without a cache
            with BlockCalls(model, ad) as calls:
                base_model(input_ids=base.corrupt_ids, use_cache=False)
        else:
            with BlockCalls(model, ad) as calls:
                base_model(
                    input_ids=base.corrupt_ids[:, pos:], past_key_values=_prefix_cache(kv, 0, pos, 1), use_cache=True
                )
        for layer in sorted(todo):
            hs = todo[layer]
            for s in range(0, len(hs), batch):
                chunk = hs[s : s + batch]
                hidden = calls.inputs[layer].expand(len(chunk), -1, -1)
                cache = _prefix_cache(kv, layer, pos, len(chunk)) if pos > 0 else None
                edit = {layer: _setter(base.clean_heads[layer], chunk, dims, pos)}
                with edit_inputs(model, ad, "attn_heads", edit):
                    h = replay(blocks, layer, hidden, calls.kwargs, cache=cache)
                nkl, ld = scores(base, lens_logits(model, ad, h[:, -1]).float())
                for i, head in enumerate(chunk):
                    out[(pos, layer, head)] = (float(nkl[i]), float(ld[i]))
    return out


@torch.no_grad()
def naive_patch(
    model: nn.Module, ad: Adapter, dims: Dims, base: Baseline, head: Head, pos: int | None = None
) -> tuple[float, float]:
    """Reference: one full corrupt forward with one head patched (what TransformerLens loops)."""
    layer, h = head
    src = base.clean_heads[layer].view(base.length, dims.n_heads, dims.head_dim)

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        v = x.view(x.shape[0], x.shape[1], dims.n_heads, dims.head_dim)
        if pos is None:
            v[0, :, h] = src[:, h]
        else:
            v[0, pos, h] = src[pos, h]
        return x

    with edit_inputs(model, ad, "attn_heads", {layer: fn}):
        logits = _last_logits(model, ad, base.corrupt_ids)
    nkl, ld = scores(base, logits)
    return float(nkl[0]), float(ld[0])


@torch.no_grad()
def patch_positions(
    model: nn.Module, ad: Adapter, dims: Dims, base: Baseline, position_sets: Sequence[Sequence[int]]
) -> list[tuple[float, float]]:
    """Patch *every* head of every layer, restricted to each position set (one row each).

    The parallel-pathways reading: the question positions alone vs the CoT positions alone.
    """
    n = len(position_sets)
    mask = torch.zeros(n, base.length, 1, dtype=torch.bool, device=base.clean_ids.device)
    for i, ps in enumerate(position_sets):
        mask[i, list(ps)] = True
    edits = {
        li: (lambda x, c=base.clean_heads[li]: torch.where(mask, c[None].to(x.dtype), x))
        for li in range(dims.n_layers)
    }  # fmt: skip
    with edit_inputs(model, ad, "attn_heads", edits):
        logits = _last_logits(model, ad, base.corrupt_ids.expand(n, -1))
    nkl, ld = scores(base, logits)
    return [(float(a), float(b)) for a, b in zip(nkl, ld, strict=True)]
