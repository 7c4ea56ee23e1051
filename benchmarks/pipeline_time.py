"""What a pipeline run cost, per rule, from Snakemake's own benchmark files: jobs, the summed
and the longest job wall time, peak RSS, and the run's end-to-end wall time from its newest
Snakemake log (first to last timestamp). The CPU's flags are recorded (compare ratios only).

    python -m benchmarks.pipeline_time --run-dir ../full-fmnist --out benchmarks/results/full_fmnist.json
    python -m benchmarks.pipeline_time --run-dir . --jobs robustness --out benchmarks/results/x.json
    python -m benchmarks.pipeline_time --smoke   # what the tests run: a made-up run directory

--jobs RULE also lists that rule's jobs one by one (the attack suite's per-defence costs).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd

from benchmarks.bench_attacks import cpu_flags
from cowboy_core.io import write_text

# Snakemake stamps each job in its log as "[Tue Dec  1 18:43:10 2026]".
STAMP = "%a %b %d %H:%M:%S %Y"


def per_job(run_dir: Path) -> pd.DataFrame:
    """One row per job: results/benchmarks/{rule}/{job}.tsv, Snakemake's own measurement."""
    rows = []
    root = run_dir / "results" / "benchmarks"
    for tsv in sorted(root.rglob("*.tsv")):
        rule, *job = tsv.relative_to(root).with_suffix("").parts
        measured = pd.read_csv(tsv, sep="\t").iloc[-1]
        rows.append(
            {
                "rule": rule,
                "job": "/".join(job),
                "seconds": float(measured["s"]),
                "cpu_seconds": float(measured["cpu_time"]),
                "max_rss_mb": float(measured["max_rss"]),
            }
        )
    return pd.DataFrame(rows, columns=["rule", "job", "seconds", "cpu_seconds", "max_rss_mb"])


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per rule, from per_job's rows."""
    table = jobs.groupby("rule").agg(
        jobs=("seconds", "size"),
        job_seconds=("seconds", "sum"),
        # CPU time: what a job costs whatever else shared the cores (wall time does not)
        cpu_seconds=("cpu_seconds", "sum"),
        longest_job_seconds=("seconds", "max"),
        max_rss_mb=("max_rss_mb", "max"),
    )
    return table.sort_values("job_seconds", ascending=False).reset_index()


def wall_seconds(run_dir: Path) -> float | None:
    """First to last job timestamp of each Snakemake log, summed (None without a job): a run
    done in stages, or resumed, costs its invocations' spans; the gaps between them are not
    the pipeline's. A dry run's log stamps every job at one instant and adds nothing."""
    spans = [
        span
        for log in sorted((run_dir / ".snakemake" / "log").glob("*.snakemake.log"))
        if (span := _span(log))
    ]
    return sum(spans) if spans else None


def _span(log: Path) -> float | None:
    stamps = []
    for line in log.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            try:
                stamps.append(datetime.strptime(" ".join(line[1:-1].split()), STAMP))
            except ValueError:
                continue
    return (max(stamps) - min(stamps)).total_seconds() if stamps else None


def report(run_dir: Path, note: str | None = None, listed: tuple[str, ...] = ()) -> dict[str, object]:
    jobs = per_job(run_dir)
    table = per_rule(jobs)
    listed_jobs = jobs[jobs["rule"].isin(listed)].drop(columns="max_rss_mb")
    return {
        "cpu": cpu_flags(),
        "run_dir": str(run_dir),
        "note": note,
        "wall_seconds": wall_seconds(run_dir),
        "job_seconds": float(table["job_seconds"].sum()),
        "cpu_seconds": float(table["cpu_seconds"].sum()),
        "rules": table.to_dict(orient="records"),
        "jobs": listed_jobs.to_dict(orient="records"),
    }


def _smoke_run(root: Path) -> Path:
    """A run directory with two rules' benchmark files and a log, shaped as Snakemake writes them
    (each job's CPU time a second below its wall time)."""
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, name, seconds in (("attack", "a", 3.0), ("attack", "b", 5.0), ("clean", "c", 7.0)):
        path = root / "results" / "benchmarks" / rule / "ds" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:0{int(seconds)}\t100.0\t0\t0\t0\t0\t0\t0\t{seconds - 1}\n")
    logs = root / ".snakemake" / "log"
    logs.mkdir(parents=True)
    stage = "[Thu Jan  1 0{h}:00:00 2026]\nrule attack:\n[Thu Jan  1 0{h}:00:12 2026]\nFinished\n"
    for hour in (0, 1):  # a run in two stages, an hour apart: 12 s each
        (logs / f"2026-01-01T0{hour}0000.000000.snakemake.log").write_text(stage.format(h=hour))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("."))
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here (else print it)")
    parser.add_argument("--smoke", action="store_true", help="a made-up run directory: checks that it runs")
    parser.add_argument("--note", default=None, help="what the numbers do not say (a partial or shared run)")
    parser.add_argument("--jobs", action="append", default=[], metavar="RULE", help="list this rule's jobs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = _smoke_run(Path(tmp)) if args.smoke else args.run_dir
        listed = ("attack",) if args.smoke else tuple(args.jobs)
        text = json.dumps(report(run_dir, args.note, listed), indent=1)
    if args.out is None:
        print(text)
    else:
        write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
