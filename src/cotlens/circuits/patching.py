"""Exact per-head activation patching, and the attribution-patching screen.

A head's output is its slice of the attention output projection's input
(``adapter.attn_out``). Patching copies the clean run's head output into the corrupt
run and reads the last position's next-token distribution:

- normalised KL: (KL(clean||corrupt) - KL(clean||patched)) / KL(clean||corrupt);
  1 = the head alone restores the clean distribution, 0 = no effect;
- logit difference: logit[clean answer] - logit[corrupt answer] in the patched run.

The engine is exact and avoids the naive one-forward-per-head loop three ways:
1. many heads ride in one forward along the batch axis (row b patches head b);
2. the corrupt run's block inputs and keyword arguments are recorded once per sweep, at
   the sweep's number of rows (:class:`cotlens.core.hooks.BlockCalls`: the masks, sliding
   windows and ALiBi biases the model builds itself), so a patch at layer l reruns blocks
   l.. only;
3. a patch starting at position p (per-position mode: p; all-position mode: the first
   position where the prompts differ, since earlier positions are identical in both
   runs) reruns positions p.. only, on top of the corrupt run's key/value cache of the
   positions before p.

:func:`naive_patch` is the reference loop the tests and benchmarks compare against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from cotlens.core.hooks import BlockCalls, Capture, edit_inputs, output_hooks, replay
from cotlens.core.stats import spearman
from cotlens.core.types import SCREENS, ScreenMethod
from cotlens.models.adapters import AdaptedModel, Adapter, Dims, get, layers, readout
from cotlens.models.checks import TOL, Check

__all__ = [
    "SCREENS",
    "Baseline",
    "baseline",
    "first_difference",
    "naive_patch",
    "patch_heads",
    "patch_heads_at",
    "patch_positions",
    "scores",
    "screen",
    "self_check",
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
    attribution: torch.Tensor | None = None  # [L, H] estimated normalised KL
    corrupt_kv: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list, repr=False)  # per layer

    @property
    def length(self) -> int:
        return int(self.clean_ids.shape[1])


def _last_logits(model: nn.Module, ad: Adapter, ids: torch.Tensor) -> torch.Tensor:
    h = get(model, ad.base)(input_ids=ids, use_cache=False).last_hidden_state
    return readout(model, ad, h[:, -1], normed=True).float()


def kl_to(clean_logp: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(clean || softmax(logits)) per row."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return (clean_logp.exp() * (clean_logp - logp)).sum(-1)


def scores(base: Baseline, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised KL and logit difference of patched last-position logits [B, V]."""
    nkl = (base.kl_clean_corrupt - kl_to(base.clean_logp, logits)) / base.kl_clean_corrupt
    ld = logits[:, base.clean_tok] - logits[:, base.corrupt_tok]
    return nkl, ld


def first_difference(base: Baseline) -> int:
    """The first position where the clean and corrupt prompts differ (0 if none do).

    A causal model's activations at earlier positions are the same in both runs, so
    patching "all positions" only ever changes positions from here on.
    """
    return _first_diff(base.clean_ids, base.corrupt_ids)


def _first_diff(a: torch.Tensor, b: torch.Tensor) -> int:
    diff = (a[0] != b[0]).nonzero()
    return int(diff[0, 0]) if len(diff) else 0


def _prefix_cache(kv: Sequence[tuple[torch.Tensor, torch.Tensor]], start: int, pos: int, n: int) -> Any:
    """A DynamicCache holding the corrupt run's keys/values of positions < pos (layers start..), n rows."""
    from transformers import DynamicCache

    data: list[tuple[torch.Tensor | None, torch.Tensor | None]] = [(None, None)] * start
    data += [(k[:, :, :pos].expand(n, -1, -1, -1), v[:, :, :pos].expand(n, -1, -1, -1)) for k, v in kv[start:]]
    return DynamicCache(ddp_cache_data=data)


def _full_cache() -> Any:
    """An empty cache whose every layer keeps every position. A model's own cache keeps only
    the last ``sliding_window`` positions of a sliding layer; the prefix caches are cut from
    this one at any position, and the model's masks still apply the window."""
    from transformers import DynamicCache

    return DynamicCache()


