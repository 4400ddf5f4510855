"""The dataset card (release README.md): Hub YAML front matter + generated statistics."""

from __future__ import annotations

import polars as pl
import yaml

from refuseu.languages import LANGUAGES
from refuseu.taxonomy import load_taxonomy

GATING_PROMPT = ("This dataset contains harmful requests (in many languages) collected to train and "
                 "evaluate refusal behaviour of language models. By requesting access you agree to use "
                 "it only for AI-safety research and alignment, and not to use its prompts to cause harm.")


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def front_matter(*, written: dict[str, list[str]], languages: list[str], license: str, gated: bool,
                 n_rows: int, pretty_name: str) -> dict:
    configs: dict[str, list] = {}
    for key in written:
        config, split = key.split("/")
        stem = "eval" if config == "evaluation" else split
        configs.setdefault(config, []).append({"split": split, "path": f"data/{config}/{stem}-*.parquet"})
    meta = {
        "pretty_name": pretty_name,
        "language": languages,
        "license": license,
        "task_categories": ["text-generation"],
        "tags": ["safety", "refusal", "dpo", "preference", "multilingual", "red-teaming"],
        "size_categories": [size_category(n_rows)],
        "configs": [{"config_name": c, "data_files": files} for c, files in configs.items()],
    }
    if gated:
        meta["extra_gated_prompt"] = GATING_PROMPT
        meta["extra_gated_fields"] = {"Intended use": "text", "I agree to use this dataset for safety research only": "checkbox"}
    return meta


def _table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _qe_section(stats: dict | None) -> str:
    qe = (stats or {}).get("qe") or {}
    if not qe:
        return ("Translation quality: no row was machine-translated, so no QE score applies (reference "
                "translations are trusted unless `qe.apply_to` lists them).")
    rows = [[lang, s["method"], s["scored"], s["mean"], s["p10"], s["p50"], s["p90"], s["threshold"],
             s["percentile"], s["pass_rate"]] for lang, s in qe.items()]
    return "Translation quality of machine-translated rows:\n\n" + _table(
        ["lang", "method", "scored", "mean", "p10", "p50", "p90", "threshold", "percentile", "pass rate"], rows)


