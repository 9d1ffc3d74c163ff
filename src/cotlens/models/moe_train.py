"""``train_moe``: the offline default of Study 4, a small MoE trained from scratch.

No pretrained MoE ships as a package, and a dense model split into experts does not work
without training (see issue #6), so a transformers MoE family (Mixtral or OLMoE config,
a few layers, 8 experts, top-2) is trained on :func:`cotlens.experts.prompts.training_corpus`,
in which some topics are refused and others answered. Whatever expert specialisation the
study then finds emerged from that training. The output is a prepared model directory
(``manifest.json`` + ``weights/``) that :func:`cotlens.models.loading.load` reads like any
other, written atomically.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cotlens.io.atomic import atomic_dir
from cotlens.io.logs import Progress
from cotlens.models.registry import recipe, recipe_revision


def moe_config(r: Mapping[str, Any], tok: Any) -> Any:
    common = dict(
        vocab_size=len(tok),
        hidden_size=int(r["d_model"]),
        intermediate_size=int(r["d_expert"]),
        num_hidden_layers=int(r["layers"]),
        num_attention_heads=int(r["heads"]),
        num_key_value_heads=int(r["kv_heads"]),
        max_position_embeddings=256,
        num_experts_per_tok=int(r["top_k"]),
        router_aux_loss_coef=float(r["aux_loss"]),
        output_router_logits=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    if r["family"] == "mixtral":
        from transformers import MixtralConfig

        return MixtralConfig(num_local_experts=int(r["experts"]), **common)
    from transformers import OlmoeConfig

    return OlmoeConfig(num_experts=int(r["experts"]), norm_topk_prob=True, **common)


# the weights depend on it (the backward's reductions split by thread count). One thread:
# the rule then takes exactly the one core a profile gives it, and make run trains beside
# the first stages instead of holding both cores for its first ~70 s (600 steps: 92 s on one
# thread, 67 s on two: 134 core-seconds)
TRAIN_THREADS = 1


def train_moe(
    entry: Mapping[str, Any],
    out: str | Path,
    corpus_of: Callable[[int, int], list[str]],
    threads: int = 2,
    log_every: int = 50,
) -> dict[str, Any]:
    """Train, save to ``out`` atomically, return the manifest. ``corpus_of(seed, repeats)``
    gives the training texts (the stage passes
    :func:`cotlens.experts.prompts.training_corpus`). Always on
    :data:`TRAIN_THREADS` thread(s), whatever ``threads`` says (a profile's thread count,
    e.g. the SLURM profile's 4): the trained weights are a function of the recipe alone,
    on every machine and profile (the MoE's backward is not bit-identical across thread
    counts: 1 and 2 threads gave different models)."""
    import torch
    from transformers import AutoModelForCausalLM

    from cotlens.models.tiny import train_tokenizer, write_manifest

    r = recipe(entry)
    del threads  # kept in the signature for the stage contract; see the docstring
    torch.set_num_threads(TRAIN_THREADS)
    torch.manual_seed(int(r["seed"]))
    corpus = corpus_of(int(r["seed"]), int(r["repeats"]))
    tok = train_tokenizer(corpus, int(r["vocab_size"]))
    cfg = moe_config(r, tok)
    model = AutoModelForCausalLM.from_config(cfg)
    model.train()
    ids = [[*tok(t)["input_ids"], tok.eos_token_id] for t in corpus]  # as the stages tokenize prompts
    steps, bs = int(r["steps"]), int(r["batch_size"])
    opt = torch.optim.AdamW(model.parameters(), lr=float(r["lr"]), weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    gen = torch.Generator().manual_seed(int(r["seed"]))
    t0, losses = time.perf_counter(), []
    prog = Progress(steps, "steps", what="training")
    for step in range(steps):
        pick = torch.randint(len(ids), (bs,), generator=gen).tolist()
        rows = [ids[i] for i in pick]
        n = max(map(len, rows))
        x = torch.full((bs, n), tok.pad_token_id)
        att = torch.zeros((bs, n), dtype=torch.long)
        for i, row in enumerate(rows):
            x[i, : len(row)] = torch.tensor(row)
            att[i, : len(row)] = 1
        labels = x.masked_fill(att == 0, -100)
        outp = model(input_ids=x, attention_mask=att, labels=labels, output_router_logits=True)
        outp.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(outp.loss.detach()))
        if log_every and (step % log_every == 0 or step == steps - 1):
            prog.update(step + 1 - prog.done, note=f"loss {losses[-1]:.3f}")
    prog.close()
    model.eval()
    # the time goes to the log, not the manifest: two runs of
    # one recipe give the same bytes under resources/
    print(f"trained {steps} steps in {time.perf_counter() - t0:.1f} s", flush=True)
    manifest: dict[str, Any] = {
        "source": "train",
        "revision": recipe_revision(r),
        "recipe": r,
        "model_type": cfg.model_type,
        "final_loss": round(sum(losses[-20:]) / 20, 4),
        "path": "weights",
    }
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp / "weights")
        tok.save_pretrained(tmp / "weights")
        manifest = write_manifest(tmp, out, manifest)
    return manifest
