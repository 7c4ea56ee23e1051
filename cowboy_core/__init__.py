"""cowboy: detect adversarial inputs with a GAN's discriminator and clean them with G and D.

Santhanam & Grnarova, "Defending Against Adversarial Attacks by Leveraging an Entire GAN".
Importing this package does not import Snakemake.
"""

from .attacks import AttackName, AttackSpec
from .cleaning import CleaningResult, Cowboy, Method, Optimizer
from .data import DatasetName
from .defended import DefendedClassifier, DefenseReport, Policy
from .reparam import fold_batchnorm, subpixel_convs

__all__ = [
    "AttackName",
    "AttackSpec",
    "CleaningResult",
    "Cowboy",
    "DatasetName",
    "DefendedClassifier",
    "DefenseReport",
    "Method",
    "Optimizer",
    "Policy",
    "fold_batchnorm",
    "subpixel_convs",
]
__version__ = "0.1.0"
