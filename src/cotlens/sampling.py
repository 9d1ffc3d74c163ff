"""Batched chain-of-thought generation with a KV cache (greedy or nucleus sampling)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cotlens.batch import pad
from cotlens.models.adapters import check_context


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
    """
    b = len(prompts)
    check_context(model, max(map(len, prompts)) + cfg.max_new_tokens, "a prompt plus max_new_tokens")
    n_shared = shared_prefix_len(prompts)
    past = None
    if n_shared:
        head = torch.tensor([list(prompts[0][:n_shared])], device=device)
        past = model(input_ids=head, use_cache=True, logits_to_keep=1).past_key_values
        past.batch_repeat_interleave(b)
    ids, mask = pad([p[n_shared:] for p in prompts], pad_id, device, left=True)
    pos = (mask.cumsum(-1) - 1).clamp(min=0) + n_shared
    if n_shared:
        mask = torch.cat([torch.ones((b, n_shared), dtype=mask.dtype, device=device), mask], dim=1)
    if on_step is not None:
        on_step(list(range(b)))
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=past, use_cache=True, logits_to_keep=1
    )
    past = out.past_key_values
    toks: list[list[int]] = [[] for _ in range(b)]
    reason: list[str | None] = [None] * b
    active = list(range(b))  # original row of each batch row
    last = pos[:, -1:]
    logits = out.logits[:, -1, :]
    for i in range(cfg.max_new_tokens):
        nxt = pick_next(logits, cfg, gen).tolist()
        for row, t in zip(active, nxt, strict=True):
            if t in eos_ids:
                reason[row] = "eos"
                continue
            toks[row].append(t)
            reason[row] = stop(toks[row])
        keep = [j for j, row in enumerate(active) if reason[row] is None]
        if not keep or i == cfg.max_new_tokens - 1:  # no forward whose prediction is never used
            break
        if len(keep) < len(active):
            sel = torch.tensor(keep, device=device)
            past.batch_select_indices(sel)
            mask, last = mask[sel], last[sel]
            nxt = [nxt[j] for j in keep]
            active = [active[j] for j in keep]
        mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=device)], dim=1)
        last = last + 1
        step = torch.tensor(nxt, device=device)[:, None]
        if on_step is not None:
            on_step(list(active))
        out = model(input_ids=step, attention_mask=mask, position_ids=last, past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[:, -1, :]
    return [Generation(t, r or "max_tokens") for t, r in zip(toks, reason, strict=True)]
