#!/usr/bin/env bash
# The CUDA path in one go, on a bare GPU node: only a CUDA build of torch (2.11 or later) and
# this repository, no internet. What the node lacks travels as a bundle (under 64 MiB: wheels,
# and one GPU job of a tiny pipeline with its inputs), built beforehand where there is internet
# access and the project's environment:
#   python -m benchmarks.gpu_bundle benchmarks/bundle --python-version 3.12   # the node's Python
# Then, on the node, in this repository's root (about 5 minutes on an H100):
#   bash benchmarks/gpu_check.sh OUTDIR
#     0. a virtualenv over the node's torch; the bundle's wheels, then the project with --no-deps
#     1. the CUDA tests: batch invariance at the production chunk, the deployment's strict
#        bitwise check, the card, the attacks and the unrolled gradient on the GPU
#     2. the tiny pipeline's GPU-marked job (the classifier's training on mnist_5k), replayed
#        with a GPU in its resources: it must run on CUDA (its log says device=cuda)
#     3. the cleaning at the reproduction's width with compile off and on, and the unrolled
#        attack at the rows planned from the GPU's memory, with its peak memory
# It writes OUTDIR/gpu_check.json and every part's log under OUTDIR/logs; exits 1 if a part
# failed (after writing what it has), 2 if the node cannot run CUDA at all.
# --smoke runs the same parts on the CPU, on this machine's packages, with a bundle of the job
# alone (tests/test_benchmarks.py runs it in CI, so the script cannot rot).
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=false
if [ "${1:-}" = --smoke ]; then SMOKE=true; shift; fi
OUT=${1:?usage: bash benchmarks/gpu_check.sh [--smoke] OUTDIR}
BUNDLE=${COWBOY_GPU_BUNDLE:-benchmarks/bundle}
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
REPO=$PWD

if $SMOKE; then
    DEVICE=cpu GPU_FLAG=() BENCH_MODE=(--smoke)
    BUNDLE=$OUT/bundle
    python -m benchmarks.gpu_bundle "$BUNDLE" --no-wheels >"$OUT/logs/bundle.log" 2>&1 || {
        echo "gpu_check: could not build the smoke bundle (see $OUT/logs/bundle.log)" >&2; exit 1; }
else
    DEVICE=cuda GPU_FLAG=(--gpu) BENCH_MODE=()
    if ! python -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
        echo "gpu_check: torch sees no usable CUDA here; run it on a GPU node" >&2
        exit 2
    fi
    if [ ! -d "$BUNDLE/wheels" ] || [ ! -d "$BUNDLE/job" ]; then
        echo "gpu_check: no bundle at $BUNDLE; build it where there is internet: python -m benchmarks.gpu_bundle $BUNDLE" >&2
        exit 2
    fi
    python -m venv --system-site-packages "$OUT/venv" && source "$OUT/venv/bin/activate"
    # The venv sees the node's torch; the bundle's pinned wheels go into the venv, over any
    # other version the node has, so the check runs the versions the bundle was built with.
    pip install -q --no-index --find-links "$BUNDLE/wheels" -r "$BUNDLE/requirements.txt" >"$OUT/logs/install.log" 2>&1 \
        && pip install -q --no-deps --no-index --no-build-isolation -e . >>"$OUT/logs/install.log" 2>&1 || {
        echo "gpu_check: installing from $BUNDLE failed (see $OUT/logs/install.log)" >&2; exit 2; }
fi
export PYTHONPATH="$REPO/workflow_scripts:$REPO${PYTHONPATH:+:$PYTHONPATH}"

timed() {  # timed NAME CMD...: run CMD, its log in logs/NAME.log, its exit code and seconds in NAME.status
    local name=$1 start rc
    shift
    start=$EPOCHREALTIME
    "$@" >"$OUT/logs/$name.log" 2>&1
    rc=$?
    echo "$rc $start $EPOCHREALTIME" >"$OUT/logs/$name.status"
    tail -n 3 "$OUT/logs/$name.log"
    return 0
}

echo "== 1/3 CUDA tests"
# In one process (-o addopts: not pyproject's pytest-xdist workers): one GPU, and the bundle
# carries no pytest-xdist.
timed tests timeout 180 python -m pytest -o addopts=-ra -m cuda -q -p no:cacheprovider --junitxml="$OUT/logs/tests.xml" tests/test_cuda.py

echo "== 2/3 the tiny pipeline's GPU job, replayed on $DEVICE"
JOB=$OUT/job
rm -rf "$JOB" && cp -r "$BUNDLE/job" "$JOB"
timed job timeout 120 python -m benchmarks.replay_job "$JOB/train_classifier.json" \
    "$REPO/workflow_scripts/train_classifier.py" "${GPU_FLAG[@]}"
cp "$JOB/results/logs/train_classifier/mnist_5k.log" "$OUT/logs/job_rule.log" 2>/dev/null

echo "== 3/3 cleaning (compile off and on) and the unrolled attack's memory on $DEVICE"
timed bench timeout 240 python -m benchmarks.bench_gpu --device "$DEVICE" "${BENCH_MODE[@]}" --out "$OUT/bench.json"

python - "$OUT" "$DEVICE" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path

import torch

from benchmarks.bench_attacks import cpu_flags
from cowboy_core.io import write_text

out, device = Path(sys.argv[1]), sys.argv[2]
def status(name):
    rc, start, end = (out / "logs" / f"{name}.status").read_text().split()
    return {"exit_code": int(rc), "seconds": round(float(end) - float(start), 1)}
tests = status("tests")
if (out / "logs/tests.xml").exists():
    suite = ET.parse(out / "logs/tests.xml").getroot().find("testsuite")
    tests.update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")})
job = status("job")
rule_log = out / "logs/job_rule.log"
job["ran_on"] = next((w.split("=", 1)[1] for w in rule_log.read_text().split() if w.startswith("device=")), None) if rule_log.exists() else None
bench = out / "bench.json"
report = {
    "device": device,
    "gpu": torch.cuda.get_device_name(0) if device == "cuda" else "none (--smoke: the script checked on the CPU)",
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "cpu_flags": cpu_flags(),
    "cuda_tests": tests,
    "gpu_job": job,
    "bench": {**status("bench"), "report": json.loads(bench.read_text()) if bench.exists() else None},
}
write_text(out / "gpu_check.json", json.dumps(report, indent=2) + "\n")
failed = [k for k in ("cuda_tests", "gpu_job", "bench") if report[k]["exit_code"]]
if job["ran_on"] != device:
    failed.append(f"gpu_job ran on {job['ran_on']}, not {device}")
print(f"gpu_check: {report['gpu']}; wrote {out / 'gpu_check.json'}; failed: {failed or 'none'}")
sys.exit(1 if failed else 0)
PY
