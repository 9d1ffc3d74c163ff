"""Compare every Parquet output of a run made before #17 (results/prontoqa, results/arith, ...)
with one made after it (results/circuits, results/neurons, ...): sha256, then the table
without its schema metadata, then the cotlens metadata key by key.

    python benchmarks/compare_runs.py BASE_CHECKOUT AFTER_CHECKOUT

Prints one line per file and the counts: identical bytes; the same data with only the
metadata ``stage`` renamed (e.g. patch -> circuits_patch); anything else is DIFFERENT.
"""

import hashlib
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

base, after = Path(sys.argv[1]), Path(sys.argv[2])
DIRS = {"prontoqa": "circuits", "arith": "neurons", "digits": "digits", "experts": "experts"}
FILES = {
    ("prontoqa", "circuit.parquet"): "sufficiency.parquet",
    ("digits", "digits.parquet"): "confidence.parquet",
    ("arith", "runs.parquet"): "effects.parquet",
    ("experts", "runs.parquet"): "effects.parquet",
}
STAGES = {
    "prompts": "circuits_prompts",
    "sample": "circuits_sample",
    "extract": "circuits_sample",  # activations: recorded while sampling since #30
    "lens": "circuits_lens",
    "pairs": "circuits_pairs",
    "patch": "circuits_patch",
    "heads": "circuits_heads",
    "circuit": "circuits_sufficiency",
    "probe": "circuits_probe",
    "mult_prompts": "digits_prompts",
    "digits": "digits_confidence",
    "arith_prompts": "neurons_prompts",
    "neurons": "neurons_discovery",
    "neuron_effects": "neurons_effects",
    "expert_prompts": "experts_prompts",
    "expert_routes": "experts_routes",
    "ftri": "experts_ftri",
    "expert_effects": "experts_effects",
}


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


rows, counts = [], {"identical": 0, "stage name only": 0, "DIFFERENT": 0, "missing": 0}
for b in sorted((base / "results").rglob("*.parquet")):
    rel = b.relative_to(base / "results")
    study = rel.parts[0]
    if study not in DIRS:
        continue
    name = FILES.get((study, rel.name), rel.name)
    a = after / "results" / DIRS[study] / Path(*rel.parts[1:-1]) / name
    if not a.exists():
        counts["missing"] += 1
        rows.append(f"MISSING {rel} -> {a}")
        continue
    if sha(a) == sha(b):
        counts["identical"] += 1
        rows.append(f"identical {rel} ({sha(b)[:12]})")
        continue
    tb, ta = pq.read_table(b), pq.read_table(a)
    mb = json.loads(tb.schema.metadata[b"cotlens"])
    ma = json.loads(ta.schema.metadata[b"cotlens"])
    same_data = tb.replace_schema_metadata(None).equals(ta.replace_schema_metadata(None))
    diff = {k for k in mb.keys() | ma.keys() if mb.get(k) != ma.get(k)}
    if same_data and diff == {"stage"} and STAGES.get(mb["stage"]) == ma["stage"]:
        counts["stage name only"] += 1
        rows.append(f"same data, metadata differs only in stage {mb['stage']} -> {ma['stage']}: {rel}")
    else:
        counts["DIFFERENT"] += 1
        rows.append(
            f"DIFFERENT {rel}: same_data={same_data} meta keys differing={sorted(diff)} "
            + "; ".join(f"{k}: {mb.get(k)} -> {ma.get(k)}" for k in sorted(diff) if k != "versions")
        )
print("\n".join(rows))
print(counts)
