"""The shard archive on made-up run directories (the real pipeline's round trip is in
tests/test_workflow.py): what it picks from Snakemake's summary, what it carries, the order
it stamps, and what it refuses."""

import subprocess
from pathlib import Path

import pytest

from cowboy_pipeline import shard_archive

SHARD = "results/robustness/mnist_5k/shards/cowboy_eps0.3_s1_images0-50.parquet"
CHECK = "results/robustness/mnist_5k/shards/cowboy_eps0.3_x2_images0-50.parquet"
CARD = "results/defense/mnist_5k.safetensors"
ROBUST = "results/models/mnist_5k/adversarial_eps0.1.safetensors"  # read by no finished shard
HEADER = "output_file\tdate\trule\tlog-file(s)\tinput-file(s)\tshellcmd\tstatus\tplan\n"
SUMMARY = HEADER + (
    f"{SHARD}\t-\trobustness_shard\tresults/logs/a.log\t{CARD}\t-\tok\tno update\n"
    f"{CHECK}\t-\trobustness_doubled_shard\t-\t{CARD},{SHARD}\t-\tok\tno update\n"
    f"results/robustness/mnist_5k/shards/none_eps0.1_s1_images0-50.parquet\t-\trobustness_shard\t-\t{CARD}"
    "\t-\tmissing\tupdate pending\n"
    f"{CARD}\t-\tdefense_card\t-\t-\t-\tok\tno update\n"
)


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    for rel, text in {CARD: "card", SHARD: "shard", CHECK: "check", "results/logs/a.log": "log"}.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(text)
    (run / "results/defense/mnist_5k.choice.csv").write_text("setting,chosen\nbacktracking-100,True\n")
    (run / ROBUST).parent.mkdir(parents=True)
    (run / ROBUST).write_text("adversarially trained")
    return run


def test_only_the_suites_done_and_current_outputs_are_saved_with_their_logs_and_inputs():
    shards = shard_archive.finished_shards(SUMMARY)
    assert [s["output"] for s in shards] == [SHARD, CHECK]
    assert shards[0]["logs"] == ["results/logs/a.log"] and shards[1]["logs"] == []
    assert shards[1]["inputs"] == [CARD, SHARD]


