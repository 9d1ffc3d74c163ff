"""The lent-GPU check of #30: a Llama-2-7B-shaped random model on CUDA, in bf16 and fp32.

Per dtype, on one model built on the GPU (random init, sdpa):
- a dense matrix product (the card's rate in that dtype, for scale);
- a prefill ([16, 256], last position read out), a short prefill ([1, 96]) and a greedy
  generation through ``core.sampling.generate_batch`` (16 prompts of 128 tokens, 64 new
  tokens each, no stop): measured against ``pipeline.plan``'s estimate for the same work
  on that GPU class (``plan.GPUS``), so the plan's GPU rates are checked, not assumed;
- per-head patching of one pair (``benchmarks/bench_patching.py``'s ``bench_one``): the
  engine against the naive loop and against TransformerLens, with their disagreement.

    python benchmarks/gpu_check.py --gpu h100 [--dtypes bfloat16 float32] [--json OUT.json]

``--save DIR --tokenizer TOK`` instead writes that model in bf16 with the tokenizer of the
model directory TOK (its vocabulary size), for the stage runs of ``benchmarks/gpu_check.sh``
(the tiny DAG on CUDA, then Studies 1 and 3 on this model, each against the plan).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_time, sync  # noqa: E402
from bench_patching import LLAMA2_7B  # noqa: E402

# --rehearse: the same steps on the CPU with a small model, to try the script without a GPU
SMALL = dict(vocab_size=512, hidden_size=128, intermediate_size=344, num_attention_heads=4, num_key_value_heads=4)


def build(dtype: torch.dtype, layers: int, device: str, shape: dict[str, int]) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):  # initialised where it runs
            cfg = LlamaConfig(attn_implementation="sdpa", **{**shape, "num_hidden_layers": layers})
            return LlamaForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(prev)


def save(out: Path, tokenizer: Path, layers: int, device: str, shape: dict[str, int]) -> None:
    """The shape with ``tokenizer``'s vocabulary, random in bf16, as a transformers directory."""
    import shutil

    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(tokenizer))
    m = build(torch.bfloat16, layers, device, {**shape, "vocab_size": vocab})
    m.save_pretrained(out)
    for f in tokenizer.glob("tokenizer*"):
        shutil.copy2(f, out / f.name)
    print(f"saved {sum(p.numel() for p in m.parameters()) / 1e9:.2f} B parameters (vocabulary {vocab}) in {out}")


def matmul_rate(dtype: torch.dtype, device: str, n: int = 8192) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = median_time(lambda: a @ b, reps=5, warmup=2)
    return 2 * n**3 / t


def plan_vs_measured(m: torch.nn.Module, dtype: str, gpu: str, device: str) -> list[dict[str, Any]]:
    """Prefills and a generation, measured and as the plan predicts them on ``gpu``."""
    from cotlens.core.sampling import SampleConfig, generate_batch
    from cotlens.pipeline import plan as P

    shape = P.Shape.from_config(m.config.to_dict())
    rates = P.GPUS[gpu][dtype]
    nbytes = P.BYTES[dtype]
    g = torch.Generator().manual_seed(0)
    rows = []

    def prefill(b: int, t: int) -> None:
        ids = torch.randint(10, shape.vocab, (b, t), generator=g).to(device)
        with torch.inference_mode():
            s = median_time(lambda: m(input_ids=ids, logits_to_keep=1, use_cache=False), reps=5, warmup=2)
        w = P.Work(calls=1, tokens=b * t, ctx=t / 2, readouts=b, loads=0)
        rows.append({"what": f"prefill [{b}, {t}]", "measured_s": s, "plan_s": rates.seconds(w, shape, nbytes)})

    prefill(16, 256)
    prefill(1, 96)
    b, t, new = 16, 128, 64
    prompts = torch.randint(10, shape.vocab, (b, t), generator=g).tolist()
    cfg = SampleConfig(max_new_tokens=new, batch_size=b)

    def generate() -> None:
        with torch.inference_mode():
            out = generate_batch(m, prompts, cfg, 0, set(), lambda ids: None, torch.device(device))
        assert all(len(o.token_ids) == new for o in out), "every row runs to max_new_tokens"

    s = median_time(generate, reps=2, warmup=1)
    w = P.Work(
        calls=1, tokens=b * t, ctx=t / 2, readouts=b, steps=new, generated=b * new, step_ctx=t + new / 2, loads=0
    )
    rows.append({"what": f"generate {b} x ({t} + {new})", "measured_s": s, "plan_s": rates.seconds(w, shape, nbytes)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpu", default="h100", help="the plan's GPU class to check (pipeline.plan.GPUS)")
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--no-patching", dest="patching", action="store_false")
    ap.add_argument("--no-transformer-lens", dest="transformer_lens", action="store_false")
    ap.add_argument("--json", default=None, help="also write the measurements here")
    ap.add_argument("--rehearse", action="store_true", help="a small model on the CPU: try the script here")
    ap.add_argument("--save", type=Path, default=None, help="write the model (bf16) here and stop")
    ap.add_argument("--tokenizer", type=Path, default=None, help="with --save: a model directory's tokenizer")
    a = ap.parse_args()
    device, shape, n_mm = ("cpu", SMALL, 512) if a.rehearse else ("cuda", LLAMA2_7B, 8192)
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device; run it on a GPU machine (or --rehearse)")
        return 2
    if a.save:
        if a.tokenizer is None:
            ap.error("--save needs --tokenizer")
        save(a.save, a.tokenizer, a.layers, device, shape)
        return 0
    import bench_patching
    import transformers

    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "by_dtype": {},
    }
    print(f"== {out['device']}; torch {out['torch']}, transformers {out['transformers']}", flush=True)
    for dtype in a.dtypes:
        dt = getattr(torch, dtype)
        t0 = time.perf_counter()
        m = build(dt, a.layers, device, shape)
        sync()
        res: dict[str, Any] = {
            "build_s": time.perf_counter() - t0,
            "matmul_tflops": matmul_rate(dt, device, n_mm) / 1e12,
        }
        print(
            f"\n== Llama-2-7B shape ({a.layers} layers), {dtype}: built in {res['build_s']:.1f} s; "
            f"8192^3 matmul {res['matmul_tflops']:.0f} TFLOP/s",
            flush=True,
        )
        res["plan"] = plan_vs_measured(m, dtype, a.gpu, device)
        print(f"| work | measured | plan ({a.gpu}) | plan error |\n|---|---|---|---|")
        for r in res["plan"]:
            err = (r["plan_s"] - r["measured_s"]) / r["measured_s"]
            r["error"] = err
            print(f"| {r['what']} | {1e3 * r['measured_s']:.1f} ms | {1e3 * r['plan_s']:.1f} ms | {100 * err:+.0f}% |")
        sys.stdout.flush()
        if a.patching:
            args = argparse.Namespace(
                tokens=96, first_diff=1 / 3, positions=8, threads=1, transformer_lens=a.transformer_lens,
                screen_only=False, device=device, batch=256, dtype=dtype,
            )  # fmt: skip
            bench_patching.bench_one(f"llama-2-7b shape ({a.layers} layers)", m, args)
        res["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else None
        out["by_dtype"][dtype] = res
        del m
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        sys.stdout.flush()
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
