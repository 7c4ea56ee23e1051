# Two data files per dataset, so that changing the evaluated subset (test_size,
# validation_attack_size) never retrains a model: training depends on train.safetensors only.
rule prepare_train:
    output:
        "results/data/{dataset}/train.safetensors",
    params:
        split=paths.train_split_params,
        data_root=config["data_root"],
        download=config["download"],
        seed=SEED,
    log:
        "results/logs/prepare_train/{dataset}.log",
    script:
        "../workflow_scripts/prepare_train.py"


rule prepare_eval:
    output:
        "results/data/{dataset}/eval.safetensors",
    params:
        split=paths.eval_split_params,
        data_root=config["data_root"],
        download=config["download"],
        seed=SEED,
    log:
        "results/logs/prepare_eval/{dataset}.log",
    script:
        "../workflow_scripts/prepare_eval.py"
