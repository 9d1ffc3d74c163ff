"""Where a model keeps its parts: inferred from the module tree and one traced forward.

Every method module goes through an :class:`Adapter`; nothing else in cotlens knows
module names. Paths are relative to the ``*ForCausalLM`` model; ``attn_out``, ``mlp_out``,
``ffn``, ``router`` and the post norms are relative to one decoder block.

- ``attn_out``: the attention output projection (Linear or Conv1D). Its *input* is the
  concatenation of per-head outputs [n_heads * head_dim]; hooking it gives exact heads.
- ``mlp_out``: the FFN down projection. Its input is the vector of FFN neurons (some
  families, e.g. OPT, run it on flattened [batch * seq, d]; ``flat_ffn`` says so and the
  hook layer restores [batch, seq, d]).
- ``ffn``: the module whose output is the FFN's whole write (``mlp_out`` for dense FFNs,
  the MoE block for mixtures of experts).
- ``post_attn_norm`` / ``post_ffn_norm``: norms applied to a sublayer's output before the
  residual add (Gemma 2/3, OLMo 2). ``residual_scale`` multiplies both writes (Granite).
- ``final_norm`` and ``unembed``: what :func:`readout` applies, then ``logit_scale`` and
  ``softcap`` (Cohere, Granite, Gemma 2): the one path from a hidden state to logits.
- ``cache_arg``: the keyword under which a block takes its key/value cache.

:func:`infer` finds all of these from the model itself (module tree, call order, and which
module consumes which tensor in one short forward; MoE blocks by their ``*Router`` and
``*Experts`` modules); ``OVERRIDES`` holds fields inference cannot find, each row saying
why, and ``DOCUMENTED`` what inference finds where a family differs from Llama.
:mod:`cotlens.models.checks` then proves the result against the model's own outputs.
"""

from __future__ import annotations

