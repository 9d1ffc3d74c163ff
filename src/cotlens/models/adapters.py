"""The one architecture adapter table: where each family keeps its parts.

Every method module goes through an :class:`Adapter`; nothing else in cotlens knows
module names. Paths are relative to the ``*ForCausalLM`` model; ``layer_*`` paths are
relative to one decoder block.

- ``attn_out``: the attention output projection. Its *input* is the concatenation of
  per-head outputs [n_heads * head_dim]; hooking it gives exact per-head outputs.
- ``mlp_out``: the FFN down projection. Its input is the vector of FFN neurons.
- ``router``: the MoE router of a block (None for dense families).
- ``final_norm`` and ``unembed``: what the logit lens applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cotlens.errors import CotlensError


@dataclass(frozen=True)
class Adapter:
    family: str
    base: str  # the decoder stack (returns last_hidden_state, already final-normed)
    layers: str
    attn_out: str
    mlp_out: str
    final_norm: str
    unembed: str
    router: str | None = None
    notes: str = ""


_LLAMA_LIKE = dict(
    base="model",
    layers="model.layers",
    attn_out="self_attn.o_proj",
    mlp_out="mlp.down_proj",
    final_norm="model.norm",
    unembed="lm_head",
)

ADAPTERS: dict[str, Adapter] = {
    "llama": Adapter("llama", **_LLAMA_LIKE),
    "mistral": Adapter("mistral", **_LLAMA_LIKE),
    "qwen2": Adapter("qwen2", **_LLAMA_LIKE),
    "qwen3": Adapter("qwen3", **_LLAMA_LIKE),
    "gemma3_text": Adapter(
        "gemma3_text",
        **_LLAMA_LIKE,
        notes="embeddings scaled by sqrt(d); final logit soft-capping is not applied by the lens",
    ),
    "gemma2": Adapter("gemma2", **_LLAMA_LIKE, notes="logit soft-capping not applied by the lens"),
    "gpt2": Adapter(
        "gpt2",
        base="transformer",
        layers="transformer.h",
        attn_out="attn.c_proj",
        mlp_out="mlp.c_proj",
        final_norm="transformer.ln_f",
        unembed="lm_head",
    ),
    "mixtral": Adapter("mixtral", **{**_LLAMA_LIKE, "mlp_out": "mlp.experts"}, router="mlp.gate"),
    "qwen2_moe": Adapter("qwen2_moe", **{**_LLAMA_LIKE, "mlp_out": "mlp.experts"}, router="mlp.gate"),
    "qwen3_moe": Adapter("qwen3_moe", **{**_LLAMA_LIKE, "mlp_out": "mlp.experts"}, router="mlp.gate"),
    "olmoe": Adapter("olmoe", **{**_LLAMA_LIKE, "mlp_out": "mlp.experts"}, router="mlp.gate"),
    "deepseek_v2": Adapter(
        "deepseek_v2",
        **{**_LLAMA_LIKE, "mlp_out": "mlp.experts"},
        router="mlp.gate",
        notes="first_k_dense_replace leading blocks are dense (no router); shared experts are not routed",
    ),
    "deepseek_v3": Adapter(
        "deepseek_v3",
        **{**_LLAMA_LIKE, "mlp_out": "mlp.experts"},
        router="mlp.gate",
        notes="sigmoid router with group-limited top-k and a score-correction bias; dense leading blocks",
    ),
    "granitemoe": Adapter(
        "granitemoe",
        **{**_LLAMA_LIKE, "mlp_out": "block_sparse_moe.output_linear"},
        router="block_sparse_moe.router",
    ),
}


def adapter_for(model: nn.Module) -> Adapter:
    mt = getattr(getattr(model, "config", None), "model_type", None)
    if mt not in ADAPTERS:
        raise CotlensError(
            f"architecture {mt!r} has no adapter",
            f"add a row to cotlens.models.adapters.ADAPTERS (known: {sorted(ADAPTERS)})",
        )
    return ADAPTERS[mt]


def get(root: nn.Module, dotted: str) -> Any:
    obj: Any = root
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Dims:
    n_layers: int
    d_model: int
    n_heads: int
    head_dim: int
    d_mlp: int
    vocab: int


def dims(model: nn.Module) -> Dims:
    c = model.config
    c = getattr(c, "text_config", c)
    n_heads = getattr(c, "num_attention_heads", None) or c.n_head
    d_model = getattr(c, "hidden_size", None) or c.n_embd
    head_dim = getattr(c, "head_dim", None) or d_model // n_heads
    d_mlp = getattr(c, "intermediate_size", None) or getattr(c, "n_inner", None) or 4 * d_model
    n_layers = getattr(c, "num_hidden_layers", None) or c.n_layer
    return Dims(n_layers, d_model, n_heads, head_dim, d_mlp, c.vocab_size)


def layers(model: nn.Module, ad: Adapter) -> list[nn.Module]:
    return list(get(model, ad.layers))


def lens_logits(model: nn.Module, ad: Adapter, resid: torch.Tensor) -> torch.Tensor:
    """Logit lens: final norm, then unembedding."""
    return get(model, ad.unembed)(get(model, ad.final_norm)(resid))
