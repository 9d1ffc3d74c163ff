"""Study 4 method: router capture, fTRI expert maps and expert switching (MoTE).

Everything goes through the routers of the adapter table (:func:`cotlens.core.hooks.router_modules`).
In transformers 5 the experts of a block are fused 3-D tensors, so single experts cannot
be hooked; every family's router returns ``(logits, top_k_weights, top_k_index)``, and
that triple is what is read and steered.

- :class:`RouterCapture` records, for every token and MoE layer, the selected experts and
  their gate weights, inside the generating forwards (no second pass, no host sync).
- :func:`frequencies` and :func:`ftri`: a (layer, expert)'s selection frequency per
  prompt, and the fTRI score = mean frequency in the behaviour class minus the mean in
  the other class.
- :func:`switch_experts`: ``off`` sets the gate weight of the given experts to zero and
  rescales the token's remaining top-k weights to the original top-k sum (no substitute
  expert is routed); ``on`` puts the given experts into every token's top-k, in the slots
  of the lowest-weighted unforced experts, with the token's largest gate weight, then
  rescales to the original sum. Both are forward hooks on the routers: no weights are
  edited and no copy of the model is made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from cotlens.core.hooks import Hooked, output_hooks, router_modules
from cotlens.core.sampling import prefix_run_once
from cotlens.core.types import SWITCH_MODES, SwitchMode
from cotlens.errors import CotlensError
from cotlens.experts import tables
from cotlens.io.parquet import to_table
from cotlens.models.adapters import AdaptedModel, Adapter, get, layers
from cotlens.models.checks import TOL, Check, _cmp

if TYPE_CHECKING:
    from cotlens.models.loading import Loaded

MODES = SWITCH_MODES


def n_experts(router: nn.Module) -> int:
    """Routed experts of a router (its weight is [experts, d_model] in every family)."""
    return int(cast(torch.Tensor, router.weight).shape[0])


def top_k_of(router: nn.Module) -> int:
    return int(cast(Any, router).top_k)


@dataclass(frozen=True)
class Route:
    """One routed token: original row, absolute position, phase, layer, choice."""

    row: int
    pos: int
    phase: str  # prompt | generated
    layer: int
    experts: list[int]
    weights: list[float]


@dataclass(frozen=True)
class RouteColumns:
    """A batch's router decisions, one entry per (row, position, layer)."""

    row: np.ndarray
    pos: np.ndarray
    generated: np.ndarray  # bool: a generated token (else a prompt token)
    layer: np.ndarray
    experts: np.ndarray  # [n, k]
    weights: np.ndarray  # [n, k] float32


