"""Stage ``circuits_patch``: attribution screen on every pair, exact patching of its top-K heads,
the full exact sweep (all positions and per position) on the first ``exact_pairs``
pairs of each subtask, and the parallel-pathways patches.

Resumable (``cotlens.io.shards``): every ``shard_pairs`` pairs are one shard (patching rows
and pathways rows), so a rerun after a crash patches only the pairs not yet finished.
The final ``patching.parquet`` is always streamed from the shards, so an interrupted and
resumed run gives the same bytes as an uninterrupted one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cotlens.circuits import tables
from cotlens.circuits.patching import baseline, patch_heads, patch_heads_at, patch_positions, self_check
from cotlens.core.types import PATHWAY_SETS
from cotlens.errors import CotlensError
from cotlens.io.logs import Progress
from cotlens.io.parquet import Columns, ShardWriter, read_table, write_table
from cotlens.io.shards import Shards
from cotlens.models.adapters import AdaptedModel
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.gate import gate
from cotlens.pipeline.resume import resume_key
from cotlens.pipeline.stage import Params, Paths, model_meta

GROUP_ROWS = 8192  # patching rows per Parquet row group (bounds the write buffer)
SHARD_PAIRS = 8  # pairs per resumable shard unless circuits.patch.shard_pairs says otherwise


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    pairs, model_dir = inputs["pairs"], inputs["model"]
    out, out_pathways = outputs["patching"], outputs["pathways"]
    table = read_table(pairs)  # kept columnar: one pair at a time becomes Python objects
    if table.num_rows == 0:
        raise CotlensError(f"{pairs} has no pairs", "rerun the pairs stage with more prompts")
    lm = load_for_stage(model_dir, runtime, threads)
    # at the study's own length: a sliding window shorter than the pairs shows here
    longest = max(len(ids) for ids in table.column("clean_ids").to_pylist())
    out_schemas = {"patching": tables.PATCHING, "pathways": tables.PATHWAYS}
    if gate(
        "circuits_patch",
        "activation patching",
        self_check,
        lm,
        outputs,
        out_schemas,
        params,
        model_dir,
        runtime,
        longest,
    ):
        return 0
    per = int(params["exact_pairs"])  # full sweeps per subtask; -1 = every pair
    seen: dict[str, int] = {}
    full_sweep = []
    for sub in table.column("subtask").to_pylist():
        seen[sub] = seen.get(sub, 0) + 1
        full_sweep.append(per < 0 or seen[sub] <= per)
    meta = model_meta("circuits_patch", params, lm.manifest, lm.dtype)
    per_shard = int(params["shard_pairs"])
    starts = list(range(0, table.num_rows, per_shard))
    key = resume_key(__name__, params, runtime, pairs, Path(model_dir) / "manifest.json")
    smeta = model_meta("circuits_patch", key, lm.manifest, lm.dtype)
    shards = Shards(out, "circuits_patch", smeta, len(starts))
    path_shards = Shards(out_pathways, "circuits_patch", smeta, len(starts))
    todo = shards.todo(path_shards)  # the rest: finished by an interrupted run
    prog = Progress(sum(min(per_shard, table.num_rows - starts[k]) for k in todo), "pairs")
    for k in todo:
        first = starts[k]
        cols = Columns(tables.PATCHING)
        path_cols = Columns(tables.PATHWAYS)
        for i in range(first, min(first + per_shard, table.num_rows)):
            patch_pair(lm, table.slice(i, 1).to_pylist()[0], params, full_sweep[i], cols, path_cols)
            prog.update(note=f"pair {i + 1} of {table.num_rows}: {'full sweep' if full_sweep[i] else 'screen + top-K'}")
        write_table(path_cols.table(), path_shards.path(k), smeta)
        shards.write(k, cols.table())
    prog.close()
    print(shards.summary(), flush=True)
    with ShardWriter(out, tables.PATCHING, meta, group_rows=GROUP_ROWS) as w:  # aborted on error: nothing
        for t in shards.tables():  # is left looking complete
            w.write(t)
        write_table(path_shards.concat(), out_pathways, meta)
    shards.discard()
    path_shards.discard()
    return table.num_rows


def patch_pair(
    mh: AdaptedModel,
    r: dict[str, Any],
    params: Mapping[str, Any],
    full_sweep: bool,
    cols: Columns,
    path_cols: Columns,
) -> None:
    """Screen, exact patching and pathways of one pair, appended to the column lists."""
    d = mh.dims
    base = baseline(
        mh,
        r["clean_ids"],
        r["corrupt_ids"],
        r["clean_tok"],
        r["corrupt_tok"],
        attribution=True,
        screen_method=params["screen"],  # validated by the config schema: a ScreenMethod
        screen_steps=int(params["screen_steps"]),
    )
    assert base.attribution is not None

    screen = "atp" if params["screen"] == "atp" else f"{params['screen']}:{int(params['screen_steps'])}"
    t = base.length
    corrupt_pos = int(r["corrupt_pos"])

    def add(method: str, selection: str, pos: int | None, layer: int, head: int, nkl: float, ld: float | None) -> None:
        label = "all" if pos is None else "corrupt" if pos == corrupt_pos else f"end-{t - 1 - pos}"
        cols.add(
            pair_id=r["pair_id"],
            subtask=r["subtask"],
            method=method,
            screen=screen,
            selection=selection,
            positions=label,
            pos=pos,
            layer=layer,
            head=head,
            nkl=nkl,
            logit_diff=ld,
        )

    attr = base.attribution
    for layer in range(d.n_layers):
        for h in range(d.n_heads):
            add("attribution", "all_heads", None, layer, h, float(attr[layer, h]), None)
    if full_sweep:
        exact = patch_heads(mh, base, batch=int(params["head_batch"]))
        positions = sorted({corrupt_pos} | set(range(max(0, t - int(params["positions_last"])), t)))
        for (pos, layer, h), (nkl, ld) in patch_heads_at(mh, base, positions, batch=int(params["head_batch"])).items():
            add("exact", "all_heads", pos, layer, h, nkl, ld)
    else:
        flat = attr.flatten().abs().argsort(descending=True)[: int(params["top_k"])]
        top = [(int(j) // d.n_heads, int(j) % d.n_heads) for j in flat]
        exact = patch_heads(mh, base, top, batch=int(params["head_batch"]))
    for (layer, h), (nkl, ld) in sorted(exact.items()):
        add("exact", "all_heads" if full_sweep else "screen_top_k", None, layer, h, nkl, ld)
    q = int(r["question_len"])
    sets = [range(q), range(q, t - 1), range(t - 1)]
    for name, (nkl, ld) in zip(PATHWAY_SETS, patch_positions(mh, base, sets), strict=True):
        path_cols.add(pair_id=r["pair_id"], positions=name, nkl=nkl, logit_diff=ld)
