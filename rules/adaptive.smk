# Beyond the paper: the deployed DefendedClassifier on mixed streams, and adaptive white-box
# attacks (BPDA + EOT, detector-aware) on the whole defended pipeline.
rule deployment:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        card="results/defense/{dataset}.safetensors",
        attacks=paths.deployment_attack_files,
    output:
        table="results/deployment/{dataset}.csv",
        curve="results/deployment/{dataset}_curve.csv",
    params:
        seed=SEED,
    log:
        "results/logs/deployment/{dataset}.log",
    benchmark:
        "results/benchmarks/deployment/{dataset}.tsv"
    script:
        "../workflow_scripts/deployment.py"


rule deployment_table:
    input:
        expand("results/deployment/{dataset}.csv", dataset=DATASETS),
    output:
        report("results/deployment.csv", category="Beyond the paper", caption="../report/deployment.rst"),
    log:
        "results/logs/report/deployment.log",
    script:
        "../workflow_scripts/concat_tables.py"


rule deployment_curve:
    input:
        expand("results/deployment/{dataset}_curve.csv", dataset=DATASETS),
    output:
        report("results/deployment_curve.csv", category="Beyond the paper", caption="../report/deployment.rst"),
    log:
        "results/logs/report/deployment_curve.log",
    script:
        "../workflow_scripts/concat_tables.py"


# The attack suite on the deployed defence, one job per defence and epsilon ("none": the bare
# classifier; "adversarial": the adversarially trained one, alone and under cowboy), then the
# per-image worst case, Carlini et al.'s checks and the chaos table. Every suite rule reads
# suite_inputs (`use rule ... with: input:` replaces the whole input, so each names it).
rule robustness:
    input:
        unpack(suite.suite_inputs),
        shards=suite.robustness_shards,
    output:
        "results/robustness/{dataset}/{defense}_eps{epsilon}.parquet",
    params:
        robustness=suite.robustness_params(),
        scale=1,
        seed=SEED,
    log:
        "results/logs/robustness/{dataset}/{defense}_eps{epsilon}.log",
    benchmark:
        "results/benchmarks/robustness/{dataset}/{defense}_eps{epsilon}.tsv"
    script:
        "../workflow_scripts/robustness.py"


# A main run above the listed budget (robustness.scale = s > 1) climbs there: the suite at
# s times every budget on all the images, starting from what the run at s / 2 broke (as
# AutoAttack runs each further attack on what is left). Raising scale after a failed
# convergence check therefore reruns nothing below it.
use rule robustness as robustness_scaled with:
    input:
        unpack(suite.suite_inputs),
        main=suite.robustness_half_scale_run,
        shards=suite.robustness_shards,
    output:
        "results/robustness/{dataset}/{defense}_eps{epsilon}_s{scale}.parquet",
    params:
        robustness=suite.robustness_params(),
        scale=lambda wildcards: int(wildcards.scale),
        all_images=True,
        seed=SEED,
    log:
        "results/logs/robustness/{dataset}/{defense}_eps{epsilon}_s{scale}.log",
    benchmark:
        "results/benchmarks/robustness/{dataset}/{defense}_eps{epsilon}_s{scale}.tsv"


# A run split by image (robustness.shard_images), so that a run longer than a session resumes
# by shard: each shard is the suite on test images [start, stop) at the run's scale, starting
# (above scale 1) from the run at half of it; the run's own job gathers the shards.
use rule robustness as robustness_shard with:
    input:
        unpack(suite.suite_inputs),
        main=suite.robustness_shard_start,
    output:
        "results/robustness/{dataset}/shards/{defense}_eps{epsilon}_s{scale}_images{start}-{stop}.parquet",
    params:
        robustness=suite.robustness_params(),
        scale=lambda wildcards: int(wildcards.scale),
        all_images=True,
        images=lambda wildcards: (int(wildcards.start), int(wildcards.stop)),
        seed=SEED,
    log:
        "results/logs/robustness/{dataset}/shards/{defense}_eps{epsilon}_s{scale}_images{start}-{stop}.log",
    benchmark:
        "results/benchmarks/robustness/{dataset}/shards/{defense}_eps{epsilon}_s{scale}_images{start}-{stop}.tsv"


# The convergence check's shards, each starting from the main run's outcome on its images (its
# shard of them, where the main run is sharded: the check then need not wait for the rest).
use rule robustness_shard as robustness_doubled_shard with:
    input:
        unpack(suite.suite_inputs),
        main=suite.robustness_check_start,
    output:
        "results/robustness/{dataset}/shards/{defense}_eps{epsilon}_x2_images{start}-{stop}.parquet",
    params:
        robustness=suite.robustness_params(),
        scale=suite.robustness_check_scale(),
        images=lambda wildcards: (int(wildcards.start), int(wildcards.stop)),
        seed=SEED,
    log:
        "results/logs/robustness/{dataset}/shards/{defense}_eps{epsilon}_x2_images{start}-{stop}.log",
    benchmark:
        "results/benchmarks/robustness/{dataset}/shards/{defense}_eps{epsilon}_x2_images{start}-{stop}.tsv"


