"""What each head and each FFN neuron writes into the residual stream.

A block adds ``r * (P_a(attn) + P_f(ffn))`` to the residual stream: ``attn`` is the output
of the attention output projection (a sum of one term per head plus a bias), ``ffn`` the
FFN's output (one term per neuron plus a bias), ``P_a``/``P_f`` the post norms of Gemma 2/3
and OLMo 2 (identity elsewhere) and ``r`` Granite's residual multiplier (1 elsewhere).

A norm is not linear, but at a given input it is: RMSNorm(x) = g * x / rms(x) and
LayerNorm(x) = g * (x - mean x) / std(x) + b, with the scale (rms or std) taken from the
whole input. :func:`frozen_norm` applies that linear map with the scale of ``total``:
the frozen parts of a sum then add up exactly (eps included) to ``norm(total) - norm(0)``.
This is the linearisation DLA uses for the final norm, applied to the post norms too; the
self-check ``decomposition`` (:mod:`cotlens.models.checks`) proves on every model that the
writes add up to each block's output minus its input.
"""

from __future__ import annotations

import weakref
from typing import cast

import torch
from torch import nn

from cotlens.core.hooks import site_module
from cotlens.models.adapters import Adapter, Dims, final_norm, get, layers, readout


def norm_scale(x: torch.Tensor, centre: bool) -> torch.Tensor:
    x = x - x.mean(-1, keepdim=True) if centre else x
    return x.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-30)


# keyed by the module itself (weakly): an id() could be reused by a later, different norm
_CENTRES_CACHE: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


def centres(norm: nn.Module, width: int) -> bool:
    """Whether ``norm`` subtracts the mean (LayerNorm-like): measured on inputs of ``width``
    (the width it normalises: a norm without parameters, as OLMo's, says it nowhere else),
    not read from a name."""
    key = norm
    if key not in _CENTRES_CACHE:
        p = next(norm.parameters(), None)
        dev, dt = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
        x = torch.randn(2, width, generator=torch.Generator().manual_seed(0)).to(dev, dt)
        with torch.no_grad():
            _CENTRES_CACHE[key] = bool(torch.allclose(norm(x), norm(x + 3.0), atol=1e-3, rtol=1e-3))
    return _CENTRES_CACHE[key]


