"""Batching helpers shared by the model stages: padding and logits at chosen positions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cotlens.models.adapters import Adapter, get, readout


def pad(
    seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device, left: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """[batch, width] ids and attention mask; left padding for generation, right otherwise."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        span = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, span] = torch.tensor(list(s), dtype=torch.long)
        mask[i, span] = 1
    return ids.to(device), mask.to(device)


def logits_at(model: nn.Module, ad: Adapter, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Next-token logits [batch, P, vocab] at ``pos`` only (no full-sequence unembedding)."""
    h = get(model, ad.base)(input_ids=ids, attention_mask=mask).last_hidden_state
    rows = torch.arange(h.shape[0], device=h.device)[:, None]
    return readout(model, ad, h[rows, pos], normed=True)