import inspect
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, NamedTuple, Protocol, cast

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
    final_norm: str | None  # None: the last block's output is the final hidden state (OPT-350m)
    unembed: str
    router: str | None = None
    ffn: str | None = None  # None: the FFN's write is mlp_out's output
    post_attn_norm: str | None = None
    post_ffn_norm: str | None = None
    residual_scale: float = 1.0
    logit_scale: float = 1.0
    softcap: float | None = None
    cache_arg: str = "past_key_values"
    flat_ffn: bool = False
    notes: str = ""

    @property
    def ffn_module(self) -> str:
        return self.ffn or self.mlp_out

    def describe(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Fields inference cannot find, per model_type, and why; each row overrides only what it
# names. Empty today: every family of the test matrix is inferred. A row looks like
#   "my_family": {"attn_out": "attn.proj", "notes": "two Linears of width d_model after the heads"}
OVERRIDES: dict[str, dict[str, Any]] = {}

_MOE = {"mlp_out": "mlp.experts", "ffn": "mlp", "router": "mlp.gate"}

# What inference finds on tiny random-init models of each family (tests/integration/
# test_architectures.py asserts it). Documentation, not configuration.
DOCUMENTED: dict[str, dict[str, Any]] = {
    "mixtral": _MOE,
    "qwen2_moe": _MOE,  # the shared expert is part of the FFN write, not routed
    "qwen3_moe": _MOE,
    "olmoe": _MOE,
    "deepseek_v2": _MOE,  # the first_k_dense_replace leading blocks are dense (no router)
    "deepseek_v3": _MOE,  # sigmoid router, group-limited top-k, score-correction bias
    "granitemoe": {
        "mlp_out": "block_sparse_moe.experts",
        "ffn": "block_sparse_moe",
        "router": "block_sparse_moe.router",
    },
    "llama": {"attn_out": "self_attn.o_proj", "mlp_out": "mlp.down_proj", "final_norm": "model.norm"},
    "gpt2": {"attn_out": "attn.c_proj", "mlp_out": "mlp.c_proj", "final_norm": "transformer.ln_f"},
    "gpt_neox": {"attn_out": "attention.dense", "mlp_out": "mlp.dense_4h_to_h", "cache_arg": "layer_past"},
    "gptj": {"attn_out": "attn.out_proj", "mlp_out": "mlp.fc_out", "cache_arg": "layer_past"},
    "opt": {"layers": "model.decoder.layers", "mlp_out": "fc2", "flat_ffn": True},
    "falcon": {"attn_out": "self_attention.dense", "mlp_out": "mlp.dense_4h_to_h", "cache_arg": "layer_past"},
    "phi": {"attn_out": "self_attn.dense", "mlp_out": "mlp.fc2", "final_norm": "model.final_layernorm"},
    "gemma2": {"post_attn_norm": "post_attention_layernorm", "post_ffn_norm": "post_feedforward_layernorm"},
    "olmo2": {"post_attn_norm": "post_attention_layernorm", "post_ffn_norm": "post_feedforward_layernorm"},
}

CACHE_ARGS = ("past_key_values", "past_key_value", "layer_past")


def get(root: nn.Module, dotted: str) -> Any:
    obj: Any = root
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _is_linear(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"


def _is_norm(m: nn.Module) -> bool:
    return isinstance(m, nn.LayerNorm) or "norm" in type(m).__name__.lower()


def _config(model: nn.Module) -> Any:
    c = model.config
    return getattr(c, "text_config", None) or c


def _first_tensor(x: Any) -> torch.Tensor | None:
    """The first tensor of a module's input or output, copied: a family may later add to
    it in place (Falcon adds the attention output into the FFN output)."""
    if isinstance(x, (tuple, list)) and x:
        x = x[0]
    t = x if isinstance(x, torch.Tensor) else getattr(x, "last_hidden_state", None)
    return None if t is None else t.detach().clone()


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
        return False
    return a is b or bool(torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))


def _find_layers(model: nn.Module, base: str) -> str:
    """The longest ModuleList of blocks (modules holding Linears) under the decoder stack.

    Blocks of different classes are kept together here (a hybrid stack is one list) so that
    :func:`_check_blocks` can name the block that is not an attention layer."""
    best: tuple[int, str] | None = None
    for name, mod in get(model, base).named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) and all(any(_is_linear(x) for x in b.modules()) for b in mod):
            if best is None or len(mod) > best[0]:
                best = (len(mod), f"{base}.{name}")
    if best is None:
        raise CotlensError(
            f"no list of decoder blocks found under {type(model).__name__}.{base}",
            "this is not a decoder-only transformer cotlens can read; add an OVERRIDES row with 'layers'",
        )
    return best[1]


# layer kinds of ``config.layer_types`` that are softmax attention over (a window of) the prefix
ATTENTION_KINDS = frozenset({"full_attention", "sliding_attention", "chunked_attention", "attention"})
# a token mixer that is not softmax attention: no heads whose outputs and patterns cotlens reads
_NOT_ATTENTION = frozenset("mamba mixer ssm conv delta deltanet lightning recurrent rwkv lstm retention rglru".split())


def _words(name: str) -> set[str]:
    """The words of a CamelCase class name, lower-cased ("GatedDeltaNet" -> gated, delta, net)."""
    return {w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)}


def _not_attention(name: str) -> bool:
    w = _words(name)
    return bool(w & _NOT_ATTENTION) or {"linear", "attention"} <= w


def _odd_module(block: nn.Module) -> str | None:
    """The class name of a token mixer in ``block`` that is not softmax attention, if any."""
    return next(
        (type(m).__name__ for m in block.modules() if not _is_linear(m) and _not_attention(type(m).__name__)),
        None,
    )


def _attention_child(block: nn.Module) -> str | None:
    """The block's attention module: the first submodule (at any depth, for blocks that wrap
    it with its norms, as DBRX's ``norm_attn_norm.attn``) named attn/attention that is not a
    norm and holds a Linear."""
    for n, m in block.named_modules():
        last = n.rsplit(".", 1)[-1]
        if (
            n
            and re.search(r"attn|attention", last, re.I)
            and not _is_norm(m)
            and any(_is_linear(x) for x in m.modules())
        ):
            return n
    return None


