"""The translator protocol."""

from __future__ import annotations

from typing import Protocol


class Translator(Protocol):
    name: str

    def signature(self) -> dict:
        """Engine id, model and revision: what decides its outputs (no secrets)."""

    def covers(self, lang: str) -> bool:
        """Whether the engine can translate English into ``lang`` at all."""

    def translate(self, texts: list[str], *, src: str, tgt: str) -> list[str | None]:
        """Translations in input order; None where this engine has none (a chain goes on)."""
