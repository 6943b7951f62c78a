#!/usr/bin/env bash
# Retrain the shipped standard (sigma_neu = 0) weights in data/weights/ with `xbar train`.
# Usage, from the repository root, with the train extra installed and the training sets fetched:
#   bash docs/recipes/train_shipped.sh            (all six, about 25 min on 2 cores)
#   bash docs/recipes/train_shipped.sh cnn-mnist  (one of them)
# See docs/training.md for the recipe and the accuracies it reached.
set -euo pipefail
out=${OUT:-data/weights}
declare -A recipe=(
  [mlp-mnist]="--arch mlp --dataset mnist --epochs 20"
  [mlp-fashion-mnist]="--arch mlp --dataset fashion-mnist --epochs 20"
  [rnn-mnist-t7]="--arch rnn --dataset mnist --timesteps 7 --epochs 20"
  [rnn-fashion-mnist-t7]="--arch rnn --dataset fashion-mnist --timesteps 7 --epochs 20"
  [cnn-mnist]="--arch cnn --dataset mnist --epochs 30 --augment-shift 2 --lr 2e-3"
  [cnn-fashion-mnist]="--arch cnn --dataset fashion-mnist --epochs 40 --augment-shift 1 --lr 2e-3"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(mlp-mnist mlp-fashion-mnist rnn-mnist-t7 rnn-fashion-mnist-t7 cnn-mnist cnn-fashion-mnist)
for name in "${names[@]}"; do
  [ -n "${recipe[$name]:-}" ] || { echo "unknown network $name" >&2; exit 2; }
  # shellcheck disable=SC2086
  xbar train ${recipe[$name]} --seed 0 -o "$out/$name.h5"
done
