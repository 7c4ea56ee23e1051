#!/usr/bin/env bash
# The CUDA path in one go, on a machine with one CUDA GPU, in under 8 minutes:
#   1. the tests that need CUDA (pytest -m cuda; they skip without a GPU);
#   2. the tiny pipeline with COWBOY_DEVICE=cuda (config/tiny.yaml: every rule, real data);
#   3. bench_cleaning on the GPU (--quick): throughput, torch.compile against eager, and
#      bf16's cleaned accuracy against fp32 on the tiny pipeline's trained models.
# Writes one JSON (default benchmarks/results/gpu_check.json) with the GPU's name; exits 1 if
# a part failed, after writing what it has.
#   pip install -e '.[test]' && bash benchmarks/gpu_check.sh [--smoke] [OUT.json]
# The data: Debian's Fashion-MNIST or torchvision's files under data/; else it downloads.
# --smoke checks the script itself in seconds, on the CPU: the pipeline as a dry run and the
# benchmark's smoke mode (tests/test_benchmarks.py runs it).
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=false
if [ "${1:-}" = --smoke ]; then SMOKE=true; shift; fi
OUT=${1:-benchmarks/results/gpu_check.json}
DEVICE=cuda
PIPELINE_MODE=()
BENCH_MODE=(--quick --width 8 --curve-images 48 --gd-steps 100)
if $SMOKE; then DEVICE=cpu PIPELINE_MODE=(-n) BENCH_MODE=(--smoke); fi
WORK=$(mktemp -d)
export PYTHONPATH="$PWD/workflow_scripts${PYTHONPATH:+:$PYTHONPATH}"

if [ "$DEVICE" = cuda ] && ! python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: no CUDA GPU visible to torch; run it on a GPU node" >&2
    exit 2
fi

timed() {  # timed NAME CMD...: run CMD, record its exit code and seconds in $WORK/NAME.status
    local name=$1 start rc
    shift
    start=$EPOCHREALTIME
    "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    echo "$rc $start $EPOCHREALTIME" >"$WORK/$name.status"
    tail -n 5 "$WORK/$name.log"
    return 0
}

echo "== 1/3 CUDA tests"
timed tests timeout 120 python -m pytest -m cuda -q -p no:cacheprovider --junitxml="$WORK/tests.xml" tests/test_cuda.py

echo "== 2/3 tiny pipeline on CUDA"
mkdir -p "$WORK/tiny"
DOWNLOAD=true
if [ -d /usr/share/datasets/fashion-mnist ] || [ -d data/FashionMNIST/raw ]; then DOWNLOAD=false; fi
sed -e "s|^data_root: .*|data_root: $PWD/data|" -e "s|^download: .*|download: $DOWNLOAD|" \
    config/tiny.yaml >"$WORK/tiny/config.yaml"
# What the benchmark's bf16 check needs (a trained GAN, validation FGSM), a card and one suite job.
timed pipeline env COWBOY_DEVICE="$DEVICE" timeout 300 python -m snakemake -s "$PWD/Snakefile" \
    --directory "$WORK/tiny" --configfile "$WORK/tiny/config.yaml" --cores 8 "${PIPELINE_MODE[@]}" \
    results/table1.csv results/defense/fashion_mnist.safetensors \
    results/robustness/fashion_mnist/cowboy_eps0.3.parquet

echo "== 3/3 cleaning benchmark on CUDA (compile, bf16 check)"
timed bench timeout 150 python -m benchmarks.bench_cleaning --device "$DEVICE" "${BENCH_MODE[@]}" \
    --results "$WORK/tiny/results" --out "$WORK/bench.json"

python - "$WORK" "$OUT" "$DEVICE" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path

import torch

from cowboy_core.io import write_text

work, out, device = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
def status(name):
    rc, start, end = (work / f"{name}.status").read_text().split()
    return {"exit_code": int(rc), "seconds": round(float(end) - float(start), 1)}
tests = status("tests")
if (work / "tests.xml").exists():
    suite = ET.parse(work / "tests.xml").getroot().find("testsuite")
    tests.update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")})
bench = json.loads((work / "bench.json").read_text()) if (work / "bench.json").exists() else None
report = {
    "gpu": torch.cuda.get_device_name(0) if device == "cuda" else "none (--smoke: the script checked on the CPU)",
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "cuda_tests": tests,
    "tiny_pipeline": status("pipeline"),
    "bench_cleaning": {**status("bench"), "report": bench},
}
write_text(out, json.dumps(report, indent=2) + "\n")
failed = [k for k in ("cuda_tests", "tiny_pipeline") if report[k]["exit_code"]] + (
    ["bench_cleaning"] if report["bench_cleaning"]["exit_code"] else []
)
compile_entry = (bench or {}).get("compile")
print(f"gpu_check: {report['gpu']}; wrote {out}; compile: {compile_entry}; failed: {failed or 'none'}")
sys.exit(1 if failed else 0)
PY
