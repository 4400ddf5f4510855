"""Native refusal templates, compliance openers and over-refusals per language.

Templates are written in each language (``refuseu/data/templates/<lang>.yaml``), not
translated. The registry's version is a hash of every file it serves, so editing a
template changes the build signature.

Format 2 files are composable: a refusal for a harmful prompt is
``[opening] + core + reason(category) + [redirect(category)]`` and a compliance text is
``opener(category) + continuation``, each chosen by a mixed-radix decomposition of a
64-bit ``pick``, so a few dozen sentences give hundreds of distinct answers of varied
length. Self-harm, medical emergencies (hint ``urgent``) and specialized advice by domain
(hints ``medical``, ``legal``, ``financial``) get whole answers written for them.
Format 1 files (whole refusals per category, one list of openers) still load: then a pick
chooses one whole template.

In languages with formal and informal address, an entry of a composed list may be written
``{text: "...", address: formal}`` (or ``informal``); a pick then chooses one address first and
composes only from entries in that address or unmarked ones, so no answer mixes "du" and "Sie".
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from refuseu.errors import BuildError, InputError
from refuseu.resources import data_dir

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

#: Categories a format-2 file may give reasons, redirects and openers for (the MLCommons
#: hazard list of ``schemas/taxonomy.yaml``). Any other category uses the general lists.
CATEGORIES = ("violent_crimes", "non_violent_crimes", "sex_related_crimes", "child_sexual_exploitation",
              "defamation", "specialized_advice", "privacy", "intellectual_property", "indiscriminate_weapons",
              "hate", "suicide_self_harm", "sexual_content", "elections", "code_interpreter_abuse")
SELF_HARM = "suicide_self_harm"
SPECIALIZED = "specialized_advice"
DOMAINS = ("medical", "legal", "financial")
HINTS = ("urgent",) + DOMAINS
ADDRESSES = ("formal", "informal")

MIN_GENERAL_REFUSALS = 12  # format 1
# Format 2 minimums: field path -> fewest entries.
MINIMUMS = {
    "refusals.openings": 6, "refusals.core": 12, "refusals.reasons.general": 3, "refusals.reasons.<category>": 3,
    "refusals.redirects.general": 4, "refusals.redirects.<category>": 2, "refusals.self_harm": 6,
    "refusals.urgent": 4, "refusals.specialized.<domain>": 3, "compliance_openers.openers.general": 15,
    "compliance_openers.openers.<category>": 2, "compliance_openers.continuations": 8, "over_refusals": 8,
}
FORMAT_HINT = "see refuseu/data/templates/en.yaml for the format"


def minimum_for(field: str) -> int:
    """The fewest entries a format-2 list needs ("refusals.reasons.hate" -> 3)."""
    if field in MINIMUMS:
        return MINIMUMS[field]
    head, _, _ = field.rpartition(".")
    return MINIMUMS.get(f"{head}.<domain>" if head == "refusals.specialized" else f"{head}.<category>", 1)


def _mix(pick: int) -> int:
    """splitmix64 of the pick: neighbouring picks (consecutive ids) land far apart."""
    z = (int(pick) + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def _mix_many(picks) -> "np.ndarray":
    """:func:`_mix` of an array of picks (uint64 arithmetic wraps like the masks above)."""
    import numpy as np
    with np.errstate(over="ignore"):
        z = np.asarray(picks, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _gather(texts: tuple[str, ...], index, *, optional: bool = False) -> "pl.Series":
    """``texts[index]`` as a polars Series; with ``optional``, an index past the end is null."""
    import polars as pl
    values = list(texts) + ([None] if optional else [])
    idx = index if not optional else index.clip(max=len(texts))
    return pl.Series(values, dtype=pl.String).gather(pl.Series(idx.astype("int64")))


def _in_order(index: list, texts: list) -> "pl.Series":
    """The texts of row groups put back in row order (``index`` holds each group's rows)."""
    import numpy as np
    import polars as pl
    if not index:
        return pl.Series([], dtype=pl.String)
    order = np.argsort(np.concatenate(index), kind="stable")
    return pl.concat(texts).gather(pl.Series(order))


def _join(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class LanguageTemplates:
    """The templates of one language. Build with :meth:`TemplateRegistry.get`."""

    lang: str
    format: int
    openings: tuple[str, ...] = ()
    core: tuple[str, ...] = ()
    reasons: dict[str, tuple[str, ...]] = field(default_factory=dict)      # "general" + per category
    redirects: dict[str, tuple[str, ...]] = field(default_factory=dict)    # "general" + per category
    self_harm: tuple[str, ...] = ()
    urgent: tuple[str, ...] = ()
    specialized: dict[str, tuple[str, ...]] = field(default_factory=dict)  # domain -> whole answers
    openers: dict[str, tuple[str, ...]] = field(default_factory=dict)      # "general" + per category
    continuations: tuple[str, ...] = ()
    over_refusals: tuple[str, ...] = ()
    whole_refusals: dict[str, tuple[str, ...]] = field(default_factory=dict)  # format 1: "general" + per category
    address: dict[str, str] = field(default_factory=dict)  # text -> "formal" / "informal"; unmarked texts fit both
    _fitted: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # -- address ------------------------------------------------------------------------------

    @property
    def addresses(self) -> tuple[str | None, ...]:
        """The addresses a pick chooses among: both where the file marks any entry, else none."""
        return ADDRESSES if self.address else (None,)

    def _fit(self, texts: tuple[str, ...], address: str | None) -> tuple[str, ...]:
        """The entries of ``texts`` usable in ``address`` (unmarked ones and those marked so)."""
        if address is None:
            return texts
        key = (texts, address)
        if key not in self._fitted:
            self._fitted[key] = tuple(t for t in texts if self.address.get(t, address) == address)
        return self._fitted[key]

    # -- composition ------------------------------------------------------------------------

    def _whole(self, category: str, hint: str | None) -> tuple[str, ...] | None:
        """The whole-answer list for this category and hint, or None where answers are composed."""
        if hint is not None and hint not in HINTS:
            raise InputError(f"unknown template hint {hint!r}; expected one of {', '.join(HINTS)} or none",
                             field="hint")
        if self.format == 1:
            return self.whole_refusals.get(category) or self.whole_refusals["general"]
        if hint == "urgent":
            return self.urgent
        if category == SELF_HARM:
            return self.self_harm
        if category == SPECIALIZED and hint in DOMAINS:
            return self.specialized[hint]
        return None

    def _parts(self, category: str, address: str | None) -> tuple[tuple[str, ...], ...]:
        """Openings, core, reasons and redirects for ``category`` in ``address``."""
        return (self._fit(self.openings, address), self._fit(self.core, address),
                self._fit(self.reasons.get(category) or self.reasons["general"], address),
                self._fit(self.redirects.get(category) or self.redirects["general"], address))

    def chosen_for(self, category: str, hint: str | None = None, pick: int = 0) -> str:
        """The refusal for a harmful prompt of ``category``, deterministic in ``pick`` (64-bit).

        ``hint`` "urgent" (a medical emergency now) gives an urgent answer in any category;
        "medical", "legal" or "financial" give a specialized answer for category
        specialized_advice and are ignored elsewhere; suicide_self_harm gives a self-harm
        answer. Otherwise the answer is composed; a category without lists uses the general ones.
        The mixed pick is read as mixed-radix digits: address (where the file marks any),
        core, reason, opening (absent for two values in three), redirect (absent for two
        values in three), so lengths vary."""
        r = _mix(pick)
        whole = self._whole(category, hint)
        if whole is not None:
            return whole[r % len(whole)]
        r, a = divmod(r, len(self.addresses))
        openings, core, reasons, redirects = self._parts(category, self.addresses[a])
        r, c = divmod(r, len(core))
        r, reason = divmod(r, len(reasons))
        r, opening = divmod(r, 3 * len(openings))
        redirect = r % (3 * len(redirects))
        return _join(openings[opening] if opening < len(openings) else None, core[c],
                     reasons[reason], redirects[redirect] if redirect < len(redirects) else None)

    def chosen_many(self, categories, hints, picks) -> "pl.Series":
        """``chosen_for(c, h, p)`` for many rows at once (lists or Series), as a String Series;
        vectorized per category and hint."""
        import numpy as np
        import polars as pl
        df = pl.DataFrame({"category": pl.Series(categories, dtype=pl.String),
                           "hint": pl.Series(hints, dtype=pl.String)}).with_row_index("__i")
        r_all = _mix_many(picks)
        index, texts = [], []
        for (category, hint), g in df.group_by("category", "hint"):
            rows = g.get_column("__i").to_numpy().astype(np.int64)
            r = r_all[rows]
            whole = self._whole(category, hint)
            if whole is not None:
                index.append(rows)
                texts.append(_gather(whole, r % np.uint64(len(whole))))
                continue
            a, r = r % np.uint64(len(self.addresses)), r // np.uint64(len(self.addresses))
            for k, address in enumerate(self.addresses):
                sel = a == np.uint64(k)
                if not sel.any():
                    continue
                openings, core, reasons, redirects = self._parts(category, address)
                q = r[sel]
                c, q = q % np.uint64(len(core)), q // np.uint64(len(core))
                reason, q = q % np.uint64(len(reasons)), q // np.uint64(len(reasons))
                opening, q = q % np.uint64(3 * len(openings)), q // np.uint64(3 * len(openings))
                redirect = q % np.uint64(3 * len(redirects))
                index.append(rows[sel])
                texts.append(pl.select(pl.concat_str(
                    [_gather(openings, opening, optional=True), _gather(core, c), _gather(reasons, reason),
                     _gather(redirects, redirect, optional=True)], separator=" ", ignore_nulls=True)).to_series())
        return _in_order(index, texts)

    def rejected_many(self, categories, picks) -> "pl.Series":
        """``rejected_for(c, p)`` for many rows at once, as a String Series."""
        import numpy as np
        import polars as pl
        df = pl.DataFrame({"category": pl.Series(categories, dtype=pl.String)}).with_row_index("__i")
        r_all = _mix_many(picks)
        index, texts = [], []
        for (category,), g in df.group_by("category"):
            rows = g.get_column("__i").to_numpy().astype(np.int64)
            r = r_all[rows]
            a, r = r % np.uint64(len(self.addresses)), r // np.uint64(len(self.addresses))
            pool = self.opener_pool(category)
            for k, address in enumerate(self.addresses):
                sel = a == np.uint64(k)
                if not sel.any():
                    continue
                openers = self._fit(pool, address)
                q = r[sel]
                opener, q = q % np.uint64(len(openers)), q // np.uint64(len(openers))
                parts = [_gather(openers, opener)]
                if self.continuations:
                    continuations = self._fit(self.continuations, address)
                    parts.append(_gather(continuations, q % np.uint64(len(continuations))))
                index.append(rows[sel])
                texts.append(pl.select(pl.concat_str(parts, separator=" ")).to_series())
        return _in_order(index, texts)

    def over_refusals_many(self, picks) -> "pl.Series":
        """``over_refusal_for(p)`` for many rows at once, as a String Series."""
        import numpy as np
        if not self.over_refusals:
            self.over_refusal_for(0)  # the error
        return _gather(self.over_refusals, _mix_many(picks) % np.uint64(len(self.over_refusals)))

    def opener_pool(self, category: str) -> tuple[str, ...]:
        """Compliance openers for ``category``: its own list merged with the general one."""
        general = self.openers["general"]
        return general + tuple(o for o in self.openers.get(category, ()) if o not in general)

    def rejected_for(self, category: str, pick: int) -> str:
        """A compliance text (the template fallback for ``rejected``): opener + continuation."""
        r = _mix(pick)
        r, a = divmod(r, len(self.addresses))
        openers = self._fit(self.opener_pool(category), self.addresses[a])
        r, opener = divmod(r, len(openers))
        if not self.continuations:  # format 1: the opener alone
            return openers[opener]
        continuations = self._fit(self.continuations, self.addresses[a])
        return _join(openers[opener], continuations[r % len(continuations)])

    def over_refusal_for(self, pick: int) -> str:
        """A refusal of a benign request (the rejected side of a benign pair)."""
        if not self.over_refusals:
            raise BuildError(f"the {self.lang} templates have no over_refusals",
                             hint="add an over_refusals list to the template file")
        return self.over_refusals[_mix(pick) % len(self.over_refusals)]

    # -- everything a file can produce ----------------------------------------------------------

    def _compositions(self, category: str) -> Iterator[str]:
        for address in self.addresses:
            openings, core, reasons, redirects = self._parts(category, address)
            for parts in itertools.product((None,) + openings, core, reasons, (None,) + redirects):
                yield _join(*parts)

    def iter_refusals(self) -> Iterator[str]:
        """Every distinct refusal ``chosen_for`` can return (all categories and hints)."""
        seen: set[str] = set()
        if self.format == 1:
            streams = list(self.whole_refusals.values())
        else:
            streams = [self._compositions(c) for c in ("general",) + CATEGORIES if c != SELF_HARM]
            streams += [self.self_harm, self.urgent, *self.specialized.values()]
        for text in itertools.chain.from_iterable(streams):
            if text not in seen:
                seen.add(text)
                yield text

    def iter_rejected(self) -> Iterator[str]:
        """Every distinct compliance text ``rejected_for`` can return."""
        seen: set[str] = set()
        openers = tuple(o for pool in self.openers.values() for o in pool)
        for address in self.addresses:
            continuations = self._fit(self.continuations, address)
            for opener in self._fit(openers, address):
                for text in ([_join(opener, c) for c in continuations] if continuations else [opener]):
                    if text not in seen:
                        seen.add(text)
                        yield text

    def iter_parts(self) -> Iterator[tuple[str, str]]:
        """(field path, sentence) for every text in the file, for language-ID checks."""
        lists: list[tuple[str, tuple[str, ...]]]
        if self.format == 1:
            lists = [(f"refusals.{k}", v) for k, v in self.whole_refusals.items()]
            lists.append(("compliance_openers", self.openers["general"]))
        else:
            lists = [("refusals.openings", self.openings), ("refusals.core", self.core)]
            lists += [(f"refusals.reasons.{k}", v) for k, v in self.reasons.items()]
            lists += [(f"refusals.redirects.{k}", v) for k, v in self.redirects.items()]
            lists += [("refusals.self_harm", self.self_harm), ("refusals.urgent", self.urgent)]
            lists += [(f"refusals.specialized.{k}", v) for k, v in self.specialized.items()]
            lists += [(f"compliance_openers.openers.{k}", v) for k, v in self.openers.items()]
            lists.append(("compliance_openers.continuations", self.continuations))
        lists.append(("over_refusals", self.over_refusals))
        for path, texts in lists:
            for i, text in enumerate(texts):
                yield f"{path}[{i}]", text

    # -- whole pools (for callers that pick from a list) ----------------------------------------

    def refusal_pool(self, category: str) -> tuple[str, ...]:
        """Every refusal for ``category`` without a hint, in a fixed order."""
        return self.refusals.get(category) or self.refusals["general"]

    @cached_property
    def refusals(self) -> dict[str, tuple[str, ...]]:
        """Category -> every refusal it can get without a hint ("general" for any other category)."""
        if self.format == 1:
            return dict(self.whole_refusals)
        out = {c: tuple(dict.fromkeys(self._compositions(c))) for c in ("general",) + CATEGORIES if c != SELF_HARM}
        out[SELF_HARM] = self.self_harm
        return out

    @cached_property
    def compliance_openers(self) -> tuple[str, ...]:
        """Every compliance text of any category."""
        return tuple(self.iter_rejected())


# -- loading ---------------------------------------------------------------------------------------

class _Reader:
    """Checks the fields of one template file; every error names the file and the field."""

    def __init__(self, path: Path):
        self.path = path
        self.address: dict[str, str] = {}  # text -> address, for entries written {text, address}
        self.composed: list[tuple[str, tuple[str, ...]]] = []  # lists a pick composes from

    def fail(self, message: str, field: str, hint: str = FORMAT_HINT):
        raise InputError(message, file=str(self.path), field=field, hint=hint)

    def texts(self, value, field: str, minimum: int | None = None, *, required: bool = True) -> tuple[str, ...]:
        minimum = minimum_for(field) if minimum is None else minimum
        if value is None:
            if required:
                self.fail(f"missing; needs a list of at least {minimum} texts", field)
            return ()
        if not isinstance(value, list):
            self.fail(f"must be a list of texts, not {type(value).__name__}", field)
        out = tuple(self.entry(t, f"{field}[{i}]") for i, t in enumerate(value))
        if len(set(out)) < minimum:
            self.fail(f"needs at least {minimum} distinct texts, found {len(set(out))}", field)
        return out

    def entry(self, value, field: str) -> str:
        """A text, or ``{text: ..., address: formal|informal}``."""
        address = None
        if isinstance(value, dict):
            self.mapping(value, field, ("text", "address"))
            address, value = value.get("address"), value.get("text")
            if address not in ADDRESSES:
                self.fail(f"address must be one of {', '.join(ADDRESSES)}, not {address!r}", field)
        if not isinstance(value, str) or not value.strip():
            self.fail(f"must be a non-empty text (or {{text, address}}), not {value!r}", field)
        text = value.strip()
        if address is not None:
            if self.address.get(text, address) != address:
                self.fail(f"the same text is marked both {self.address[text]} and {address}", field)
            self.address[text] = address
        return text

    def composable(self, field: str, texts: tuple[str, ...]) -> tuple[str, ...]:
        self.composed.append((field, texts))
        return texts

    def check_addresses(self) -> None:
        """Where any entry is marked, every composed list needs an entry for each address."""
        if not self.address:
            return
        for field, texts in self.composed:
            for address in ADDRESSES:
                if not any(self.address.get(t, address) == address for t in texts):
                    self.fail(f"has no entry usable with {address} address (add an unmarked entry or one "
                              f"marked {address})", field)

    def mapping(self, value, field: str, allowed: tuple[str, ...], *, required: bool = True) -> dict:
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            self.fail(f"must be a mapping with keys among {', '.join(allowed)}", field)
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            self.fail(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}", field)
        return value

    def by_category(self, value, field: str) -> dict[str, tuple[str, ...]]:
        value = self.mapping(value, field, ("general",) + CATEGORIES)
        out = {"general": self.texts(value.get("general"), f"{field}.general")}
        for c in CATEGORIES:
            if c in value:
                out[c] = self.texts(value[c], f"{field}.{c}")
        for c, texts in out.items():
            self.composable(f"{field}.{c}", texts)
        return out


def load_templates(path: str | Path, lang: str | None = None) -> LanguageTemplates:
    """Load and check one template file (format 1 or 2)."""
    path = Path(path)
    lang = lang or path.stem
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {' '.join(str(e).split())}", file=str(path)) from None
    except OSError as e:
        raise InputError(f"cannot read template file: {e.strerror}", file=str(path)) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not valid UTF-8 ({e.reason} at byte {e.start})", file=str(path),
                         hint="re-save the file as UTF-8") from None
    rd = _Reader(path)
    if not isinstance(data, dict):
        rd.fail("must be a mapping with refusals and compliance_openers", "(top level)")
    if data.get("lang") not in (None, lang):
        rd.fail(f"says {data['lang']!r} but the file is for {lang!r}", "lang", hint=f"set lang: {lang}")
    fmt = data.get("format", 1)
    if fmt not in (1, 2):
        rd.fail(f"unknown format {fmt!r}; supported: 1, 2", "format")
    if fmt == 1:
        return _load_v1(data, lang, rd)
    rd.mapping(data, "(top level)", ("lang", "format", "refusals", "compliance_openers", "over_refusals"))
    ref = rd.mapping(data.get("refusals"), "refusals",
                     ("openings", "core", "reasons", "redirects", "self_harm", "urgent", "specialized"))
    comp = rd.mapping(data.get("compliance_openers"), "compliance_openers", ("openers", "continuations"))
    spec = rd.mapping(ref.get("specialized"), "refusals.specialized", DOMAINS)
    tpl = LanguageTemplates(
        lang=lang, format=2,
        openings=rd.composable("refusals.openings", rd.texts(ref.get("openings"), "refusals.openings")),
        core=rd.composable("refusals.core", rd.texts(ref.get("core"), "refusals.core")),
        reasons=rd.by_category(ref.get("reasons"), "refusals.reasons"),
        redirects=rd.by_category(ref.get("redirects"), "refusals.redirects"),
        self_harm=rd.texts(ref.get("self_harm"), "refusals.self_harm"),
        urgent=rd.texts(ref.get("urgent"), "refusals.urgent"),
        specialized={d: rd.texts(spec.get(d), f"refusals.specialized.{d}") for d in DOMAINS},
        openers=rd.by_category(comp.get("openers"), "compliance_openers.openers"),
        continuations=rd.composable("compliance_openers.continuations",
                                    rd.texts(comp.get("continuations"), "compliance_openers.continuations")),
        over_refusals=rd.texts(data.get("over_refusals"), "over_refusals"),
        address=rd.address,
    )
    rd.check_addresses()
    return tpl


def _load_v1(data: dict, lang: str, rd: _Reader) -> LanguageTemplates:
    refusals = data.get("refusals")
    if not isinstance(refusals, dict):
        rd.fail("missing; needs refusals.general and optional lists per category", "refusals")
    whole = {str(k): rd.texts(v, f"refusals.{k}", 1) for k, v in refusals.items()}
    whole["general"] = rd.texts(refusals.get("general"), "refusals.general", MIN_GENERAL_REFUSALS)
    openers = rd.texts(data.get("compliance_openers"), "compliance_openers", 1)
    return LanguageTemplates(lang=lang, format=1, whole_refusals=whole, openers={"general": openers},
                             over_refusals=rd.texts(data.get("over_refusals"), "over_refusals", 0, required=False))


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
        from refuseu.signatures import files_version
        return files_version(self.folder, languages, ".yaml")

    def require(self, languages: list[str]) -> None:
        missing = [lang for lang in languages if not (self.folder / f"{lang}.yaml").exists()]
        if missing:
            raise InputError(f"no refusal templates for language(s) {', '.join(missing)}", file=str(self.folder),
                             field="respond.templates", hint=f"add <lang>.yaml template files (templates exist for: "
                                                             f"{', '.join(self.languages())}) or drop the language(s)")

    def get(self, lang: str) -> LanguageTemplates:
        if lang not in self._cache:
            self.require([lang])
            self._cache[lang] = load_templates(self.folder / f"{lang}.yaml", lang)
        return self._cache[lang]
