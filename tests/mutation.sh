#!/usr/bin/env bash
# Mutation testing of the algorithm core with mutmut (outside CI: it reruns the fast tests
# for every mutant; about half an hour on 2 cores). Which modules: [tool.mutmut] in pyproject.toml.
#   pip install -e '.[mutation]' && bash tests/mutation.sh [--fresh] [MUTANT_GLOB ...]
# e.g. bash tests/mutation.sh "cowboy_core.detection*" for one module. Cleaning and descent
# mutants rerun most of the fast suite each (about 15 s per mutant on 2 cores).
# Writes docs/quality/mutation.md (per-module counts) and docs/quality/survivors.txt (each
# surviving mutant's diff, for the equivalence notes in mutation.md).
# mutmut keeps each verdict in mutants/ and reruns only the mutants of functions that changed
# since; --fresh starts over (after a change to the tests, whose effect it cannot see).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --fresh ]; then rm -rf mutants; shift; fi
# One torch thread per process: a child forked from a parent whose OpenMP pool is running
# hangs (every mutant then "times out"), and the children already run side by side.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mutmut run --max-children "${MUTMUT_CHILDREN:-2}" "$@" || true  # survivors make the exit code non-zero
mutmut results --all true > mutants/results.txt
python tests/mutation_summary.py mutants/results.txt docs/quality/mutation.md docs/quality/survivors.txt