class RouterCapture(Hooked):
    """Record every router decision during :func:`cotlens.core.sampling.generate_batch`.

    Use per batch: ``begin(prompt_ids, max_new_tokens)``, pass ``on_step=cap.rows`` to ``generate_batch``,
    then ``routes()``. The shared-prefix forward that ``generate_batch`` runs once (before
    any ``on_step``) is attributed to every row; left padding is dropped.
    """

    def __init__(self, model: nn.Module, ad: Adapter) -> None:
        self.model, self.ad = model, ad
        self.routers = router_modules(model, ad)
        self._log: list[tuple[list[int] | None, dict[int, tuple[torch.Tensor, torch.Tensor]]]] = []
        self._lens: list[int] = []
        self._n_shared = 0

    def _register(self) -> list[Any]:
        handles = []
        for layer, r in self.routers.items():

            def hook(_m: nn.Module, _a: Any, out: Any, i: int = layer) -> None:
                if not self._log:  # a forward nobody announced: the shared prefix
                    self._log.append((None, {}))
                self._log[-1][1][i] = (out[2].detach(), out[1].detach())

            handles.append(r.register_forward_hook(hook))
        return handles

    def __enter__(self) -> RouterCapture:
        return super().__enter__()

    def begin(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> None:
        self._log.clear()
        self._lens = [len(p) for p in prompts]
        self._n_shared = prefix_run_once(self.model, prompts, max_new_tokens)  # as generate_batch decides

    def rows(self, rows: list[int]) -> None:
        self._log.append((list(rows), {}))

    def columns(self) -> RouteColumns:
        """Every captured decision of the batch as arrays, in (forward, layer, row, position)
        order: one host copy per forward (all layers stacked), no per-token Python objects."""
        lens = np.asarray(self._lens)
        n_dec = np.zeros(len(lens), dtype=np.int64)
        parts: list[tuple[np.ndarray, ...]] = []
        first_own = True
        for rows, per_layer in self._log:
            lays = sorted(per_layer)
            idx = torch.stack([per_layer[i][0] for i in lays]).cpu().numpy()  # [L, tokens, k]
            w = torch.stack([per_layer[i][1].float() for i in lays]).cpu().numpy()
            for li, lay in enumerate(lays):
                if rows is None:  # the shared prefix, batch of one: every row shares it
                    n = idx.shape[1]
                    r = np.repeat(np.arange(len(lens)), n)
                    pos = np.tile(np.arange(n), len(lens))
                    sel = pos
                    gen = np.zeros(len(r), dtype=bool)
                elif first_own:  # left-padded own parts: keep each row's last own_len tokens
                    t = idx.shape[1] // len(rows)
                    own = lens[rows] - self._n_shared
                    r = np.repeat(rows, own)
                    j = np.repeat(np.arange(len(rows)), own)
                    off = np.concatenate([np.arange(o) for o in own]) if len(own) else np.zeros(0, dtype=np.int64)
                    sel = j * t + (t - np.repeat(own, own)) + off
                    pos = self._n_shared + off
                    gen = np.zeros(len(r), dtype=bool)
                else:  # one decode step: one token per row
                    r = np.asarray(rows)
                    sel = np.arange(len(rows))
                    pos = lens[r] + n_dec[r]
                    gen = np.ones(len(r), dtype=bool)
                parts.append((r, pos, gen, np.full(len(r), lay), idx[li][sel], w[li][sel]))
            if rows is not None and not first_own:
                n_dec[rows] += 1
            if rows is not None:
                first_own = False
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return RouteColumns(empty, empty, empty.astype(bool), empty, np.zeros((0, 0)), np.zeros((0, 0)))
        cat = [np.concatenate([p[i] for p in parts]) for i in range(6)]
        return RouteColumns(cat[0], cat[1], cat[2].astype(bool), cat[3], cat[4], cat[5].astype(np.float32))

    def routes(self) -> list[Route]:
        """The same decisions as :class:`Route` objects (convenient for small checks)."""
        c = self.columns()
        return [
            Route(int(r), int(p), "generated" if g else "prompt", int(lay), e.tolist(), w.tolist())
            for r, p, g, lay, e, w in zip(c.row, c.pos, c.generated, c.layer, c.experts, c.weights, strict=True)
        ]


def _arrow(v: Any, typ: pa.DataType) -> pa.Array:
    return v.cast(typ) if isinstance(v, pa.Array) else pa.array(v, type=typ)


def routes_table(c: RouteColumns, prompt_ids: Sequence[int], seqs: Sequence[Sequence[int]]) -> pa.Table:
    """A batch's router decisions as rows of routes.parquet: ``c`` from
    :meth:`RouterCapture.columns`, ``prompt_ids`` and ``seqs`` (prompt + response token ids)
    per batch row."""
    pid = np.asarray(prompt_ids)
    k = c.experts.shape[1] if c.experts.ndim == 2 else 0
    cols = {
        "prompt_id": pid[c.row],
        "pos": c.pos,
        "phase": np.where(c.generated, "generated", "prompt"),
        "token_id": np.asarray([seqs[r][p] for r, p in zip(c.row, c.pos, strict=True)], dtype=np.int32),
        "layer": c.layer.astype(np.int16),
        "experts": pa.FixedSizeListArray.from_arrays(pa.array(c.experts.astype(np.int16).ravel()), k),
        "weights": pa.FixedSizeListArray.from_arrays(pa.array(c.weights.ravel()), k),
    }
    return to_table({n: _arrow(v, tables.ROUTES.field(n).type) for n, v in cols.items()}, tables.ROUTES)


def frequencies(
    prompt_of: Sequence[int],
    layer: Sequence[int],
    experts: Sequence[Sequence[int]],
    n_prompts: int,
    n_layers: int,
    n_exp: int,
) -> np.ndarray:
    """[prompt, layer, expert]: the fraction of a prompt's routed tokens in a layer that
    selected the expert (0 where the layer routed none of its tokens)."""
    hits = np.zeros((n_prompts, n_layers, n_exp), dtype=np.float64)
    toks = np.zeros((n_prompts, n_layers), dtype=np.float64)
    for p, lay, ex in zip(prompt_of, layer, experts, strict=True):
        toks[p, lay] += 1
        hits[p, lay, list(ex)] += 1
    return np.divide(hits, toks[..., None], out=np.zeros_like(hits), where=toks[..., None] > 0)


def ftri(freq: np.ndarray, behaviour: Sequence[bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, mean frequency in the behaviour class, in the other class), each [layer, expert]."""
    b = np.asarray(behaviour, dtype=bool)
    if b.all() or not b.any():
        raise ValueError(f"fTRI needs prompts in both classes (behaviour: {int(b.sum())} of {len(b)})")
    fb, fo = freq[b].mean(0), freq[~b].mean(0)
    return fb - fo, fb, fo


def top_experts(score: np.ndarray, k: int) -> list[tuple[int, int]]:
    """The k (layer, expert) with the largest score; ties go to the lower layer, then expert."""
    flat = np.lexsort((np.arange(score.size), -score.ravel()))[:k]
    return [(int(i // score.shape[1]), int(i % score.shape[1])) for i in flat]


def random_experts(
    moe_layers: Sequence[int], n_exp: int, k: int, seed: int, exclude: Sequence[tuple[int, int]] = ()
) -> list[tuple[int, int]]:
    """k distinct (layer, expert) drawn uniformly from every MoE layer's experts, minus ``exclude``."""
    pool = [(lay, e) for lay in moe_layers for e in range(n_exp) if (lay, e) not in set(exclude)]
    if k > len(pool):
        raise ValueError(f"asked for {k} random experts, only {len(pool)} available")
    pick = np.random.default_rng(seed).choice(len(pool), size=k, replace=False)
    return sorted(pool[i] for i in pick)


def by_layer(experts: Sequence[tuple[int, int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for lay, e in experts:
        out.setdefault(int(lay), []).append(int(e))
    return out


def forceable(experts: Sequence[tuple[int, int]], top_k: Mapping[int, int]) -> list[tuple[int, int]]:
    """The experts that can be forced on together: in the given (rank) order, at most a
    layer's top-k per layer (a token has only top-k slots); the rest are dropped."""
    used: dict[int, int] = {}
    out = []
    for lay, e in experts:
        if used.get(lay, 0) < top_k[lay]:
            used[lay] = used.get(lay, 0) + 1
            out.append((lay, e))
    return out


def switch_off(w: torch.Tensor, idx: torch.Tensor, drop: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the gate weight of ``drop`` experts; rescale the rest to the original top-k sum."""
    mask = torch.isin(idx, torch.tensor(list(drop), device=idx.device))
    total = w.sum(-1, keepdim=True)
    kept = w.masked_fill(mask, 0)
    ks = kept.sum(-1, keepdim=True)
    scale = torch.where(ks > 0, total / torch.where(ks > 0, ks, torch.ones_like(ks)), torch.zeros_like(ks))
    return kept * scale, idx


def switch_on(w: torch.Tensor, idx: torch.Tensor, force: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Put ``force`` experts in every token's top-k (see the module docstring)."""
    if len(set(force)) > idx.shape[-1]:
        raise ValueError(f"cannot force {len(set(force))} experts into a top-{idx.shape[-1]} router")
    w, idx = w.clone(), idx.clone()
    total = w.sum(-1, keepdim=True)
    top = w.max(-1).values
    protected = torch.zeros_like(idx, dtype=torch.bool)
    for e in dict.fromkeys(force):
        present = idx == e
        protected |= present
        need = ~present.any(-1)
        if need.any():
            slot = w.masked_fill(protected, float("inf")).argmin(-1)
            rows = need.nonzero().squeeze(-1)
            idx[rows, slot[rows]] = e
            w[rows, slot[rows]] = top[rows]
            protected[rows, slot[rows]] = True
    return w * (total / w.sum(-1, keepdim=True)), idx


@contextlib.contextmanager
def switch_experts(
    model: nn.Module, ad: Adapter, experts: Mapping[int, Sequence[int]], mode: SwitchMode
) -> Iterator[None]:
    """Switch ``{layer: [expert, ...]}`` off or on (forward hooks on the routers)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}; use one of {MODES}")
    routers = router_modules(model, ad)
    bad = sorted(set(experts) - set(routers))
    if bad:
        raise ValueError(f"layers {bad} have no router (MoE layers: {sorted(routers)})")
    fn = switch_off if mode == "off" else switch_on

    def make(sel: Sequence[int]) -> Any:
        def hook(_m: nn.Module, _a: Any, out: Any) -> Any:
            w, idx = fn(out[1], out[2], sel)
            return (out[0], w.to(out[1].dtype), idx)

        return hook

    with output_hooks((routers[i], make(list(e))) for i, e in experts.items() if e):
        yield


class RowSwitches(Hooked):
    """Several expert switches at once, one per group of batch rows: ``switches[g]`` is
    ``(mode, {layer: [expert, ...]})`` or None (the plain model), applied by
    :func:`switch_off` / :func:`switch_on` to the router outputs of that group's tokens
    only. :meth:`rows` takes the group of each row of the coming forward
    (``generate_batch``'s ``on_groups``); the routers see [rows * positions] tokens."""

    def __init__(
        self, model: nn.Module, ad: Adapter, switches: Sequence[tuple[SwitchMode, Mapping[int, Sequence[int]]] | None]
    ) -> None:
        self.routers = router_modules(model, ad)
        self._groups: torch.Tensor | None = None
        self.edits: dict[int, list[tuple[int, Callable[..., Any], list[int]]]] = {}
        for g, sw in enumerate(switches):
            if sw is None:
                continue
            mode, experts = sw
            if mode not in MODES:
                raise ValueError(f"mode {mode!r}; use one of {MODES}")
            bad = sorted(set(experts) - set(self.routers))
            if bad:
                raise ValueError(f"layers {bad} have no router (MoE layers: {sorted(self.routers)})")
            fn = switch_off if mode == "off" else switch_on
            for layer, e in experts.items():
                if e:
                    self.edits.setdefault(layer, []).append((g, fn, list(e)))

    def rows(self, groups: Sequence[int]) -> None:
        self._groups = torch.tensor(list(groups))

    def _hook(self, layer: int) -> Any:
        def hook(_m: nn.Module, _a: Any, out: Any) -> Any:
            assert self._groups is not None, "RowSwitches.rows was not called before the forward"
            w, idx = out[1], out[2]
            per_row = w.shape[0] // len(self._groups)
            tok_group = self._groups.to(w.device).repeat_interleave(per_row)
            w2, idx2 = w.clone(), idx.clone()
            for g, fn, sel in self.edits[layer]:
                t = (tok_group == g).nonzero().squeeze(-1)
                if len(t):
                    nw, ni = fn(w[t], idx[t], sel)
                    w2[t], idx2[t] = nw.to(w.dtype), ni
            return (out[0], w2, idx2, *out[3:])

        return hook

    def _register(self) -> list[Any]:
        return [self.routers[li].register_forward_hook(self._hook(li)) for li in self.edits]

    def __enter__(self) -> RowSwitches:
        return super().__enter__()


def require_moe(lm: Loaded) -> Loaded:
    """``lm``, refused with one clear error unless it is a mixture of experts."""
    if lm.adapter.router is None:
        raise CotlensError(
            f"{lm.manifest.get('name', 'the model')} ({lm.adapter.family}) is not a mixture of experts",
            "list an MoE under experts.models (the default trains one: refusal-moe)",
        )
    return lm


@torch.no_grad()
def check_router(mh: AdaptedModel, ids: torch.Tensor, tol: float = TOL) -> Check:
    """Study 4 reads and switches experts at the router's output ``(router_logits [tokens,
    experts], top_k_weights [tokens, k], top_k_index [tokens, k])``. Checked on every MoE
    layer: that contract (shapes, integer indices in range), and that the block uses those
    weights: every routed expert switched off at the router (``experts.methods.switch_off``) equals
    the experts module's output replaced by zeros. A block that recomputes its weights
    from the logits, or a router with another output, fails. Dense models have no router
    (Study 4 refuses them)."""
    model, ad = mh.model, mh.adapter
    if ad.router is None:
        return Check("router", True, 0.0, 0.0, "dense: no router (Study 4 refuses a dense model)")
    routers = router_modules(model, ad)
    seen: dict[int, Any] = {}

    def keep(i: int) -> Callable[[nn.Module, Any, Any], None]:
        return lambda _m, _a, o: seen.__setitem__(i, o)

    with output_hooks((r, keep(i)) for i, r in routers.items()):
        model(input_ids=ids, use_cache=False)
    n_tok = ids.numel()
    for li, out in seen.items():
        shapes = [
            tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            for t in (out if isinstance(out, tuple) else (out,))
        ]
        ok = isinstance(out, tuple) and len(out) >= 3 and all(isinstance(t, torch.Tensor) for t in out[:3])
        if ok:
            logits, w, idx = out[:3]
            e = int(logits.shape[-1])
            ok = (
                tuple(logits.shape) == (n_tok, e)
                and tuple(w.shape) == tuple(idx.shape) == (n_tok, idx.shape[-1])
                and not idx.is_floating_point()
                and bool(((idx >= 0) & (idx < e)).all())
            )
        if not ok:
            what = f"block {li}'s router ({type(routers[li]).__name__}) returns {shapes}, not (logits, top-k weights, top-k index)"
            return Check("router", False, float("nan"), 0.0, what)
    worst: Check | None = None
    for li in sorted(routers):
        every = list(range(int(seen[li][0].shape[-1])))
        with switch_experts(model, ad, {li: every}, "off"):
            off = model(input_ids=ids, use_cache=False).logits
        experts = get(layers(model, ad)[li], ad.mlp_out)
        with output_hooks([(experts, lambda _m, _a, o: torch.zeros_like(o) if isinstance(o, torch.Tensor) else o)]):
            zeroed = model(input_ids=ids, use_cache=False).logits
        c = _cmp(
            "router",
            off,
            zeroed,
            f"{len(routers)} MoE blocks: every expert off at the router vs the experts' output zeroed",
            tol=tol,
        )
        if worst is None or not c.ok or c.rel > worst.rel:
            worst = c
        if not c.ok:
            break
    assert worst is not None
    return worst
