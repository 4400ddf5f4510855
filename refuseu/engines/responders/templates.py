"""Native refusal templates, compliance openers and over-refusals per language.

Templates are written in each language (``refuseu/data/templates/<lang>.yaml``), not
translated. The registry's version is a hash of every file it serves, so editing a
template changes the build signature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from refuseu.errors import BuildError, InputError
from refuseu.resources import data_dir

MIN_GENERAL_REFUSALS = 12


@dataclass(frozen=True)
class LanguageTemplates:
    lang: str
    refusals: dict[str, tuple[str, ...]]    # "general" and category-specific lists
    compliance_openers: tuple[str, ...]
    over_refusals: tuple[str, ...]

    def refusal_pool(self, category: str) -> tuple[str, ...]:
        return self.refusals.get(category) or self.refusals["general"]


class TemplateRegistry:
    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder not in (None, "builtin") else data_dir() / "templates"
        if not self.folder.is_dir():
            raise InputError("template folder not found", file=str(self.folder), field="respond.templates",
                             hint="use 'builtin' or a folder of <lang>.yaml files")
        self._cache: dict[str, LanguageTemplates] = {}

    def languages(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.yaml"))

    def version(self, languages: list[str]) -> str:
        h = hashlib.sha256()
        for lang in sorted(languages):
            p = self.folder / f"{lang}.yaml"
            if p.exists():
                h.update(lang.encode() + b"\0" + p.read_bytes())
        return h.hexdigest()[:16]

    def require(self, languages: list[str]) -> None:
        missing = [lang for lang in languages if not (self.folder / f"{lang}.yaml").exists()]
        if missing:
            raise BuildError(f"no refusal templates for language(s) {', '.join(missing)} in {self.folder}",
                             hint=f"add <lang>.yaml template files (templates exist for: "
                                  f"{', '.join(self.languages())}) or drop the language(s)")

    def get(self, lang: str) -> LanguageTemplates:
        if lang not in self._cache:
            path = self.folder / f"{lang}.yaml"
            self.require([lang])
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as e:
                raise InputError(f"invalid YAML: {e}", file=str(path)) from None
            try:
                refusals = {k: tuple(v) for k, v in data["refusals"].items()}
                tpl = LanguageTemplates(lang=lang, refusals=refusals,
                                        compliance_openers=tuple(data["compliance_openers"]),
                                        over_refusals=tuple(data.get("over_refusals") or ()))
            except (KeyError, TypeError, AttributeError) as e:
                raise InputError(f"template file lacks {e}", file=str(path),
                                 hint="needs refusals.general, compliance_openers (see en.yaml)") from None
            if len(tpl.refusals.get("general", ())) < MIN_GENERAL_REFUSALS:
                raise InputError(f"needs at least {MIN_GENERAL_REFUSALS} general refusals",
                                 file=str(path), field="refusals.general")
            if not tpl.compliance_openers:
                raise InputError("needs at least one compliance opener", file=str(path),
                                 field="compliance_openers")
            self._cache[lang] = tpl
        return self._cache[lang]
