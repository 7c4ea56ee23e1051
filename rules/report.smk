localrules:
    tables,
    figure_scores,
    figure_lowest_real,
    figure_cleaning,
    figure_gan_quality,
    reproduction,
    defense_card,
    card_choice,
    deployment_table,
    deployment_curve,
    robustness_report,
    adversarial_table,
    discriminator_study_report,
    discriminator_study_choose,


rule tables:
    input:
        clean=paths.table_clean_files(),
        card_clean=paths.card_table_clean_files(),
        sweep=paths.sweep_clean_files(),
        test_scores=paths.score_files("test"),
        val_scores=paths.score_files("val"),
    output:
        table1=report("results/table1.csv", category="Tables", caption="../report/table1.rst"),
        table2=report("results/table2.csv", category="Tables", caption="../report/table2.rst"),
        detection=report("results/detection.csv", category="Tables", caption="../report/detection.rst"),
        accuracy="results/accuracy.csv",
        sweep=report("results/sweep.csv", category="Tables", caption="../report/sweep.rst"),
    params:
        sigma=CLEANING["sigma"],
        steps=TABLE_STEPS,
        detection=canonical(config["detection"]),
        datasets=DATASETS,
    log:
        "results/logs/report/tables.log",
    script:
        "../workflow_scripts/tables.py"


# Table 2 as a paired test: cowboy minus Defense-GAN on the same test images, per attack, at
# the paper's settings and at the card's (the tables above give each method's own interval).
rule table2_paired:
    input:
        clean=paths.table_clean_files(),
        card_clean=paths.card_table_clean_files(),
    output:
        report("results/table2_paired.csv", category="Tables", caption="../report/table2_paired.rst"),
    params:
        sigma=CLEANING["sigma"],
        steps=TABLE_STEPS,
        seed=SEED,
    log:
        "results/logs/report/table2_paired.log",
    script:
        "../workflow_scripts/table2_paired.py"


rule figure_scores:
    input:
        test_scores=paths.score_files("test"),
    output:
        report("results/figures/fig3_scores.png", category="Figures", caption="../report/fig3.rst"),
    log:
        "results/logs/report/fig3.log",
    script:
        "../workflow_scripts/figure_scores.py"


rule figure_lowest_real:
    input:
        data=expand("results/data/{dataset}/eval.safetensors", dataset=DATASETS),
        test_scores=paths.score_files("test"),
    output:
        report("results/figures/fig4_lowest_real.png", category="Figures", caption="../report/fig4.rst"),
    params:
        images=config["figures"]["grid_images"],
    log:
        "results/logs/report/fig4.log",
    script:
        "../workflow_scripts/figure_lowest_real.py"


rule figure_cleaning:
    input:
        grids=paths.cleaning_grid_files(),
    output:
        [report(path, category="Figures", caption="../report/fig5.rst") for path in paths.figure5_files()],
    log:
        "results/logs/report/fig5.log",
    script:
        "../workflow_scripts/figure_cleaning.py"


rule figure_gan_quality:
    input:
        clean=paths.gan_quality_clean_files(),
        scores=paths.gan_quality_score_files(),
    output:
        cleaning=report("results/figures/fig6_gan_quality_cleaning.png", category="Figures", caption="../report/fig6.rst"),
        detection=report("results/figures/fig7_gan_quality_detection.png", category="Figures", caption="../report/fig7.rst"),
    params:
        attack=config["figures"]["gan_quality_attack"],
    log:
        "results/logs/report/fig6_fig7.log",
    script:
        "../workflow_scripts/figure_gan_quality.py"


rule toy:
    output:
        classifier=report("results/figures/fig1_toy_classifier.png", category="Figures", caption="../report/fig1.rst"),
        discriminator=report("results/figures/fig2_toy_discriminator.png", category="Figures", caption="../report/fig2.rst"),
        metrics="results/toy_metrics.csv",
    params:
        toy=canonical(config["toy"]),
        seed=SEED,
    log:
        "results/logs/toy.log",
    script:
        "../workflow_scripts/toy.py"


rule reproduction:
    input:
        accuracy="results/accuracy.csv",
        detection="results/detection.csv",
        sweep="results/sweep.csv",
        deployment="results/deployment.csv",
        paired="results/table2_paired.csv",
        figures=paths.figure_targets(),
    output:
        table="{outdir}/{name}-table1.csv",
        markdown="{outdir}/{name}-results.md",
        figures=directory("{outdir}/{name}-figures"),
    params:
        dataset=config.get("reproduction", {}).get("dataset"),
        epsilons=paths.reproduction_epsilons,
    log:
        "results/logs/report/reproduction/{outdir}/{name}.log",
    script:
        "../workflow_scripts/reproduction.py"


