"""Batched chain-of-thought generation with a KV cache (greedy or nucleus sampling)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import DynamicCache, DynamicLayer

from cotlens.core.batch import pad
from cotlens.models.adapters import check_context, windows


@dataclass(frozen=True)
class SampleConfig:
    max_new_tokens: int = 96
    batch_size: int = 8
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    n_samples: int = 1
    seed: int = 0


@dataclass(frozen=True)
class Generation:
    token_ids: list[int]  # generated tokens, eos excluded
    stop_reason: str  # answer | delimiter | eos | max_tokens


def pick_next(logits: torch.Tensor, cfg: SampleConfig, gen: torch.Generator | None) -> torch.Tensor:
    """Greedy, or temperature + top-p sampling, on [batch, vocab] logits."""
    if cfg.temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / cfg.temperature, dim=-1)
    if cfg.top_p < 1.0:
        sp, si = probs.sort(-1, descending=True)
        keep = (sp.cumsum(-1) - sp) < cfg.top_p
        sp = sp * keep
        probs = torch.zeros_like(probs).scatter(-1, si, sp)
    probs = probs / probs.sum(-1, keepdim=True)
    return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(logits.device)


def shared_prefix_len(prompts: Sequence[Sequence[int]], minimum: int = 16) -> int:
    """Length of the token prefix every prompt shares (0 if under ``minimum`` or one prompt),
    always leaving each prompt at least one token of its own."""
    if len(prompts) < 2:
        return 0
    n = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for i in range(max(n, 0)):
        if any(p[i] != first[i] for p in prompts[1:]):
            n = i
            break
    return n if n >= minimum else 0


def padding_inside_is_safe(model: nn.Module, width: int) -> bool:
    """Whether padding may sit inside a row (between a prefix run once and the row's own
    tokens) in a batch ``width`` slots wide: a sliding window (or an attention chunk) is
    counted in cache slots, so padding inside a row would push real tokens out of the
    window or let others in; safe when every window spans the whole width."""
    return all(w >= width for w in windows(model))


def inside_width(prompts: Sequence[Sequence[int]], max_new_tokens: int) -> int:
    """An upper bound on a batch's width in cache slots when padding sits inside its rows:
    a prefix of up to a prompt's length, own parts of up to one, then the generated tokens."""
    return 2 * max(map(len, prompts)) + max_new_tokens


