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



# Tables 1-2 again at the deployed card's settings (chosen on validation by card_choice),
# beside the paper's protocol above: the same attacked test images and z0, every attack in
# one process (the card fixes sigma and the steps, so no wildcard varies them).
rule clean_card:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        card="results/defense/{dataset}.safetensors",
        gan=paths.final_gan,  # the card's own G and D: only the step it names is read
        adversarial=paths.card_attack_files,
    output:
        "results/clean_card/{dataset}/{method}.parquet",
    params:
        attacks=lambda wildcards: paths.attacks_of(wildcards.dataset),
        seed=SEED,
    log:
        "results/logs/clean_card/{dataset}/{method}.log",
    benchmark:
        "results/benchmarks/clean_card/{dataset}/{method}.tsv"
    script:
        "../workflow_scripts/clean_card.py"


# Tables 1-2 at the paper's 5,000 plain-GD steps on the first paper_steps.images test images,
# beside the tables' steps on the same images (cowboy_pipeline/paper_steps.py).
localrules:
    paper_steps_table,


rule clean_long:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        gan=paths.final_gan,
        adversarial="results/attacks/{dataset}/test/{attack}.safetensors",
    output:
        "results/clean_long/{dataset}/{attack}/{method}_run{run_steps}_n{n}.parquet",
    params:
        cleaning=paper_steps.long_params,
        record_steps=paper_steps.record_steps,
        seed=SEED,
    log:
        "results/logs/clean_long/{dataset}/{attack}/{method}_run{run_steps}_n{n}.log",
    benchmark:
        "results/benchmarks/clean_long/{dataset}/{attack}/{method}_run{run_steps}_n{n}.tsv"
    script:
        "../workflow_scripts/clean_long.py"


rule paper_steps_table:
    input:
        paper_steps.clean_long_files(),
    output:
        table="results/paper_steps.csv",
        curve="results/paper_steps_curve.csv",
    params:
        table_steps=TABLE_STEPS,
        paper_steps=config["paper_steps"]["steps"],
    log:
        "results/logs/paper_steps_table.log",
    script:
        "../workflow_scripts/paper_steps_table.py"
