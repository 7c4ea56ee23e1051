"""The defences a config builds: a leaf module (no imports from the pipeline's package), so that
config.py can check robustness.defenses without importing the path functions, which import it."""

from __future__ import annotations

from typing import Any

ADVERSARIAL_DEFENSES = ["adversarial", "adversarial_cowboy"]
VARIANT_PREFIX = "variant_"  # robustness defence "variant_encoder": the card of variants.cards.encoder
# A variant's name, as the wildcards match it and config/schema.yaml allows it: no "_", which
# separates the defence from "_eps{epsilon}" in the suite's file names.
VARIANT_NAME = "[a-z0-9-]+"
VARIANT_DEFENSE = f"{VARIANT_PREFIX}{VARIANT_NAME}"


def available_defenses(config: dict[str, Any], dataset: str) -> list[str]:
    """Every defence the config builds for a dataset, whether or not this run attacks it."""
    adversarial = dataset in config["adversarial_training"]["datasets"]
    variants = config["variants"]["cards"] if dataset in config["variants"]["datasets"] else {}
    return [
        "none",
        *config["cleaning"]["methods"],
        *(ADVERSARIAL_DEFENSES if adversarial else []),
        *(f"{VARIANT_PREFIX}{name}" for name in variants),
    ]


def robustness_defenses(config: dict[str, Any], dataset: str) -> list[str]:
    """What the suite attacks: the bare classifier, each cleaning method's card and, where
    the config trains one, the adversarially trained classifier alone and under cowboy."""
    chosen = config["robustness"].get("defenses")
    return [d for d in available_defenses(config, dataset) if chosen is None or d in chosen]
