"""The cleaning settings a defence card records, and the range of every one of them.

One table of rules (:data:`SETTING_RULES`) checks settings wherever they enter: the
constructor of :class:`~cowboy_core.cleaning.Cowboy`, a card on load, the command line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from .choices import Choice, Optimizer


class Method(Choice, what="cleaning method"):
    """Cleaning objective: the paper's (with D) or the Defense-GAN baseline (without)."""

    COWBOY = "cowboy"
    DEFENSE_GAN = "defense_gan"


class Start(Choice, what="cleaning start"):
    """Where each input's descent starts: the prior's seeded draws (the paper), or the
    encoder's guess E(x) for restart 0 (the card then carries E)."""

    PRIOR = "prior"
    ENCODER = "encoder"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The algorithm's settings, as a defence card records them.

    Args:
        sigma: the Gaussian width of eq. (4); trades reconstruction against realness.
        steps: gradient steps m.
        lr: step size eta (the largest step tried, for "backtracking").
        restarts: z0 per input; the one with the lowest final L is kept.
        method: "cowboy" (eq. 4) or "defense_gan" (the D term dropped).
        optimizer: "gd" (the paper), "momentum", "adam" or "backtracking" (stable GD).
        early_stop_tol: a row stops once its loss improved by less than this fraction over
            50 steps; None runs every row for all steps.
        d_weight: the D term's weight in the equivalent form ``1/2 ||G(z)-x||^2 + d_weight (-log D(G(z)))``
            (eq. 4 times sigma^2, so d_weight = sigma^2); None uses eq. 4 with ``sigma``.
        start: "prior" (z0 drawn from the seed) or "encoder" (restart 0 from E(x), the rest
            from the seed's draws): with one restart, cleaning no longer depends on a seed.
    """

    sigma: float = 1.0
    steps: int = 25
    lr: float = 0.05
    restarts: int = 1
    method: str = Method.COWBOY.value
    optimizer: str = Optimizer.GD.value
    early_stop_tol: float | None = None
    d_weight: float | None = None
    start: str = Start.PRIOR.value


# Without a card, the paper's protocol as the committed Fashion-MNIST reproduction runs it
# (config/reproduce-fmnist.yaml): plain GD for 25 steps at step size 0.05, sigma 1.
DEFAULT_SETTINGS = Settings()


class SettingsError(ValueError):
    """A cleaning setting that is unknown or out of range."""


def finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def plain_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _member(kind: type[Choice]) -> Any:
    return lambda v: isinstance(v, str) and v in {m.value for m in kind}


# Per setting: the check, and what a valid value is (for the message).
SETTING_RULES: dict[str, tuple[Any, str]] = {
    "sigma": (lambda v: finite_number(v) and v > 0, "a finite number > 0"),
    "steps": (lambda v: plain_integer(v) and 0 <= v <= 1_000_000, "an integer in [0, 1000000]"),
    "lr": (lambda v: finite_number(v) and v > 0, "a finite number > 0"),
    "restarts": (lambda v: plain_integer(v) and 1 <= v <= 10_000, "an integer in [1, 10000]"),
    "method": (_member(Method), f"one of {', '.join(Method)}"),
    "optimizer": (_member(Optimizer), f"one of {', '.join(Optimizer)}"),
    "early_stop_tol": (lambda v: v is None or (finite_number(v) and 0 < v < 1), "null or a number in (0, 1)"),
    "d_weight": (lambda v: v is None or (finite_number(v) and v >= 0), "null or a finite number >= 0"),
    "start": (_member(Start), f"one of {', '.join(Start)}"),
}
if set(SETTING_RULES) != {f.name for f in fields(Settings)}:
    raise ImportError("every cleaning setting needs a rule in SETTING_RULES")


def check_settings(settings: Any, where: str = "settings") -> Settings:
    """``settings`` (a mapping) as :class:`Settings`; :class:`SettingsError` names the first
    unknown key or out-of-range value. Enums are accepted and stored as their strings."""
    if not isinstance(settings, dict):
        raise SettingsError(f"{where} must be a mapping of cleaning settings, got {type(settings).__name__}")
    unknown = sorted(set(settings) - set(SETTING_RULES))
    if unknown:
        raise SettingsError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(SETTING_RULES)}")
    plain: dict[str, Any] = {
        key: value.value if isinstance(value, Choice) else value for key, value in settings.items()
    }
    for key, value in plain.items():
        valid, expected = SETTING_RULES[key]
        if not valid(value):
            raise SettingsError(f"{where}.{key} = {value!r} is out of range; it must be {expected}")
    return Settings(**plain)
