"""cowboy: detect adversarial inputs with a GAN's discriminator and clean them with G and D.

Santhanam & Grnarova, "Defending Against Adversarial Attacks by Leveraging an Entire GAN".
The algorithm: :mod:`cowboy_core.cleaning` (Algorithm 1), :mod:`cowboy_core.detection`
(section 3.4), :mod:`cowboy_core.defended` (what users deploy). Importing this package does
not import Snakemake; the pipeline's plumbing lives next to it, in workflow_scripts/cowboy_pipeline.
"""

from .attacks import AttackName, AttackSpec
from .cleaning import CleaningResult, Cowboy
from .data import DatasetName
from .defended import DefendedClassifier, DefenseReport, Policy
from .descent import Objective, descend
from .execution import Execution
from .settings import Method, Settings
from .updates import Optimizer

__all__ = [
    "AttackName",
    "AttackSpec",
    "CleaningResult",
    "Cowboy",
    "DatasetName",
    "DefendedClassifier",
    "DefenseReport",
    "Execution",
    "Method",
    "Objective",
    "Optimizer",
    "Policy",
    "Settings",
    "descend",
]
__version__ = "0.1.0"
