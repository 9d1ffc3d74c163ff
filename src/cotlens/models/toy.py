"""Toy models with a known mechanism, for validating the methods (tests and benchmarks).

- :func:`attn_only_llama`: a Llama-family model whose FFNs write nothing, so that a
  2-layer instance trained on repeated random sequences forms the textbook
  previous-token head (layer 0) and induction head (layer 1).
- :func:`train_induction`: that training loop (seconds on CPU).
- :func:`one_head_copier`: a hand-set model in which a single known head carries the
  answer: it attends uniformly and writes the unembedding direction of the tokens it
  reads; every other head and FFN writes zero.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn


class ZeroMLP(nn.Module):
    """An FFN that writes nothing (keeps ``down_proj`` so the adapter's mlp site exists)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.down_proj = nn.Linear(1, d_model, bias=False)
        nn.init.zeros_(self.down_proj.weight)
        self.down_proj.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(x[..., :1] * 0)


def attn_only_llama(vocab: int = 64, d_model: int = 64, layers: int = 2, heads: int = 4, seed: int = 0) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(  # type: ignore[call-arg]  # attn_implementation: a PretrainedConfig kwarg
        vocab_size=vocab,
        hidden_size=d_model,
        intermediate_size=4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    model = LlamaForCausalLM(cfg)
    for block in model.model.layers:
        block.mlp = ZeroMLP(d_model)
    return model


def repeated_batch(gen: torch.Generator, batch: int, half: int, vocab: int) -> torch.Tensor:
    """[batch, 1 + 2*half]: token 0 (BOS), then random tokens 1.., repeated once."""
    r = torch.randint(1, vocab, (batch, half), generator=gen)
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), r, r], dim=1)


def train_induction(
    model: nn.Module,
    steps: int = 600,
    batch: int = 64,
    half: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    weight_decay: float = 0.0,
) -> float:
    """Train on repeated random sequences; returns second-half next-token accuracy.

    The repeat length is drawn per step from half/2..half: with one fixed length a
    rotary model can attend to "the position ``half`` back" and never needs the
    previous-token/induction circuit.
    """
    vocab = int(cast(Any, model).config.vocab_size)
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(steps):
        n = int(torch.randint(half // 2, half + 1, (1,), generator=gen))
        x = repeated_batch(gen, batch, n, vocab)
        logits = model(input_ids=x).logits[:, :-1]
        loss = nn.functional.cross_entropy(logits[:, n:].reshape(-1, vocab), x[:, n + 1 :].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        x = repeated_batch(gen, 256, half, vocab)
        pred = model(input_ids=x).logits[:, half:-1].argmax(-1)
        return float((pred == x[:, half + 1 :]).float().mean())


@torch.no_grad()
def head_roles(
    model: nn.Module, half: int = 16, batch: int = 64, vocab: int | None = None, seed: int = 123
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention-pattern scores per head on repeated random sequences -> (prev [L, H], induction [L, H]).

    prev: mean attention from each position to the one before it; induction: mean
    attention from a second-half token to the token after its first occurrence.
    These identify the mechanism without any patching, so they can judge it.
    """
    vocab = vocab or int(cast(Any, model).config.vocab_size)
    x = repeated_batch(torch.Generator().manual_seed(seed), batch, half, vocab)
    att = model(input_ids=x, output_attentions=True).attentions  # per layer [B, H, T, T]
    t = x.shape[1]
    prev = torch.stack([a[:, :, torch.arange(1, t), torch.arange(0, t - 1)].mean((0, 2)) for a in att])
    q = torch.arange(half + 1, 2 * half)  # second-half r_i at position half + i, its first copy's successor at i + 1
    ind = torch.stack([a[:, :, q, q - half + 1].mean((0, 2)) for a in att])
    return prev, ind


def induction_pair(
    gen: torch.Generator, half: int, k: int, j: int, vocab: int
) -> tuple[list[int], list[int], int, int]:
    """A clean/corrupt pair for the induction circuit -> (clean, corrupt, clean answer, corrupt answer).

    clean: BOS, r_1..r_half, r_1..r_k, so the answer is r_{k+1}. corrupt: r_k and r_j
    swap places in the first copy, so the previous-token information now points the
    induction head at r_{j+1}. Same tokens, same length; only the circuit's keys differ.
    """
    x = repeated_batch(gen, 1, half, vocab)[0]
    clean = x[: half + 1 + k].tolist()
    corrupt = list(clean)
    corrupt[k], corrupt[j] = corrupt[j], corrupt[k]
    return clean, corrupt, int(x[half + 1 + k]), int(x[j + 1])


def one_head_copier(vocab: int = 32, layers: int = 2, heads: int = 4, layer: int = 1, head: int = 2) -> nn.Module:
    """Only head (``layer``, ``head``) writes: uniform attention, value = token identity,
    output = that token's unembedding direction. The last position's logits thus rise
    for every token in the prompt; changing one of them changes the answer only via
    that head."""
    from transformers import LlamaConfig, LlamaForCausalLM

    d = vocab  # one residual dimension per token keeps the mechanism readable
    hd = d // heads
    cfg = LlamaConfig(  # type: ignore[call-arg]  # attn_implementation: a PretrainedConfig kwarg
        vocab_size=vocab,
        hidden_size=d,
        intermediate_size=4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hd,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(vocab, d))
        model.lm_head.weight.copy_(torch.eye(vocab, d))
        for i, block in enumerate(model.model.layers):
            block.mlp = ZeroMLP(d)
            att = block.self_attn
            for lin in (att.q_proj, att.k_proj, att.v_proj, att.o_proj):
                lin.weight.zero_()
            if i == layer:
                # value: a hd-dim slice cannot hold all vocab directions, so the head reads
                # the first hd token dimensions and writes them back 8x stronger.
                sl = slice(head * hd, (head + 1) * hd)
                att.v_proj.weight[sl, :hd] = torch.eye(hd)
                att.o_proj.weight[:hd, sl] = 8.0 * torch.eye(hd)
    return model