def frozen_norm(norm: nn.Module, total: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
    """``norm`` linearised at ``total`` [..., d], applied to ``parts`` [..., K, d].

    (norm(c * w) - norm(0)) / c with c = scale(total) / scale(w): for RMSNorm and LayerNorm
    alike this is w's image under the linear map norm takes at ``total``.
    """
    centre = centres(norm, int(total.shape[-1]))
    c = norm_scale(total, centre)[..., None, :] / norm_scale(parts, centre)
    zero = norm(torch.zeros_like(parts[..., :1, :]))
    return (norm(parts * c) - zero) / c


def _post(model: nn.Module, ad: Adapter, layer: int, which: str) -> nn.Module | None:
    path = ad.post_attn_norm if which == "attn" else ad.post_ffn_norm
    return None if path is None else get(layers(model, ad)[layer], path)


def _through(norm: nn.Module | None, total: torch.Tensor, parts: torch.Tensor, ad: Adapter) -> torch.Tensor:
    """parts [..., K, d] of a sublayer output ``total`` [..., d] -> their residual writes."""
    out = parts if norm is None else frozen_norm(norm, total, parts)
    return out * ad.residual_scale


def constant(model: nn.Module, ad: Adapter, layer: int, which: str, total: torch.Tensor) -> torch.Tensor:
    """[..., d] the part of a sublayer's write no head/neuron owns: the projection bias
    and, under a post norm, norm(0) (a LayerNorm's bias)."""
    mod = site_module(model, ad, "attn_heads" if which == "attn" else "mlp", layer)
    bias = getattr(mod, "bias", None)
    b = torch.zeros_like(total) if bias is None else bias.to(total.dtype).expand_as(total)
    norm = _post(model, ad, layer, which)
    out = _through(norm, total, b[..., None, :], ad)[..., 0, :]
    if norm is not None:
        out = out + norm(torch.zeros_like(total)) * ad.residual_scale
    return out


def head_writes(model: nn.Module, ad: Adapter, dims: Dims, layer: int, z: torch.Tensor) -> torch.Tensor:
    """What each head adds to the residual stream: ``z`` [..., n_heads * head_dim] -> [..., H, d].

    The output projection applied to that head's slice alone (its bias is in
    :func:`constant`), then the block's post norm (linearised) and residual scale.
    """
    proj = site_module(model, ad, "attn_heads", layer)
    eye = torch.eye(dims.n_heads, device=z.device, dtype=z.dtype).repeat_interleave(dims.head_dim, dim=1)
    masked = eye * z[..., None, :]  # [..., H, H*dh]: row h keeps head h only
    raw = proj(masked) - proj(torch.zeros_like(masked[..., :1, :]))
    return _through(_post(model, ad, layer, "attn"), proj(z), raw, ad)


def out_columns(model: nn.Module, ad: Adapter, layer: int) -> torch.Tensor:
    """[d_mlp, d_model]: row j is neuron j's output weight, as it reaches the residual stream.

    Without a post norm that is the down projection's column (times the residual scale).
    Under a post norm the write is the column through the norm's linear map, whose scale
    (1/rms of the whole FFN output) is shared by every neuron of the layer at a token: the
    rows are taken at unit scale, so their directions and relative sizes are exact.
    """
    mod = site_module(model, ad, "mlp", layer)
    w = cast(torch.Tensor, mod.weight)
    cols = w.t() if isinstance(mod, nn.Linear) else w  # GPT-2's Conv1D stores [d_mlp, d_model]
    norm = _post(model, ad, layer, "ffn")
    if norm is None:
        return cols * ad.residual_scale
    with torch.no_grad():
        return _through(norm, _unit(cols), cols, ad)


def _unit(like: torch.Tensor) -> torch.Tensor:
    unit = torch.ones(like.shape[-1], device=like.device, dtype=like.dtype)
    unit[1::2] = -1.0  # scale 1 whether or not the norm centres
    return unit


def token_scale(model: nn.Module, ad: Adapter, layer: int, ffn_total: torch.Tensor) -> torch.Tensor:
    """[..., 1]: the factor that turns :func:`out_columns` (unit scale) into the writes at
    tokens whose FFN output is ``ffn_total``: neuron j writes a_j * out_columns[j] * factor.

    A norm linearised at x is one fixed linear map times a scalar of x (1/sqrt(ms(x)+eps)
    for RMSNorm, 1/sqrt(var(x)+eps) for LayerNorm); the factor is the ratio of the two
    maps on one probe vector, so the norm's eps is accounted for exactly."""
    norm = _post(model, ad, layer, "ffn")
    if norm is None:
        return torch.ones_like(ffn_total[..., :1])
    u = _unit(ffn_total)
    at_unit = frozen_norm(norm, u, u[None])[0]  # [d]
    at_tok = frozen_norm(norm, ffn_total, u.expand_as(ffn_total)[..., None, :])[..., 0, :]  # [..., d]
    return (at_tok * at_unit).sum(-1, keepdim=True) / (at_unit * at_unit).sum().clamp_min(1e-30)


def direct_logits(model: nn.Module, ad: Adapter, final: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
    """[..., K, V]: what each of ``parts`` [..., K, d], the pieces of the final residual
    ``final`` [..., d], adds to the logits before any soft-cap (direct logit attribution).

    The final norm is frozen at ``final`` (:func:`frozen_norm`) and the unembedding applied
    without its bias, times the family's logit scale: the parts' logits then sum exactly to
    the model's, minus :func:`logit_constant`, which no part owns (the unembedding's bias
    and the final LayerNorm's bias would otherwise be counted once per part).
    """
    normed = frozen_norm(final_norm(model, ad), final, parts)
    unembed = get(model, ad.unembed)
    x = normed.to(unembed.weight.dtype)
    return (unembed(x) - unembed(torch.zeros_like(x[..., :1, :]))) * ad.logit_scale


def logit_constant(model: nn.Module, ad: Adapter, final: torch.Tensor) -> torch.Tensor:
    """[..., V]: the logits of a zero residual (final norm's bias through the unembedding,
    plus its bias, times the logit scale, before any soft-cap): the part of the logits that
    :func:`direct_logits` gives to no part."""
    return readout(model, ad, torch.zeros_like(final), cap=False)
