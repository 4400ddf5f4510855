"""The language-ID protocol and the groups of easily confused languages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Languages that short-text identifiers confuse with each other (ISO 639-1). fastText
# lite mixes these up on short sentences; lingua separates them well when it is asked to
# choose only among the members of one group.
CONFUSABLE_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"cs", "sk"}),
    frozenset({"sl", "hr", "sr", "bs"}),
    frozenset({"lv", "lt"}),
    frozenset({"da", "no", "nb", "nn", "sv"}),
    frozenset({"es", "gl", "pt", "ca"}),
)


def group_of(lang: str) -> frozenset[str]:
    for g in CONFUSABLE_GROUPS:
        if lang in g:
            return g
    return frozenset({lang})


@dataclass(frozen=True)
class Prediction:
    lang: str        # ISO 639-1 where known, else the engine's own label
    score: float     # engine confidence in [0, 1]
    engine: str


class LanguageIdentifier(Protocol):
    name: str

    def signature(self) -> dict: ...

    def predict(self, texts: list[str], expected: list[str | None] | None = None) -> list[Prediction]:
        """One prediction per text; ``expected`` languages let a combined rule decide cheaply."""
