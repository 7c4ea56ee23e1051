"""cowboy: detect adversarial inputs with a GAN's discriminator and clean them with G and D.

Santhanam & Grnarova, "Defending Against Adversarial Attacks by Leveraging an Entire GAN".
The algorithm: :mod:`cowboy_core.cleaning` (Algorithm 1), :mod:`cowboy_core.detection`
(section 3.4), :mod:`cowboy_core.defended` (what users deploy). Importing this package does
not import Snakemake; the pipeline's plumbing lives next to it, in workflow_scripts/cowboy_pipeline.

The names below load on first use (PEP 562), so that importing a torch-free module such as
:mod:`cowboy_core.choices` (which the Snakefile reads) does not import torch with them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .attacks import AttackSpec
    from .choices import AttackName, Optimizer
    from .cleaning import CleaningResult, Cowboy
    from .data import DatasetName
    from .defended import DefendedClassifier, DefenseReport, Policy
    from .descent import Objective, descend
    from .execution import Execution
    from .memory import Job
    from .settings import Method, Settings

# Each public name and the submodule that defines it.
_HOMES = {
    "AttackName": "choices",
    "AttackSpec": "attacks",
    "CleaningResult": "cleaning",
    "Cowboy": "cleaning",
    "DatasetName": "data",
    "DefendedClassifier": "defended",
    "DefenseReport": "defended",
    "Execution": "execution",
    "Job": "memory",
    "Method": "settings",
    "Objective": "descent",
    "Optimizer": "choices",
    "Policy": "defended",
    "Settings": "settings",
    "descend": "descent",
}
__all__ = [
    "AttackName",
    "AttackSpec",
    "CleaningResult",
    "Cowboy",
    "DatasetName",
    "DefendedClassifier",
    "DefenseReport",
    "Execution",
    "Job",
    "Method",
    "Objective",
    "Optimizer",
    "Policy",
    "Settings",
    "descend",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