def _suffix_hidden(model: nn.Module, ad: Adapter, ids: torch.Tensor, kv: Any, pos: int, n: int = 1) -> torch.Tensor:
    """Final hidden states of ``ids`` ([1, T]) at positions pos.. only, in ``n`` identical
    rows (for edits that differ per row), computed on the prefix cache ``kv``."""
    if pos == 0:
        return get(model, ad.base)(input_ids=ids.expand(n, -1), use_cache=False).last_hidden_state
    cache = _prefix_cache(kv, 0, pos, n)
    out = get(model, ad.base)(input_ids=ids[:, pos:].expand(n, -1), past_key_values=cache, use_cache=True)
    return out.last_hidden_state


def _suffix_forward(model: nn.Module, ad: Adapter, ids: torch.Tensor, kv: Any, pos: int) -> torch.Tensor:
    """Last-position logits of ``ids`` computed for positions pos.. only, on the prefix cache ``kv``."""
    return readout(model, ad, _suffix_hidden(model, ad, ids, kv, pos)[:, -1], normed=True).float()


def baseline(
    mh: AdaptedModel,
    clean_ids: Sequence[int],
    corrupt_ids: Sequence[int],
    clean_tok: int,
    corrupt_tok: int,
    attribution: bool = False,
    screen_method: ScreenMethod = "eap-ig",
    screen_steps: int = 1,
) -> Baseline:
    """One corrupt forward, the clean run from the first differing position on, and
    (with ``attribution``) the all-heads gradient screen of :func:`screen`.

    The corrupt forward records every layer's keys/values at every position (a full
    cache, also for sliding-window layers); the clean run reuses them for the common prefix.
    """
    model, ad = mh.model, mh.adapter
    if len(clean_ids) != len(corrupt_ids):
        raise ValueError(f"clean and corrupt prompts differ in length ({len(clean_ids)} vs {len(corrupt_ids)})")
    dev = next(model.parameters()).device
    c_ids = torch.tensor([list(clean_ids)], device=dev)
    x_ids = torch.tensor([list(corrupt_ids)], device=dev)
    start = _first_diff(c_ids, x_ids)
    with torch.no_grad():
        with Capture(model, ad, sites=("attn_heads",)) as cap:
            out = get(model, ad.base)(input_ids=x_ids, use_cache=True, past_key_values=_full_cache())
        kv = [(lay.keys, lay.values) for lay in out.past_key_values.layers]
        corrupt_logits = readout(model, ad, out.last_hidden_state[0, -1], normed=True).float()
        corrupt_heads = [t[0] for t in cap.out["attn_heads"] if t is not None]
        with Capture(model, ad, sites=("attn_heads",)) as cap:
            clean_logits = _suffix_forward(model, ad, c_ids, kv, start)[0]
        clean_heads = [
            torch.cat([x[:start], cast(torch.Tensor, c)[0]])
            for x, c in zip(corrupt_heads, cap.out["attn_heads"], strict=True)
        ]
    clean_logp = torch.log_softmax(clean_logits, -1)
    base = Baseline(
        clean_ids=c_ids,
        corrupt_ids=x_ids,
        clean_tok=int(clean_tok),
        corrupt_tok=int(corrupt_tok),
        clean_logp=clean_logp,
        corrupt_logp=torch.log_softmax(corrupt_logits, -1),
        kl_clean_corrupt=float(kl_to(clean_logp, corrupt_logits[None])[0]),
        ld_clean=float(clean_logits[clean_tok] - clean_logits[corrupt_tok]),
        ld_corrupt=float(corrupt_logits[clean_tok] - corrupt_logits[corrupt_tok]),
        clean_heads=clean_heads,
        corrupt_heads=corrupt_heads,
        corrupt_kv=kv,
    )
    if attribution:
        base.attribution = screen(mh, base, method=screen_method, steps=screen_steps)
    return base


def _constant(value: torch.Tensor) -> Callable[[nn.Module, Any, Any], torch.Tensor]:
    """A forward hook whose module outputs ``value``."""
    return lambda _m, _a, _o: value


