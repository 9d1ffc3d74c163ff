"""Stage ``experts_routes`` of Study 4 (MoTE / fTRI): greedy responses to the study
prompts with every router decision captured in the same forwards
(:class:`cotlens.experts.methods.RouterCapture`); each response is classified refused/answered by
the rule set (:func:`cotlens.experts.prompts.is_refusal`) or a judge model.
"""

from __future__ import annotations

from cotlens.core.hooks import router_modules
from cotlens.experts import tables
from cotlens.experts.methods import RouterCapture, check_router, n_experts, require_moe, routes_table
from cotlens.experts.responses import prompt_ids, refusal_classifier, respond, responses_table
from cotlens.io.logs import Progress
from cotlens.io.parquet import ShardWriter, read_table, write_table
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.gate import gate
from cotlens.pipeline.stage import Params, Paths, model_meta


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    """Refusals by the rule set, or by ``inputs["judge"]`` (cached in ``runtime["judge_cache"]``)."""
    routes_out, responses_out = outputs["routes"], outputs["responses"]
    study = [r for r in read_table(inputs["prompts"]).to_pylist() if r["set"] == "study"]
    lm = require_moe(load_for_stage(inputs["model"], runtime, threads))
    out_schemas = {"routes": tables.ROUTES, "responses": tables.EXPERT_RESPONSES}
    if gate(
        "experts_routes",
        "expert maps and switching",
        check_router,
        lm,
        outputs,
        out_schemas,
        params,
        inputs["model"],
        runtime,
    ):
        return 0
    meta = model_meta(
        "experts_routes",
        params,
        lm.manifest,
        lm.dtype,
        n_layers=lm.dims.n_layers,
        n_experts=n_experts(next(iter(router_modules(lm.model, lm.adapter).values()))),
    )
    done = 0
    prompt_len: list[int] = []
    prog = Progress(len(study), "prompts", what="responses")
    with ShardWriter(routes_out, tables.ROUTES, meta, group_rows=65536) as writer:
        with RouterCapture(lm.model, lm.adapter) as cap:

            def dump(ids: list[list[int]], resp: list[list[int]]) -> None:
                nonlocal done
                pids = [study[done + r]["prompt_id"] for r in range(len(ids))]
                writer.write(routes_table(cap.columns(), pids, [a + b for a, b in zip(ids, resp, strict=True)]))
                done += len(ids)
                prompt_len.extend(map(len, ids))
                prog.update(len(ids))

            asked = prompt_ids(lm.tokenizer, [r["question"] for r in study])
            answers = respond(lm, asked, params, capture=cap, after_batch=dump)
            prog.close()
        judge = load_for_stage(inputs["judge"], runtime, threads) if "judge" in inputs else None
        classify, by = refusal_classifier(judge, runtime.get("judge_cache"))
        table = responses_table(study, answers, prompt_len, classify, by)
        write_table(table, responses_out, meta)
    n_ref = sum(table.column("refused").to_pylist())
    print(f"{n_ref}/{len(study)} refused ({by})", flush=True)
    return n_ref