def _check_blocks(mt: str, model: nn.Module, blocks: list[nn.Module]) -> str:
    """Every block must be a softmax-attention block of one kind: a hybrid stack (Mamba,
    linear attention, convolution layers between attention layers) is refused, naming the
    first block that is not. Returns the attention module's path in a block."""
    kinds = getattr(_config(model), "layer_types", None)
    if isinstance(kinds, (list, tuple)):
        for i, k in enumerate(kinds[: len(blocks)]):
            if str(k) not in ATTENTION_KINDS:
                mixer = _odd_module(blocks[i]) or type(blocks[i]).__name__
                raise CotlensError(
                    f"model type {mt!r}: block {i} is a {k} layer ({mixer}), not softmax attention",
                    "cotlens reads attention heads and patches them through a key/value cache; "
                    "hybrid stacks (Mamba, linear attention, convolutions) are not supported",
                )
    path0 = None
    for i, b in enumerate(blocks):
        odd = _odd_module(b)
        path = _attention_child(b)
        if odd is not None or path is None:
            what = f"is a {odd} layer" if odd else f"({type(b).__name__}) has no attention module cotlens can find"
            raise CotlensError(
                f"model type {mt!r}: block {i} {what}, not softmax attention",
                "cotlens reads attention heads and patches them through a key/value cache; "
                "hybrid and attention-free stacks are not supported",
            )
        a0, ai = get(blocks[0], path0 or path), get(b, path) if path == (path0 or path) else None
        if path0 is not None and (ai is None or type(ai) is not type(a0)):
            raise CotlensError(
                f"model type {mt!r}: block {i} is a {type(get(b, path)).__name__} layer, "
                f"block 0 a {type(a0).__name__}: a stack of two kinds of attention",
                "cotlens reads every block through one adapter; add an OVERRIDES row if both are one kind",
            )
        path0 = path0 or path
    assert path0 is not None
    return path0


def _find_base(model: nn.Module, mt: str) -> str:
    """The decoder stack's path: ``base_model_prefix`` where the model has it, else the
    module ``get_decoder()`` returns (Llama 4's text model names a prefix it lacks)."""
    base = getattr(model, "base_model_prefix", "")
    if base and hasattr(model, base.split(".")[0]):
        return str(base)
    dec = getattr(model, "get_decoder", None)
    found = _name_of(model, dec()) if callable(dec) and dec() is not model else None
    if not found:  # the one child that is itself a model with input embeddings
        kids = [n for n, m in model.named_children() if n and hasattr(m, "get_input_embeddings") and m is not model]
        found = kids[0] if len(kids) == 1 else None
    if not found:
        raise CotlensError(
            f"model type {mt!r}: no decoder stack (base_model_prefix {base!r} is not an attribute, get_decoder() finds none)",
            "add an OVERRIDES row with 'base'",
        )
    return found


def _name_of(root: nn.Module, target: nn.Module) -> str | None:
    return next((n for n, m in root.named_modules() if m is target), None)


@dataclass
class _Call:
    name: str
    module: nn.Module
    inp: torch.Tensor | None
    out: torch.Tensor | None


