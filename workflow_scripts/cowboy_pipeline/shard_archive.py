"""Carry a long run's finished suite shards from one machine to the next, through git.

A suite that needs more sessions than a machine lives (MNIST's needs several) resumes only if
its finished shards outlive the machine. `save` copies each finished shard (its parquet, log
and benchmark) into a committed folder, with every input Snakemake recorded for it (the test
images, the classifier, the card, the validation scores: a few MB, once) and a fingerprint of
the code and the config files that ran it. `restore` copies them back into a run directory,
inputs first, and Snakemake resumes from there with --allowed-rules SUITE_RULES, which takes
every other rule's files as given. The upstream jobs do not rerun, and need not: trained on
another CPU they would write other bits (AVX-512 and AVX2 round differently), and every shard
would then attack another card. A shard whose code differs, or whose input the run directory
already holds with other bits, stays behind and reruns. Each shard also records the commit
whose files it ran (where one holds them), so that a suite can go on from a checkout of that
commit while main changes the code.

    cd CHECKOUT && PYTHONPATH=workflow_scripts python -m cowboy_pipeline.shard_archive \\
        save RUN_DIR ARCHIVE results/robustness.csv --configfile config/reproduce-mnist.yaml \\
        [--allowed-rules SUITE_RULES, as a restored run resumed]
    ... restore RUN_DIR ARCHIVE
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cowboy_core
from cowboy_core.io import atomic_path, write_text

CHECKOUT = Path(__file__).resolve().parents[2]
SHARD_DIR = "results/robustness/"  # the suite's outputs: its shards, runs and chaos checks
# The rules that resume the suite on restored inputs: Snakemake treats every other rule's
# files as given, so nothing upstream reruns (not even to remake a file, such as the card's
# choice, that the restored card was made from and this machine never had).
SUITE_RULES = (
    "robustness_shard",
    "robustness_doubled_shard",
    "robustness_scaled",
    "robustness",
    "robustness_doubled",
    "robustness_report",
    "chaos",
)
# What a shard's job runs: the library, the pipeline's scripts and rules, and the config files
# the run reads (run_configs), not every file in config/: a config added or edited for another
# run leaves the archive's shards valid. This file is left out: it moves outputs, and no job
# imports it.
CODE = ("workflow_scripts", "rules", "Snakefile")
# This file, as a checkout names it: left out of the fingerprint and of the check for edits, so
# that a fix to the archive neither holds shards back nor drops the commit they record.
_HERE = Path(__file__).resolve()
ARCHIVE_CODE = _HERE.relative_to(_HERE.parents[2]).as_posix()
CONFIG_KEY = "config "  # a fingerprint's entry for one config file: "config config/quick.yaml"


class ArchiveError(ValueError):
    """An archive or run directory that cannot be saved or restored as asked."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _code_files(root: Path, names: Iterable[str]) -> Iterable[Path]:
    for name in names:
        path = root / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        yield from (f for f in files if f.is_file() and "__pycache__" not in f.parts)


def run_configs(snakemake_args: Sequence[str]) -> list[str]:
    """The config files a run reads: the Snakefile's own ``configfile:``, then each one that
    ``--configfile`` names (it takes several, up to the next option)."""
    snakefile = (CHECKOUT / "Snakefile").read_text()
    configs = re.findall(r"^configfile:\s*[\"']([^\"']+)[\"']", snakefile, flags=re.M)
    taking = False
    for arg in snakemake_args:
        if arg.startswith("--configfile="):
            configs.append(arg.split("=", 1)[1])
        elif arg.startswith("-"):
            taking = arg in ("--configfile", "--configfiles")
        elif taking:
            configs.append(arg)
    return configs


def code_fingerprint(configs: Sequence[str] = ()) -> dict[str, str]:
    """One digest for the library that jobs import, one for the checkout's pipeline code, and
    one per config file the run reads (named, so that a restore can check the same files)."""
    library = Path(cowboy_core.__file__).parent
    parts = {"cowboy_core": (library, ["."]), "pipeline": (CHECKOUT, CODE)}
    fingerprint = {}
    for part, (root, names) in parts.items():
        digest = hashlib.sha256()
        for file in _code_files(root, names):
            if file.relative_to(root).as_posix() == ARCHIVE_CODE:
                continue
            digest.update(f"{file.relative_to(root)}\0{sha256(file)}\n".encode())
        fingerprint[part] = digest.hexdigest()
    for config in configs:
        path = CHECKOUT / config
        fingerprint[CONFIG_KEY + config] = sha256(path) if path.is_file() else "missing"
    return fingerprint


