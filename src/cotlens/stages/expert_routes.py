"""Stage ``expert_routes`` of Study 4 (MoTE / fTRI): greedy responses to the study
prompts with every router decision captured in the same forwards
(:class:`cotlens.experts.RouterCapture`); each response is classified refused/answered by
the rule set (:func:`cotlens.prompts.moe.is_refusal`) or a judge model.

``render`` and ``respond`` are shared with ``expert_effects``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cotlens import schemas
from cotlens.errors import CotlensError
from cotlens.experts import RouterCapture, n_experts
from cotlens.hooks import router_modules
from cotlens.judge import Judge
from cotlens.models.loading import Loaded, load
from cotlens.parquet import ShardWriter, read_table, to_table, write_table
from cotlens.prompts import moe
from cotlens.sampling import SampleConfig, generate_batch
from cotlens.stages.common import model_meta, set_threads


def render(tok: Any, question: str) -> str:
    """A chat model's own template when it has one, else the plain ``Q: ...\\nA:`` format."""
    if getattr(tok, "chat_template", None):
        return str(tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                           add_generation_prompt=True))  # fmt: skip
    return moe.format_prompt(question)


def respond(
    lm: Loaded, questions: Sequence[str], cfg: Mapping[str, Any],
    capture: RouterCapture | None = None,
    after_batch: Callable[[list[list[int]], list[list[int]]], None] | None = None,
) -> list[tuple[str, list[int]]]:  # fmt: skip
    """Greedy responses (text, token ids), stopping at a newline for plain-format models.
    ``after_batch(prompt_ids, response_ids)`` sees each batch."""
    tok = lm.tokenizer
    sc = SampleConfig(max_new_tokens=int(cfg["max_new_tokens"]), batch_size=int(cfg["batch_size"]))
    eos = {int(tok.eos_token_id)} if tok.eos_token_id is not None else set()
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    plain = not getattr(tok, "chat_template", None)

    def stop(ids: list[int]) -> str | None:
        return "delimiter" if plain and "\n" in tok.decode(ids[-1:]) else None

    out: list[tuple[str, list[int]]] = []
    for s in range(0, len(questions), sc.batch_size):
        ids = [tok(render(tok, q))["input_ids"] for q in questions[s : s + sc.batch_size]]
        if capture is not None:
            capture.begin(ids)
        gens = generate_batch(lm.model, ids, sc, pad, eos, stop, lm.device,
                              on_step=capture.rows if capture is not None else None)  # fmt: skip
        resp = [g.token_ids for g in gens]
        if after_batch is not None:
            after_batch(ids, resp)
        out += [(tok.decode(r, skip_special_tokens=True), r) for r in resp]
    return out


def load_moe(model_dir: str | Path, runtime: Mapping[str, Any]) -> Loaded:
    lm = load(model_dir, runtime["dtype"], runtime["device"], runtime.get("attn", "sdpa"), runtime.get("device_map"))
    if lm.adapter.router is None:
        raise CotlensError(
            f"{lm.manifest.get('name', model_dir)} ({lm.adapter.family}) is not a mixture of experts",
            "list an MoE under experts.models (the default trains one: refusal-moe)",
        )
    return lm


def refusal_classifier(
    judge_dir: str | Path | None, judge_cache: str | Path | None, runtime: Mapping[str, Any]
) -> tuple[Callable[[str, str], bool], str]:
    """``(classify(question, response) -> refused, who)``: the rule set, or the judge model."""
    if judge_dir is None:
        return (lambda _q, r: moe.is_refusal(r)), "rules"
    jl = load(judge_dir, runtime["dtype"], runtime["device"], runtime.get("attn", "sdpa"), runtime.get("device_map"))
    name = f"judge:{jl.manifest.get('name', Path(judge_dir).name)}"
    judge = Judge(jl.model, jl.tokenizer, str(jl.manifest.get("sha256", name)), judge_cache or "judge.jsonl")
    return (lambda q, r: bool(r.strip()) and judge.yes(moe.refusal_question(q, r))), name


def _arrow(v: Any, typ: pa.DataType) -> pa.Array:
    return v.cast(typ) if isinstance(v, pa.Array) else pa.array(v, type=typ)


def run_routes(
    prompts: str | Path, model_dir: str | Path, routes_out: str | Path, responses_out: str | Path,
    cfg: Mapping[str, Any], runtime: Mapping[str, Any], threads: int = 1,
    judge_dir: str | Path | None = None, judge_cache: str | Path | None = None,
) -> int:  # fmt: skip
    set_threads(threads)
    study = [r for r in read_table(prompts).to_pylist() if r["set"] == "study"]
    lm = load_moe(model_dir, runtime)
    meta = model_meta(
        "expert_routes",
        cfg,
        lm.manifest,
        lm.dtype,
        n_layers=lm.dims.n_layers,
        n_experts=n_experts(next(iter(router_modules(lm.model, lm.adapter).values()))),
    )
    writer = ShardWriter(routes_out, schemas.ROUTES, meta, group_rows=65536)
    done = 0
    prompt_len: list[int] = []
    try:
        with RouterCapture(lm.model, lm.adapter) as cap:

            def dump(ids: list[list[int]], resp: list[list[int]]) -> None:
                nonlocal done
                c = cap.columns()
                pid = np.asarray([study[done + r]["prompt_id"] for r in range(len(ids))])
                seqs = [a + b for a, b in zip(ids, resp, strict=True)]
                k = c.experts.shape[1] if c.experts.ndim == 2 else 0
                cols = {
                    "prompt_id": pid[c.row], "pos": c.pos, "phase": np.where(c.generated, "generated", "prompt"),
                    "token_id": np.asarray([seqs[r][p] for r, p in zip(c.row, c.pos, strict=True)], dtype=np.int32),
                    "layer": c.layer.astype(np.int16),
                    "experts": pa.FixedSizeListArray.from_arrays(pa.array(c.experts.astype(np.int16).ravel()), k),
                    "weights": pa.FixedSizeListArray.from_arrays(pa.array(c.weights.ravel()), k),
                }  # fmt: skip
                writer.write(to_table({n: _arrow(v, schemas.ROUTES.field(n).type) for n, v in cols.items()},
                                      schemas.ROUTES))  # fmt: skip
                done += len(ids)
                prompt_len.extend(map(len, ids))

            answers = respond(lm, [r["question"] for r in study], cfg, capture=cap, after_batch=dump)
        classify, by = refusal_classifier(judge_dir, judge_cache, runtime)
        cols: dict[str, list[Any]] = {f.name: [] for f in schemas.EXPERT_RESPONSES}
        for row, (text, ids), plen in zip(study, answers, prompt_len, strict=True):
            vals = (row["prompt_id"], text, classify(row["question"], text), not text.strip(), by,
                    plen, len(ids))  # fmt: skip
            for k, v in zip(cols, vals, strict=True):
                cols[k].append(v)
        write_table(to_table(cols, schemas.EXPERT_RESPONSES), responses_out, meta)
    except BaseException as e:
        writer.abort(e)
        raise
    writer.close()
    n_ref = sum(cols["refused"])
    print(f"{n_ref}/{len(study)} refused ({by})", flush=True)
    return n_ref
