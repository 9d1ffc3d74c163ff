#!/usr/bin/env bash
# The lent-GPU check of #30, one prepared script (docs/benchmarks.md, "On a lent GPU"):
#   1. benchmarks/gpu_check.py: a Llama-2-7B-shaped random model in bf16 and fp32 on CUDA:
#      prefill and generation against the plan's GPU estimate, patching against the naive
#      loop and TransformerLens;
#   2. the tiny DAG (.test/config.yaml, every study) on CUDA through Snakemake, each stage
#      against the plan's GPU estimate (benchmarks/bench_stages.py --gpu), its tables packed
#      for benchmarks/table_agreement.py against the same DAG on the CPU;
#   3. Studies 1 and 3 of the tiny config on the 7B shape (bf16, the tiny tokenizer), each
#      stage against the plan's GPU estimate.
# Run from the repository root on the GPU machine. The machine has torch but not our pins:
# the wheels it lacks travel in .whl (pip download ... -d .whl; see docs/benchmarks.md).
# Everything it prints and packs lands in $OUT (default /tmp/gpu-check). REHEARSE=1 runs the
# same steps on the CPU (a small model in step 1): a try without a GPU, and the CPU tables
# that step 2's are compared with. STEPS=13 runs steps 1 and 3 only (step 3 reads step 2's
# tiny tokenizer).
set -u
STEPS=${STEPS:-123}
OUT=${OUT:-/tmp/gpu-check}
GPU=${GPU:-h100}
if [ "${REHEARSE:-0}" = 1 ]; then DEVICE=cpu CORES=2 SMALL="--rehearse --layers 2"; else DEVICE=cuda CORES=8 SMALL=""; fi
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "the carried wheels did not install"; exit 1; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{
  [ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, snakemake; print('torch', torch.__version__, 'transformers', transformers.__version__, 'snakemake', snakemake.__version__)"
} 2>&1 | tee "$OUT/env.txt"

# 1. the 7B shape (bf16, then fp32)
[[ $STEPS == *1* ]] && timeout "${T_7B:-330}" python3 benchmarks/gpu_check.py $SMALL --gpu "$GPU" --json "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log"

# 2. the tiny DAG on CUDA
wd=/tmp/tiny-$DEVICE
if [[ $STEPS == *2* ]]; then
rm -rf "$wd" && mkdir -p "$wd" && cp -r Snakefile workflow scripts src envs "$wd/"
python3 - "$wd" "$DEVICE" <<'EOF'
import sys, yaml
cfg = yaml.safe_load(open(".test/config.yaml"))
cfg["runtime"] = {**cfg["runtime"], "device": sys.argv[2]}
open(f"{sys.argv[1]}/config.yaml", "w").write(yaml.safe_dump(cfg, sort_keys=False))
EOF
t0=$SECONDS
timeout "${T_TINY:-240}" python3 -m snakemake -d "$wd" -s "$wd/Snakefile" --cores "$CORES" --scheduler greedy >"$OUT/tiny.log" 2>&1
rc=$?
echo "tiny DAG on $DEVICE: rc $rc, $((SECONDS - t0)) s wall" | tee -a "$OUT/tiny.log"
tail -5 "$OUT/tiny.log"
python3 benchmarks/bench_stages.py --workdir "$wd" $([ "$DEVICE" = cuda ] && echo --gpu "$GPU") --threads 4 2>&1 | tee "$OUT/tiny_plan.txt"
(cd "$wd" && find results -name '*.parquet' -o -name '*.json' -path '*figures*' -o -name '*.tsv' -path '*benchmarks*' \
  | tar -czf "$OUT/tiny-$DEVICE.tar.gz" -T -)
fi

# 3. the heavy stages on the 7B shape
[[ $STEPS == *3* ]] || exit 0
m7=/tmp/llama7b wd7=/tmp/stages7b-$DEVICE
rm -rf "$m7" "$wd7" && mkdir -p "$wd7" && cp -r Snakefile workflow scripts src envs "$wd7/"
t0=$SECONDS
python3 benchmarks/gpu_check.py $SMALL --save "$m7" --tokenizer "$wd/resources/models/tiny/weights" 2>&1 | tee "$OUT/stages7b.log"
echo "model written in $((SECONDS - t0)) s" | tee -a "$OUT/stages7b.log"
python3 - "$wd" "$wd7" "$m7" "$DEVICE" <<'EOF'
import sys, yaml
cfg = yaml.safe_load(open(f"{sys.argv[1]}/config.yaml"))
cfg.update(studies=["circuits", "digits"], active_models=["llama7b"])
cfg["models"]["llama7b"] = {"source": "local", "path": sys.argv[3]}
cfg["runtime"] = {"dtype": "bfloat16", "device": sys.argv[4], "attn": "sdpa"}
open(f"{sys.argv[2]}/config.yaml", "w").write(yaml.safe_dump(cfg, sort_keys=False))
EOF
t0=$SECONDS
timeout "${T_7B_STAGES:-300}" python3 -m snakemake -d "$wd7" -s "$wd7/Snakefile" --cores "$CORES" --scheduler greedy >>"$OUT/stages7b.log" 2>&1
echo "Studies 1 and 3 on the 7B shape, $DEVICE bf16: rc $?, $((SECONDS - t0)) s wall" | tee -a "$OUT/stages7b.log"
tail -5 "$OUT/stages7b.log"
python3 benchmarks/bench_stages.py --workdir "$wd7" $([ "$DEVICE" = cuda ] && echo --gpu "$GPU") --threads 4 2>&1 | tee "$OUT/stages7b_plan.txt"
ls -la "$OUT"
