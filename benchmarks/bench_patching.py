"""Per-head patching cost per clean/corrupt pair, against the naive one-forward-per-head loop.

Prints, per model shape (random init; the numbers do not depend on the weights):
- all heads, all positions: naive loop vs the engine (batched heads + layer reuse),
  and the largest difference between them;
- per-position patching over the last P positions: naive (full forward per head and
  position) vs the engine (KV cache of earlier positions reused), and that per-position
  sweep against one all-position sweep;
- TransformerLens ``patching.get_act_patch_attn_head_out_all_pos`` on the same model
  (wrapped by ``TransformerBridge``), when the optional ``bench`` extra is installed;
- the baseline plus the attribution screen (eap-ig midpoint: one forward and one
  activation backward), in plain-forward equivalents.

    python benchmarks/bench_patching.py --tokens 96 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
from _timing import median_time, sync

from cotlens.circuits import patching as P
from cotlens.models.adapters import Adapted, adapter_for, dims, get

LLAMA2_7B = dict(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
)


def shapes() -> dict[str, Callable[[], torch.nn.Module]]:
    """Model shapes by name, built lazily (random init, fp32, sdpa)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    def llama(**kw: int | bool) -> torch.nn.Module:
        return LlamaForCausalLM(LlamaConfig(attn_implementation="sdpa", **kw)).eval()

    return {
        "gpt2-small shape": lambda: GPT2LMHeadModel(
            GPT2Config(n_layer=12, n_head=12, n_embd=768, attn_implementation="sdpa")
        ).eval(),
        "smollm2-135m shape": lambda: llama(
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            tie_word_embeddings=True,
        ),
        "llama-2-7b shape": lambda: llama(**LLAMA2_7B),
    }


def transformer_lens_sweep(m: torch.nn.Module, base: P.Baseline) -> tuple[torch.Tensor, float] | None:
    """TransformerLens 4.x's all-heads all-positions sweep on the same HF model -> ([L, H] nKL, seconds)."""
    try:
        from tokenizers import Tokenizer, models
        from transformer_lens import patching as tlp
        from transformer_lens.model_bridge import TransformerBridge
        from transformers import PreTrainedTokenizerFast
    except ImportError:
        return None
    vocab = {f"t{i}": i for i in range(m.config.vocab_size)}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")), unk_token="t0")
    arch = "gpt2" if m.config.model_type == "gpt2" else "llama"
    dev = next(m.parameters()).device
    # boot_transformers rewires the model it is given, so it gets a copy
    bridge = TransformerBridge.boot_transformers(
        arch, hf_model=copy.deepcopy(m), tokenizer=tok, device=dev, dtype=next(m.parameters()).dtype
    )
    _, cache = bridge.run_with_cache(base.clean_ids)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return P.scores(base, logits[:, -1].float())[0][0]

    return timed(lambda: tlp.get_act_patch_attn_head_out_all_pos(bridge, base.corrupt_ids, cache, metric))


def diff(base: P.Baseline, a: dict, b: dict, keys: list) -> str:  # type: ignore[type-arg]
    """Largest disagreement in KL(clean||patched) and in the logit difference.

    Normalised KL divides by KL(clean||corrupt), which is ~1e-4 on a random-init model,
    so fp32 round-off in the KL (~1e-7 over a 50k vocabulary) is compared unnormalised.
    """
    kl = max(abs(a[k][0] - b[k][0]) * base.kl_clean_corrupt for k in keys)
    ld = max(abs(a[k][1] - b[k][1]) for k in keys)
    return f"max |dKL| {kl:.1e}, |dlogit diff| {ld:.1e} (KL clean||corrupt {base.kl_clean_corrupt:.1e})"


def where(a: argparse.Namespace) -> str:
    on = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"cpu, {a.threads} thread(s)"
    return f"{on}, {a.dtype}"