def test_a_round_trip_restores_inputs_before_outputs_and_keeps_provenance_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    run, archive, empty = _run(tmp_path), tmp_path / "archive", tmp_path / "empty"
    monkeypatch.setattr(shard_archive, "snakemake_summary", lambda run_dir, args: SUMMARY)
    also = ["--also", "results/defense/mnist_5k.choice.csv", "--input", ROBUST]
    assert shard_archive.main(["save", *also, str(run), str(archive), "results/robustness.csv"]) == 0
    assert (archive / "provenance/results/defense/mnist_5k.choice.csv").read_text().endswith("True\n")
    assert shard_archive.main(["restore", str(empty), str(archive)]) == 0
    for rel in (CARD, SHARD, CHECK, "results/logs/a.log", ROBUST):
        assert (empty / rel).read_text() == (run / rel).read_text()
    assert not (empty / "results/defense/mnist_5k.choice.csv").exists()
    stamps = [(empty / rel).stat().st_mtime_ns for rel in (CARD, SHARD, CHECK)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3


def test_a_run_with_other_bits_or_other_code_restores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    run, archive = _run(tmp_path), tmp_path / "archive"
    shard_archive.save(run, archive, shard_archive.finished_shards(SUMMARY))
    (run / CARD).write_text("another card")
    restored, skipped = shard_archive.restore(run, archive)
    assert restored == [] and all(f"{CARD} differs" in why for why in skipped.values())
    monkeypatch.setattr(
        shard_archive, "code_fingerprint", lambda configs=(): {"cowboy_core": "x", "pipeline": "y"}
    )
    restored, skipped = shard_archive.restore(tmp_path / "empty", archive)
    assert restored == [] and all("code changed" in why for why in skipped.values())


def test_saving_a_restored_run_again_keeps_what_each_entry_recorded(tmp_path: Path):
    """A restored shard has no Snakemake metadata in its new run, so the summary there lists
    neither its logs nor its inputs; saved again, its entry kept neither (2026-12-08's first
    save). The archive's own copy is left as it was; a shard that changed is saved anew."""
    run, archive, resumed = _run(tmp_path), tmp_path / "archive", tmp_path / "resumed"
    shard_archive.save(run, archive, shard_archive.finished_shards(SUMMARY))
    before = shard_archive.read_manifest(archive)["shards"]
    shard_archive.restore(resumed, archive)
    bare = SUMMARY.replace("\tresults/logs/a.log\t", "\t-\t").replace(f"\t{CARD},{SHARD}\t", "\t-\t")
    bare = bare.replace(f"robustness_shard\t-\t{CARD}\t-\tok", "robustness_shard\t-\t-\t-\tok")
    assert all(s["logs"] == [] and s["inputs"] == [] for s in shard_archive.finished_shards(bare))
    shard_archive.save(resumed, archive, shard_archive.finished_shards(bare))
    assert shard_archive.read_manifest(archive)["shards"] == before
    (resumed / SHARD).write_text("a shard rerun here")
    shard_archive.save(resumed, archive, shard_archive.finished_shards(bare))
    assert shard_archive.read_manifest(archive)["shards"][SHARD]["inputs"] == {}
    assert (archive / SHARD).read_text() == "a shard rerun here"


@pytest.mark.parametrize("damage", ["archived shard", "manifest"])
def test_a_tampered_archive_exits_2_with_one_line(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
):
    run, archive = _run(tmp_path), tmp_path / "archive"
    shard_archive.save(run, archive, shard_archive.finished_shards(SUMMARY))
    target = archive / (SHARD if damage == "archived shard" else "manifest.json")
    target.write_text(target.read_text()[:-3])
    assert shard_archive.main(["restore", str(tmp_path / "empty"), str(archive)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cowboy shard archive:")


def _checkout(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    for rel, text in {
        "Snakefile": 'configfile: "config/quick.yaml"\n',
        "config/quick.yaml": "seed: 0\n",
        "config/run.yaml": "robustness: {size: 200}\n",
        "config/other.yaml": "robustness: {size: 500}\n",
        "rules/adaptive.smk": "rule robustness_shard:\n",
        "workflow_scripts/robustness.py": "pass\n",
        "workflow_scripts/cowboy_pipeline/shard_archive.py": "pass\n",
    }.items():
        (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
        (checkout / rel).write_text(text)
    return checkout


def test_the_fingerprint_holds_the_configs_the_run_read_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    checkout, archive = _checkout(tmp_path), tmp_path / "archive"
    monkeypatch.setattr(shard_archive, "CHECKOUT", checkout)
    args = ["results/robustness.csv", "--configfile", "config/run.yaml", "--cores", "2"]
    assert shard_archive.run_configs(args) == ["config/quick.yaml", "config/run.yaml"]
    assert shard_archive.run_configs(["--configfile=config/run.yaml"])[1:] == ["config/run.yaml"]
    shard_archive.save(
        _run(tmp_path), archive, shard_archive.finished_shards(SUMMARY), (), shard_archive.run_configs(args)
    )
    (checkout / "config/other.yaml").write_text("robustness: {size: 50}\n")  # another run's config
    (checkout / "config/new.yaml").write_text("seed: 1\n")
    restored, skipped = shard_archive.restore(tmp_path / "a", archive)
    assert sorted(restored) == [SHARD, CHECK] and skipped == {}
    for n, config in enumerate(("config/run.yaml", "config/quick.yaml")):  # --configfile's, the Snakefile's
        original = (checkout / config).read_text()
        (checkout / config).write_text(original + "scale: 2\n")
        restored, skipped = shard_archive.restore(tmp_path / f"b{n}", archive)
        assert restored == [] and all(f"config {config}" in why for why in skipped.values())
        (checkout / config).write_text(original)


def test_a_shard_held_back_for_its_code_names_the_commit_that_ran_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The commit is recorded only where one holds the fingerprinted files: a library imported
    from another folder, or an uncommitted edit to the code or the run's config, records none."""
    checkout, archive = _checkout(tmp_path), tmp_path / "archive"
    (checkout / "cowboy_core").mkdir()
    (checkout / "cowboy_core/__init__.py").write_text("")
    monkeypatch.setattr(shard_archive, "CHECKOUT", checkout)
    monkeypatch.setattr(shard_archive.cowboy_core, "__file__", str(checkout / "cowboy_core/__init__.py"))
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "suite"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    configs = ["config/quick.yaml", "config/run.yaml"]
    assert shard_archive.checkout_commit(configs) == head
    (checkout / "config/other.yaml").write_text("robustness: {size: 50}\n")  # not the run's
    assert shard_archive.checkout_commit(configs) == head
    (checkout / "workflow_scripts/cowboy_pipeline/shard_archive.py").write_text("pass  # fixed\n")
    assert shard_archive.checkout_commit(configs) == head  # the archive's own code: not fingerprinted
    shard_archive.save(_run(tmp_path), archive, shard_archive.finished_shards(SUMMARY), (), configs)
    (checkout / "workflow_scripts/robustness.py").write_text("pass  # changed\n")
    assert shard_archive.checkout_commit(configs) is None  # edited, not committed
    restored, skipped = shard_archive.restore(tmp_path / "empty", archive)
    assert restored == [] and all(f"it ran at {head[:12]}" in why for why in skipped.values())
    monkeypatch.setattr(shard_archive.cowboy_core, "__file__", str(tmp_path / "elsewhere/__init__.py"))
    assert shard_archive.checkout_commit(configs) is None


def test_a_save_that_snakemake_would_redo_everything_for_saves_nothing_and_says_how_to_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """A run restored from an archive lacks the upstream files the suite's rules take as given:
    summarised without --allowed-rules, Snakemake plans to redo every finished shard. The save
    must say so (exit 2, one line), not report 0 shards saved as if none had finished."""
    run, archive = _run(tmp_path), tmp_path / "archive"
    redo_all = SUMMARY.replace("ok\tno update", "ok\tupdate pending")
    monkeypatch.setattr(shard_archive, "snakemake_summary", lambda run_dir, args: redo_all)
    assert shard_archive.main(["save", str(run), str(archive), "results/robustness.csv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allowed-rules" in err and not archive.exists()
    one_redone = SUMMARY.replace(
        f"{CHECK}\t-\trobustness_doubled_shard\t-\t{CARD},{SHARD}\t-\tok\tno update",
        f"{CHECK}\t-\trobustness_doubled_shard\t-\t{CARD},{SHARD}\t-\tok\tupdate pending",
    )
    assert one_redone != SUMMARY
    monkeypatch.setattr(shard_archive, "snakemake_summary", lambda run_dir, args: one_redone)
    assert shard_archive.main(["save", str(run), str(archive), "results/robustness.csv"]) == 0
    out = capsys.readouterr().out
    assert "finished here: 1 " in out and "left out 1" in out
    assert list(shard_archive.read_manifest(archive)["shards"]) == [SHARD]
