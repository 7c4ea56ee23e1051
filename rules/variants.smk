# Beyond the paper (issue 22): clean-all variants that aim to lower the benign cost. Each
# named variant of variants.cards is a grid of cleaning settings that the card's chooser
# picks from on validation, under the card's stability constraints: a card of its own, which
# rules/adaptive.smk attacks as the robustness defence "variant_{name}".
rule train_encoder:
    input:
        data="results/data/{dataset}/train.safetensors",
        gan=paths.final_gan,
    output:
        "results/models/{dataset}/encoder.safetensors",
    params:
        encoder=canonical(config["variants"]["encoder"]),
        seed=SEED,
    log:
        "results/logs/train_encoder/{dataset}.log",
    benchmark:
        "results/benchmarks/train_encoder/{dataset}.tsv"
    script:
        "../workflow_scripts/train_encoder.py"


# Defense-GAN's "Rec" classifier: the classifier fine-tuned on G's reconstructions, by the
# chosen card's cleaning, of training images.
rule rec_classifier:
    input:
        data="results/data/{dataset}/train.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        card="results/defense/{dataset}.safetensors",
    output:
        "results/models/{dataset}/classifier_rec.safetensors",
    params:
        rec=canonical(config["variants"]["rec_classifier"]),
        classifier=paths.classifier_params,
        seed=SEED,
    log:
        "results/logs/rec_classifier/{dataset}.log",
    benchmark:
        "results/benchmarks/rec_classifier/{dataset}.tsv"
    script:
        "../workflow_scripts/rec_classifier.py"


rule variant_grid:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier=suite.variant_classifier,
        gan=paths.final_gan,
        attack=paths.calibration_attack_file,
        encoder=suite.variant_encoder,
    output:
        "results/defense/{dataset}/variants/{variant}/{setting}.parquet",
    params:
        setting=suite.variant_setting,
        card=paths.card_measurement(),
        seed=SEED,
    log:
        "results/logs/variant_grid/{dataset}/{variant}/{setting}.log",
    benchmark:
        "results/benchmarks/variant_grid/{dataset}/{variant}/{setting}.tsv"
    script:
        "../workflow_scripts/grid_setting.py"


use rule card_choice as variant_choice with:
    input:
        suite.variant_grid_files,
    output:
        report(
            "results/defense/{dataset}/variants/{variant}.choice.csv",
            category="Beyond the paper",
            caption="../report/variants.rst",
        ),
    log:
        "results/logs/variant_choice/{dataset}/{variant}.log",


rule variant_card:
    input:
        data="results/data/{dataset}/eval.safetensors",
        gan=paths.final_gan,
        val_scores=paths.final_val_scores,
        choice="results/defense/{dataset}/variants/{variant}.choice.csv",
        encoder=suite.variant_encoder,
    output:
        "results/defense/{dataset}/variants/{variant}.safetensors",
    params:
        settings=suite.variant_settings,
        detection=canonical(config["detection"]),
        classifier=suite.variant_classifier,  # the provenance's classifier: a param, so that a change reruns it
    log:
        "results/logs/variant_card/{dataset}/{variant}.log",
    script:
        "../workflow_scripts/variant_card.py"
