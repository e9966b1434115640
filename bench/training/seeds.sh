#!/usr/bin/env bash
# LISU vs LISU-seg vs LISU-semi-joint at the same budget, 3 seeds each (issue 15), on the 2 CPU
# cores of this project's CI-class machine. From the repository root, with the venv's `lowlight`:
#
#   bash bench/training/seeds.sh            # SEEDS="0 1 2" OUT=out/seeds by default
#   lowlight bench seeds --runs out/seeds/*-seed* --out bench/results   # the table
#
# One procedural set (2,000 views at 160x120, data seed 11: 1,800 train / 200 val random views),
# trained at 160x112, width 0.25 for all three; 2 decomposition epochs (LISU, LISU-semi only: LISU-seg
# has no decomposition) then 4 joint epochs, batch 8, EMA 0.999. The training seed varies; the data
# and its validation split do not. Runs go seed by seed, so a cut-short sweep still compares all
# three models on the seeds it finished. About 25 minutes per seed here (LISU and LISU-semi 10, LISU-seg 4).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# the repository's venv (make test / make demo-model create it) unless LOWLIGHT names another
if [ -z "${LOWLIGHT:-}" ]; then
    if [ -x .venv/bin/lowlight ]; then LOWLIGHT=.venv/bin/lowlight; else LOWLIGHT=lowlight; fi
fi
OUT=${OUT:-out/seeds}
SEEDS=${SEEDS:-0 1 2}
DATA=$OUT/data
if [ ! -f "$DATA/.complete" ]; then
    "$LOWLIGHT" synth --out "$DATA" --views 2000 --size 160x120 --seed 11
    touch "$DATA/.complete"
fi
COMMON=(--config lisu_small_cpu --set data.kind=llrgbd-real --data "$DATA"
        --set "data.size=[160,112]" --set data.workers=1 --set "data.options={}"
        --set decomp_epochs=2 --set epochs=4)
for seed in $SEEDS; do
    for model in lisu-small lisu-seg lisu-semi; do
        run=$OUT/$model-seed$seed
        [ -f "$run/.complete" ] && continue
        extra=()
        [ "$model" != lisu-small ] && extra=(--set "model=$model" --set "model_config={width: 0.25}")
        rm -rf "$run"
        "$LOWLIGHT" train "${COMMON[@]}" "${extra[@]}" --set "seed=$seed" --out "$run"
        touch "$run/.complete"
    done
done
