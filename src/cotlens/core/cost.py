"""The cost model's vocabulary: a model's :class:`Shape`, a stage's :class:`Work`, the
token counts of a study's prompts (:class:`Prompts`), and the helpers each study's
``cost.py`` builds its stages' work with. ``cotlens.pipeline.plan`` turns work into
seconds and memory on a machine (``cotlens plan``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

Config = Mapping[str, Any]


@dataclass(frozen=True)
class Shape:
    """What the cost of a forward depends on, read from a transformers config.json."""

    layers: int
    d_model: int
    d_mlp: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    experts: int = 1  # routed experts per MoE layer (1: dense)
    top_k: int = 1

    @classmethod
    def from_config(cls, c: Mapping[str, Any]) -> Shape:
        c = dict(c.get("text_config") or c)
        d = int(c.get("hidden_size") or c.get("n_embd") or c["d_model"])
        heads = int(c.get("num_attention_heads") or c.get("n_head") or 1)
        experts = int(c.get("num_local_experts") or c.get("num_experts") or c.get("n_routed_experts") or 1)
        d_mlp = int(
            (c.get("moe_intermediate_size") if experts > 1 else None)
            or c.get("intermediate_size")
            or c.get("n_inner")
            or c.get("ffn_dim")
            or 4 * d
        )
        return cls(
            layers=int(c.get("num_hidden_layers") or c.get("n_layer") or 1),
            d_model=d,
            d_mlp=d_mlp,
            heads=heads,
            kv_heads=int(c.get("num_key_value_heads") or heads),
            head_dim=int(c.get("head_dim") or d // heads),
            vocab=int(c["vocab_size"]),
            experts=experts,
            top_k=int(c.get("num_experts_per_tok") or c.get("top_k") or 1) if experts > 1 else 1,
        )

    @property
    def active(self) -> float:
        """Weights a token multiplies through, the embedding and unembedding excepted."""
        attn = 2 * self.d_model * self.heads * self.head_dim + 2 * self.d_model * self.kv_heads * self.head_dim
        return self.layers * (attn + 3 * self.d_model * self.d_mlp * self.top_k)

    @property
    def weights(self) -> float:
        """Parameters in all (every expert, both embeddings counted once)."""
        attn = 2 * self.d_model * self.heads * self.head_dim + 2 * self.d_model * self.kv_heads * self.head_dim
        return self.layers * (attn + 3 * self.d_model * self.d_mlp * self.experts) + self.vocab * self.d_model

    def flops(self, ctx: float) -> float:
        """FLOPs of one token through the blocks, attending to ``ctx`` earlier tokens."""
        return 2 * self.active + 4 * self.layers * self.heads * self.head_dim * ctx

    @property
    def readout(self) -> float:
        return 2.0 * self.d_model * self.vocab

    def kv_bytes(self, nbytes: int) -> float:
        """Keys and values of one token, all layers."""
        return 2.0 * self.layers * self.kv_heads * self.head_dim * nbytes


@dataclass
class Work:
    """The model work of one stage for one model."""

    calls: float = 0  # forward calls over whole sequences (prefills)
    tokens: float = 0  # token-forwards of those calls
    ctx: float = 0  # their mean attention context
    readouts: float = 0  # positions read out through the full vocabulary
    steps: float = 0  # decode steps (one forward call each)
    generated: float = 0  # generated tokens (rows x steps)
    step_ctx: float = 0  # mean context of a generated token
    backward: float = 0  # token-forwards that also run backward (x2 the forward's FLOPs)
    fixed_s: float = 0  # work that is not the model's (probe fits, plotting)
    held: float = 0  # activation values held at once beside the weights and the cache (peak memory)
    loads: int = 1  # model loads
    note: str = ""  # where the counts are estimates

    @property
    def forwards(self) -> float:
        return self.calls + self.steps


@dataclass
class Prompts:
    """Token counts of a study's prompts under one tokenizer."""

    rows: list[dict[str, Any]]
    encode: Callable[[str], Sequence[Any]]
    tokenizer: Any = None  # the model's own (Hugging Face) tokenizer, where the plan has it

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def mean(self, col: str, where: Callable[[dict[str, Any]], bool] = lambda r: True) -> float:
        """Mean tokens of a text column (a list of texts, e.g. CoT steps, counts joined)."""

        def text(v: Any) -> str:
            return " ".join(map(str, v)) if isinstance(v, list | tuple) else str(v)

        xs = [self.count(text(r[col])) for r in self.rows if where(r) and r.get(col)]
        return sum(xs) / len(xs) if xs else 0.0

    def n(self, where: Callable[[dict[str, Any]], bool] = lambda r: True) -> int:
        return sum(1 for r in self.rows if where(r))

    def shared(self, col: str, bs: int, where: Callable[[dict[str, Any]], bool] = lambda r: True) -> float:
        """Mean tokens of the prefix the rows of a batch share, in table order, batches of
        ``bs``: what ``core.sampling.generate_batch`` runs once per batch
        (``core.sampling.shared_prefix_len``, with its minimum)."""
        from cotlens.core.sampling import shared_prefix_len

        texts = [str(r[col]) for r in self.rows if where(r)]
        batches = [texts[i : i + max(1, bs)] for i in range(0, len(texts), max(1, bs))]
        xs = [shared_prefix_len([list(self.encode(t)) for t in b]) for b in batches]
        return sum(xs) / len(xs) if xs else 0.0


def batches(n: float, bs: int) -> float:
    return math.ceil(n / max(1, bs)) if n else 0


def generation(n: float, prompt: float, gen: float, max_new: int, bs: int, shared: float = 0.0) -> Work:
    """Batched generation of ``n`` prompts of ``prompt`` tokens (``shared`` of them a prefix
    every prompt shares, run once per batch), ``gen`` tokens each on average (a batch runs
    until its longest row stops: ~1.6x the mean, at most ``max_new``)."""
    b = batches(n, bs)
    return Work(
        calls=b * (2 if shared else 1),
        tokens=b * shared + n * (prompt - shared),
        ctx=prompt / 2,
        readouts=n,
        steps=b * min(max_new, 1.6 * gen),
        generated=n * gen,
        step_ctx=prompt + gen / 2,
    )


def plus(*ws: Work) -> Work:
    out = Work(loads=0)
    for w in ws:
        tok = out.tokens + w.tokens
        out.ctx = (out.ctx * out.tokens + w.ctx * w.tokens) / tok if tok else 0
        gen = out.generated + w.generated
        out.step_ctx = (out.step_ctx * out.generated + w.step_ctx * w.generated) / gen if gen else 0
        out.tokens, out.generated = tok, gen
        for f in ("calls", "readouts", "steps", "backward", "fixed_s"):
            setattr(out, f, getattr(out, f) + getattr(w, f))
        out.held = max(out.held, w.held)
        out.loads += w.loads
    return out


def times(w: Work, k: float) -> Work:
    return replace(
        w,
        calls=w.calls * k,
        tokens=w.tokens * k,
        readouts=w.readouts * k,
        steps=w.steps * k,
        generated=w.generated * k,
        backward=w.backward * k,
        fixed_s=w.fixed_s * k,
        loads=0,
    )


@dataclass
class CostInputs:
    """What a study's cost model reads: the configuration, the model's shape, its prompts' token counts."""

    config: Config
    shape: Shape
    prompts: Prompts
    extra: dict[str, Any] = field(default_factory=dict)