def _trace(model: nn.Module, base: str, layers_path: str) -> tuple[list[_Call], list[_Call], dict[str, Any]]:
    """One short forward recording, in call order, every module of block 0 and every module
    outside the block list with its first input and output tensor."""
    blocks = list(get(model, layers_path))
    inside: list[_Call] = []
    outside: list[_Call] = []
    seen: dict[str, Any] = {}
    handles = []
    block_ids = {id(m) for b in blocks for m in b.modules()}
    for name, mod in blocks[0].named_modules():
        if name:

            def hook(m: nn.Module, a: Any, o: Any, n: str = name) -> None:
                inside.append(_Call(n, m, _first_tensor(a), _first_tensor(o)))

            handles.append(mod.register_forward_hook(hook))
    for name, mod in model.named_modules():
        if name and id(mod) not in block_ids and not isinstance(mod, nn.ModuleList):

            def hook_o(m: nn.Module, a: Any, o: Any, n: str = name) -> None:
                outside.append(_Call(n, m, _first_tensor(a), _first_tensor(o)))

            handles.append(mod.register_forward_hook(hook_o))

    def first(m: nn.Module, a: Any, kw: dict[str, Any]) -> None:
        seen["block0_in"] = _first_tensor(a) if a else _first_tensor(kw.get("hidden_states"))

    handles.append(blocks[0].register_forward_pre_hook(first, with_kwargs=True))
    handles.append(blocks[-1].register_forward_hook(lambda m, a, o: seen.__setitem__("last_out", _first_tensor(o))))
    vocab = int(cast(Any, model).get_output_embeddings().weight.shape[0])
    ids = (torch.arange(7) * 37 + 11) % max(vocab - 1, 1) + 1
    dev = next(model.parameters()).device
    try:
        with torch.no_grad():
            out = get(model, base)(input_ids=ids[None].to(dev), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    seen["last_hidden"] = out.last_hidden_state
    return inside, outside, seen


def _find_moe(blocks: list[nn.Module]) -> dict[str, str] | None:
    """A mixture-of-experts FFN: in the first block that has one, the module whose class is
    a ``*Router`` and the fused ``*Experts`` module beside it; ``ffn`` is their parent, the
    block child whose output is the FFN's whole write (shared experts included)."""
    for block in blocks:
        mods = dict(block.named_modules())
        router = next((n for n, m in mods.items() if re.search(r"router$", type(m).__name__, re.I)), None)
        if router is None:
            continue
        parent = router.rsplit(".", 1)[0] if "." in router else ""
        experts = next(
            (
                n
                for n, m in mods.items()
                if n.startswith(parent + ".") and re.search(r"experts$", type(m).__name__, re.I)
            ),
            None,
        )
        if experts is not None and parent:
            return {"router": router, "mlp_out": experts, "ffn": parent}
    return None


def _last(calls: list[_Call], pred: Any) -> _Call | None:
    hit = [c for c in calls if pred(c)]
    return hit[-1] if hit else None


def infer(model: nn.Module) -> Adapter:
    """The adapter of ``model``: ``OVERRIDES`` where a row says so, the rest inferred."""
    mt = getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__
    over = dict(OVERRIDES.get(str(mt), {}))
    unembed_mod = cast(Any, model).get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if unembed_mod is None or not hasattr(unembed_mod, "weight"):
        raise CotlensError(
            f"model type {mt!r} has no output embedding (get_output_embeddings() is None)",
            "cotlens reads causal LMs with an unembedding: load it with AutoModelForCausalLM",
        )
    base = over.get("base") or _find_base(model, str(mt))
    layers_path = over.get("layers") or _find_layers(model, base)
    attn = _check_blocks(str(mt), model, list(get(model, layers_path)))
    inside, outside, seen = _trace(model, base, layers_path)
    d_model = int(seen["block0_in"].shape[-1])

    def width(c: _Call) -> int:
        return -1 if c.out is None else int(c.out.shape[-1])

    blocks0 = list(get(model, layers_path))[0]
    under_attn = lambda c: c.name.startswith(attn + ".")  # noqa: E731
    found: dict[str, Any] = {}
    a = _last(inside, lambda c: under_attn(c) and _is_linear(c.module) and width(c) == d_model)
    if a is None:
        raise CotlensError(f"model type {mt!r}: no output projection found in {attn}", "add an OVERRIDES row")
    found["attn_out"] = a.name
    moe = _find_moe(list(get(model, layers_path)))
    if moe is not None:
        found.update({k: v for k, v in moe.items() if k not in over})
        found["notes"] = "MoE: the experts are one fused module (no single down projection)"
    elif "mlp_out" not in over:
        f = _last(inside, lambda c: not under_attn(c) and _is_linear(c.module) and width(c) == d_model)
        if f is None:
            raise CotlensError(f"model type {mt!r}: no FFN output projection found", "add an OVERRIDES row")
        found["mlp_out"] = f.name
        found["flat_ffn"] = f.inp is not None and f.inp.dim() == 2
    ffn_name = over.get("ffn") or found.get("ffn") or found.get("mlp_out")
    ffn_call = _last(inside, lambda c: c.name == ffn_name)
    for key, src in (("post_attn_norm", a), ("post_ffn_norm", ffn_call)):
        hit = _last(inside, lambda c, s=src: _is_norm(c.module) and s is not None and _same(c.inp, s.out))
        found[key] = hit.name if hit else None
    norm = _last(
        outside, lambda c: _is_norm(c.module) and _same(c.inp, seen["last_out"]) and _same(c.out, seen["last_hidden"])
    )
    if norm is None and not _same(seen["last_out"], seen["last_hidden"]):
        raise CotlensError(
            f"model type {mt!r}: no final norm maps the last block's output to last_hidden_state",
            "cotlens needs final norm -> unembedding (a projection between them is not supported)",
        )
    found["final_norm"] = norm.name if norm is not None else None
    found["unembed"] = _name_of(model, unembed_mod)
    sig = inspect.signature(blocks0.forward).parameters
    cache = next((k for k in CACHE_ARGS if k in sig), None)
    if cache is None:
        raise CotlensError(
            f"model type {mt!r}: its blocks take no known cache argument ({', '.join(CACHE_ARGS)}); got {list(sig)}",
            "add an OVERRIDES row with 'cache_arg'",
        )
    found["cache_arg"] = cache
    c = _config(model)
    found["residual_scale"] = float(getattr(c, "residual_multiplier", None) or 1.0)
    scale = 1.0
    if getattr(c, "logit_scale", None) is not None and str(mt).startswith("cohere"):
        scale *= float(c.logit_scale)
    if getattr(c, "logits_scaling", None):
        scale /= float(c.logits_scaling)
    found["logit_scale"] = scale
    cap = getattr(c, "final_logit_softcapping", None)
    found["softcap"] = float(cap) if cap else None
    fields_ = {**found, **over, "base": base, "layers": layers_path}
    return Adapter(family=str(mt), **fields_)


_CACHE: weakref.WeakKeyDictionary[nn.Module, Adapter] = weakref.WeakKeyDictionary()


def adapter_for(model: nn.Module) -> Adapter:
    """The model's adapter, inferred once per model object."""
    if model not in _CACHE:
        _CACHE[model] = infer(model)
    return _CACHE[model]


@dataclass(frozen=True)
class Dims:
    n_layers: int
    d_model: int
    n_heads: int
    head_dim: int
    d_mlp: int
    vocab: int


def _in_out(m: nn.Module) -> tuple[int, int]:
    w = cast(torch.Tensor, m.weight)
    return (int(w.shape[0]), int(w.shape[1])) if type(m).__name__ == "Conv1D" else (int(w.shape[1]), int(w.shape[0]))


def dims(model: nn.Module, ad: Adapter | None = None) -> Dims:
    """Sizes read from module shapes; only the head count comes from the config."""
    ad = ad or adapter_for(model)
    c = _config(model)
    blocks = layers(model, ad)
    n_heads = getattr(c, "num_attention_heads", None) or getattr(c, "n_head", None) or c.num_heads
    attn_in, d_model = _in_out(get(blocks[0], ad.attn_out))
    if attn_in % n_heads:
        raise CotlensError(f"{ad.family}: attention output width {attn_in} is not a multiple of {n_heads} heads")
    if ad.router is None:
        d_mlp = _in_out(get(blocks[0], ad.mlp_out))[0]
    else:  # experts: the per-expert width
        d_mlp = getattr(c, "moe_intermediate_size", None) or getattr(c, "intermediate_size", None) or 4 * d_model
    vocab = int(get(model, ad.unembed).weight.shape[0])
    return Dims(len(blocks), d_model, int(n_heads), attn_in // n_heads, int(d_mlp), vocab)


def layers(model: nn.Module, ad: Adapter) -> list[nn.Module]:
    return list(get(model, ad.layers))


def final_norm(model: nn.Module, ad: Adapter) -> nn.Module:
    """The final norm module (an identity where the family has none)."""
    return nn.Identity() if ad.final_norm is None else get(model, ad.final_norm)


def readout(model: nn.Module, ad: Adapter, h: torch.Tensor, normed: bool = False, cap: bool = True) -> torch.Tensor:
    """The one path from a hidden state to logits: final norm (unless ``normed``, as for
    ``last_hidden_state``), unembedding, and the family's logit scale and soft-cap.

    ``cap=False`` stops before the soft-cap: the linear logit space that direct logit
    attribution decomposes (the cap is monotone per token)."""
    x = h if normed else final_norm(model, ad)(h)
    unembed = get(model, ad.unembed)
    logits = unembed(x.to(unembed.weight.dtype))
    if ad.logit_scale != 1.0:
        logits = logits * ad.logit_scale
    return capped(ad, logits) if cap else logits


def capped(ad: Adapter, logits: torch.Tensor) -> torch.Tensor:
    """The family's final soft-cap (Gemma 2/3: cap * tanh(logits / cap)); identity elsewhere."""
    return logits if ad.softcap is None else torch.tanh(logits / ad.softcap) * ad.softcap


class AdaptedModel(Protocol):
    """A model with its adapter and dimensions (an *adapted model*): what the method
    functions take first (instead of a ``(model, adapter, dims)`` triple).
    :class:`cotlens.models.loading.Loaded` is one; :func:`adapted` makes one from any module."""

    @property
    def model(self) -> nn.Module: ...
    @property
    def adapter(self) -> Adapter: ...
    @property
    def dims(self) -> Dims: ...


class Adapted(NamedTuple):
    """The plain :class:`AdaptedModel`: a module, its adapter and its dims."""

    model: nn.Module
    adapter: Adapter
    dims: Dims


def adapted(model: nn.Module, ad: Adapter | None = None) -> Adapted:
    """``model`` with its adapter (inferred unless given) and dims."""
    ad = ad or adapter_for(model)
    return Adapted(model, ad, dims(model, ad))


def _setting(cfg: Any, key: str) -> Any:
    """One setting of a transformers config, given as the config object or as the dict of its
    config.json (the text model's, for a multimodal one)."""
    if isinstance(cfg, Mapping):
        inner = cfg.get("text_config")
        cfg = inner if isinstance(inner, Mapping) and inner else cfg
        return cfg.get(key)
    cfg = getattr(cfg, "text_config", None) or cfg
    return getattr(cfg, key, None)


def context_of(cfg: Any) -> int | None:
    """The positions a model was built for (``max_position_embeddings``, ``n_positions``
    or ``n_ctx`` of its config, an object or a config.json dict); None when it names none."""
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        n = _setting(cfg, key)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return n
    return None


def context_length(model: nn.Module) -> int | None:
    """:func:`context_of` the model's config."""
    return context_of(getattr(model, "config", None))


WINDOW_KEYS = ("sliding_window", "attention_chunk_size", "sliding_window_size", "window_size")


def windows_of(cfg: Any) -> list[int]:
    """The attention windows a config (an object or a config.json dict) names (sliding
    windows, Llama 4's chunks), largest last; empty when every layer attends to the whole prefix."""
    found = {_setting(cfg, k) for k in WINDOW_KEYS}
    return sorted(int(w) for w in found if isinstance(w, int) and not isinstance(w, bool) and w > 0)


def windows(model: nn.Module) -> list[int]:
    """:func:`windows_of` the model's config."""
    return windows_of(getattr(model, "config", None))


def check_context(model: nn.Module, length: int, what: str) -> None:
    """Refuse a sequence longer than the model's context: learned position tables fail
    with an IndexError, rotary models silently read garbage positions beyond it."""
    n = context_length(model)
    if n is not None and length > n:
        raise CotlensError(
            f"{what} is {length} tokens, but the model's context is {n} positions",
            "shorten the prompts (fewer shots or facts, e.g. n_shots) or max_new_tokens, or use a longer-context model",
        )


def guard_context(model: nn.Module) -> None:
    """A forward pre-hook refusing inputs longer than the context, before the first layer
    runs. It reads only the input's shape (no device sync): a cached decode step feeds one
    token, and generation checks prompt + max_new_tokens up front (``generate_batch``)."""
    n = context_length(model)
    if n is None:
        return

    def hook(_mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if isinstance(ids, torch.Tensor) and ids.dim() == 2 and ids.shape[-1] > n:
            check_context(model, int(ids.shape[-1]), "an input")

    model.register_forward_pre_hook(hook, with_kwargs=True)