def prefix_run_once(model: nn.Module, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> int:
    """The length of the prefix :func:`generate_batch` runs once for a batch of one group
    and no split (what a hook that attributes its forwards must know): its own layout's."""
    return _layout(model, prompts, max_new_tokens, None, None).n_head[0]


def group_prefixes(prompts: Sequence[Sequence[int]], group: Sequence[int], ids_of: Sequence[int]) -> list[list[int]]:
    """The prefix :func:`generate_batch` runs once per group (in the order of ``ids_of``):
    where each group's prompts share one of their own and some group's is longer than the
    one every prompt shares (prompt variants side by side, each with its exemplars), each
    group's own; else the one every prompt shares, for every group (the same prompts under
    several conditions); else none (an empty list)."""
    n = shared_prefix_len(prompts)
    common = [list(prompts[0][:n])] * len(ids_of) if n else []
    if len(ids_of) < 2:
        return common
    own = []
    for g in ids_of:
        mine = [p for p, h in zip(prompts, group, strict=True) if h == g]
        k = shared_prefix_len(mine)
        if not k:
            return common
        own.append(list(mine[0][:k]))
    return own if max(map(len, own)) > n else common


class GrowingLayer(DynamicLayer):
    """A full-attention cache layer whose keys and values live in a buffer with room for
    ``reserve`` more tokens: a decode step writes its token in place, where the stock layer
    concatenates (copies) the whole cache every step. ``keys``/``values`` are views of the
    filled part, so attention reads the same numbers as before."""

    def __init__(self, reserve: int) -> None:
        super().__init__()
        self.reserve = max(1, int(reserve))
        self.n = 0

    @classmethod
    def of(cls, layer: DynamicLayer, reserve: int) -> GrowingLayer:
        g = cls(reserve)
        if layer.is_initialized and layer.keys is not None and layer.values is not None and layer.keys.numel():
            g._adopt(layer.keys, layer.values)
        return g

    @classmethod
    def spread(cls, layer: DynamicLayer, rows: Sequence[int], reserve: int) -> GrowingLayer:
        """A cached prefix (one row per group) as the layer of a batch whose row ``i`` starts
        with prefix row ``rows[i]``, with room for ``reserve`` more tokens: each prefix row is
        written straight into its rows of the buffer (no batch-sized copy in between)."""
        k, v = layer.keys, layer.values
        assert k is not None and v is not None
        g = cls(reserve)
        _, h, n, d = k.shape
        g.dtype, g.device, g.is_initialized = k.dtype, k.device, True
        g._k = k.new_empty((len(rows), h, n + g.reserve, d))
        g._v = v.new_empty((len(rows), h, n + g.reserve, v.shape[-1]))
        for src in sorted(set(rows)):
            dst = [i for i, r in enumerate(rows) if r == src]
            at: slice | torch.Tensor = (
                slice(dst[0], dst[-1] + 1) if dst == list(range(dst[0], dst[-1] + 1)) else torch.tensor(dst)
            )
            g._k[at, :, :n] = k[src]
            g._v[at, :, :n] = v[src]
        g._view(n)
        return g

    def _adopt(self, k: torch.Tensor, v: torch.Tensor) -> None:
        b, h, n, d = k.shape
        self.dtype, self.device, self.is_initialized = k.dtype, k.device, True
        self._k = k.new_empty((b, h, n + self.reserve, d))
        self._v = v.new_empty((b, h, n + self.reserve, v.shape[-1]))
        self._k[:, :, :n], self._v[:, :, :n] = k, v
        self._view(n)

    def _view(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.n = n
        k, v = self._k[:, :, :n], self._v[:, :, :n]
        self.keys, self.values = k, v
        return k, v

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized or self.n == 0:
            self._adopt(key_states, value_states)
            return self._view(self.n)
        m = self.n + key_states.shape[-2]
        if m > self._k.shape[-2]:  # out of room: grow (never in a decode that stays within max_new_tokens)
            self.reserve = max(self.reserve, m - self.n)
            self._adopt(*self._view(self.n))
        self._k[:, :, self.n : m] = key_states
        self._v[:, :, self.n : m] = value_states
        return self._view(m)

    def get_seq_length(self) -> int:
        return self.n if self.is_initialized else 0

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.n:
            self._k, self._v = self._k[indices], self._v[indices]
            self._view(self.n)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.n:
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)
            self._view(self.n)

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative count of tokens to remove")
        if tokens_to_remove and self.n:
            self._view(max(0, self.n + tokens_to_remove))


def grow_in_place(past: Any, reserve: int) -> Any:
    """``past`` (a transformers Cache) with each full-attention layer (exactly a
    ``DynamicLayer``; sliding-window and other layers are left as they are) replaced by a
    :class:`GrowingLayer` holding the same keys and values with room for ``reserve`` more."""
    layers = getattr(past, "layers", None)
    if isinstance(layers, list):
        for i, layer in enumerate(layers):
            if type(layer) is DynamicLayer:
                layers[i] = GrowingLayer.of(layer, reserve)
    return past


def spread_prefix(past: Any, rows: Sequence[int], reserve: int, device: torch.device) -> Any:
    """``past``, the cache of a shared prefix run once per group (one row each), as the
    cache of the batch whose row ``i`` continues prefix row ``rows[i]``: full-attention
    layers (exactly ``DynamicLayer``) become :class:`GrowingLayer`\\ s with room for
    ``reserve`` more tokens (the rows' own parts and the decode then write in place, where
    the stock layer concatenates); other layers are repeated or indexed as transformers does."""
    one = len(set(rows)) == 1
    index = torch.tensor(list(rows), device=device)
    if type(past) is not DynamicCache:  # a hybrid cache (conv or recurrent states): its own methods
        if one:
            past.batch_repeat_interleave(len(rows))
        else:
            past.batch_select_indices(index)
        return past
    layers: list[Any] = past.layers
    for i, layer in enumerate(layers):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys is not None and layer.keys.numel():
            layers[i] = GrowingLayer.spread(layer, rows, reserve)
        elif one:
            layer.batch_repeat_interleave(len(rows))
        else:
            layer.batch_select_indices(index)
    return past


@torch.inference_mode()
def generate_batch(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    cfg: SampleConfig,
    pad_id: int,
    eos_ids: set[int],
    stop: Callable[[list[int]], str | None],
    device: torch.device,
    gen: torch.Generator | None = None,
    on_step: Callable[[list[int]], None] | None = None,
    groups: Sequence[int] | None = None,
    on_groups: Callable[[list[int]], None] | None = None,
    split: Sequence[int] | None = None,
    on_split: Callable[[Any, torch.Tensor], None] | None = None,
    feed_last: bool = False,
) -> list[Generation]:
    """Generate for one batch. ``stop(ids)`` returns a stop reason or None.

    Rows that have stopped are dropped from the batch and the KV cache, so the remaining
    decode steps cost only what the unfinished rows need. A token prefix that every
    prompt shares (k-shot exemplars) is run once and its keys/values reused by every row;
    the rows' own parts are left-padded after it (masked, positions counted over real
    tokens only), which gives the same logits as separate prompts.

    ``on_step(rows)`` is called before every forward whose last position predicts a
    generated token, with the original indices of the rows in that forward (hooks that
    score generated tokens use it; the shared-prefix forward is not announced).

    ``groups`` (one id per prompt) puts several conditions in one batch, e.g. ablations
    whose hooks act row by row, or prompt variants each with its own exemplars: the shared
    prefix (or, when the groups share none, each group's own, :func:`group_prefixes`,
    left-padded to one width) is then run once per group, and
    ``on_groups(ids)`` is called before every forward with the group of each of its rows
    (the prefix forward included: one row per group).

    ``split`` (one count per prompt, each short of its prompt's length) runs the first
    tokens of each prompt in a forward of their own (left-padded, not announced) and hands
    ``on_split`` a copy of that cache and its mask: a caller reads other sequences that
    begin with the same tokens without running them again (:class:`~cotlens.core.batch.PrefixCache`).
    No group prefix is run then. Neither runs on a model whose attention window is shorter
    than the batch (:func:`padding_inside_is_safe`): ``on_split`` is then never called. ``feed_last`` feeds every row's last generated token
    (eos excluded) in one more forward before the row leaves, announced like the others,
    so that hooks see every generated position; its prediction is not used.
    """
    b = len(prompts)
    check_context(model, max(map(len, prompts)) + cfg.max_new_tokens, "a prompt plus max_new_tokens")
    lay = _layout(model, prompts, cfg.max_new_tokens, groups, split)

    def announce(rows: list[int]) -> None:
        if on_step is not None:
            on_step(list(rows))
        if on_groups is not None:
            on_groups([lay.group[r] for r in rows])

    past, mask, last, logits = _prefill(model, prompts, lay, cfg, pad_id, device, announce, on_groups, on_split)
    decode = _Decode(model, cfg, eos_ids, stop, device, gen, announce, feed_last)
    return decode(b, past, mask, last, logits)


@dataclass
class _Layout:
    """Where a batch's tokens go: ``heads``, one prefix per group run once (none: []), or
    ``split``, each prompt's first ``n_head[i]`` tokens in a forward of their own; the rest
    of each prompt is its own part, left-padded."""

    group: list[int]  # the group of each prompt
    ids_of: list[int]  # the group ids, sorted
    heads: list[list[int]]
    n_head: list[int]  # tokens of each prompt run before its own part
    split: bool


def _layout(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    groups: Sequence[int] | None,
    split: Sequence[int] | None,
) -> _Layout:
    b = len(prompts)
    group = list(groups) if groups is not None else [0] * b
    if len(group) != b:
        raise ValueError(f"{len(group)} group ids for {b} prompts")
    ids_of = sorted(set(group))
    if split is not None and (
        len(split) != b or any(not 0 < int(k) < len(p) for k, p in zip(split, prompts, strict=True))
    ):
        raise ValueError("split needs one count per prompt, each at least 1 and short of the prompt")
    # a prefix run once, or each row's first tokens, put padding inside the rows: not where a
    # window shorter than the batch would count it (then every row runs whole, left-padded)
    inside = padding_inside_is_safe(model, inside_width(prompts, max_new_tokens))
    if not inside:
        split = None
    heads = [] if split is not None or not inside else group_prefixes(prompts, group, ids_of)
    n_head = (
        [int(k) for k in split] if split is not None else [len(heads[ids_of.index(g)]) if heads else 0 for g in group]
    )
    return _Layout(group, ids_of, heads, n_head, split is not None)


def _prefill(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    lay: _Layout,
    cfg: SampleConfig,
    pad_id: int,
    device: torch.device,
    announce: Callable[[list[int]], None],
    on_groups: Callable[[list[int]], None] | None,
    on_split: Callable[[Any, torch.Tensor], None] | None,
) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The prefix (or split) forward, then every row's own part: the cache (grown for the
    decode), the mask, each row's last position and the last logits."""
    b = len(prompts)
    heads, n_head = lay.heads, lay.n_head
    past, head_mask = None, None
    if heads:
        if on_groups is not None:
            on_groups(lay.ids_of)
        if len(set(map(len, heads))) == 1:  # one length: no padding, no mask
            past = model(input_ids=torch.tensor(heads, device=device), use_cache=True, logits_to_keep=1).past_key_values
        else:  # prefixes of several lengths (e.g. prompt variants side by side): left-padded
            hid, head_mask = pad(heads, pad_id, device, left=True)
            hpos = (head_mask.cumsum(-1) - 1).clamp(min=0)
            past = model(
                input_ids=hid, attention_mask=head_mask, position_ids=hpos, use_cache=True, logits_to_keep=1
            ).past_key_values
    split_mask = None
    if lay.split:  # each row's first tokens, kept for the caller
        hid, split_mask = pad([p[:n] for p, n in zip(prompts, n_head, strict=True)], pad_id, device, left=True)
        hpos = (split_mask.cumsum(-1) - 1).clamp(min=0)
        past = model(input_ids=hid, attention_mask=split_mask, position_ids=hpos, use_cache=True, logits_to_keep=1)
        past = past.past_key_values
        if on_split is not None:
            on_split(copy.deepcopy(past), split_mask.clone())
    ids, mask = pad([p[n:] for p, n in zip(prompts, n_head, strict=True)], pad_id, device, left=True)
    if split_mask is not None:
        width = split_mask.shape[1]
        mask = torch.cat([split_mask, mask], dim=1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, width:]
    else:
        pos = (mask.cumsum(-1) - 1).clamp(min=0) + torch.tensor(n_head, device=device)[:, None]
        if past is not None:  # room for the rows' own parts and the decode
            rows_head = [lay.ids_of.index(g) for g in lay.group]
            past = spread_prefix(past, rows_head, ids.shape[1] + cfg.max_new_tokens, device)
            before = (
                torch.ones((b, len(max(heads, key=len))), dtype=mask.dtype, device=device)
                if head_mask is None
                else head_mask[torch.tensor(rows_head, device=device)].to(mask.dtype)
            )
            mask = torch.cat([before, mask], dim=1)
    announce(list(range(b)))
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=past, use_cache=True, logits_to_keep=1
    )
    return grow_in_place(out.past_key_values, cfg.max_new_tokens), mask, pos[:, -1:], out.logits[:, -1, :]


