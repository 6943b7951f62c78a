#!/usr/bin/env bash
# Train the noise-prepared (-reg) networks and the Fig. 4 RNNs (t = 14, 28, 56) into data/weights/.
# Usage, from the repository root, with the train extra installed and the training sets fetched:
#   bash docs/recipes/train_reg.sh                 (all eighteen; about 75 CPU-minutes on 2 cores)
#   bash docs/recipes/train_reg.sh cnn-mnist-reg   (some of them)
# sigma_neu = 0.05 was chosen by docs/recipes/sigma_neu_sweep.py (docs/training.md).
set -euo pipefail
out=${OUT:-data/weights}
reg=${SIGMA_NEU:-0.05}
declare -A recipe=(
  [mlp-mnist-reg]="--arch mlp --dataset mnist --epochs 20 --sigma-neu $reg"
  [mlp-fashion-mnist-reg]="--arch mlp --dataset fashion-mnist --epochs 20 --sigma-neu $reg"
  [rnn-mnist-t7-reg]="--arch rnn --dataset mnist --timesteps 7 --epochs 20 --sigma-neu $reg"
  [rnn-fashion-mnist-t7-reg]="--arch rnn --dataset fashion-mnist --timesteps 7 --epochs 20 --sigma-neu $reg"
  [cnn-mnist-reg]="--arch cnn --dataset mnist --epochs 30 --augment-shift 2 --lr 2e-3 --sigma-neu $reg"
  [cnn-fashion-mnist-reg]="--arch cnn --dataset fashion-mnist --epochs 40 --augment-shift 1 --lr 2e-3 --sigma-neu $reg"
)
for ds in mnist fashion-mnist; do
  for t in 14 28 56; do
    recipe[rnn-$ds-t$t]="--arch rnn --dataset $ds --timesteps $t --epochs 10"
    recipe[rnn-$ds-t$t-reg]="--arch rnn --dataset $ds --timesteps $t --epochs 10 --sigma-neu $reg"
  done
done
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(mlp-mnist-reg mlp-fashion-mnist-reg rnn-mnist-t7-reg rnn-fashion-mnist-t7-reg cnn-mnist-reg
         cnn-fashion-mnist-reg)
  for t in 14 28 56; do for ds in mnist fashion-mnist; do names+=(rnn-$ds-t$t rnn-$ds-t$t-reg); done; done
fi
for name in "${names[@]}"; do
  [ -n "${recipe[$name]:-}" ] || { echo "unknown network $name" >&2; exit 2; }
  # shellcheck disable=SC2086
  xbar train ${recipe[$name]} --seed 0 -o "$out/$name.h5"
done
