# Step 1's rule: each changed test run five times in all (runs before this script counted in PLAN.md).
# Usage: bash docs/results-2026-12-07e/repeat_changed.sh
cd /work/main
run() {  # ROUNDS PYTEST-ARGS...
  rounds=$1; shift
  for i in $(seq "$rounds"); do
    echo "== $* (round $i): $(.venv/bin/pytest -q -p no:cacheprovider "$@" 2>&1 | tail -1)"
  done
}
run 3 tests/test_cluster.py
run 3 tests/test_ensemble.py
run 4 tests/test_faults.py -k "ctrl_c or failed_checkpoint"
run 4 tests/test_tools.py -k "mlflow or lr_find"
run 4 tests/test_robustness.py tests/test_lab_report.py -k "robustness or photo_like"
run 2 tests/test_train.py -k bf16_and_compiled