def timed(fn):  # type: ignore[no-untyped-def]
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument(
        "--first-diff",
        type=float,
        default=1 / 3,
        help="where the prompts first differ, as a fraction of --tokens (Study-1 pairs: median 0.9)",
    )
    ap.add_argument("--positions", type=int, default=8, help="per-position mode: the last N positions")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-transformer-lens", dest="transformer_lens", action="store_false")
    ap.add_argument("--screen-only", action="store_true", help="time the baseline and the screens only")
    ap.add_argument("--only", default=None, help="run one shape (substring match); '7b' runs the Llama-2-7B shape")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (sdpa on both)")
    ap.add_argument("--batch", type=int, default=64, help="head patches per forward (on a GPU try 512)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for name, build in shapes().items():
        if (a.only and a.only not in name) or (not a.only and "7b" in name):
            continue  # the 7B shape (28 GB in fp32) only when asked for: --only 7b
        torch.manual_seed(0)
        with torch.device(a.device):  # initialise where it runs
            m = build().to(getattr(torch, a.dtype))
        bench_one(name, m, a)
        del m


def bench_one(name: str, m: torch.nn.Module, a: argparse.Namespace) -> None:
    ad, d = adapter_for(m), dims(m)
    mh = Adapted(m, ad, d)
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(10, d.vocab, (a.tokens,), generator=g).tolist()
    corrupt = list(clean)
    at = min(a.tokens - 1, int(a.tokens * a.first_diff))
    corrupt[at] = (corrupt[at] + 1) % d.vocab
    ids = torch.tensor([clean])
    ids = ids.to(a.device)
    with torch.no_grad():
        fwd = median_time(lambda: get(m, ad.base)(input_ids=ids, use_cache=False), reps=3, warmup=1)
    base = P.baseline(mh, clean, corrupt, 1, 2, attribution=True)  # also the warm-up
    t_base = median_time(lambda: P.baseline(mh, clean, corrupt, 1, 2), reps=3, warmup=0)
    t_attr = median_time(lambda: P.baseline(mh, clean, corrupt, 1, 2, attribution=True), reps=3, warmup=0)
    t_atp = median_time(lambda: P.screen(mh, base, method="atp"), reps=3, warmup=0)
    if a.screen_only:
        print(f"== {name}: {d.n_layers} layers x {d.n_heads} heads, {a.tokens} tokens, {where(a)}")
        print(
            f"plain forward {fwd:.3f} s; baseline {t_base / fwd:5.2f} plain forwards; with the eap-ig screen "
            f"{t_attr / fwd:5.2f}; atp screen alone {t_atp / fwd:5.2f} (first difference at {at})"
        )
        return
    fast, t_fast = timed(lambda: P.patch_heads(mh, base, batch=a.batch))
    heads = list(fast)
    naive, t_naive = timed(lambda: {k: P.naive_patch(mh, base, k) for k in heads})
    err = diff(base, fast, naive, heads)
    pos = list(range(a.tokens - a.positions, a.tokens))
    per, t_per = timed(lambda: P.patch_heads_at(mh, base, pos, batch=a.batch))
    sample = heads[:: max(1, len(heads) // 24)]  # naive per-position: time a sample, scale up
    _, t_np = timed(lambda: [P.naive_patch(mh, base, k, pos=p) for k in sample for p in pos])
    t_np_all = t_np * len(heads) / len(sample)
    checked = [(p, *k) for k in sample[:4] for p in pos[:2]]
    err_p = diff(base, per, {c: P.naive_patch(mh, base, c[1:], pos=c[0]) for c in checked}, checked)
    # TransformerLens last: after its sweep our per-position timings on the CPU were 30x slower
    tl = transformer_lens_sweep(m, base) if a.transformer_lens else None
    print(f"== {name}: {d.n_layers} layers x {d.n_heads} heads, {a.tokens} tokens, {where(a)}")
    print(f"plain forward                     {fwd:8.3f} s")
    print(
        f"all heads, all positions: naive   {t_naive:8.2f} s   engine {t_fast:7.2f} s   "
        f"speed-up {t_naive / t_fast:5.2f}x   {err}"
    )
    if tl is not None:
        tl_err = max(abs(float(tl[0][k]) - fast[k][0]) * base.kl_clean_corrupt for k in heads)
        print(
            f"all heads, all positions: TransformerLens {tl[1]:8.2f} s   engine {t_fast:7.2f} s   "
            f"speed-up {tl[1] / t_fast:5.2f}x   max |dKL| {tl_err:.1e}"
        )
    else:
        print("TransformerLens: not installed (pip install -e '.[bench]')")
    print(
        f"per position (last {a.positions}): naive {t_np_all:8.2f} s (est.)   engine {t_per:7.2f} s   "
        f"speed-up {t_np_all / t_per:5.1f}x   {err_p}"
    )
    print(
        f"per-position sweep / all-position sweep (engine): {t_per / t_fast:5.2f}  "
        f"(per position: {t_per / a.positions / t_fast:5.3f})"
    )
    print(
        f"baseline (corrupt fwd + clean fwd from the first difference) {t_base / fwd:5.2f} plain forwards; "
        f"with the eap-ig screen {t_attr / fwd:5.2f}; atp screen alone {t_atp / fwd:5.2f} "
        f"(first difference at {at}/{a.tokens})"
    )


if __name__ == "__main__":
    main()