def checkout_commit(configs: Sequence[str] = ()) -> str | None:
    """The git commit whose files the fingerprint covers, or None where no commit holds them:
    not a git checkout, a library imported from elsewhere, or uncommitted edits to the code
    or to the configs the run read. A shard held back for its code names this commit, so a
    later session resumes the suite from a checkout of it while main moves on."""
    if Path(cowboy_core.__file__).resolve().parents[1] != CHECKOUT.resolve():
        return None

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(CHECKOUT), *args], capture_output=True, text=True, check=False
        )

    head = git("rev-parse", "--verify", "HEAD")
    edited = git("status", "--porcelain", "--", "cowboy_core", *CODE, *configs, f":(exclude){ARCHIVE_CODE}")
    if head.returncode != 0 or edited.returncode != 0 or edited.stdout.strip():
        return None
    return head.stdout.strip()


def configs_of(entry: dict[str, Any]) -> tuple[str, ...]:
    """The config files an archived shard's run read, as its fingerprint names them."""
    return tuple(part.removeprefix(CONFIG_KEY) for part in entry["code"] if part.startswith(CONFIG_KEY))


def _listed(field: str) -> list[str]:
    """A summary cell's comma-separated paths ('-' or empty: none)."""
    return [path for path in field.split(",") if path and path != "-"]


def _suite_rows(summary_tsv: str) -> Iterable[dict[str, str]]:
    """The summary's rows for the suite's outputs that exist in the run directory."""
    for row in csv.DictReader(io.StringIO(summary_tsv), delimiter="\t"):
        if row.get("output_file", "").startswith(SHARD_DIR) and row.get("status") == "ok":
            yield row


def redone_outputs(summary_tsv: str) -> list[str]:
    """The suite's outputs that exist but that Snakemake, run as the summary was, would redo:
    in a run restored from an archive, every one, unless the summary too takes the upstream
    files as given (--allowed-rules, as the run resumed)."""
    return [row["output_file"] for row in _suite_rows(summary_tsv) if row.get("plan") != "no update"]


def finished_shards(summary_tsv: str) -> list[dict[str, Any]]:
    """The suite's outputs (shards, runs, chaos checks) that Snakemake's --detailed-summary
    calls done and current, each with its logs and inputs."""
    shards = []
    for row in _suite_rows(summary_tsv):
        output = row["output_file"]
        if row.get("plan") != "no update":
            continue
        logs, inputs = _listed(row.get("log-file(s)", "")), _listed(row.get("input-file(s)", ""))
        shards.append({"output": output, "logs": logs, "inputs": inputs})
    return shards


def benchmark_of(output: str) -> str:
    """The rule's benchmark file, which mirrors the shard's path (rules/adaptive.smk)."""
    return "results/benchmarks/" + output.removeprefix("results/").removesuffix(".parquet") + ".tsv"


