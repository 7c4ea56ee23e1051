# Does the discriminator term help? (beyond the paper; docs/reproduction/fashion-mnist.md)
# Several GAN seeds; a validation grid over the D weight d_weight (0 = Defense-GAN), optimizers,
# steps and restarts; each method's setting chosen on validation by a rule; the test split at
# those settings and at shared fixed ones; paired statistics of cowboy minus Defense-GAN.


rule train_gan_seeded:
    input:
        data="results/data/{dataset}/train.safetensors",
        previous=study.previous_state,
    output:
        weights="results/models/{dataset}/gan_seed{gseed}/step{step}.safetensors",
        state="results/models/{dataset}/gan_seed{gseed}/step{step}.state.pt",
    params:
        gan=paths.gan_params,
        seed=study.gan_seed,
    log:
        "results/logs/train_gan/{dataset}/seed{gseed}_step{step}.log",
    benchmark:
        "results/benchmarks/train_gan_seeded/{dataset}/seed{gseed}_step{step}.tsv"
    script:
        "../workflow_scripts/train_gan.py"


rule discriminator_study_clean:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        gan=study.gan_file,
        adversarial="results/attacks/{dataset}/{split}/{attack}.safetensors",
    output:
        study_functions.CLEAN_PATTERN,
    params:
        images=study.images,
        record_steps=study.record_steps(),
        flip_images=study.flip_images,
        seed=SEED,
    log:
        study_functions.CLEAN_PATTERN.replace("results/", "results/logs/").replace(".parquet", ".log"),
    benchmark:
        study_functions.CLEAN_PATTERN.replace("results/", "results/benchmarks/").replace(".parquet", ".tsv")
    script:
        "../workflow_scripts/discriminator_study_clean.py"


rule discriminator_study_choose:
    input:
        unpack(study.choice_inputs),
    output:
        "results/discriminator_study/{dataset}/{gan}/chosen.json",
    params:
        max_flip_rate=config["discriminator_study"]["max_flip_rate"],
    log:
        "results/logs/discriminator_study/{dataset}/{gan}/choose.log",
    script:
        "../workflow_scripts/discriminator_study_choose.py"


rule discriminator_study_test_chosen:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        gan=study.gan_file,
        adversarial="results/attacks/{dataset}/{split}/{attack}.safetensors",
        chosen="results/discriminator_study/{dataset}/{gan}/chosen.json",
    output:
        "results/discriminator_study/{dataset}/{split}/{attack}/{gan}/{method}_chosen_n{n}.parquet",
    params:
        images=study.images,
        record_steps=[],
        flip_images=0,
        seed=SEED,
    log:
        "results/logs/discriminator_study/{dataset}/{split}/{attack}/{gan}/{method}_chosen_n{n}.log",
    benchmark:
        "results/benchmarks/discriminator_study/{dataset}/{split}/{attack}/{gan}/{method}_chosen_n{n}.tsv"
    script:
        "../workflow_scripts/discriminator_study_clean.py"


rule discriminator_study_report:
    input:
        validation=study.all_validation_files(),
        chosen=study.files_for_test_split("chosen"),
        fixed=study.files_for_test_split("fixed"),
        choices=study.choice_files(),
    output:
        table=report("results/discriminator_study.csv", category="Beyond the paper", caption="../report/discriminator_study.rst"),
        validation=report("results/discriminator_study_validation.csv", category="Beyond the paper", caption="../report/discriminator_study.rst"),
        figure=report("results/figures/discriminator_study.png", category="Beyond the paper", caption="../report/discriminator_study.rst"),
    params:
        margin=config["discriminator_study"]["margin"],
    log:
        "results/logs/report/discriminator_study.log",
    script:
        "../workflow_scripts/discriminator_study_report.py"
