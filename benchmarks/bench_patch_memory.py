"""Peak memory of the ``patch`` stage as the number of pairs grows (target: flat).

Rows are streamed to Parquet in row groups of ``patch.GROUP_ROWS`` rows (small per-pair
tables are compacted while they wait), so peak memory must not grow with the number of
pairs. Each size runs in a fresh process (peak RSS = ``ru_maxrss``) on a
tiny random-init Llama with synthetic 48-token pairs, the default patch settings
(eap-ig screen on every pair, top-16 exact, 2 full sweeps per subtask, pathways).

    python benchmarks/bench_patch_memory.py --pairs 10 100 1000 3000
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from _timing import child_runs

CFG = {
    "exact_pairs": 2,
    "top_k": 16,
    "screen": "eap-ig",
    "screen_steps": 1,
    "positions_last": 4,
    "head_batch": 64,
    "shard_pairs": 8,
}
RUNTIME = {"dtype": "float32", "device": "cpu", "attn": "sdpa"}


def build(work: Path) -> Path:
    from cotlens.circuits import fewshot
    from cotlens.circuits.prompts import GeneratorConfig, generate
    from cotlens.models.prepare import prepare
    from cotlens.models.registry import resolve
    from cotlens.models.tiny import build_tiny_llama

    corpus = [fewshot.prompt(e, s) for e, s in generate(GeneratorConfig(n_per_cell=2, n_shots=2, hops=(1, 2, 3)))]
    src = build_tiny_llama(work / "src", corpus)
    out = work / "prepared"
    prepare(resolve("tiny", {"tiny": {"source": "local", "path": str(src)}}), out)
    return out


def write_pairs(path: Path, n: int, vocab: int, length: int = 48) -> None:
    import numpy as np

    from cotlens.circuits import tables
    from cotlens.io.parquet import RunMeta, to_table, write_table

    rng = np.random.default_rng(0)
    cols: dict[str, list] = {f.name: [] for f in tables.PAIRS}  # type: ignore[type-arg]
    for i in range(n):
        clean = rng.integers(3, vocab, length).tolist()
        corrupt = list(clean)
        p = int(rng.integers(length // 4, length - 1))
        corrupt[p] = 3 + (corrupt[p] - 2) % (vocab - 3)
        row = {
            "pair_id": i,
            "prompt_id": i,
            "sample_idx": 0,
            "ontology": "fictional",
            "step": 0,
            "subtask": ("decision", "copy", "induction")[i % 3],
            "word": "w",
            "word_type": "entity",
            "replacement": "r",
            "corrupted_in": "question",
            "clean_ids": clean,
            "corrupt_ids": corrupt,
            "clean_tok": int(clean[-1]),
            "corrupt_tok": int(corrupt[p]),
            "question_len": length // 2,
            "corrupt_pos": p,
            "p_clean": 0.5,
            "kl_clean_corrupt": 1.0,
            "ld_clean": 1.0,
            "ld_corrupt": 0.0,
        }
        for k, v in row.items():
            cols[k].append(v)
    write_table(to_table(cols, tables.PAIRS), path, RunMeta("pairs", "bench"))


def child(model_dir: str, n: int, work: str) -> None:
    import pyarrow.dataset as ds

    from cotlens.circuits.stages import patch
    from cotlens.models.loading import load

    w = Path(work)
    write_pairs(w / "pairs.parquet", n, load(model_dir, "float32", "cpu").dims.vocab)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    ins = {"pairs": str(w / "pairs.parquet"), "model": str(model_dir)}
    patch.run(ins, {"patching": str(w / "patching.parquet"), "pathways": str(w / "pathways.parquet")}, CFG, RUNTIME, 1)
    secs = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # before anything reads the output back
    rows = ds.dataset(w / "patching.parquet").count_rows()
    print(json.dumps({"pairs": n, "rows": rows, "seconds": secs, "peak_mb": peak / 1024, "before_mb": base / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], int(a.child[1]), a.child[2])
        return
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build(Path(tmp))
        print(f"{'pairs':>6} {'rows':>9} {'seconds':>8} {'peak RSS MB':>12} {'RSS before the stage MB':>24}")
        for r in child_runs(__file__, model_dir, a.pairs, Path(tmp)):
            print(f"{r['pairs']:>6} {r['rows']:>9} {r['seconds']:>8.1f} {r['peak_mb']:>12.0f} {r['before_mb']:>24.0f}")


if __name__ == "__main__":
    main()
