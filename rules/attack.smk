rule attack:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
    output:
        "results/attacks/{dataset}/{split}/{attack}.safetensors",
    params:
        attack=paths.attack_params,
        seed=SEED,
    log:
        "results/logs/attack/{dataset}/{split}/{attack}.log",
    benchmark:
        "results/benchmarks/attack/{dataset}/{split}/{attack}.tsv"
    script:
        "../workflow_scripts/attack.py"
