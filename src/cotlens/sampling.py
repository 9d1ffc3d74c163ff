"""Batched chain-of-thought generation with a KV cache (greedy or nucleus sampling)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn


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


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


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
) -> list[Generation]:
    """Generate for one batch. ``stop(ids)`` returns a stop reason or None."""
    ids, mask = left_pad(prompts, pad_id, device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    past = out.past_key_values
    b = len(prompts)
    toks: list[list[int]] = [[] for _ in range(b)]
    reason: list[str | None] = [None] * b
    last = pos[:, -1:]
    for _ in range(cfg.max_new_tokens):
        nxt = pick_next(out.logits[:, -1, :], cfg, gen)
        for i, t in enumerate(nxt.tolist()):
            if reason[i] is not None:
                continue
            if t in eos_ids:
                reason[i] = "eos"
                continue
            toks[i].append(t)
            reason[i] = stop(toks[i])
        if all(r is not None for r in reason):
            break
        nxt = torch.where(torch.tensor([r is None for r in reason], device=device), nxt, pad_id)
        mask = torch.cat([mask, torch.ones((b, 1), dtype=mask.dtype, device=device)], dim=1)
        last = last + 1
        out = model(
            input_ids=nxt[:, None], attention_mask=mask, position_ids=last,
            past_key_values=past, use_cache=True,
        )  # fmt: skip
        past = out.past_key_values
    return [Generation(t, r or "max_tokens") for t, r in zip(toks, reason, strict=True)]
