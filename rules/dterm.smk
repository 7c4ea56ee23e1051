# Does the discriminator term help? (beyond the paper; docs/reproduction/fashion-mnist.md)
# Several GAN seeds; a validation grid over the D weight lam (0 = Defense-GAN), optimizers,
# steps and restarts; each method's setting chosen on validation by a rule; the test split at
# those settings and at shared fixed ones; paired statistics of cowboy minus Defense-GAN.


rule train_gan_seeded:
    input:
        data="results/data/{dataset}/train.safetensors",
        previous=dterm_previous_state,
    output:
        weights="results/models/{dataset}/gan_seed{gseed}/step{step}.safetensors",
        state="results/models/{dataset}/gan_seed{gseed}/step{step}.state.pt",
    params:
        gan=gan_params,
        seed=gan_seed,
    log:
        "results/logs/train_gan/{dataset}/seed{gseed}_step{step}.log",
    benchmark:
        "results/benchmarks/train_gan_seeded/{dataset}/seed{gseed}_step{step}.tsv"
    script:
        "../workflow_scripts/train_gan.py"


rule dterm_clean:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        gan=dterm_gan_file,
        adversarial="results/attacks/{dataset}/{split}/{attack}.safetensors",
    output:
        DTERM_CLEAN,
    params:
        images=dterm_images,
        record_steps=dterm_record_steps(),
        flip_images=dterm_flip_images,
        seed=SEED,
    log:
        DTERM_CLEAN.replace("results/", "results/logs/").replace(".parquet", ".log"),
    benchmark:
        DTERM_CLEAN.replace("results/", "results/benchmarks/").replace(".parquet", ".tsv")
    script:
        "../workflow_scripts/dterm_clean.py"


rule dterm_choose:
    input:
        unpack(dterm_choice_inputs),
    output:
        "results/dterm/{dataset}/{gan}/chosen.json",
    params:
        max_flip_rate=config["dterm"]["max_flip_rate"],
    log:
        "results/logs/dterm/{dataset}/{gan}/choose.log",
    script:
        "../workflow_scripts/dterm_choose.py"


rule dterm_test_chosen:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        gan=dterm_gan_file,
        adversarial="results/attacks/{dataset}/{split}/{attack}.safetensors",
        chosen="results/dterm/{dataset}/{gan}/chosen.json",
    output:
        "results/dterm/{dataset}/{split}/{attack}/{gan}/{method}_chosen_n{n}.parquet",
    params:
        images=dterm_images,
        record_steps=[],
        flip_images=0,
        seed=SEED,
    log:
        "results/logs/dterm/{dataset}/{split}/{attack}/{gan}/{method}_chosen_n{n}.log",
    benchmark:
        "results/benchmarks/dterm/{dataset}/{split}/{attack}/{gan}/{method}_chosen_n{n}.tsv"
    script:
        "../workflow_scripts/dterm_clean.py"


rule dterm_report:
    input:
        validation=dterm_all_validation_files(),
        chosen=dterm_test_files("chosen"),
        fixed=dterm_test_files("fixed"),
        choices=dterm_choice_files(),
    output:
        table=report("results/dterm.csv", category="Beyond the paper", caption="../report/dterm.rst"),
        validation=report("results/dterm_validation.csv", category="Beyond the paper", caption="../report/dterm.rst"),
        figure=report("results/figures/dterm.png", category="Beyond the paper", caption="../report/dterm.rst"),
    params:
        margin=config["dterm"]["margin"],
    log:
        "results/logs/report/dterm.log",
    script:
        "../workflow_scripts/dterm_report.py"
