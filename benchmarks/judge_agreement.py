"""Study 2's optional LLM judge against the concept lexicon, on a finished discovery.

Reads a ``neurons.parquet``, asks a local registry model (the judge) about the ``--top``
best-ranked candidates' top tokens (answers cached like the pipeline's), and prints the
agreement with the lexicon's labels (``--labelled`` adds every lexicon-labelled candidate,
so both kinds occur): share of equal labels, Cohen's kappa, the confusion counts, and
every disagreement. No discovery is rerun.

    python benchmarks/judge_agreement.py --neurons results/neurons/qwen2.5-1.5b/neurons.parquet \\
        --judge resources/models/qwen2.5-1.5b --top 30 --labelled --json judge_agreement.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", required=True)
    ap.add_argument("--judge", required=True, help="a prepared model directory (resources/models/<name>)")
    ap.add_argument("--top", type=int, default=100)
    ap.add_argument("--labelled", action="store_true", help="also every candidate the lexicon labels")
    ap.add_argument("--cache", default=None, help="default: resources/judge/<judge name>.jsonl")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    import torch

    from cotlens.core.judge import Judge, agreement
    from cotlens.io.atomic import write_text
    from cotlens.io.parquet import read_table
    from cotlens.models.loading import load

    torch.set_num_threads(a.threads)
    t = read_table(a.neurons, columns=["layer", "neuron", "rank", "top_tokens", "lexicon"]).to_pylist()
    ranked = sorted((r for r in t if r["rank"] >= 0), key=lambda r: r["rank"])
    cand = ranked[: a.top] + ([r for r in ranked[a.top :] if r["lexicon"]] if a.labelled else [])
    rows = [(f"L{r['layer']}N{r['neuron']}", r["top_tokens"], r["lexicon"]) for r in cand]
    lm = load(a.judge, "float32", "cpu", "sdpa")
    name = lm.manifest.get("name", Path(a.judge).name)
    cache = a.cache or f"resources/judge/{name}.jsonl"
    judge = Judge(lm.model, lm.tokenizer, str(lm.manifest.get("sha256", name)), cache)
    t0 = time.perf_counter()
    res = agreement(rows, judge)
    res.update(
        judge=name,
        neurons=a.neurons,
        asked=judge.asked,
        frame_reused=judge.reused,
        seconds=round(time.perf_counter() - t0, 1),
    )
    which = f"the top {a.top} candidates" + (" and every lexicon-labelled one" if a.labelled else "")
    print(f"judge {name} on {which} ({res['n']}) of {a.neurons} ({judge.asked} questions asked, {res['seconds']} s)")
    print(
        f"agreement {res['agree']:.2f}, Cohen's kappa {res['kappa']:.2f}; concept neurons: "
        f"lexicon {res['lexicon_concepts']}, judge {res['judge_concepts']}"
    )
    judged = sorted({j for row in res["confusion"].values() for j in row})
    print("lexicon \\ judge | " + " | ".join(judged))
    for lex, row in sorted(res["confusion"].items()):
        print(f"{lex} | " + " | ".join(str(row.get(j, 0)) for j in judged))
    for d in res["disagreements"][:20]:
        print(f"  {d['neuron']}: lexicon {d['lexicon']}, judge {d['judge']}: {d['tokens']}")
    if a.json:
        write_text(a.json, json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
