#!/usr/bin/env bash
# Issue 15's experiment on a lent GPU machine (docs/distillation.md): the pruned SmolLM2 student
# healed by (a) SFT + contrastive, (b) + token-level KD, (c) the same teacher samples in one
# round, (d) KD on (a)'s verified rows only. Needs most of a session's device time. After
# `gpu_smollm2.sh setup` twice (wheels and the GGUF's two halves):
#   [ROUNDS=3 ARMS="a b c d"] bash benchmarks/gpu_distill.sh start   # prune, run the arms side by side
#   bash benchmarks/gpu_distill.sh wait N     # follow for N seconds, then collect what exists
set -euo pipefail
RUNS=${RUNS:-/tmp/runs}
ROUNDS=${ROUNDS:-3}  # of the iterative arms; the one-shot arm gets ROUNDS x 16 teacher samples
ARMS=${ARMS:-a b c d}  # which of the arms below run, side by side
GGUF=/tmp/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
export PYTHONPATH="/tmp/site:$PWD" PATH="/tmp/site/bin:$PATH" PYTHONUNBUFFERED=1
export ITERKD_CACHE_DIR=/tmp/iterkd-cache HF_HUB_OFFLINE=1

arms() {
    local model="gguf:$GGUF" student=/tmp/students/smollm2-22l
    [ -d "$student" ] || python3 -m iterkd models prune --from "$model" --drop 8 --to "$student"
    common=("runs_dir=$RUNS" "models.teacher.path=$model" "models.judge.path=$model"
        "models.student.path=$student" "synthesize.perplexity_model=$model")
    # the arms share nothing but the GPU (each run has its own cache): run side by side, so one
    # arm's sandbox, analyzers and model loads overlap another's generation
    for name in $ARMS; do
        case $name in
            a) arm a rounds="$ROUNDS" train.kd=null ;;  # SFT + contrastive
            b) arm b rounds="$ROUNDS" ;;  # + KD on every teacher answer, verified or not
            # the one-shot arm spends ROUNDS rounds' teacher samples at once, and may train on as
            # many of them: its per-question caps grow with it (the 2026-12-07 run, ROUNDS=2,
            # kept them at 8, so its 32 samples a question trained no more rows than one round)
            c) arm c rounds=1 teacher.n=$((16 * ROUNDS)) train.max_rows_per_question=$((8 * ROUNDS)) \
                   train.kd.max_rows_per_question=$((8 * ROUNDS)) ;;
            # KD on the verified answers only: (a)'s rows, (a)'s steps, plus the KD term; against
            # (a) it is KD alone, against (b) it is the unverified text
            d) arm d rounds="$ROUNDS" "train.kd.rows=[verified]" ;;
            *) echo "unknown arm $name (a b c d)" >&2; exit 2 ;;
        esac
    done
    wait
}

arm() {  # name, overrides: one arm's run in the background
    local name=$1
    shift
    python3 -m iterkd run configs/smollm2-pruned-gpu.yaml "name=pruned-$name" "$@" "${common[@]}" \
        > "/tmp/pruned-$name.log" 2>&1 &
}

collect() {  # at most 8 files come back: the three reports, and one archive of the rest
    local runs=() files=()
    for run in "$RUNS"/pruned-*; do
        [ -d "$run" ] || continue
        runs+=("$(basename "$run")")
        python3 -m iterkd report "$run" --format md > "$OUT/$(basename "$run").md" 2>&1 || true
        python3 -m iterkd report "$run" --format json > "$run/report.json" 2>/dev/null || true
    done
    [ ${#runs[@]} -gt 0 ] || return 0
    cp /tmp/distill.log /tmp/pruned-*.log "$RUNS"/ 2>/dev/null || true
    cp /tmp/students/smollm2-22l/iterkd-prune.json "$RUNS"/ 2>/dev/null || true
    cd "$RUNS"
    files=(./*.log ./*.json)
    for run in "${runs[@]}"; do
        files+=($(ls "$run"/{state.json,config.yaml,events.jsonl,report.json} 2>/dev/null))
        files+=($(find "$run/rounds" -name summary.json -o -name 'greedy_*.jsonl' -o -path '*evaluate/verdicts.jsonl' | sort))
    done
    tar czf "$OUT/pruned-runs.tgz" "${files[@]}" 2>/dev/null || true
    cd - >/dev/null
    ls -la "$OUT"
}

case "${1:-}" in
    start)
        [ -f "$GGUF" ] || cat /tmp/gguf/smol.part00 /tmp/gguf/smol.part01 > "$GGUF"
        (setsid nohup bash "$0" arms > /tmp/distill.log 2>&1 < /dev/null &) ; sleep 5
        tail -3 /tmp/distill.log ;;
    arms) arms ;;
    wait)
        until=$((SECONDS + ${2:-500}))
        while [ $SECONDS -lt $until ] && pgrep -f "iterkd (run|resume|models prune)" >/dev/null; do sleep 10; done
        tail -n 5 /tmp/distill.log /tmp/pruned-*.log || true; collect ;;
    *) echo "usage: $0 start|wait N" >&2; exit 2 ;;
esac
