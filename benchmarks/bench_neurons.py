"""Study 2 neuron discovery: generation speed with every FFN neuron scored, and peak memory.

Discovery scores all neurons of all layers inside the forwards that generate (no second
pass). Prints:
- tokens/s of greedy 8-shot CoT generation on N problems without and with
  :class:`cotlens.neurons.methods.NeuronScorer` (same tokens: greedy), and the time ratio
  (target <= 1.3);
- peak RSS of discovery's generation + scoring over 50 and 500 problems (fresh process
  each; tiny random-init model, every row counted, 32 new tokens each), which must not
  grow with the number of problems.

    python benchmarks/bench_neurons.py --model resources/models/smollm2-135m --problems 32
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from _timing import child_runs

SHAPES = {  # random-init Llama shapes for --shape (a GPU has no prepared model to hand)
    "smollm2-135m": dict(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3
    ),
    "llama-2-7b": dict(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32
    ),
}


def shaped(shape: str, device: str, dtype: str):  # type: ignore[no-untyped-def]
    """A random-init model of ``shape`` with a small BPE tokenizer trained on the prompts."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from cotlens.models.adapters import adapter_for, dims
    from cotlens.models.loading import Loaded
    from cotlens.models.tiny import train_tokenizer
    from cotlens.neurons import prompts as A

    cfg = A.ArithConfig(n_problems=20)
    tok = train_tokenizer([A.build_prompt(p.question, A.exemplars(cfg)["mixed"], "full") for p in A.generate(cfg)])
    torch.manual_seed(0)
    with torch.device(device):
        m = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **SHAPES[shape]))
    m = m.to(getattr(torch, dtype)).eval()
    return Loaded(m, tok, adapter_for(m), dims(m), {"name": shape}, torch.device(device), dtype)


def speed(
    model_dir: str, problems: int, threads: int, shape: str = "", device: str = "cpu", dtype: str = "float32"
) -> None:
    import torch

    from cotlens.models.loading import load
    from cotlens.neurons import prompts as A
    from cotlens.neurons.methods import NeuronScorer, solve

    torch.set_num_threads(threads)
    lm = shaped(shape, device, dtype) if shape else load(model_dir, dtype, device)
    cfg = A.ArithConfig(n_problems=problems, max_steps=2)
    ex = A.exemplars(cfg)
    ps = A.generate(cfg)
    texts = [A.build_prompt(p.question, ex["mixed"], "full") for p in ps]
    golds = [p.answer for p in ps]
    run = {"max_new_tokens": 64, "batch_size": 8}
    solve(lm, texts[:8], golds[:8], run)  # warm-up
    sync = torch.cuda.synchronize if lm.device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    plain = solve(lm, texts, golds, run)
    sync()
    t_plain = time.perf_counter() - t
    with NeuronScorer(lm, k=20, batch=8) as sc:
        t = time.perf_counter()
        scored = solve(lm, texts, golds, run, on_step=sc.rows, after_batch=lambda b: sc.commit(range(len(b))))
        sync()
        t_scored = time.perf_counter() - t
    same = [a.text for a in plain] == [a.text for a in scored]  # greedy: only bf16 near-ties may flip
    n, n2 = sum(a.n_tokens for a in plain), sum(a.n_tokens for a in scored)
    where = torch.cuda.get_device_name() if lm.device.type == "cuda" else f"cpu, {threads} thread(s)"
    name = f"{shape} shape (random init)" if shape else Path(model_dir).name
    print(f"{name}: {problems} problems, {n} generated tokens, {where}, {dtype}")
    print(
        f"without scoring {n / t_plain:7.1f} tokens/s ({t_plain:.1f} s); with all "
        f"{lm.dims.n_layers} x {lm.dims.d_mlp} neurons scored {n2 / t_scored:7.1f} tokens/s "
        f"({t_scored:.1f} s); time per token ratio {(t_scored / n2) / (t_plain / n):.3f} (target <= 1.3); "
        f"same generations: {same}"
    )


def child(model_dir: str, n: int, work: str) -> None:
    """Discovery's generation + scoring over n problems, every row counted and generating all
    32 tokens (random weights would otherwise stop at the first blank line)."""
    from cotlens.core.sampling import SampleConfig, generate_batch
    from cotlens.models.loading import load
    from cotlens.neurons import prompts as A
    from cotlens.neurons.methods import NeuronScorer

    lm = load(model_dir, "float32", "cpu")
    cfg = A.ArithConfig(n_problems=n, max_steps=2)
    ex = A.exemplars(cfg)
    ps = A.generate(cfg)
    texts = [A.build_prompt(p.question, ex["mixed"], "full") for p in ps]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    sc_cfg, pad = SampleConfig(max_new_tokens=32, batch_size=8), int(lm.tokenizer.pad_token_id)
    with NeuronScorer(lm, k=20, batch=8) as sc:
        for s in range(0, n, 8):
            ids = [lm.tokenizer(t)["input_ids"] for t in texts[s : s + 8]]
            gens = generate_batch(lm.model, ids, sc_cfg, pad, set(), lambda _: None, lm.device, on_step=sc.rows)
            sc.commit(range(len(gens)))
    secs = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"problems": n, "seconds": secs, "peak_mb": peak / 1024, "before_mb": base / 1024}))


def memory(sizes: list[int]) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_patch_memory import build

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build(Path(tmp))
        print(f"{'problems':>9} {'seconds':>8} {'peak RSS MB':>12} {'RSS before the stage MB':>24}")
        for r in child_runs(__file__, model_dir, sizes, Path(tmp)):
            print(f"{r['problems']:>9} {r['seconds']:>8.1f} {r['peak_mb']:>12.0f} {r['before_mb']:>24.0f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resources/models/smollm2-135m")
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shape", default="", choices=["", *SHAPES], help="a random-init shape instead of --model")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--memory", type=int, nargs="*", default=[50, 500], help="problem counts for the memory run")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], int(a.child[1]), a.child[2])
        return
    if a.shape or Path(a.model).exists():
        speed(a.model, a.problems, a.threads, a.shape, a.device, a.dtype)
    else:
        print(f"{a.model} is not prepared (make run prepares smollm2-135m): speed not measured")
    if a.memory:
        memory(a.memory)


if __name__ == "__main__":
    main()
