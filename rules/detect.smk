# D-scores of real and adversarial inputs at one GAN checkpoint (Figures 3, 4 and 7).
rule score:
    input:
        data="results/data/{dataset}/eval.safetensors",
        classifier="results/models/{dataset}/classifier.safetensors",
        gan=paths.gan_for_ckpt,
        attacks=paths.attack_files,
    output:
        "results/scores/{dataset}/{split}/ckpt{ckpt}.parquet",
    log:
        "results/logs/score/{dataset}/{split}/ckpt{ckpt}.log",
    benchmark:
        "results/benchmarks/score/{dataset}/{split}/ckpt{ckpt}.tsv"
    script:
        "../workflow_scripts/score.py"