def screen(mh: AdaptedModel, base: Baseline, method: ScreenMethod = "eap-ig", steps: int = 1) -> torch.Tensor:
    """First-order estimate of every head's normalised KL at once -> [L, H].

    score(l, h) = -grad . (clean - corrupt) of KL(clean || .) at head (l, h), summed
    over positions, divided by KL(clean || corrupt). Where the gradient is taken:

    - ``atp`` (attribution patching): on the corrupt run. One backward, but blind to
      heads whose effect passes through a saturated attention softmax downstream: a
      previous-token head feeding an induction head's keys scores ~0 there while
      patching it restores the answer (``tests/integration/test_patching.py``).
    - ``eap-ig`` (EAP with integrated gradients, Hanna et al. 2024): averaged over
      ``steps`` points between the corrupt and clean input embeddings,
      alpha = (i + 1/2) / steps; at the midpoint (steps=1) the downstream softmax is
      no longer saturated.

    The forward starts at the first differing position, on the corrupt run's prefix
    keys/values (exact: the prefix is the same in both prompts and in every mix).
    Weight gradients are never computed.
    """
    model, ad, dims = mh.model, mh.adapter, mh.dims
    if method not in SCREENS:
        raise ValueError(f"unknown screen method {method!r}; known: {SCREENS}")
    if steps < 1:
        raise ValueError(f"screen steps must be >= 1, got {steps}")
    alphas = [0.0] if method == "atp" else [(i + 0.5) / steps for i in range(steps)]
    start = first_difference(base)
    emb = cast(Any, model).get_input_embeddings()
    with torch.no_grad():
        e_x, e_c = emb(base.corrupt_ids[:, start:]), emb(base.clean_ids[:, start:])
    delta = [
        (c[start:] - x[start:]).view(-1, dims.n_heads, dims.head_dim)
        for c, x in zip(base.clean_heads, base.corrupt_heads, strict=True)
    ]
    total = torch.zeros(dims.n_layers, dims.n_heads, device=e_x.device)
    store: dict[int, torch.Tensor] = {}

    def keep(layer: int) -> Any:
        def fn(x: torch.Tensor) -> torch.Tensor:
            store[layer] = x  # in the graph through the mixed embeddings: gradients reach
            return x  # layer l through every later layer, not only the direct path

        return fn

    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for alpha in alphas:
            mix = (e_x + alpha * (e_c - e_x)).requires_grad_(True)
            with (
                output_hooks([(emb, _constant(mix))]),
                torch.enable_grad(),
                edit_inputs(model, ad, "attn_heads", {li: keep(li) for li in range(dims.n_layers)}),
            ):
                logits = _suffix_forward(model, ad, base.corrupt_ids, base.corrupt_kv, start)
                kl = kl_to(base.clean_logp, logits)[0]
                grads = torch.autograd.grad(kl, [store[li] for li in range(dims.n_layers)])
            for li, g in enumerate(grads):
                total[li] -= (g[0].view_as(delta[li]) * delta[li]).sum((0, 2)) / len(alphas)
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        store.clear()
    return (total / base.kl_clean_corrupt).detach()


def _setter(clean: torch.Tensor, rows: Sequence[tuple[int, int | None]], dims: Dims, start: int) -> Any:
    """Edit fn: batch row b takes head rows[b][0] from ``clean``.

    The edited tensor holds positions ``start``.. only (its position 0 is ``start``).
    rows[b][1] is the one absolute position row b patches, or None for all of them.
    """
    dev = clean.device
    hidx = torch.tensor([h for h, _ in rows], device=dev)
    ridx = torch.arange(len(rows), device=dev)
    src = clean.view(clean.shape[0], dims.n_heads, dims.head_dim)  # [T, H, dh]
    every = all(p is None for _, p in rows)
    pidx = None if every else torch.tensor([int(p) for _, p in rows], device=dev)  # type: ignore[arg-type]

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        v = x.view(x.shape[0], x.shape[1], dims.n_heads, dims.head_dim)
        if pidx is None:
            v[ridx, :, hidx] = src[start:, hidx].transpose(0, 1).to(x.dtype)
        else:
            v[ridx, pidx - start, hidx] = src[pidx, hidx].to(x.dtype)
        return x

    return fn