def render_card(*, name: str, version: str, signature: str, languages: list[str],
                tables: dict[tuple[str, str], pl.DataFrame], written: dict[str, list[str]],
                funnel: dict, engines: dict, license: str, gated: bool, stats: dict | None = None) -> str:
    tax = load_taxonomy()
    pairs = pl.concat([df for (c, _), df in tables.items() if c != "evaluation"] or [pl.DataFrame()],
                      how="diagonal_relaxed")
    evaluation = tables[("evaluation", "eval")]
    n_rows = pairs.height + evaluation.height
    meta = front_matter(written=written, languages=languages, license=license, gated=gated,
                        n_rows=n_rows, pretty_name=name)
    lang_rows = []
    for lang in languages:
        tr, te = tables[(f"lang_{lang}", "train")].height, tables[(f"lang_{lang}", "test")].height
        ev = evaluation.filter(pl.col("lang") == lang).height
        lang_rows.append([f"`lang_{lang}`", LANGUAGES[lang].name, tr, te, ev])
    funnel_rows = []
    for stage, per_lang in funnel.items():
        for lang, f in per_lang.items():
            reasons = ", ".join(f"{r}: {n}" for r, n in f["reasons"].items()) or "-"
            funnel_rows.append([stage, lang, f["in"], f["kept"], f["rejected"], reasons])
    cat_rows, style_rows, origin_rows = [], [], []
    if pairs.height:
        en_or_first = pairs.filter(pl.col("lang") == languages[0])
        counts = dict(en_or_first.group_by("category").len().iter_rows())
        cat_rows = [[tax.codes[c], tax.names[c], counts.get(c, 0)] for c in tax.categories]
        counts = dict(en_or_first.group_by("attack_style").len().iter_rows())
        style_rows = [[tax.names[s], counts.get(s, 0)] for s in tax.attack_styles]
        origin_rows = [list(r) for r in pairs.group_by("lang", "origin", "chosen_origin", "rejected_origin")
                       .len().sort("lang", "origin").iter_rows()]
    engine_rows = [[stage, f"`{v}`"] for stage, v in engines.items()]
    if pairs.height and "engine" in pairs.columns:
        for eng, rev, n in (pairs.group_by("engine", "engine_revision").len()
                            .sort("engine", "engine_revision", nulls_last=True).iter_rows()):
            if eng not in ("source", "tm"):
                engine_rows.append(["translate (model)", f"`{eng}` revision `{rev}`: {n} rows"])
    first = languages[0]
    body = f"""
# {name} v{version}

A multilingual refusal-alignment preference dataset built with `refuseu`: DPO triples `(prompt, chosen, rejected)` where, for a
harmful prompt, `chosen` is a refusal written in the prompt's language and `rejected` is a compliant
answer. Build signature: `{signature}`.

> **Content warning.** The prompts are harmful requests (violence, crime, hate, self-harm and other
> hazard categories), written to teach models to refuse them. They contain no operational detail, but
> they are requests for harmful content. Access is gated; use for AI-safety research only.

## Languages

{_table(["config", "language", "train", "test", "evaluation rows"], lang_rows)}

The `evaluation` config (split `eval`) holds every test prompt of every language, harmful and benign,
and every benign look-alike prompt that has no generated pair. A prompt in `test` is in `test` in
every language (the split is decided once per near-duplicate group, before translation).

## Taxonomy

Harm categories follow the MLCommons hazard taxonomy as used by Llama Guard 3; every harmful prompt
also carries one of ten attack styles. Pairs per category and style (`lang_{first}`, train + test):

{_table(["code", "category", "pairs"], cat_rows) if cat_rows else "(no pairs)"}

{_table(["attack style", "pairs"], style_rows) if style_rows else ""}

Child sexual exploitation (S4) is part of the taxonomy but is never filled from the embedded seed.

## How it was built

`sources -> normalize + dedup -> split -> translate -> respond -> assemble`

{_table(["stage", "engine / settings"], engine_rows)}

Responses (`chosen_origin`, `rejected_origin`) and prompt origin (`source` = English original,
`tm` = reference translation memory, `mt` = machine translation):

{_table(["lang", "prompt origin", "chosen origin", "rejected origin", "rows"], origin_rows) if origin_rows else ""}

Where no generator model is configured, `rejected` is a compliance *opener* from templates (it starts
to comply but carries no harmful content).

Provenance: `tm` rows of the embedded seed come from the reference translations shipped with
refuseu (`refuseu/data/tm/<lang>.jsonl`): human-quality translations of every seed prompt written to
keep its attack style (slang stays slang, misspellings stay misspelled, dialect prompts use a
regional variety of the target language). Refusal templates and compliance openers are written
natively in each language (`refuseu/data/templates/<lang>.yaml`), not translated. Every
non-English prompt and response passed language identification (`lid_lang`, `lid_score`).

{_qe_section(stats)}

### Funnel

Every dropped row is recorded with its reason in `rejects.parquet`.

{_table(["stage", "lang", "in", "kept", "rejected", "reasons"], funnel_rows)}

## Intended use and limitations

Use: preference optimisation (DPO and similar) and evaluation of refusal behaviour across European
languages; measuring attack success rate and over-refusal per language. Not for: training models to
comply with harmful requests; the `rejected` side must never be used as a target. Template refusals
are short and generic; translations of attack styles (slang, misspellings, dialects) are approximate.

## Loading

```python
from datasets import load_dataset
ds = load_dataset("<this folder or repo id>", "lang_{first}")   # train / test
ev = load_dataset("<this folder or repo id>", "evaluation")     # eval
```

## Citation

Built after the design of the RefusEU multilingual refusal dataset (12 European languages, DPO
triples, 14 harm categories x 10 attack styles, contamination-free test split). Cite this release by
name, version and build signature.
"""
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body.lstrip("\n")
