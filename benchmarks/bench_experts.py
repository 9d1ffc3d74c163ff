"""Study 4 router capture: generation time with every router decision recorded.

Capture runs inside the forwards that generate (forward hooks on the routers that keep
the top-k indices and weights on the device; nothing is copied to the host until the
batch ends). Prints tokens/s of greedy generation of the study prompts without and with
:class:`cotlens.experts.methods.RouterCapture` and the time ratio (target <= 1.10), for a
prepared MoE (``--model``, e.g. the trained default) and/or random-init MoE shapes.

    python benchmarks/bench_experts.py --model resources/models/refusal-moe --shape olmoe-small
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

SHAPES = {  # random-init shapes (CPU-sized; olmoe-1b-7b is the real OLMoE's, for a GPU)
    "mixtral-small": (
        "mixtral",
        dict(
            hidden_size=256,
            intermediate_size=512,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=4,
            num_local_experts=8,
            num_experts_per_tok=2,
        ),
    ),
    "olmoe-small": (
        "olmoe",
        dict(
            hidden_size=256,
            intermediate_size=128,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=8,
            num_experts=64,
            num_experts_per_tok=8,
        ),
    ),
    "olmoe-1b-7b": (
        "olmoe",
        dict(
            hidden_size=2048,
            intermediate_size=1024,
            num_hidden_layers=16,
            num_attention_heads=16,
            num_key_value_heads=16,
            num_experts=64,
            num_experts_per_tok=8,
        ),
    ),
}


def shaped(shape: str, device: str, dtype: str):  # type: ignore[no-untyped-def]
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM, OlmoeConfig, OlmoeForCausalLM

    from cotlens.experts import prompts as moe
    from cotlens.models.adapters import adapter_for, dims
    from cotlens.models.loading import Loaded
    from cotlens.models.tiny import train_tokenizer

    tok = train_tokenizer(moe.training_corpus(0), 512)
    fam, kw = SHAPES[shape]
    torch.manual_seed(0)
    cfg_cls, model_cls = (MixtralConfig, MixtralForCausalLM) if fam == "mixtral" else (OlmoeConfig, OlmoeForCausalLM)
    with torch.device(device):
        m = model_cls(cfg_cls(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **kw))
    m = m.to(getattr(torch, dtype)).eval()
    return Loaded(m, tok, adapter_for(m), dims(m), {"name": shape}, torch.device(device), dtype)


def measure(lm, n_prompts: int, new_tokens: int, reps: int) -> None:  # type: ignore[no-untyped-def]
    from _timing import sync

    from cotlens.core.sampling import SampleConfig, generate_batch
    from cotlens.experts import prompts as moe
    from cotlens.experts.methods import RouterCapture
    from cotlens.experts.responses import render

    tok = lm.tokenizer
    qs = [p.question for p in moe.study_prompts()][:n_prompts]
    ids = [tok(render(tok, q))["input_ids"] for q in qs]
    sc = SampleConfig(max_new_tokens=new_tokens, batch_size=16)
    pad = int(tok.pad_token_id)

    def captured() -> tuple[float, int, list[list[int]]]:
        """Generation with the hooks, and the routes turned into host rows per batch (as the stage does)."""
        out, n_routes = [], 0
        sync()
        t = time.perf_counter()
        with RouterCapture(lm.model, lm.adapter) as cap:
            for s in range(0, len(ids), sc.batch_size):
                batch = ids[s : s + sc.batch_size]
                cap.begin(batch)
                gens = generate_batch(lm.model, batch, sc, pad, set(), lambda _t: None, lm.device, on_step=cap.rows)
                n_routes += len(cap.routes())
                out += [g.token_ids for g in gens]
        sync()
        return time.perf_counter() - t, n_routes, out

    def plain() -> tuple[float, list[list[int]]]:
        out = []
        sync()
        t = time.perf_counter()
        for s in range(0, len(ids), sc.batch_size):
            gens = generate_batch(lm.model, ids[s : s + sc.batch_size], sc, pad, set(), lambda _t: None, lm.device)
            out += [g.token_ids for g in gens]
        sync()
        return time.perf_counter() - t, out

    plain()  # warm-up
    t_plain, t_cap = [], []
    for _ in range(reps):  # alternate, so drift hits both
        tp, ref = plain()
        tc, n_routes, got = captured()
        assert got == ref, "capture changed the generated tokens"
        t_plain.append(tp)
        t_cap.append(tc)
    n_tok = sum(map(len, ref))
    a, b = statistics.median(t_plain), statistics.median(t_cap)
    print(
        f"  {lm.manifest['name']}: {len(ids)} prompts x {new_tokens} new tokens, {reps} alternating reps: "
        f"{n_tok / a:.1f} tok/s plain, {n_tok / b:.1f} tok/s with capture ({n_routes} routes); "
        f"ratio of medians {b / a:.3f}, of minima {min(t_cap) / min(t_plain):.3f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="a prepared MoE directory (repeatable)")
    ap.add_argument("--shape", action="append", default=[], choices=sorted(SHAPES))
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import torch

    from cotlens.models.loading import load

    torch.set_num_threads(a.threads)
    print(f"router capture overhead ({a.device}, {a.dtype}, {a.threads} threads):")
    for m in a.model:
        measure(load(m, a.dtype, a.device), a.prompts, a.new_tokens, a.reps)
    for s in a.shape or ([] if a.model else ["mixtral-small", "olmoe-small"]):
        measure(shaped(s, a.device, a.dtype), a.prompts, a.new_tokens, a.reps)


if __name__ == "__main__":
    main()
