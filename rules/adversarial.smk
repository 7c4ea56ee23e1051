# Beyond the paper (issue 22): what users would pick instead of a purifier, the same
# classifier trained with PGD adversarial training (Madry et al.). Each setting of
# adversarial_training.grid is trained; per robustness epsilon, the one with the best
# validation objective (the card's: the mean of clean and PGD-attacked accuracy) is the
# "adversarial" defence that rules/adaptive.smk attacks, alone and under cowboy's clean-all.
rule train_adversarial:
    input:
        "results/data/{dataset}/train.safetensors",
    output:
        "results/adversarial/{dataset}/{setting}.safetensors",
    params:
        setting=suite.adversarial_setting,
        classifier=paths.classifier_params,
        seed=SEED,
    log:
        "results/logs/train_adversarial/{dataset}/{setting}.log",
    benchmark:
        "results/benchmarks/train_adversarial/{dataset}/{setting}.tsv"
    script:
        "../workflow_scripts/train_classifier.py"


# One choice per epsilon, so that a run listing other epsilons reruns none of this one's
# models (nor the suite runs downstream of them).
rule adversarial_choice:
    input:
        data="results/data/{dataset}/eval.safetensors",
        grid=suite.adversarial_grid_files,
    output:
        table="results/adversarial/{dataset}/choice_eps{epsilon}.csv",
        model="results/models/{dataset}/adversarial_eps{epsilon}.safetensors",
    params:
        epsilon=lambda wildcards: float(wildcards.epsilon),
        images=config["adversarial_training"]["validation_images"],
        steps=config["adversarial_training"]["validation_steps"],
        grid=canonical(config["adversarial_training"]["grid"]),
        seed=SEED,
    log:
        "results/logs/adversarial_choice/{dataset}_eps{epsilon}.log",
    benchmark:
        "results/benchmarks/adversarial_choice/{dataset}_eps{epsilon}.tsv"
    script:
        "../workflow_scripts/adversarial_choice.py"


rule adversarial_table:
    input:
        suite.adversarial_choice_tables,
    output:
        report(
            "results/adversarial/{dataset}.adversarial-training.csv", category="Beyond the paper", caption="../report/adversarial.rst"
        ),
    log:
        "results/logs/report/adversarial_{dataset}.log",
    script:
        "../workflow_scripts/concat_tables.py"