def snakemake_summary(run_dir: Path, snakemake_args: Sequence[str]) -> str:
    command = [sys.executable, "-m", "snakemake", "-s", str(CHECKOUT / "Snakefile")]
    command += ["--directory", str(run_dir), "--detailed-summary", *snakemake_args]
    done = subprocess.run(command, cwd=CHECKOUT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ArchiveError(f"snakemake --detailed-summary failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def _copy(source: Path, target: Path, digest: str) -> None:
    """Copy atomically, refusing a source that does not hash as recorded."""
    if sha256(source) != digest:
        raise ArchiveError(f"{source}: does not hash as the manifest says; save it again")
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _keep_input(run_dir: Path, archive: Path, rel: str, digest: str, reader: str) -> None:
    if (archive / rel).is_file() and sha256(archive / rel) != digest:
        raise ArchiveError(
            f"{reader} read another {rel} than the archive's shards did; save this run into a new archive"
        )
    _copy(run_dir / rel, archive / rel, digest)


def save(
    run_dir: Path,
    archive: Path,
    shards: list[dict[str, Any]],
    given: Sequence[str] = (),
    configs: Sequence[str] = (),
) -> int:
    """Copy each finished shard and its inputs into the archive (replacing an older copy of
    the shard), and the suite inputs named in ``given`` that no finished shard has read yet
    (an adversarially trained classifier, say); write the manifest; return how many shards
    the archive now holds. ``configs``: the config files the run read (run_configs)."""
    manifest = read_manifest(archive) if (archive / "manifest.json").exists() else {"shards": {}}
    given_digests = {rel: sha256(run_dir / rel) for rel in given}
    for rel, digest in given_digests.items():
        _keep_input(run_dir, archive, rel, digest, "the suite")
    manifest["inputs"] = manifest.get("inputs", {}) | given_digests
    code, commit = code_fingerprint(configs), checkout_commit(configs)
    for shard in shards:
        if _restored_unchanged(manifest, run_dir, shard["output"]):
            continue
        carried = [shard["output"], *shard["logs"], benchmark_of(shard["output"])]
        files = {rel: sha256(run_dir / rel) for rel in carried if (run_dir / rel).is_file()}
        inputs = {rel: sha256(run_dir / rel) for rel in shard["inputs"]}
        for rel, digest in inputs.items():
            if rel.startswith(SHARD_DIR):
                continue  # another shard (the check starts from the main run's): saved as one
            _keep_input(run_dir, archive, rel, digest, shard["output"])
        for rel, digest in files.items():
            _copy(run_dir / rel, archive / rel, digest)
        finished = (run_dir / shard["output"]).stat().st_mtime
        entry = {"files": files, "inputs": inputs, "code": code, "finished": finished, "commit": commit}
        manifest["shards"][shard["output"]] = entry
    write_text(archive / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return len(manifest["shards"])


def _restored_unchanged(manifest: dict[str, Any], run_dir: Path, output: str) -> bool:
    """Whether the run's shard is the archive's own copy. A restored shard has no Snakemake
    metadata in the run, so the summary lists neither its logs nor its inputs: saved again,
    its entry would lose both, and restore could no longer check what it read."""
    previous = manifest["shards"].get(output)
    return previous is not None and previous["files"].get(output) == sha256(run_dir / output)


def read_manifest(archive: Path) -> dict[str, Any]:
    path = archive / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        entries = manifest["shards"].values()
        if not all({"files", "inputs", "code", "finished"} <= set(e) for e in entries):
            raise KeyError("a shard's files, inputs, code or finished")
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
        raise ArchiveError(f"{path}: not a shard archive's manifest ({err}); save one first") from err
    return dict(manifest)


def why_not(run_dir: Path, entry: dict[str, Any], code: dict[str, str]) -> str | None:
    """Why a shard must rerun here rather than be restored, or None; ``code``: this
    checkout's fingerprint over the configs the shard's run read."""
    if entry["code"] != code:
        changed = sorted(part for part in code if entry["code"].get(part) != code[part])
        reason = f"its code changed ({', '.join(changed)})"
        commit = entry.get("commit")  # none where no commit held the code (or saved before this)
        if commit:
            reason += f"; it ran at {commit[:12]}: resume from `git worktree add DIR {commit[:12]}`"
        return reason
    for rel, digest in entry["inputs"].items():
        if (run_dir / rel).is_file() and sha256(run_dir / rel) != digest:
            return f"its input {rel} differs here (restore into an empty run directory)"
    for rel in entry["inputs"]:
        if rel.startswith(SHARD_DIR) and not (run_dir / rel).is_file():
            return f"the shard it starts from, {rel}, is not here"
    return None


def _stamp(path: Path) -> None:
    """Newer than everything restored before it, as Snakemake expects of an output."""
    stamp = time.time_ns()
    os.utime(path, ns=(stamp, stamp))


def _put_back(run_dir: Path, archive: Path, rel: str, digest: str) -> None:
    _copy(archive / rel, run_dir / rel, digest)
    _stamp(run_dir / rel)


def _restore_given_inputs(run_dir: Path, archive: Path, inputs: dict[str, str]) -> None:
    """The inputs saved with --input: copied where missing; refused where this run has others."""
    for rel, digest in inputs.items():
        if not (run_dir / rel).is_file():
            _put_back(run_dir, archive, rel, digest)
        elif sha256(run_dir / rel) != digest:
            raise ArchiveError(f"{run_dir / rel} is not the archive's; restore into an empty run directory")


def restore(run_dir: Path, archive: Path) -> tuple[list[str], dict[str, str]]:
    """Copy back every shard whose code and inputs are this run's, after the inputs it lacks;
    return those restored and, for the rest, why not. Files are stamped in the order the
    shards were first written, inputs before outputs, so each is newer than what made it."""
    manifest = read_manifest(archive)
    _restore_given_inputs(run_dir, archive, manifest.get("inputs", {}))
    restored, skipped = [], {}
    fingerprints: dict[tuple[str, ...], dict[str, str]] = {}  # one per config set, not per shard
    for output, entry in sorted(manifest["shards"].items(), key=lambda item: item[1]["finished"]):
        configs = configs_of(entry)
        if configs not in fingerprints:
            fingerprints[configs] = code_fingerprint(configs)
        reason = why_not(run_dir, entry, fingerprints[configs])
        if reason is not None:
            skipped[output] = reason
            continue
        for rel, digest in entry["inputs"].items():
            if not (run_dir / rel).is_file():
                _put_back(run_dir, archive, rel, digest)
        for rel, digest in entry["files"].items():
            _put_back(run_dir, archive, rel, digest)
        restored.append(output)
    return restored, skipped


def save_command(args: argparse.Namespace) -> None:
    """`save`: the run's finished shards, as Snakemake run with ``args.snakemake_args`` sees
    them, into the archive, with the files ``--also`` and ``--input`` name."""
    summary = snakemake_summary(args.run_dir.resolve(), args.snakemake_args)
    shards, redone = finished_shards(summary), redone_outputs(summary)
    if redone and not shards:  # a restored run saved without its --allowed-rules, say
        raise ArchiveError(
            f"Snakemake would redo all {len(redone)} finished suite outputs here ({redone[0]} ...), "
            "so none was saved: save with the arguments the run resumed with, --allowed-rules included"
        )
    held = save(args.run_dir, args.archive, shards, args.input, run_configs(args.snakemake_args))
    for rel in args.also:  # how the card they attack was chosen, say
        _copy(args.run_dir / rel, args.archive / "provenance" / rel, sha256(args.run_dir / rel))
    print(f"finished here: {len(shards)} (the archive's own copies among them kept); it holds {held}")
    if redone:
        print(f"left out {len(redone)} that Snakemake would redo here")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["save", "restore"])
    also = "save: a run file to keep beside the shards as their provenance (restore leaves it)"
    parser.add_argument("--also", action="append", default=[], metavar="FILE", help=also)
    given = "save: a suite input that no finished shard has read yet, to restore with them"
    parser.add_argument("--input", action="append", default=[], metavar="FILE", help=given)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("archive", type=Path)
    parser.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="save: the targets, --configfile")
    args = parser.parse_args(argv)
    args.snakemake_args = [arg for arg in args.snakemake_args if arg != "--"]
    try:
        if args.action == "restore":
            args.run_dir.mkdir(parents=True, exist_ok=True)  # a new machine's run starts empty
        elif not args.run_dir.is_dir():
            raise ArchiveError(f"{args.run_dir}: no such run directory")
        if args.action == "save":
            save_command(args)
        else:
            restored, skipped = restore(args.run_dir, args.archive)
            print(f"restored {len(restored)} suite outputs; {len(skipped)} stay behind and rerun")
            for output, reason in skipped.items():
                print(f"  {output}: {reason}")
            print(f"resume with: snakemake ... --allowed-rules {' '.join(SUITE_RULES)}")
    except (ArchiveError, OSError) as err:
        sys.stderr.write(f"cowboy shard archive: {err}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