def _suffix_calls(model: nn.Module, ad: Adapter, base: Baseline, pos: int, n: int) -> BlockCalls:
    """Record every block's input and call arguments of the corrupt run at positions pos..,
    in ``n`` identical rows: a replay of n rows then gets the masks and position biases the
    model itself builds for n rows (Bloom's ALiBi is [n * heads, ...], XGLM checks the mask's
    batch size), never a batch-1 tensor broadcast into a shape the family did not expect."""
    with BlockCalls(model, ad) as calls:
        _suffix_hidden(model, ad, base.corrupt_ids, base.corrupt_kv, pos, n)  # no unembedding: only the calls
    return calls


Row = tuple[int, int | None]  # (head, the one position it patches, or None: every position from the start)


def _sweep(
    mh: AdaptedModel,
    base: Baseline,
    todo: dict[int, list[Row]],
    start: int,
    batch: int,
) -> dict[tuple[int, Row], tuple[float, float]]:
    """Patch every row of ``todo`` ({layer: rows}), rerunning blocks l.. and positions start.. only.

    Rows of one layer share forwards, ``batch`` rows at a time. A row that patches one
    position p > start recomputes start..p-1 unchanged (the corrupt run), which is
    exact: it only costs those positions' compute.
    """
    model, ad, dims = mh.model, mh.adapter, mh.dims
    blocks = layers(model, ad)
    recorded: dict[int, BlockCalls] = {}  # by number of rows: at most two sizes per sweep
    out: dict[tuple[int, Row], tuple[float, float]] = {}
    for layer in sorted(todo):
        rows = todo[layer]
        for s in range(0, len(rows), batch):
            chunk = rows[s : s + batch]
            if len(chunk) not in recorded:
                recorded[len(chunk)] = _suffix_calls(model, ad, base, start, len(chunk))
            calls = recorded[len(chunk)]
            hidden, kwargs = calls.inputs[layer], calls.kwargs
            cache = _prefix_cache(base.corrupt_kv, layer, start, len(chunk)) if start > 0 else None
            edit = {layer: _setter(base.clean_heads[layer], chunk, dims, start)}
            with edit_inputs(model, ad, "attn_heads", edit):
                h = replay(blocks, layer, hidden, kwargs, cache=cache, cache_arg=ad.cache_arg)
            nkl, ld = scores(base, readout(model, ad, h[:, -1]).float())
            for i, row in enumerate(chunk):
                out[(layer, row)] = (float(nkl[i]), float(ld[i]))
    return out


def _group(heads: Iterable[Head]) -> dict[int, list[int]]:
    by: dict[int, list[int]] = {}
    for layer, h in heads:
        by.setdefault(int(layer), []).append(int(h))
    return by


@torch.no_grad()
def patch_heads(
    mh: AdaptedModel,
    base: Baseline,
    heads: Iterable[Head] | None = None,
    batch: int = 64,
) -> dict[Head, tuple[float, float]]:
    """Exact all-position patching of ``heads`` (default: every head) -> {(l, h): (nkl, ld)}.

    Positions before :func:`first_difference` hold the same activations in both runs,
    so the patch starts there, on the corrupt run's key/value cache of the prefix.
    """
    dims = mh.dims
    by = _group(heads) if heads is not None else {li: list(range(dims.n_heads)) for li in range(dims.n_layers)}
    todo: dict[int, list[Row]] = {li: [(h, None) for h in hs] for li, hs in by.items()}
    res = _sweep(mh, base, todo, first_difference(base), batch)
    return {(layer, h): v for (layer, (h, _)), v in res.items()}


