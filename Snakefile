# cowboy: Tables 1-2 and Figures 1-7 of "Defending Against Adversarial Attacks by Leveraging
# an Entire GAN". Wiring only; the algorithms live in cowboy_core.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/quick.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/attack.smk"
include: "rules/detect.smk"
include: "rules/clean.smk"
include: "rules/card.smk"
include: "rules/report.smk"
include: "rules/adaptive.smk"
include: "rules/adversarial.smk"
include: "rules/variants.smk"
include: "rules/discriminator_study.smk"


rule all:
    input:
        paths.all_targets(),
        paper_steps.targets(),
