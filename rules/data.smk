rule prepare_data:
    output:
        "results/data/{dataset}.safetensors",
    params:
        dataset=dataset_params,
        data_root=config["data_root"],
        download=config["download"],
        seed=SEED,
    log:
        "results/logs/prepare_data/{dataset}.log",
    script:
        "../workflow_scripts/prepare_data.py"
