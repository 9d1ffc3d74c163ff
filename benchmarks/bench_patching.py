"""Per-head patching cost per clean/corrupt pair, against the naive one-forward-per-head loop.

Prints, per model shape (random init; the numbers do not depend on the weights):
- all heads, all positions: naive loop vs the engine (batched heads + layer reuse),
  and the largest difference between them;
- per-position patching over the last P positions: naive (full forward per head and
  position) vs the engine (KV cache of earlier positions reused), and that per-position
  sweep against one all-position sweep;
- the attribution screen (clean forward + corrupt forward + one activation backward)
  in plain-forward equivalents.

    python benchmarks/bench_patching.py --tokens 96 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch
from _timing import median_time

from cotlens import patching as P
from cotlens.models.adapters import adapter_for, dims, get


def shapes() -> dict[str, torch.nn.Module]:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=12, n_head=12, n_embd=768, attn_implementation="sdpa")).eval()
    smol = LlamaForCausalLM(
        LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True, attn_implementation="sdpa")
    ).eval()  # fmt: skip
    return {"gpt2-small shape": gpt2, "smollm2-135m shape": smol}


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--positions", type=int, default=8, help="per-position mode: the last N positions")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None, help="run one shape (substring match)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for name, m in shapes().items():
        if a.only and a.only not in name:
            continue
        bench_one(name, m, a)


def bench_one(name: str, m: torch.nn.Module, a: argparse.Namespace) -> None:
    ad, d = adapter_for(m), dims(m)
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(10, d.vocab, (a.tokens,), generator=g).tolist()
    corrupt = list(clean)
    corrupt[a.tokens // 3] = (corrupt[a.tokens // 3] + 1) % d.vocab
    ids = torch.tensor([clean])
    with torch.no_grad():
        fwd = median_time(lambda: get(m, ad.base)(input_ids=ids, use_cache=False), reps=3, warmup=1)
    base, t_attr = timed(lambda: P.baseline(m, ad, d, clean, corrupt, 1, 2, attribution=True))
    _, t_base = timed(lambda: P.baseline(m, ad, d, clean, corrupt, 1, 2, attribution=False))
    fast, t_fast = timed(lambda: P.patch_heads(m, ad, d, base))
    heads = list(fast)
    naive, t_naive = timed(lambda: {k: P.naive_patch(m, ad, d, base, k) for k in heads})
    err = max(abs(fast[k][0] - naive[k][0]) for k in heads)
    pos = list(range(a.tokens - a.positions, a.tokens))
    per, t_per = timed(lambda: P.patch_heads_at(m, ad, d, base, pos))
    sample = heads[:: max(1, len(heads) // 24)]  # naive per-position: time a sample, scale up
    _, t_np = timed(lambda: [P.naive_patch(m, ad, d, base, k, pos=p) for k in sample for p in pos])
    t_np_all = t_np * len(heads) / len(sample)
    err_p = max(abs(per[(p, *k)][0] - P.naive_patch(m, ad, d, base, k, pos=p)[0]) for k in sample[:4] for p in pos[:2])
    print(f"== {name}: {d.n_layers} layers x {d.n_heads} heads, {a.tokens} tokens, {a.threads} thread(s)")
    print(f"plain forward                     {fwd:8.3f} s")
    print(f"all heads, all positions: naive   {t_naive:8.2f} s   engine {t_fast:7.2f} s   "
          f"speed-up {t_naive / t_fast:5.2f}x   max |diff| {err:.1e}")  # fmt: skip
    print(f"per position (last {a.positions}): naive {t_np_all:8.2f} s (est.)   engine {t_per:7.2f} s   "
          f"speed-up {t_np_all / t_per:5.1f}x   max |diff| {err_p:.1e}")  # fmt: skip
    print(f"per-position sweep / all-position sweep (engine): {t_per / t_fast:5.2f}  "
          f"(per position: {t_per / a.positions / t_fast:5.3f})")  # fmt: skip
    print(f"attribution screen (clean fwd + corrupt fwd + backward) {(t_attr) / fwd:5.2f} plain forwards; "
          f"without the backward {t_base / fwd:5.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
