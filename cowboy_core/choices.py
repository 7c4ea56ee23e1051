"""String enums for the experiment's axes, parsed from config strings with a clear error.

The axes the workflow names in its file paths (attacks, optimizers) live here, in a module
that imports no torch: the Snakefile reads them, and every Snakemake start (a dry run, each
SLURM job) would otherwise pay torch's import, about 1.7 CPU seconds.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self


class Choice(StrEnum):
    """A StrEnum whose :meth:`parse` names the kind of value and lists the allowed ones.

    Subclasses say what they are: ``class AttackName(Choice, what="attack")``.
    """

    def __init_subclass__(cls, *, what: str = "value", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._what = what  # type: ignore[attr-defined]

    @classmethod
    def parse(cls, name: str | Self) -> Self:
        try:
            return cls(name)
        except ValueError:
            allowed = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown {cls._what} {name!r}; allowed: {allowed}") from None  # type: ignore[attr-defined]


class AttackName(Choice, what="attack"):
    """The attacks of the paper's Tables 1 and 2."""

    FGSM = "fgsm"  # in the order of the paper's rows
    PGD = "pgd"
    BIM = "bim"
    MIM = "mim"
    VAM = "vam"

    @property
    def norm(self) -> str:
        return "l2" if self is AttackName.VAM else "linf"


# "none" stands for the unattacked images (the clean half of a deployment stream).
NO_ATTACK = "none"
# A labelled attack, "fgsm-std", runs one attack at another budget.
LABEL_PATTERN = "(-[a-z0-9]+)?"


def attack_pattern() -> str:
    """Regular expression of a (labelled) attack name, for configs and wildcards."""
    return f"({'|'.join(AttackName)}){LABEL_PATTERN}"


def parse_attack(name: str) -> tuple[AttackName | None, str]:
    """Split a labelled attack: "fgsm-std" is (FGSM, "std"); "none" is (None, "")."""
    if name == NO_ATTACK:
        return None, ""
    base, _, label = name.partition("-")
    return AttackName.parse(base), label


class Optimizer(Choice, what="optimizer"):
    """Update rule on z: the paper's plain gradient descent, heavy-ball momentum, Adam, or
    gradient descent with a per-row backtracking (Armijo) line search."""

    GD = "gd"
    MOMENTUM = "momentum"
    ADAM = "adam"
    BACKTRACKING = "backtracking"
