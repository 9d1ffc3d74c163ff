"""Activations at chosen token positions, with the in-context and no-context predictions.

``circuits_sample`` records them while it generates (:func:`captured_table`); the forward
below over the finished samples (:func:`extract_batch`) is the reference it is tested
against, and what a caller with samples but no generation uses.

For each sample the clean sequence is ``prompt + completion``. One forward with a
:class:`~cotlens.core.hooks.Capture` records the residual stream after every block and the
per-head attention outputs (optionally the FFN neurons) at the chosen positions only.
A second forward on ``prompt_nofacts + completion`` (the same question with its facts
removed) gives the model's *prior* prediction at the same positions. The two share the
exemplars and the start of the question: that prefix runs once
(:class:`~cotlens.core.batch.PrefixCache`), each sequence runs only its own tokens after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from cotlens.circuits import tables
from cotlens.core.batch import PrefixCache, logits_at, pad
from cotlens.core.hooks import Capture
from cotlens.core.types import POSITIONS
from cotlens.errors import CotlensError
from cotlens.io.parquet import Columns, to_table, vectors_to_arrow
from cotlens.models.loading import Loaded

POSITION_KINDS = POSITIONS


@dataclass(frozen=True)
class ExtractConfig:
    positions: tuple[str, ...] = POSITION_KINDS
    mlp: bool = False


@dataclass(frozen=True)
class SampleRow:
    """What extraction needs of one row of samples.parquet."""

    prompt_id: int
    sample_idx: int
    prompt_ids: Sequence[int]
    nofacts_ids: Sequence[int]
    token_ids: Sequence[int]
    step_end_token: Sequence[int]
    answer_token: int


def positions_for(row: SampleRow, kinds: Sequence[str]) -> list[tuple[int, str, int]]:
    """(absolute position, kind, step) in ``prompt + completion``."""
    n = len(row.prompt_ids)
    out: list[tuple[int, str, int]] = []
    if "last_prompt" in kinds:
        out.append((n - 1, "last_prompt", -1))
    if "step_end" in kinds:
        out += [(n + t, "step_end", s) for s, t in enumerate(row.step_end_token)]
    if "answer" in kinds and row.answer_token > 0:
        out.append((n + row.answer_token - 1, "answer", -1))
    return out


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _pad_positions(pos: list[list[int]], dev: torch.device) -> torch.Tensor:
    width = max(len(p) for p in pos)
    return torch.tensor([p + [p[-1]] * (width - len(p)) for p in pos], dtype=torch.long, device=dev)


@torch.inference_mode()
def extract_batch(lm: Loaded, rows: Sequence[SampleRow], cfg: ExtractConfig, schema: pa.Schema) -> pa.Table:
    """Activation rows (ordered by sample, position, layer) for one batch of samples."""
    specs = [positions_for(r, cfg.positions) for r in rows]
    keep = [i for i, s in enumerate(specs) if s]
    if not keep:
        return schema.empty_table()
    rows = [rows[i] for i in keep]
    specs = [specs[i] for i in keep]
    dev, pad_id = lm.device, int(lm.tokenizer.pad_token_id)
    clean, pos, nofacts, nf_pos = reads(rows, specs, dev)
    sites = sites_of(cfg)
    # the clean and the no-facts sequence of a sample share the exemplars and the question's
    # start: that prefix runs once (PrefixCache), each sequence runs only the rest
    first = [
        min(common_prefix(c, n), int(p.min()), int(q.min()))
        for c, n, p, q in zip(clean, nofacts, pos, nf_pos, strict=True)
    ]
    owners = list(range(len(rows)))
    if min(first) >= 1:
        cache = PrefixCache(lm.model, lm.adapter, [c[:k] for c, k in zip(clean, first, strict=True)], pad_id, dev)
        rel = pos - torch.tensor(first, device=dev)[:, None]
        with Capture(lm.model, lm.adapter, sites, rel) as cap:
            ctx_tok = cache.logits_at(owners, clean, pos).argmax(-1)
        prior_tok = prior_tokens(lm, cache, owners, nofacts, nf_pos)
    else:
        ids, mask = pad(clean, pad_id, dev, left=False)
        with Capture(lm.model, lm.adapter, sites, pos) as cap:
            ctx_tok = logits_at(lm.model, lm.adapter, ids, mask, pos).argmax(-1)
        prior_tok = prior_tokens(lm, None, owners, nofacts, nf_pos)

    acts = {site: cap.stacked(site) for site in sites}
    return activation_table(rows, specs, acts, ctx_tok, prior_tok, schema)


def reads(
    rows: Sequence[SampleRow], specs: Sequence[Sequence[tuple[int, str, int]]], dev: torch.device
) -> tuple[list[list[int]], torch.Tensor, list[list[int]], torch.Tensor]:
    """What the reads of ``rows`` at their positions (``specs``) run: each clean sequence up
    to its last needed position (+1 for next_token), those positions [batch, P] (padded by
    repeating the last), and the same for the no-facts sequence (its positions shifted by
    the facts' length)."""
    ends = [max(p for p, _, _ in s) + 1 for s in specs]
    clean = [(list(r.prompt_ids) + list(r.token_ids))[:e] for r, e in zip(rows, ends, strict=True)]
    pos = _pad_positions([[p for p, _, _ in s] for s in specs], dev)
    shift = [len(r.nofacts_ids) - len(r.prompt_ids) for r in rows]
    nofacts = [(list(r.nofacts_ids) + list(r.token_ids))[: e + d] for r, e, d in zip(rows, ends, shift, strict=True)]
    return clean, pos, nofacts, pos + torch.tensor(shift, device=dev)[:, None]


def prior_tokens(
    lm: Loaded, cache: PrefixCache | None, owners: Sequence[int], nofacts: Sequence[Sequence[int]], pos: torch.Tensor
) -> torch.Tensor:
    """The model's top next token [batch, P] at ``pos`` of each no-facts sequence: run after
    its owner's cached prefix, or whole (``cache`` None)."""
    if cache is not None:
        return cache.logits_at(owners, nofacts, pos).argmax(-1)
    ids, mask = pad(nofacts, int(lm.tokenizer.pad_token_id), lm.device, left=False)
    return logits_at(lm.model, lm.adapter, ids, mask, pos).argmax(-1)


def sites_of(cfg: ExtractConfig) -> list[str]:
    """The hook sites an extraction records."""
    return ["resid", "attn_heads"] + (["mlp"] if cfg.mlp else [])


def split_points(rows: Sequence[SampleRow]) -> list[int] | None:
    """Per sample, the tokens its prompt and its no-facts prompt begin with (the exemplars
    and the question's start), each prompt keeping a token of its own: what generation
    runs first and keeps for the no-facts read (None where some sample shares none)."""
    out = [min(common_prefix(r.prompt_ids, r.nofacts_ids), len(r.prompt_ids) - 1, len(r.nofacts_ids) - 1) for r in rows]
    return out if min(out) >= 1 else None


@torch.inference_mode()
def captured_table(
    lm: Loaded,
    rows: Sequence[SampleRow],
    captured: Sequence[tuple[Mapping[str, torch.Tensor], Sequence[int]]],
    prefix: tuple[Any, torch.Tensor] | None,
    cfg: ExtractConfig,
    schema: pa.Schema,
) -> pa.Table:
    """:func:`extract_batch` from what generation already computed: ``captured[i]`` holds
    row i's vectors and top next tokens at its prompt's last position and at each generated
    token (:class:`~cotlens.core.hooks.StepCapture` through ``generate_batch(...,
    feed_last=True)``); only the no-facts sequences are run, after the prefix the prompts
    share (``prefix``: the cache and mask ``generate_batch(..., split=split_points(rows))``
    kept; None: in full). Rows in sample order (prompt, sample), whatever the batch's order."""
    specs = [positions_for(r, cfg.positions) for r in rows]
    keep = sorted((i for i, s in enumerate(specs) if s), key=lambda i: (rows[i].prompt_id, rows[i].sample_idx))
    if not keep:
        return schema.empty_table()
    dev, pad_id = lm.device, int(lm.tokenizer.pad_token_id)
    sites = sites_of(cfg)
    acts: dict[str, list[torch.Tensor]] = {site: [] for site in sites}
    ctx: list[list[int]] = []
    width = max(len(specs[i]) for i in keep)
    for i in keep:
        vecs, tops = captured[i]
        at = [p - (len(rows[i].prompt_ids) - 1) for p, _, _ in specs[i]]
        if min(at) < 0 or max(at) >= len(tops):
            raise RuntimeError(f"sample {rows[i].prompt_id}: positions {at} outside the {len(tops)} captured")
        at += [at[-1]] * (width - len(at))
        for site in sites:
            acts[site].append(vecs[site][at])
        ctx.append([tops[j] for j in at])
    kept = [rows[i] for i in keep]
    _, _, nofacts, nf_pos = reads(kept, [specs[i] for i in keep], dev)
    cache = None
    if prefix is not None:
        past, mask = prefix
        heads = [list(r.prompt_ids[:n]) for r, n in zip(rows, mask.sum(-1).tolist(), strict=True)]
        cache = PrefixCache.adopt(lm.model, lm.adapter, heads, mask, past, pad_id, dev)
    prior_tok = prior_tokens(lm, cache, keep, nofacts, nf_pos)
    stacked = {site: torch.stack(v) for site, v in acts.items()}
    return activation_table(kept, [specs[i] for i in keep], stacked, torch.tensor(ctx), prior_tok, schema)


def activation_table(
    rows: Sequence[SampleRow],
    specs: Sequence[Sequence[tuple[int, str, int]]],
    acts: Mapping[str, torch.Tensor],
    ctx_tok: torch.Tensor,
    prior_tok: torch.Tensor,
    schema: pa.Schema,
) -> pa.Table:
    """The activation rows (ordered by sample, position, layer) of samples whose positions
    (``specs``, :func:`positions_for`) have the vectors ``acts[site]`` [batch, P, layers,
    dim] and the in-context and no-context top tokens [batch, P] (a row's positions
    padded to P by repeating its last)."""
    sites = list(acts)
    n_layers = next(iter(acts.values())).shape[2]
    seqs = [list(r.prompt_ids) + list(r.token_ids) for r in rows]
    cols = Columns(pa.schema([f for f in schema if f.name not in sites]))  # the vectors come after
    sel_b, sel_p = [], []
    for b, (r, s) in enumerate(zip(rows, specs, strict=True)):
        for j, (p, kind, step) in enumerate(s):
            nxt = seqs[b][p + 1] if p + 1 < len(seqs[b]) else -1
            for layer in range(n_layers):
                cols.add(
                    prompt_id=r.prompt_id,
                    sample_idx=r.sample_idx,
                    pos=p,
                    pos_kind=kind,
                    step=step,
                    layer=layer,
                    next_token=nxt,
                    context_token=int(ctx_tok[b, j]),
                    prior_token=int(prior_tok[b, j]),
                )
            sel_b.append(b)
            sel_p.append(j)
    data: dict[str, object] = dict(cols.data)
    for site in sites:
        st = acts[site][sel_b, sel_p].float()  # [rows_without_layer, L, d]
        arr = st.reshape(-1, st.shape[-1]).cpu().numpy()
        if not np.isfinite(arr).all():
            bad = sorted({rows[b].prompt_id for b in sel_b})
            raise CotlensError(
                f"non-finite values in {site} activations (prompt ids {bad[:10]})",
                "nothing was written; try dtype float32 or check the model weights",
            )
        data[site] = vectors_to_arrow(arr)
    return to_table(data, schema)


def activation_schema(lm: Loaded, cfg: ExtractConfig) -> pa.Schema:
    d = lm.dims
    return tables.activations(d.d_model, d.n_heads, d.head_dim, d.d_mlp if cfg.mlp else None)
