"""Tiny random-init models of every transformers family cotlens is tested on.

Two layers, d_model 64 (MoE: 32), built from a config in a fraction of a second: the
architecture test matrix (tests/integration/test_architectures.py), the self-check
benchmark and the MoE tests use them. :func:`perturb` re-initialises the weights at a
larger scale and moves every norm gain away from its default, so a missing scale or norm
in a read-out shows up (default random init, std 0.02 and unit gains, hides them).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

V = 128
_C: dict[str, Any] = dict(
    vocab_size=V,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=256,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=False,
)
_SPECIAL: dict[str, Any] = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)

DENSE = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma2",
    "gemma3_text",
    "gpt2",
    "gpt_neox",
    "gptj",
    "opt",
    "falcon",
    "phi",
    "phi3",
    "stablelm",
    "olmo2",
    "cohere",
    "granite",
)
MOE = ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "granitemoe", "deepseek_v2", "deepseek_v3")
FAMILIES = DENSE + MOE


def config(family: str) -> Any:
    import transformers as tf

    c: dict[str, Any] = dict(_C)
    moe: dict[str, Any] = dict(
        vocab_size=V,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        num_experts_per_tok=2,
        tie_word_embeddings=False,
        **_SPECIAL,
    )
    ds: dict[str, Any] = dict(
        n_routed_experts=8,
        moe_intermediate_size=16,
        intermediate_size=16,
        n_shared_experts=1,
        first_k_dense_replace=1,
        kv_lora_rank=16,
        q_lora_rank=None,
        qk_rope_head_dim=8,
        qk_nope_head_dim=8,
        v_head_dim=8,
        n_group=1,
        topk_group=1,
        **{**moe, "num_hidden_layers": 3, "num_key_value_heads": 4},
    )
    table: dict[str, Any] = {
        "llama": lambda: tf.LlamaConfig(num_key_value_heads=2, **c),
        "mistral": lambda: tf.MistralConfig(num_key_value_heads=2, **c),
        "qwen2": lambda: tf.Qwen2Config(num_key_value_heads=2, **c),
        "qwen3": lambda: tf.Qwen3Config(num_key_value_heads=2, head_dim=16, **c),
        "gemma2": lambda: tf.Gemma2Config(num_key_value_heads=2, head_dim=16, **c),
        "gemma3_text": lambda: tf.Gemma3TextConfig(
            num_key_value_heads=2, head_dim=16, final_logit_softcapping=20.0, **c
        ),
        "gpt2": lambda: tf.GPT2Config(vocab_size=V, n_embd=64, n_layer=2, n_head=4, n_positions=256, **_SPECIAL),
        "gpt_neox": lambda: tf.GPTNeoXConfig(**c),
        "gptj": lambda: tf.GPTJConfig(
            vocab_size=V,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_positions=256,
            rotary_dim=8,
            tie_word_embeddings=False,
            **_SPECIAL,
        ),
        "opt": lambda: tf.OPTConfig(
            vocab_size=V,
            hidden_size=64,
            ffn_dim=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            word_embed_proj_dim=64,
            max_position_embeddings=256,
            enable_bias=True,
            **_SPECIAL,
        ),
        "falcon": lambda: tf.FalconConfig(
            vocab_size=V, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, bias=True, **_SPECIAL
        ),
        "phi": lambda: tf.PhiConfig(**c),
        "phi3": lambda: tf.Phi3Config(**c),
        "stablelm": lambda: tf.StableLmConfig(num_key_value_heads=4, **c),
        "olmo2": lambda: tf.Olmo2Config(**c),
        "cohere": lambda: tf.CohereConfig(**c, logit_scale=0.25),
        "granite": lambda: tf.GraniteConfig(**c, residual_multiplier=0.5, logits_scaling=4.0, embedding_multiplier=3.0),
        "mixtral": lambda: tf.MixtralConfig(num_local_experts=8, intermediate_size=16, **moe),
        "qwen2_moe": lambda: tf.Qwen2MoeConfig(
            num_experts=8,
            moe_intermediate_size=16,
            shared_expert_intermediate_size=16,
            intermediate_size=16,
            norm_topk_prob=True,
            **moe,
        ),
        "qwen3_moe": lambda: tf.Qwen3MoeConfig(
            num_experts=8, moe_intermediate_size=16, intermediate_size=16, **{**moe, "head_dim": 8}
        ),
        "olmoe": lambda: tf.OlmoeConfig(num_experts=8, intermediate_size=16, **moe),
        "granitemoe": lambda: tf.GraniteMoeConfig(
            num_local_experts=8, intermediate_size=16, residual_multiplier=0.5, logits_scaling=2.0, **moe
        ),
        "deepseek_v2": lambda: tf.DeepseekV2Config(topk_method="greedy", **ds),
        "deepseek_v3": lambda: tf.DeepseekV3Config(**ds),
    }
    if family not in table:
        raise ValueError(f"no tiny config for {family!r}; known: {sorted(table)}")
    return table[family]()


def build(family: str, seed: int = 0, attn: str = "eager") -> nn.Module:
    """A random-init ``*ForCausalLM`` of ``family`` in eval mode (default HF init)."""
    import transformers as tf

    torch.manual_seed(seed)
    return tf.AutoModelForCausalLM.from_config(config(family), attn_implementation=attn).eval()


@torch.no_grad()
def perturb(model: nn.Module, seed: int = 0, std: float = 0.15, gain: float = 0.5) -> nn.Module:
    """Matrices ~ N(0, std), vectors of norms = default + N(0, gain), other vectors ~ N(0, 0.1)."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        is_norm = isinstance(mod, nn.LayerNorm) or "norm" in type(mod).__name__.lower()
        for p in mod.parameters(recurse=False):
            r = torch.randn(p.shape, generator=g).to(p.dtype)
            if p.dim() == 1 and is_norm:
                p.add_(gain * r)
            elif p.dim() == 1:
                p.copy_(0.1 * r)
            else:
                p.copy_(std * r)
    return model
