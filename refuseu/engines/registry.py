"""Lazy name -> class registries: an engine's module (and its optional dependencies)
is imported only when that engine is asked for."""

from __future__ import annotations

import importlib

from refuseu.errors import BuildError, RecipeError


class Registry:
    def __init__(self, kind: str, entries: dict[str, tuple[str, str]]):
        # entries: name -> ("module:Class", "pip extra or package that provides it")
        self.kind = kind
        self.entries = entries

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str):
        if name not in self.entries:
            raise RecipeError(f"unknown {self.kind} engine '{name}'", field=self.kind,
                              hint=f"known engines: {', '.join(self.names())}")
        target, extra = self.entries[name]
        module, _, cls = target.partition(":")
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise BuildError(f"the {self.kind} engine '{name}' needs a package that is not installed "
                             f"({e.name})", hint=f"pip install 'refuseu[{extra}]'") from None
        return getattr(mod, cls)
