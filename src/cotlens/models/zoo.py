"""Tiny random-init models of every transformers family cotlens is tested on.

Two layers, d_model 64 (MoE: 32), built from a config in a fraction of a second: the
architecture test matrix (tests/integration/test_architectures.py), the self-check
benchmark and the MoE tests use them.

- ``FAMILIES``: hand-written configs (the families the studies' tests use);
- ``MORE``: every other decoder-only family of transformers whose tiny config builds
  offline, from the family's own config class with the sizes below (:func:`generic`);
- ``PARTIAL``: families whose checks refuse some methods (their stages then refuse them);
- ``REFUSED``: families cotlens refuses in one line, with the words of the refusal.

Every attention window is 5 tokens, shorter than the checks' prompts, so a window the
read-outs or the patching engine mishandle shows. :func:`perturb` re-initialises the weights at a
larger scale and moves every norm gain away from its default, so a missing scale or norm
in a read-out shows up (default random init, std 0.02 and unit gains, hides them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

V = 128
WINDOW = 5  # tokens: every sliding window / attention chunk of the zoo
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

# multi-latent attention (DeepSeek-style) at the zoo's width
_MLA: dict[str, Any] = dict(
    kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8, num_key_value_heads=4
)

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
    ds: dict[str, Any] = {
        **moe,
        **_MLA,
        "n_routed_experts": 8,
        "moe_intermediate_size": 16,
        "intermediate_size": 16,
        "n_shared_experts": 1,
        "first_k_dense_replace": 1,
        "n_group": 1,
        "topk_group": 1,
        "num_hidden_layers": 3,
    }
    table: dict[str, Any] = {
        "llama": lambda: tf.LlamaConfig(num_key_value_heads=2, **c),
        "mistral": lambda: tf.MistralConfig(num_key_value_heads=2, sliding_window=WINDOW, **c),
        "qwen2": lambda: tf.Qwen2Config(num_key_value_heads=2, **c),
        "qwen3": lambda: tf.Qwen3Config(num_key_value_heads=2, head_dim=16, **c),
        "gemma2": lambda: tf.Gemma2Config(num_key_value_heads=2, head_dim=16, sliding_window=WINDOW, **c),
        "gemma3_text": lambda: tf.Gemma3TextConfig(
            num_key_value_heads=2, head_dim=16, final_logit_softcapping=20.0, sliding_window=WINDOW, **c
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
    if family in table:
        return table[family]()
    if family in MORE or family in REFUSED or family in PARTIAL:
        return generic(family, **{**MORE.get(family, {}), **REFUSED.get(family, ("", {}))[1]})
    raise ValueError(f"no tiny config for {family!r}; known: {sorted([*table, *MORE, *REFUSED])}")


# the sizes :func:`generic` sets where the family's config class has the key (its own
# name or an alias in ``attribute_map``)
_GENERIC: dict[str, Any] = dict(
    _C,
    num_key_value_heads=2,
    head_dim=16,
    num_experts=4,
    num_local_experts=4,
    n_routed_experts=4,
    num_experts_per_tok=2,
    moe_intermediate_size=16,
    n_positions=256,
    ffn_dim=96,
    n_inner=96,
)


def generic(family: str, **extra: Any) -> Any:
    """A tiny config of ``family`` from its own config class: the sizes of ``_GENERIC`` it
    knows, windows of ``WINDOW`` tokens where it has one, then ``extra``."""
    from transformers import CONFIG_MAPPING

    cls = CONFIG_MAPPING[family]
    default = cls()
    known = set(getattr(cls, "attribute_map", {}))
    kw = {k: v for k, v in _GENERIC.items() if hasattr(default, k) or k in known}
    for k in ("sliding_window", "attention_chunk_size"):
        if getattr(default, k, None):
            kw[k] = WINDOW
    return cls(**{**kw, **extra})


# every other decoder-only family whose tiny config builds offline (transformers 5.23),
# with what its config needs beyond :func:`generic`'s sizes
MORE: dict[str, dict[str, Any]] = {
    **{
        f: {}
        for f in (
            "afmoe apertus arcee aria_text biogpt bitnet bloom cohere2 cohere2_moe ctrl cwm diffllama ernie4_5 "
            "ernie4_5_moe exaone4 exaone_moe flex_olmo flint gemma glm glm4 glm4_moe gpt-sw3 gpt_bigcode gpt_oss "
            "granite_swa granitemoe_swa granitemoeshared helium hunyuan_v1_dense hy_v3 hyperclovax internlm3 "
            "iquestcoder jais2 kolibri1 laguna lfm2 llama4_text mellum mimo_v2_flash minimax_m2 "
            "minimax_m3_vl_text ministral ministral3 moshi mpt nanochat nemotron olmo olmo3 persimmon phimoe "
            "seed_oss smollm3 solar_open starcoder2 vaultgemma xglm"
        ).split()
    },
    "codegen": {"rotary_dim": 8},
    "glm4_moe_lite": _MLA,
    "axk1": {**_MLA, "q_lora_rank": 16, "head_dim": 8, "n_group": 1, "topk_group": 1},
    "youtu": {**_MLA, "q_lora_rank": 16, "head_dim": 8},
    "gpt_neo": {"attention_types": [[["global", "local"], 1]], "window_size": WINDOW},
    "dbrx": {
        "d_model": 64,
        "n_heads": 4,
        "n_layers": 2,
        "max_seq_len": 256,
        "attn_config": {"kv_n_heads": 2, "rope_theta": 10000.0, "clip_qkv": 8.0},
        "ffn_config": {"ffn_hidden_size": 32, "moe_num_experts": 4, "moe_top_k": 2},
    },
}

# families refused in one line: (the words the refusal must contain, config extras)
REFUSED: dict[str, tuple[str, dict[str, Any]]] = {
    "mamba": ("block 0 is a", {}),
    "falcon_mamba": ("block 0 is a", {}),
    "jamba": ("block 0 is a", {}),
    "bamba": ("block 0 is a", {}),
    "falcon_h1": ("block 0 is a hybrid layer", {}),
    "minimax": ("block 1 is a linear_attention layer", {}),
    "qwen3_next": ("block 0 is a linear_attention layer", {}),
    "qwen3_5_text": ("block 0 is a linear_attention layer", {}),
    "bailing_hybrid": ("block 0 is a linear_attention layer", {}),
    "nemotron_h": ("block 0 is a", {}),
    "granitemoehybrid": ("block 0 is a", {}),
    "olmo_hybrid": ("block 0 is a", {}),
    "recurrent_gemma": ("block 0 is a", {}),
    "lfm3": ("block 0 is a conv layer", {}),
    "xlstm": ("block 0 is a", {}),
    "rwkv": ("block 0 is a", {}),
    "deepseek_v4": ("block 0 is a heavily_compressed_attention layer", {}),
    "axk2": ("block 0 is a indexed_attention layer", {}),
    "inkling_text": ("block 0 is a hybrid_sliding layer", {}),
    "inkling2_text": ("block 0 is a hybrid_sliding layer", {}),
    "hrm_text": ("no final norm maps the last block's output to last_hidden_state", {}),
    "jetmoe": ("no FFN output projection found", {}),
    "openai-gpt": ("its blocks take no known cache argument", {}),
    "cpmant": ("no final norm maps the last block's output to last_hidden_state", {}),
    "kimi_linear": ("block 0 is a linear_attention layer", {}),
    "qwen4_exp_text": ("block 0 is a linear_attention layer", {}),
    "deepseek_v32": ("block 0 is a indexed_attention layer", {**_MLA, "q_lora_rank": 16}),
    "glm_moe_dsa": ("block 0 is a indexed_attention layer", {**_MLA, "q_lora_rank": 16}),
    "hy_v4": ("block 0 is a indexed_attention layer", {**_MLA, "q_lora_rank": 16}),
    "longcat_flash": ("has no attention module cotlens can find", {**_MLA, "q_lora_rank": 16}),
}

# families that pass the checks every study needs but fail the ones of some methods, which
# their stages then refuse: (the failing checks, why)
PARTIAL: dict[str, tuple[tuple[str, ...], str]] = {
    "hunyuan_v1_moe": (
        ("decomposition", "dla"),
        "its MoE block has no *Router module, so it is read as a dense FFN whose writes do not add up",
    ),
    "doge": (
        ("decomposition", "dla"),
        "not diagnosed further: the checks measure the difference and the stages refuse",
    ),
    "gpt_neox_japanese": (
        ("decomposition", "dla"),
        "the attention returns a dense_bias the block adds outside the output projection",
    ),
    "beam": (
        ("decomposition", "dla"),
        "not diagnosed further: the checks measure the difference and the stages refuse",
    ),
    "llama4_text": (
        ("router",),
        "its router returns (scores over every expert, logits), not top-k weights and indices",
    ),
    "dbrx": (("router",), "its router returns one tensor, not (logits, top-k weights, top-k index)"),
}


ALL = FAMILIES + tuple(MORE) + tuple(f for f in PARTIAL if f not in MORE)


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


def export(family: str, out: str | Path, tokenizer: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Save a perturbed tiny ``family`` model with the tokenizer of the directory
    ``tokenizer`` (its vocabulary and special tokens; 4096 positions) at ``out``: a model
    directory ``cotlens run --model`` and ``check-model`` take, as a user's would be."""
    import transformers as tf

    from cotlens.io.atomic import atomic_dir

    tok = tf.AutoTokenizer.from_pretrained(str(tokenizer))
    cfg = config(family)
    sizes = {"vocab_size": len(tok), "max_position_embeddings": 4096}
    special = {"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}
    for k, v in {**sizes, **special, **overrides}.items():
        setattr(cfg, k, v)
    torch.manual_seed(seed)
    model = perturb(tf.AutoModelForCausalLM.from_config(cfg).eval(), seed)
    with atomic_dir(out) as tmp:
        cast(Any, model).save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return Path(out)
