# What users deploy: one card per dataset (G, D, threshold, cleaning settings, provenance),
# from the validation split only: the test images never touch it.
# Its cleaning settings are chosen on the validation split by a rule: every setting of
# card.grid is measured (accuracy on clean and calibration-attack images after cleaning, and
# how often a prediction flips alone, in another chunking or under a 1e-4 perturbation),
# and the best objective among the settings with every flip rate <= card.max_flip_rate wins.
#
# The card's rules run first among the jobs ready at once (priority): the grid, the card and
# the card alone are the DAG's longest chain, and the many cleaning jobs for the tables fill
# the cores beside it. In quick.yaml's run the grid otherwise waited behind them and the run
# ended on the card alone, by itself.
CARD_FIRST = 10


rule card_grid:
    priority: CARD_FIRST
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        gan=paths.final_gan,
        attack=paths.calibration_attack_file,
    output:
        "results/defense/{dataset}/grid/{setting}.parquet",
    params:
        setting=paths.card_grid_setting,
        card=paths.card_measurement(),
        seed=SEED,
    log:
        "results/logs/card_grid/{dataset}/{setting}.log",
    benchmark:
        "results/benchmarks/card_grid/{dataset}/{setting}.tsv"
    script:
        "../workflow_scripts/grid_setting.py"


rule card_choice:
    priority: CARD_FIRST
    input:
        paths.card_grid_files,
    output:
        report("results/defense/{dataset}.choice.csv", category="Beyond the paper", caption="../report/card.rst"),
    params:
        card=paths.card_choice_params(),
    log:
        "results/logs/card_choice/{dataset}.log",
    script:
        "../workflow_scripts/card_choice.py"


rule defense_card:
    priority: CARD_FIRST
    input:
        data="results/data/{dataset}/eval.safetensors",
        gan=paths.final_gan,
        val_scores=paths.final_val_scores,
        choice="results/defense/{dataset}.choice.csv",
    output:
        "results/defense/{dataset}.safetensors",
    params:
        fixed=paths.card_fixed(),
        detection=canonical(config["detection"]),
    log:
        "results/logs/defense_card/{dataset}.log",
    script:
        "../workflow_scripts/defense_card.py"


# The chosen card on every validation image the chooser used, in batches, and alone on the
# first card.deployed_alone_images of each kind (null: all; the chooser itself cleans
# card.alone_images alone). Each image alone costs a whole padded chunk: all 400 of
# quick.yaml's were 514 s of its run (2 threads, beside a suite job), 50 of each kind 151 s
# (AMD EPYC, avx512f). Two threads: it is the DAG's last long job and runs by itself. Its
# flips compare cleanings inside the one job, at one thread count.
rule card_alone:
    priority: CARD_FIRST
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        card="results/defense/{dataset}.safetensors",
        attack=paths.calibration_attack_file,
    output:
        "results/defense/{dataset}.alone.csv",
    threads: 2
    params:
        card=paths.card_alone_params(),
        seed=SEED,
    log:
        "results/logs/card_alone/{dataset}.log",
    benchmark:
        "results/benchmarks/card_alone/{dataset}.tsv"
    script:
        "../workflow_scripts/card_alone.py"
