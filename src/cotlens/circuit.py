"""Head-level readings of the clean runs: per-head logit lens (the rift), direct logit
attribution (answer-writing heads) and circuit sufficiency (keep top-k heads, mean-ablate
the rest). Everything goes through the adapter table and the hook layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cotlens.hooks import Capture, edit_inputs, site_module
from cotlens.models.adapters import Adapter, Dims, get

Head = tuple[int, int]


@dataclass
class HeadReading:
    dla: torch.Tensor  # [L, H] logit[a] - logit[b] written directly by each head
    dla_answer: torch.Tensor  # [L, H] logit[a] alone
    top_token: torch.Tensor  # [L, H] logit-lens argmax of each head's write
    final_resid: torch.Tensor  # [d]


def head_writes(model: nn.Module, ad: Adapter, dims: Dims, layer: int, z: torch.Tensor) -> torch.Tensor:
    """What each head adds to the residual stream: o_proj applied to that head's slice alone.

    ``z`` [n_heads * head_dim] (one position) -> [n_heads, d_model]; the projection's bias
    (GPT-2) is not attributed to any head.
    """
    proj = site_module(model, ad, "attn_heads", layer)
    eye = torch.eye(dims.n_heads, device=z.device, dtype=z.dtype).repeat_interleave(dims.head_dim, dim=1)
    masked = eye * z[None]  # row h keeps head h only
    return proj(masked) - proj(torch.zeros_like(masked[:1]))


def frozen_norm(norm: nn.Module, resid: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The final norm linearised at ``resid``: its scale is the one of the whole residual.

    For RMSNorm and LayerNorm alike, norm(c*w) - norm(0) with c = scale(resid)/scale(w)
    equals w / scale(resid) times the gain (centred for LayerNorm).
    """
    centre = isinstance(norm, nn.LayerNorm)

    def scale(x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(-1, keepdim=True) if centre else x
        return x.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-12)

    c = scale(resid[None]) / scale(w)
    return (norm(w * c) - norm(torch.zeros_like(w))) / c


@torch.no_grad()
def read_heads(model: nn.Module, ad: Adapter, dims: Dims, ids: Sequence[int], tok_a: int, tok_b: int) -> HeadReading:
    """Per-head DLA and logit-lens top token at the last position of one prompt."""
    dev = next(model.parameters()).device
    x = torch.tensor([list(ids)], device=dev)
    with Capture(model, ad, sites=("resid", "attn_heads"), positions=torch.tensor([[len(ids) - 1]], device=dev)) as cap:
        get(model, ad.base)(input_ids=x, use_cache=False)
    final = cap.out["resid"][-1]
    assert final is not None
    final = final[0, 0]
    norm, unembed = get(model, ad.final_norm), get(model, ad.unembed)
    dla, dla_a, top = [], [], []
    for layer in range(dims.n_layers):
        z = cap.out["attn_heads"][layer]
        assert z is not None
        w = head_writes(model, ad, dims, layer, z[0, 0])  # [H, d]
        logits = unembed(frozen_norm(norm, final, w)).float()  # [H, V]
        dla.append(logits[:, tok_a] - logits[:, tok_b])
        dla_a.append(logits[:, tok_a])
        top.append(unembed(norm(w)).argmax(-1))  # the logit lens applied to the head's write
    return HeadReading(torch.stack(dla), torch.stack(dla_a), torch.stack(top), final)


@torch.no_grad()
def mean_head_outputs(model: nn.Module, ad: Adapter, dims: Dims, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
    """[L, n_heads * head_dim]: every head's output averaged over all tokens of ``prompts``."""
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
def circuit_logits(
    model: nn.Module, ad: Adapter, dims: Dims, ids: Sequence[int], keep: set[Head], means: torch.Tensor
) -> torch.Tensor:
    """Last-position logits with every head outside ``keep`` replaced by its mean output."""
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
    return get(model, ad.unembed)(h[:, -1])[0].float()
