"""Extraction wall time / plain-forward wall time on the same batch (target <= 1.15).

Plain forward: ``model(ids, logits_to_keep=1)``. Extraction: the same tokens through
:func:`cotlens.circuits.extract` machinery (residual + per-head capture at 8 positions per row,
final-norm hidden state and unembedding at those positions). Uses the prepared default
model when present (run `make run` first), else a random-init model of the same shape.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from _timing import median_time

from cotlens.core.batch import logits_at
from cotlens.core.hooks import Capture
from cotlens.models.adapters import adapter_for, dims
from cotlens.models.loading import Loaded, load


def smol_shaped() -> Loaded:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        tie_word_embeddings=True,
    )
    m = LlamaForCausalLM(cfg).eval()
    return Loaded(m, None, adapter_for(m), dims(m), {"name": "random-smol-shape"}, torch.device("cpu"), "float32")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default="resources/models/smollm2-135m")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    lm = load(a.model_dir, "float32", "cpu") if Path(a.model_dir, "manifest.json").exists() else smol_shaped()
    torch.manual_seed(0)
    ids = torch.randint(0, lm.dims.vocab, (a.batch, a.seq))
    mask = torch.ones_like(ids)
    pos = torch.stack([torch.linspace(0, a.seq - 1, 8).long()] * a.batch)

    @torch.inference_mode()
    def plain() -> None:
        lm.model(input_ids=ids, attention_mask=mask, logits_to_keep=1)

    @torch.inference_mode()
    def extract() -> None:
        with Capture(lm.model, lm.adapter, ["resid", "attn_heads"], pos) as cap:
            logits_at(lm.model, lm.adapter, ids, mask, pos).argmax(-1)
        cap.stacked("resid").numpy()
        cap.stacked("attn_heads").numpy()

    # interleave to share any drift in machine load
    plain(), extract()  # warm-up
    tp, te = [], []
    for _ in range(a.reps):
        tp.append(median_time(plain, 1))
        te.append(median_time(extract, 1))
    p, e = statistics.median(tp), statistics.median(te)
    print(f"model={lm.manifest.get('name')} batch={a.batch} seq={a.seq} threads={a.threads}")
    print(f"plain forward   {p * 1000:8.1f} ms")
    print(f"extraction      {e * 1000:8.1f} ms")
    print(f"ratio           {e / p:8.3f}   (target <= 1.15)")


if __name__ == "__main__":
    main()
