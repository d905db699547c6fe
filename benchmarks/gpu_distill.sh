#!/usr/bin/env bash
# Issue 15's experiment on a lent GPU machine (docs/distillation.md): the pruned SmolLM2 student
# healed by (a) SFT + contrastive, (b) + token-level KD, (c) the same teacher samples in one
# round. Needs a whole session's device time. After `gpu_smollm2.sh setup` twice (wheels and the
# GGUF's two halves):
#   bash benchmarks/gpu_distill.sh start      # join the GGUF, prune, run the arms one after another
#   bash benchmarks/gpu_distill.sh wait N     # follow for N seconds, then collect what exists
set -euo pipefail
RUNS=/tmp/runs
GGUF=/tmp/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
export PYTHONPATH="/tmp/site:$PWD" PATH="/tmp/site/bin:$PATH" PYTHONUNBUFFERED=1
export ITERKD_CACHE_DIR=/tmp/iterkd-cache HF_HUB_OFFLINE=1

arms() {
    local model="gguf:$GGUF" student=/tmp/students/smollm2-22l
    [ -d "$student" ] || python3 -m iterkd models prune --from "$model" --drop 8 --to "$student"
    local common=("runs_dir=$RUNS" "models.teacher.path=$model" "models.judge.path=$model"
        "models.student.path=$student" "synthesize.perplexity_model=$model")
    python3 -m iterkd run configs/smollm2-pruned-gpu.yaml name=pruned-b "${common[@]}"
    python3 -m iterkd run configs/smollm2-pruned-gpu.yaml name=pruned-a train.kd=null "${common[@]}"
    python3 -m iterkd run configs/smollm2-pruned-gpu.yaml name=pruned-c rounds=1 teacher.n=48 \
        "${common[@]}"
}

collect() {
    for run in "$RUNS"/pruned-*; do
        [ -d "$run" ] || continue
        python3 -m iterkd report "$run" --format md > "$OUT/$(basename "$run").md" 2>&1 || true
    done
    cp /tmp/distill.log "$OUT/distill.log" 2>/dev/null || true
}

case "${1:-}" in
    start)
        [ -f "$GGUF" ] || cat /tmp/gguf/smol.part00 /tmp/gguf/smol.part01 > "$GGUF"
        (arms > /tmp/distill.log 2>&1 &) ; sleep 5; tail -3 /tmp/distill.log ;;
    wait)
        until=$((SECONDS + ${2:-500}))
        while [ $SECONDS -lt $until ] && pgrep -f "iterkd (run|models prune)" >/dev/null; do sleep 10; done
        tail -20 /tmp/distill.log; collect ;;
    *) echo "usage: $0 start|wait N" >&2; exit 2 ;;
esac
