rule train_classifier:
    input:
        "results/data/{dataset}/train.safetensors",
    output:
        "results/models/{dataset}/classifier.safetensors",
    params:
        classifier=paths.classifier_params,
        seed=SEED,
    log:
        "results/logs/train_classifier/{dataset}.log",
    benchmark:
        "results/benchmarks/train_classifier/{dataset}.tsv"
    script:
        "../workflow_scripts/train_classifier.py"


# One job per segment between saved GAN steps: a killed job loses only its segment, and
# the rerun resumes from the previous segment's state (weights, Adam moments, RNG).
rule train_gan:
    input:
        data="results/data/{dataset}/train.safetensors",
        previous=paths.previous_gan_state,
    output:
        weights="results/models/{dataset}/gan/step{step}.safetensors",
        state="results/models/{dataset}/gan/step{step}.state.pt",
    params:
        gan=paths.gan_params,
        seed=SEED,
    log:
        "results/logs/train_gan/{dataset}/step{step}.log",
    benchmark:
        "results/benchmarks/train_gan/{dataset}/step{step}.tsv"
    script:
        "../workflow_scripts/train_gan.py"


# Which GAN the rest of the pipeline uses, when gan.candidates lists several saved steps:
# chosen on validation by the rule in workflow_scripts/cowboy_pipeline/gan_choice.py.
rule choose_gan:
    input:
        candidates=gan_choice.candidate_files,
        validation=gan_choice.validation_files,
    output:
        weights="results/models/{dataset}/gan/chosen.safetensors",
        choice=report(
            "results/models/{dataset}.gan-choice.csv",
            category="Beyond the paper",
            caption="../report/gan_choice.rst",
        ),
    params:
        choice=gan_choice.choice_params,
        seed=SEED,
    log:
        "results/logs/choose_gan/{dataset}.log",
    benchmark:
        "results/benchmarks/choose_gan/{dataset}.tsv"
    script:
        "../workflow_scripts/choose_gan.py"
