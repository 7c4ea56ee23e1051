# Beyond the paper: the deployed DefendedClassifier on mixed streams, and adaptive white-box
# attacks (BPDA + EOT, detector-aware) on the whole defended pipeline.
rule deployment:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        card="results/defense/{dataset}.safetensors",
        attacks=deployment_attack_files,
    output:
        "results/deployment/{dataset}.csv",
    params:
        seed=SEED,
    log:
        "results/logs/deployment/{dataset}.log",
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


rule adaptive_attack:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        card="results/defense/{dataset}.safetensors",
    output:
        "results/adaptive/{dataset}/{defense}_eps{epsilon}.parquet",
    params:
        adaptive=canonical(config["adaptive"]),
        seed=SEED,
    log:
        "results/logs/adaptive/{dataset}/{defense}_eps{epsilon}.log",
    benchmark:
        "results/benchmarks/adaptive/{dataset}/{defense}_eps{epsilon}.tsv"
    script:
        "../workflow_scripts/adaptive_attack.py"


rule adaptive_report:
    input:
        adaptive_files(),
    output:
        table=report("results/adaptive.csv", category="Beyond the paper", caption="../report/adaptive.rst"),
        figure=report("results/figures/adaptive_robustness.png", category="Beyond the paper", caption="../report/adaptive.rst"),
    log:
        "results/logs/report/adaptive.log",
    script:
        "../workflow_scripts/adaptive_report.py"


rule epsilon_sweep:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
    output:
        "results/epsilon_sweep/{dataset}.csv",
    params:
        sweep=canonical(config["epsilon_sweep"]),
        attacks=attacks_config,
        seed=SEED,
    log:
        "results/logs/epsilon_sweep/{dataset}.log",
    script:
        "../workflow_scripts/epsilon_sweep.py"
