# Algorithm 1 (cowboy) or the Defense-GAN baseline on one attack's images. The output is
# named by every wildcard, so a new sigma or step count adds cleaning jobs and nothing else.
# run_steps is how long the job runs; the Parquet's "steps" column is each recorded snapshot.
rule clean:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        gan=paths.gan_for_ckpt,
        adversarial="results/attacks/{dataset}/{split}/{attack}.safetensors",
    output:
        table="results/clean/{dataset}/{split}/{attack}/{method}_sigma{sigma}_run{run_steps}_ckpt{ckpt}.parquet",
        grid="results/clean/{dataset}/{split}/{attack}/{method}_sigma{sigma}_run{run_steps}_ckpt{ckpt}.grid.safetensors",
    params:
        cleaning=paths.cleaning_params,
        record_steps=CLEANING["record_steps"],
        grid_images=config["figures"]["grid_images"],
        seed=SEED,
    log:
        "results/logs/clean/{dataset}/{split}/{attack}/{method}_sigma{sigma}_run{run_steps}_ckpt{ckpt}.log",
    benchmark:
        "results/benchmarks/clean/{dataset}/{split}/{attack}/{method}_sigma{sigma}_run{run_steps}_ckpt{ckpt}.tsv"
    script:
        "../workflow_scripts/clean.py"