# The convergence check: the whole suite at twice the main run's budget, on the first
# double_images, starting from the main run's outcome there: it measures what twice the
# budget breaks beyond the main run.
use rule robustness as robustness_doubled with:
    input:
        unpack(suite.suite_inputs),
        main=suite.robustness_main_run,
        shards=suite.robustness_check_shards,
    output:
        "results/robustness/{dataset}/{defense}_eps{epsilon}_x2.parquet",
    params:
        robustness=suite.robustness_params(),
        scale=suite.robustness_check_scale(),
        seed=SEED,
    log:
        "results/logs/robustness/{dataset}/{defense}_eps{epsilon}_x2.log",
    benchmark:
        "results/benchmarks/robustness/{dataset}/{defense}_eps{epsilon}_x2.tsv"


rule chaos:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        card="results/defense/{dataset}.safetensors",
    output:
        "results/robustness/{dataset}/{method}_{settings}_chaos.csv",
    params:
        images=config["robustness"]["chaos_images"],
        overrides=suite.chaos_overrides,
        seed=SEED,
    log:
        "results/logs/robustness/{dataset}/{method}_{settings}_chaos.log",
    benchmark:
        "results/benchmarks/robustness/{dataset}/{method}_{settings}_chaos.tsv"
    script:
        "../workflow_scripts/chaos.py"


rule robustness_report:
    input:
        robustness=suite.robustness_files(),
        doubled=suite.robustness_files(doubled=True),
        chaos=suite.chaos_files(),
        earlier=suite.earlier_run_files(),
    output:
        convergence=report(
            "results/robustness_convergence.csv", category="Beyond the paper", caption="../report/robustness.rst"
        ),
        table=report("results/robustness.csv", category="Beyond the paper", caption="../report/robustness.rst"),
        checks=report("results/robustness_checks.csv", category="Beyond the paper", caption="../report/robustness.rst"),
        chaos=report("results/chaos.csv", category="Beyond the paper", caption="../report/robustness.rst"),
        figure=report("results/figures/robustness.png", category="Beyond the paper", caption="../report/robustness.rst"),
        which=report("results/which_defence.csv", category="Beyond the paper", caption="../report/which_defence.rst"),
        which_figure=report(
            "results/figures/which_defence.png", category="Beyond the paper", caption="../report/which_defence.rst"
        ),
    params:
        check_epsilon=config["robustness"]["check_epsilon"],
        earlier_runs=config["robustness"]["earlier_runs"],
    log:
        "results/logs/report/robustness.log",
    script:
        "../workflow_scripts/robustness_report.py"


# Issue 22's one figure across runs, from their committed points (no run of its own).
if config["which_defence"]["runs"]:
    SUMMARY = config["which_defence"]["output_dir"]
    CAPTION = "../report/which_defence_summary.rst"

    rule which_defence_summary:
        input:
            [run["points"] for run in config["which_defence"]["runs"]],
        output:
            table=report(f"{SUMMARY}/which_defence_summary.csv", category="Beyond the paper", caption=CAPTION),
            figure=report(f"{SUMMARY}/which_defence_summary.png", category="Beyond the paper", caption=CAPTION),
        params:
            labels=[run["label"] for run in config["which_defence"]["runs"]],
        log:
            "results/logs/report/which_defence_summary.log",
        script:
            "../workflow_scripts/which_defence_summary.py"


# The committed copies under docs/reproduction, written by the pipeline.
if paths.published_copies():

    rule publish:
        # Local here, not in report.smk's localrules list: the rule exists only when a config
        # publishes, and Snakemake warns about a listed rule that does not.
        localrule: True
        input:
            paths.published_sources(),
        output:
            paths.published_copies(),
        log:
            "results/logs/report/publish.log",
        script:
            "../workflow_scripts/publish.py"


rule epsilon_sweep:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
    output:
        "results/epsilon_sweep/{dataset}.csv",
    params:
        sweep=canonical(config["epsilon_sweep"]),
        attacks=paths.attacks_config,
        seed=SEED,
    log:
        "results/logs/epsilon_sweep/{dataset}.log",
    benchmark:
        "results/benchmarks/epsilon_sweep/{dataset}.tsv"
    script:
        "../workflow_scripts/epsilon_sweep.py"
