#!/usr/bin/env bash
# The sweeps of `make precision`: fp32 against bf16-mixed (+ channels-last for the CNN), 5 seeds,
# MID-L and Dropout, on the MNIST MLP (3 epochs) and the CIFAR-10 CNN (10 epochs), full training
# sets (configs/scale/precision.yaml). Seeds run in order, each seed's fp32 and fast runs one
# after the other, so an interrupted sweep leaves balanced pairs; rerunning skips finished runs.
# Jobs run two at a time (one per core, one intra-op thread each) unless LAUNCH says otherwise.
#   PY=.venv/bin/python SEEDS="0 1 2 3 4" bash scripts/precision_sweep.sh
# SETTINGS names the settings to sweep (default both), e.g. SETTINGS=cifar10_cnn SEEDS="5 6 7 8 9"
# adds seeds where the first five left the interval too wide.
set -uo pipefail
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0 1 2 3 4}
SETTINGS=${SETTINGS:-mnist_mlp cifar10_cnn}
LAUNCH=${LAUNCH:-hydra/launcher=local_parallel hydra.launcher.n_jobs=$(nproc) num_threads=1}
status=0
sweep() {  # sweep <setting> <task_name> <overrides...>
    local setting=$1 task=$2
    shift 2
    # shellcheck disable=SC2086
    $PY -m midl.train -m +experiment/setting="$setting" +scale=precision task_name="$task" \
        block=midl,dropout $LAUNCH "$@" || status=1
}
seeds=$(echo "$SEEDS" | tr ' ' ',')
case " $SETTINGS " in *" mnist_mlp "*)
    sweep mnist_mlp precision_mnist_mlp "seed=$seeds" trainer.precision=32-true,bf16-mixed ;;
esac
case " $SETTINGS " in *" cifar10_cnn "*) ;; *) exit $status ;; esac
for seed in $SEEDS; do
    sweep cifar10_cnn precision_cifar10_cnn "seed=$seed" trainer.precision=32-true \
        model.channels_last=false
    sweep cifar10_cnn precision_cifar10_cnn "seed=$seed" trainer.precision=bf16-mixed \
        model.channels_last=true
done
exit $status