@dataclass
class _Decode:
    """The decode loop of :func:`generate_batch`: rows that stopped leave the batch and the
    cache; with ``feed_last``, a row's last generated token gets one more forward first."""

    model: nn.Module
    cfg: SampleConfig
    eos_ids: set[int]
    stop: Callable[[list[int]], str | None]
    device: torch.device
    gen: torch.Generator | None
    announce: Callable[[list[int]], None]
    feed_last: bool

    def __call__(
        self, b: int, past: Any, mask: torch.Tensor, last: torch.Tensor, logits: torch.Tensor
    ) -> list[Generation]:
        cfg, device = self.cfg, self.device
        toks: list[list[int]] = [[] for _ in range(b)]
        reason: list[str | None] = [None] * b
        active = list(range(b))  # original row of each batch row
        fed_last: set[int] = set()  # rows whose last token the forward just run was fed
        for i in range(cfg.max_new_tokens):
            nxt = pick_next(logits, cfg, self.gen).tolist()
            for row, t in zip(active, nxt, strict=True):
                if row in fed_last:  # done: its prediction is not used
                    continue
                if t in self.eos_ids:
                    reason[row] = "eos"
                    continue
                toks[row].append(t)
                reason[row] = self.stop(toks[row])
            end = i == cfg.max_new_tokens - 1
            keep = self.kept(active, reason, fed_last, end)
            if self.feed_last:  # the rows kept for their last token
                fed_last = {active[j] for j in keep if reason[active[j]] is not None or end}
            if not keep:  # no forward whose prediction is never used (but a last token's)
                break
            if len(keep) < len(active):
                sel = torch.tensor(keep, device=device)
                past.batch_select_indices(sel)
                mask, last = mask[sel], last[sel]
                nxt = [nxt[j] for j in keep]
                active = [active[j] for j in keep]
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=device)], dim=1)
            last = last + 1
            self.announce(active)
            step = torch.tensor(nxt, device=device)[:, None]
            out = self.model(
                input_ids=step, attention_mask=mask, position_ids=last, past_key_values=past, use_cache=True
            )
            past = out.past_key_values
            logits = out.logits[:, -1, :]
        return [Generation(t, r or "max_tokens") for t, r in zip(toks, reason, strict=True)]

    def kept(self, active: list[int], reason: list[str | None], fed_last: set[int], end: bool) -> list[int]:
        """The batch rows the next forward runs: those still generating, and (``feed_last``)
        those that ended on a token of their own, for one more forward with it."""
        keep = [j for j, row in enumerate(active) if reason[row] is None and not end and row not in fed_last]
        if self.feed_last:
            keep += [
                j
                for j, row in enumerate(active)
                if row not in fed_last and reason[row] != "eos" and (reason[row] is not None or end)
            ]
        return sorted(keep)


