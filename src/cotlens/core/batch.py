"""Batching helpers shared by the model stages: padding and logits at chosen positions."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

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


class PrefixCache:
    """The keys and values of one prefix per owner (a problem's prompt), computed once in one
    left-padded forward and reused by every sequence read after it: a reader runs only the
    tokens after its owner's prefix (the settings of a problem, the rounds that replace its
    digits). The same logits as the whole sequence alone, up to float round-off: the
    self-check ``readout_padded`` (:func:`cotlens.digits.methods.check_readout_padded`) proves it."""

    @torch.no_grad()
    def __init__(
        self, model: nn.Module, ad: Adapter, prefixes: Sequence[Sequence[int]], pad_id: int, device: torch.device
    ) -> None:
        if any(len(p) == 0 for p in prefixes):
            raise ValueError("every prefix needs at least one token")
        self.model, self.ad, self.pad_id, self.device = model, ad, pad_id, device
        self.prefixes = [list(p) for p in prefixes]
        ids, self.mask = pad(self.prefixes, pad_id, device, left=True)
        pos = (self.mask.cumsum(-1) - 1).clamp(min=0)
        base = get(model, ad.base)
        self.past = base(input_ids=ids, attention_mask=self.mask, position_ids=pos, use_cache=True).past_key_values

    @classmethod
    def adopt(
        cls,
        model: nn.Module,
        ad: Adapter,
        prefixes: Sequence[Sequence[int]],
        mask: torch.Tensor,
        past: Any,
        pad_id: int,
        device: torch.device,
    ) -> PrefixCache:
        """The cache of ``prefixes`` that a forward already made (left-padded, ``mask`` its
        attention mask), e.g. the one ``generate_batch(..., split=...)`` keeps."""
        if any(len(p) == 0 for p in prefixes) or mask.sum(-1).tolist() != [len(p) for p in prefixes]:
            raise ValueError("the mask does not hold the prefixes' lengths")
        self = cls.__new__(cls)
        self.model, self.ad, self.pad_id, self.device = model, ad, pad_id, device
        self.prefixes = [list(p) for p in prefixes]
        self.mask, self.past = mask, past
        return self

    def owns(self, owner: int, seq: Sequence[int]) -> bool:
        """Whether ``seq`` starts with the prefix of ``owner`` and goes past it."""
        p = self.prefixes[owner]
        return len(seq) > len(p) and list(seq[: len(p)]) == p

    @torch.no_grad()
    def logits_at(self, owners: Sequence[int], seqs: Sequence[Sequence[int]], pos: torch.Tensor) -> torch.Tensor:
        """Next-token logits [batch, P, vocab] at absolute positions ``pos`` [batch, P] of
        ``seqs``, each of which starts with the prefix of its owner (:meth:`owns`); every
        position lies after that prefix (a cached position has no hidden state here)."""
        n = [len(self.prefixes[o]) for o in owners]
        bad = [i for i, (o, s) in enumerate(zip(owners, seqs, strict=True)) if not self.owns(o, s)]
        if bad:
            raise ValueError(f"sequences {bad[:5]} do not start with their owner's prefix")
        first = torch.tensor(n, device=pos.device)[:, None]
        if bool((pos < first).any()):
            raise ValueError("a position read lies inside the cached prefix: cache a shorter one")
        past = copy.deepcopy(self.past)
        rows = torch.tensor(list(owners), device=self.device)
        past.batch_select_indices(rows)
        ids, smask = pad([s[k:] for s, k in zip(seqs, n, strict=True)], self.pad_id, self.device, left=False)
        mask = torch.cat([self.mask[rows], smask], dim=1)
        posids = first.to(self.device) + torch.arange(ids.shape[1], device=self.device)[None]
        base = get(self.model, self.ad.base)
        h = base(input_ids=ids, attention_mask=mask, position_ids=posids, past_key_values=past, use_cache=True)
        h = h.last_hidden_state
        rel = pos.to(self.device) - first.to(self.device)
        r = torch.arange(h.shape[0], device=h.device)[:, None]
        return readout(self.model, self.ad, h[r, rel], normed=True)
