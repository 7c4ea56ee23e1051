"""String enums for the experiment's axes, parsed from config strings with a clear error."""

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