def stop_ids(tok: Any) -> tuple[set[int], int]:
    """(end-of-sequence ids, padding id) of a tokenizer (padding: its pad token, else eos)."""
    eos = {int(tok.eos_token_id)} if tok.eos_token_id is not None else set()
    return eos, int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)


def generate_all(
    lm: Any,
    prompts: Sequence[list[int]],
    cfg: SampleConfig,
    stop: Callable[[list[int]], str | None],
    on_step: Callable[[list[int]], None] | None = None,
    groups: Sequence[int] | None = None,
    on_groups: Callable[[list[int]], None] | None = None,
    before_batch: Callable[[list[list[int]]], None] | None = None,
    after_batch: Callable[[int, list[list[int]], list[Generation]], None] | None = None,
) -> list[Generation]:
    """:func:`generate_batch` over every prompt (token ids) of a loaded model, in batches of
    ``cfg.batch_size``: the one generation loop of the studies. ``before_batch(ids)`` runs
    before a batch (e.g. a capture's ``begin``), ``after_batch(start, ids, generations)``
    after it; ``groups`` is sliced per batch (``generate_batch``'s conditions side by side)."""
    eos, pad_id = stop_ids(lm.tokenizer)
    out: list[Generation] = []
    for s in range(0, len(prompts), cfg.batch_size):
        ids = list(prompts[s : s + cfg.batch_size])
        if before_batch is not None:
            before_batch(ids)
        part = None if groups is None else list(groups[s : s + cfg.batch_size])
        gens = generate_batch(
            lm.model, ids, cfg, pad_id, eos, stop, lm.device, on_step=on_step, groups=part, on_groups=on_groups
        )
        if after_batch is not None:
            after_batch(s, ids, gens)
        out += gens
    return out
