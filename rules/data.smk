# Data is staged once, on the submit host (a local rule): only there may torchvision download
# (download: true), because compute nodes usually have no internet. The two data files per
# dataset are then cut from the staged files on any node, never downloading: changing the
# evaluated subset (test_size, validation_attack_size) never retrains a model, since training
# depends on train.safetensors only.
localrules:
    stage_data,


rule stage_data:
    output:
        "results/data/{dataset}/staged.json",
    params:
        data_root=config["data_root"],
        download=config["download"],
    log:
        "results/logs/stage_data/{dataset}.log",
    script:
        "../workflow_scripts/stage_data.py"


rule prepare_train:
    input:
        "results/data/{dataset}/staged.json",
    output:
        "results/data/{dataset}/train.safetensors",
    params:
        split=paths.train_split_params,
        data_root=config["data_root"],
        seed=SEED,
    log:
        "results/logs/prepare_train/{dataset}.log",
    script:
        "../workflow_scripts/prepare_train.py"


rule prepare_eval:
    input:
        "results/data/{dataset}/staged.json",
    output:
        "results/data/{dataset}/eval.safetensors",
    params:
        split=paths.eval_split_params,
        data_root=config["data_root"],
        seed=SEED,
    log:
        "results/logs/prepare_eval/{dataset}.log",
    script:
        "../workflow_scripts/prepare_eval.py"
