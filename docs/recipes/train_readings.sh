#!/usr/bin/env bash
# Train the networks of issue 14 into data/weights/: the paper's other network readings (the 128-unit MLP,
# the plain recurrent network of 400 - 784/t units at t = 7, 14, 28, 56), the Mosaic RNN at t = 7 for
# 10 epochs (so that every t of Fig. 4 has the same training), and training seeds 1 and 2 of every
# Table II network (seed 0 is the shipped one). Same recipes as docs/recipes/train_shipped.sh and
# train_reg.sh but for the seed; one torch thread per run, JOBS runs at a time (default 2).
# Usage, from the repository root, with the train extra installed and the training sets fetched:
#   bash docs/recipes/train_readings.sh                  (all 44, about 70 minutes on 2 cores)
#   bash docs/recipes/train_readings.sh srnn-mnist-t7    (some of them)
#   bash docs/recipes/train_readings.sh --list           (the names, in training order)
set -euo pipefail
out=${OUT:-data/weights}
reg=${SIGMA_NEU:-0.05}
jobs=${JOBS:-2}
declare -A recipe
names=()
add() { recipe[$1]="$2"; names+=("$1"); }
standard() {  # name-stem, dataset -> the standard recipe of that Table II network
  case $1 in
    mlp) echo "--arch mlp --dataset $2 --epochs 20" ;;
    mlp128) echo "--arch mlp --hidden 128 --dataset $2 --epochs 20" ;;
    rnn) echo "--arch rnn --dataset $2 --timesteps 7 --epochs 20" ;;
    srnn) echo "--arch srnn --dataset $2 --timesteps 7 --epochs 10" ;;
    cnn)
      if [ "$2" = mnist ]; then echo "--arch cnn --dataset mnist --epochs 30 --augment-shift 2 --lr 2e-3"
      else echo "--arch cnn --dataset fashion-mnist --epochs 40 --augment-shift 1 --lr 2e-3"; fi ;;
  esac
}
for ds in mnist fashion-mnist; do
  add "mlp128-$ds" "$(standard mlp128 "$ds") --seed 0"
  add "mlp128-$ds-reg" "$(standard mlp128 "$ds") --sigma-neu $reg --seed 0"
  add "srnn-$ds-t7" "$(standard srnn "$ds") --seed 0"
  add "srnn-$ds-t7-reg" "$(standard srnn "$ds") --sigma-neu $reg --seed 0"
done
for seed in 1 2; do
  for ds in mnist fashion-mnist; do
    add "mlp-$ds-s$seed" "$(standard mlp "$ds") --seed $seed"
    add "mlp128-$ds-s$seed" "$(standard mlp128 "$ds") --seed $seed"
    add "srnn-$ds-t7-s$seed" "$(standard srnn "$ds") --seed $seed"
    add "rnn-$ds-t7-s$seed" "$(standard rnn "$ds") --seed $seed"
    add "cnn-$ds-s$seed" "$(standard cnn "$ds") --seed $seed"
  done
done
for ds in mnist fashion-mnist; do
  add "rnn-$ds-t7-e10" "--arch rnn --dataset $ds --timesteps 7 --epochs 10 --seed 0"
  add "rnn-$ds-t7-e10-reg" "--arch rnn --dataset $ds --timesteps 7 --epochs 10 --sigma-neu $reg --seed 0"
done
for t in 14 28 56; do
  for ds in mnist fashion-mnist; do
    add "srnn-$ds-t$t" "--arch srnn --dataset $ds --timesteps $t --epochs 10 --seed 0"
    add "srnn-$ds-t$t-reg" "--arch srnn --dataset $ds --timesteps $t --epochs 10 --sigma-neu $reg --seed 0"
  done
done
if [ "${1:-}" = --list ]; then printf '%s\n' "${names[@]}"; exit 0; fi
[ $# -eq 0 ] || names=("$@")
for name in "${names[@]}"; do
  [ -n "${recipe[$name]:-}" ] || { echo "unknown network $name" >&2; exit 2; }
done
for name in "${names[@]}"; do
  printf '%s\0%s\0' "$name" "${recipe[$name]}"
done | OMP_NUM_THREADS=1 xargs -0 -n 2 -P "$jobs" sh -c \
  'xbar train $1 --quiet -o "'"$out"'/$0.h5" && echo "trained $0"'