@torch.no_grad()
def patch_heads_at(
    mh: AdaptedModel,
    base: Baseline,
    positions: Iterable[int],
    heads: Iterable[Head] | None = None,
    batch: int = 64,
    positions_per_pass: int | None = None,
) -> dict[tuple[int, int, int], tuple[float, float]]:
    """Exact per-position patching -> {(pos, l, h): (nkl, ld)}.

    For position p the forward restarts at block l *and* at position p: positions
    before p are unchanged by the patch, so their keys/values come from the corrupt
    run's cache and only positions p..T-1 are recomputed.

    ``positions_per_pass`` positions share one sweep, starting at the earliest of them
    (rows of later positions recompute a few unchanged positions). Default: 1 on a
    CPU, where compute dominates; on a GPU, where kernel launches dominate, as many
    as fit ``batch`` rows per forward.
    """
    dims = mh.dims
    by = _group(heads) if heads is not None else {li: list(range(dims.n_heads)) for li in range(dims.n_layers)}
    ps = sorted({int(p) % base.length for p in positions})
    if positions_per_pass is None:
        on_gpu = base.clean_ids.device.type != "cpu"
        positions_per_pass = max(1, batch // max(len(v) for v in by.values())) if on_gpu and by else 1
    out: dict[tuple[int, int, int], tuple[float, float]] = {}
    for g in range(0, len(ps), positions_per_pass):
        group = ps[g : g + positions_per_pass]
        todo: dict[int, list[Row]] = {li: [(h, p) for p in group for h in hs] for li, hs in by.items()}
        for (layer, (h, p)), v in _sweep(mh, base, todo, group[0], batch).items():
            out[(int(p), layer, h)] = v  # type: ignore[arg-type]
    return out


@torch.no_grad()
def naive_patch(mh: AdaptedModel, base: Baseline, head: Head, pos: int | None = None) -> tuple[float, float]:
    """Reference: one full corrupt forward with one head patched (what TransformerLens loops)."""
    model, ad, dims = mh.model, mh.adapter, mh.dims
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
    mh: AdaptedModel, base: Baseline, position_sets: Sequence[Sequence[int]]
) -> list[tuple[float, float]]:
    """Patch *every* head of every layer, restricted to each position set (one row each).

    The parallel-pathways reading: the question positions alone vs the CoT positions alone.
    Positions before :func:`first_difference` hold the same head outputs in both runs,
    so the forward starts there, on the corrupt run's prefix keys/values.
    """
    model, ad, dims = mh.model, mh.adapter, mh.dims
    n, start = len(position_sets), first_difference(base)
    mask = torch.zeros(n, base.length - start, 1, dtype=torch.bool, device=base.clean_ids.device)
    for i, ps in enumerate(position_sets):
        mask[i, [p - start for p in ps if p >= start]] = True

    def clean_where_masked(c: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda x: torch.where(mask, c[None].to(x.dtype), x)

    edits = {li: clean_where_masked(base.clean_heads[li][start:]) for li in range(dims.n_layers)}
    with edit_inputs(model, ad, "attn_heads", edits):
        h = _suffix_hidden(model, ad, base.corrupt_ids, base.corrupt_kv, start, n)
    nkl, ld = scores(base, readout(model, ad, h[:, -1], normed=True).float())
    return [(float(a), float(b)) for a, b in zip(nkl, ld, strict=True)]


@torch.no_grad()
def self_check(mh: AdaptedModel, ids: torch.Tensor, tol: float = TOL) -> Check:
    """The ``patching`` self-check: the engine (block replay through the family's cache
    argument, prefix caches, batched heads) vs :func:`naive_patch` on two prompts ``ids``
    [2, T] that differ from position 4 on, all-position and one-position patches (at 6 and
    at T - 2). Give it prompts longer than the model's attention windows (cotlens.models.checks
    .check_length) or as long as the study's: a window the engine mishandles shows only then."""
    ad, d = mh.adapter, mh.dims
    clean = ids[0].tolist()
    corrupt = clean[:4] + ids[1, 4:].tolist()
    base = baseline(mh, clean, corrupt, clean[-1], corrupt[-1])
    heads = [(li, h) for li in sorted({0, d.n_layers - 1}) for h in range(min(d.n_heads, 3))]
    fast = patch_heads(mh, base, heads)
    where = sorted({6, base.length - 2})  # early, and late: past any window shorter than the prompts
    at = patch_heads_at(mh, base, where, heads[:2])
    worst, scale = 0.0, 0.0
    for hd in heads:
        ref = naive_patch(mh, base, hd)
        worst = max(worst, *(abs(a - b) for a, b in zip(fast[hd], ref, strict=True)))
        scale = max(scale, *(abs(b) for b in ref))
    for p in where:
        for hd in heads[:2]:
            ref = naive_patch(mh, base, hd, pos=p)
            worst = max(worst, *(abs(a - b) for a, b in zip(at[(p, *hd)], ref, strict=True)))
    ok = worst <= tol * max(scale, 1.0)
    what = f"engine vs naive loop, {len(heads)} heads, {ids.shape[1]} tokens (cache arg {ad.cache_arg})"
    return Check("patching", ok, worst, scale, what)
