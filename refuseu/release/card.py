"""The dataset card (release README.md): Hub YAML front matter + generated statistics."""

from __future__ import annotations

import re

import polars as pl
import yaml

from refuseu.languages import LANGUAGES
from refuseu.release.assemble import PAIR_COLUMNS
from refuseu.release.summary import TableSummary, combined, summaries_of
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
                 n_rows: int, pretty_name: str, sources: list[str] | None = None,
                 origins: set[str] | None = None, response_origins: set[str] | None = None) -> dict:
    configs: dict[str, list] = {}
    for key in written:
        config, split = key.split("/")
        stem = "eval" if config == "evaluation" else split
        configs.setdefault(config, []).append({"split": split, "path": f"data/{config}/{stem}-*.parquet"})
    sources = list(sources or [])
    origins, response_origins = set(origins or ()), set(response_origins or ())
    hub = sorted({s[3:].split("@")[0].split(":")[0] for s in sources if s.startswith("hf:")})
    source_datasets = (["original"] if any(not s.startswith("hf:") for s in sources) or not sources else []) \
        + [f"extended|{h}" for h in hub]
    # Who wrote the text: the seed's prompts and reference translations are written by hand;
    # a curator's files and Hub datasets are outside refuseu's knowledge ("other").
    language_creators = set()
    if "seed" in sources:
        language_creators.add("expert-generated")
    if any(s != "seed" for s in sources):
        language_creators.add("other")
    if "mt" in origins or any(o not in ("template", "reference", "tm", "source") for o in response_origins):
        language_creators.add("machine-generated")
    # Labels: the preference (chosen over rejected) is made by the pipeline; categories and
    # styles come from the seed (hand-labelled) or the curator's own columns.
    annotations_creators = {"machine-generated"}
    if "seed" in sources:
        annotations_creators.add("expert-generated")
    if any(s != "seed" for s in sources):
        annotations_creators.add("other")
    meta = {
        "pretty_name": pretty_name,
        "language": languages,
        "multilinguality": "multilingual" if len(languages) > 1 else "monolingual",
        "license": license,
        "size_categories": [size_category(n_rows)],
        "source_datasets": source_datasets,
        "annotations_creators": sorted(annotations_creators),
        "language_creators": sorted(language_creators),
        "task_categories": ["text-generation"],
        "task_ids": ["dialogue-modeling"],
        "tags": ["safety", "refusal", "dpo", "preference", "multilingual", "red-teaming"],
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


#: The released columns: type in the standard format, and what each holds.
FIELDS = {
    "pair_id": ("string", "id of the row: `prompt_id` and language"),
    "prompt_id": ("string", "stable id of the English prompt (hash of its normalized text and kind)"),
    "group_id": ("string", "near-duplicate group; the train/test split is decided once per group"),
    "lang": ("string", "ISO 639-1 code of the row's language"),
    "split": ("string", "`train` or `test`"),
    "kind": ("string", "`harmful` (chosen = refusal) or `benign` (chosen = helpful answer)"),
    "category": ("string", "hazard category id (MLCommons / Llama Guard 3 taxonomy, see below)"),
    "attack_style": ("string", "attack style id, or null when the source gives none"),
    "prompt": ("string", "the request, in the row's language"),
    "chosen": ("string", "the preferred response (a refusal for a harmful prompt)"),
    "rejected": ("string", "the dispreferred response (a compliant answer for a harmful prompt)"),
    "chosen_origin": ("string", "where `chosen` comes from: `template`, `reference` (a reference helpful answer "
                                "to a benign prompt), or the generator model's label"),
    "chosen_fallback": ("string", "why a model-written refusal was replaced by the template (`not_refusal`, "
                                  "`wrong_language:xx`, `empty`, `degenerate`, a translation check); null otherwise"),
    "rejected_origin": ("string", "where `rejected` comes from (`template`, or the generator model's label)"),
    "origin": ("string", "where `prompt` comes from: `source` (English original), `tm` (translation memory), "
                         "`mt` (machine translation)"),
    "engine": ("string", "translation engine (`source`, `tm`, or the MT model's label)"),
    "engine_revision": ("string", "revision of the translation engine or model"),
    "qe_score": ("float64", "translation quality score of a machine translation; null where none applies"),
    "qe_method": ("string", "the quality scorer that gave `qe_score`"),
    "lid_lang": ("string", "language identified for the prompt (null for English rows)"),
    "lid_score": ("float64", "confidence of `lid_lang`"),
    "source": ("string", "source label (a file's name, `hf:owner/name@revision`, or the embedded seed)"),
}
MESSAGES = "list of `{role, content}`"


def _fields_table(columns: list[str], fmt: str, sources: list[str]) -> str:
    rows = []
    for c in columns:
        typ, meaning = FIELDS.get(c, ("string", ""))
        if c == "source":
            meaning = "source label: " + ", ".join(f"`{s}`" for s in sources)
        if fmt == "conversational" and c in ("prompt", "chosen", "rejected"):
            role = "user" if c == "prompt" else "assistant"
            typ = MESSAGES
            meaning += f": one `{role}` message" + ("" if c == "prompt" else " (null in `evaluation` where none)")
        rows.append([f"`{c}`", typ, meaning])
    return _table(["field", "type", "meaning"], rows)


def _figures_section(figures: dict[str, str] | None) -> str:
    """Markdown images with relative paths: the Hub shows them from the repo's own files."""
    if not figures:
        return ""
    return "## Figures\n\n" + "\n\n".join(f"![{caption}]({rel})" for rel, caption in figures.items())


def _bibtex(name: str, version: str, signature: str) -> str:
    key = re.sub(r"[^A-Za-z0-9]+", "_", f"{name}_v{version}").strip("_")
    return f"""```bibtex
@misc{{{key},
  title        = {{{{{name}}}: a refusal-alignment preference dataset (version {version})}},
  howpublished = {{Dataset release built with refuseu, build signature {signature}}},
  note         = {{Built following Krasnodębska, Kusa and Lipani (2026)}}
}}

@inproceedings{{krasnodebska2026multilingual,
  title         = {{Multilingual Refusal Alignment for Safer Large Language Models}},
  author        = {{Krasnod{{\\k{{e}}}}bska and Kusa and Lipani}},
  booktitle     = {{Findings of the Association for Computational Linguistics: ACL 2026}},
  year          = {{2026}},
  eprint        = {{2606.07535}},
  archivePrefix = {{arXiv}}
}}
```"""


def _loading(name: str, version: str, first: str, fmt: str) -> str:
    folder = f"{name}-v{version}"
    code = f"""```python
from datasets import load_dataset
# a local path to this folder ({folder}), or the Hub repo id it was pushed to
ds = load_dataset("{folder}", "lang_{first}")   # splits train / test
ev = load_dataset("{folder}", "evaluation")     # split eval
```"""
    if fmt == "conversational":
        return (f"""Every config is in TRL's *conversational* preference format (`prompt`, `chosen` and
`rejected` are lists of `{{role, content}}` messages); TRL's `DPOTrainer` applies the model's chat
template itself:

{code}

```python
from trl import DPOConfig, DPOTrainer
trainer = DPOTrainer(model=model, args=DPOConfig(output_dir="out"), train_dataset=ds["train"],
                     processing_class=tokenizer)
```""")
    return (f"""Every config is in the *standard* preference format (`prompt`, `chosen` and `rejected` are
strings), which TRL's `DPOTrainer` takes as it is (build with `release.format: conversational` for message
lists):

{code}""")


def _counts_by(counts: pl.DataFrame, col: str) -> dict:
    """value of ``col`` -> rows, from summary count rows."""
    if col not in counts.columns:
        return {None: int(counts["n"].sum())} if counts.height else {}
    return dict(counts.group_by(col).agg(pl.col("n").sum()).iter_rows())


def render_card(*, name: str, version: str, signature: str, languages: list[str],
                tables: dict[tuple[str, str], "pl.DataFrame | TableSummary"], written: dict[str, list[str]],
                funnel: dict, engines: dict, license: str, gated: bool, stats: dict | None = None,
                sources: list[str] | None = None, fmt: str = "standard",
                figures: dict[str, str] | None = None) -> str:
    """The card of exactly this release: ``sources`` are the source labels (``seed`` is the
    embedded seed); what a source or row does not have is not described. ``figures``: the
    release's images (relative path -> caption), shown in a Figures section.

    ``tables``: (config, split) -> the release table, whole or as a
    :class:`~refuseu.release.summary.TableSummary` (what the build passes: gathered chunk by
    chunk); both give the same card."""
    tax = load_taxonomy()
    tables = summaries_of(tables)
    sources = list(sources if sources is not None else ["seed"])
    seed = "seed" in sources
    pairs = combined(t for (c, _), t in tables.items() if c != "evaluation")
    evaluation = tables[("evaluation", "eval")]
    everything = combined([pairs, evaluation])
    counted = everything.counts

    def values(col: str) -> set:
        return set(counted[col].drop_nulls().unique().to_list()) if col in counted.columns else set()

    def total(frame: pl.DataFrame) -> int:
        return int(frame["n"].sum()) if frame.height else 0

    origins, kinds = values("origin"), values("kind")
    response_origins = values("chosen_origin") | values("rejected_origin")
    styled = bool(values("attack_style"))
    n_rows = pairs.height + evaluation.height
    meta = front_matter(written=written, languages=languages, license=license, gated=gated,
                        n_rows=n_rows, pretty_name=name, sources=sources, origins=origins,
                        response_origins=response_origins)
    lang_rows = []
    for lang in languages:
        tr, te = tables[(f"lang_{lang}", "train")].height, tables[(f"lang_{lang}", "test")].height
        ev = total(evaluation.where(lang=lang))
        lang_rows.append([f"`lang_{lang}`", LANGUAGES[lang].name, tr, te, ev])
    funnel_rows = []
    for stage, per_lang in funnel.items():
        for lang, f in per_lang.items():
            reasons = ", ".join(f"{r}: {n}" for r, n in f["reasons"].items()) or "-"
            funnel_rows.append([stage, lang, f["in"], f["kept"], f["rejected"], reasons])
    cat_rows, style_rows, origin_rows = [], [], []
    first = languages[0]
    if pairs.height:
        en_or_first = pairs.where(lang=first)
        counts = _counts_by(en_or_first, "category")
        # The uncategorized bucket is listed only when rows fell into it.
        cat_rows = [[tax.codes[c], tax.names[c], counts.get(c, 0)] for c in tax.categories
                    if c != "uncategorized" or counts.get(c)]
        if styled:
            counts = _counts_by(en_or_first, "attack_style")
            style_rows = [[tax.names[s], counts.get(s, 0)] for s in tax.attack_styles]
            if counts.get(None):
                style_rows.append(["(none)", counts[None]])
        by = [c for c in ("lang", "origin", "chosen_origin", "rejected_origin") if c in pairs.counts.columns]
        origin_rows = [list(r) for r in pairs.counts.group_by(by).agg(pl.col("n").sum())
                       .sort(by, nulls_last=True).iter_rows()]
    response_rows = []
    if pairs.height and "chosen" in pairs.columns:
        harmful = pairs.counts.filter(pl.col("kind") == "harmful")
        langs = pairs.counts["lang"].unique(maintain_order=True).to_list()
        for lang in langs:
            h = harmful.filter(pl.col("lang") == lang)
            benign = total(pairs.counts.filter((pl.col("lang") == lang) & (pl.col("kind") == "benign")))
            distinct = {col: pairs.distinct(col, lang=lang, kind="harmful") for col in ("chosen", "rejected")}
            mean = {col: (int(h[f"{col}_chars"].sum()) / int(h[f"{col}_texts"].sum())
                          if h.height and int(h[f"{col}_texts"].sum()) else None) for col in ("chosen", "rejected")}
            response_rows.append([f"`{lang}`", benign, distinct["chosen"], distinct["rejected"],
                                  "-" if mean["chosen"] is None else f"{mean['chosen']:.0f}",
                                  "-" if mean["rejected"] is None else f"{mean['rejected']:.0f}"])
    engine_rows = [[stage, f"`{v}`"] for stage, v in engines.items()]
    if pairs.height and "engine" in pairs.counts.columns:
        rev = "engine_revision" if "engine_revision" in pairs.counts.columns else None
        by = ["engine"] + ([rev] if rev else [])
        for row in pairs.counts.group_by(by).agg(pl.col("n").sum()).sort(by, nulls_last=True).iter_rows():
            eng, revision, n = (row if rev else (row[0], None, row[1]))
            if eng not in ("source", "tm"):
                engine_rows.append(["translate (model)", f"`{eng}` revision `{revision}`: {n} rows"])
    # The released columns.
    columns = [c for c in PAIR_COLUMNS if c in everything.columns]
    source_list = ", ".join(f"`{s}`" for s in sources)

    # -- sections, each only where it is true of this release -----------------------------
    about_sources = (f"Prompts come from: {source_list}. "
                     + ("`seed` is the prompt set embedded in refuseu: hand-written English requests over "
                        "the hazard categories and ten attack styles, without operational detail. " if seed else "")
                     + (("Other sources are" if seed else "They are") + " the curator's own; refuseu checks their "
                        "form (text, category, kind), not their content." if any(s != "seed" for s in sources) else ""))
    evaluation_text = "The `evaluation` config (split `eval`) holds every test prompt of every language"
    evaluation_text += (", harmful and benign, and every benign look-alike prompt that has no generated pair."
                        if "benign" in kinds else ".")
    if len(languages) > 1:
        evaluation_text += (" A prompt in `test` is in `test` in every language (the split is decided once "
                            "per near-duplicate group, before translation).")
    else:
        evaluation_text += " The split is decided once per near-duplicate group, so no group is in both splits."
    taxonomy = ("Harm categories follow the MLCommons hazard taxonomy as used by Llama Guard 3"
                + ("; every harmful prompt also carries one of ten attack styles" if styled else "")
                + f". Pairs per category{' and style' if styled else ''} (`lang_{first}`, train + test):")
    style_table = _table(["attack style", "pairs"], style_rows) if style_rows else ""
    s4 = ("\nChild sexual exploitation (S4) is part of the taxonomy but is never filled from the embedded seed.\n"
          if seed else "")
    template_note = ("\nWhere no generator model is configured, `rejected` is a compliance *opener* from templates "
                     "(it starts to comply but carries no harmful content). For benign prompts, `chosen` is a reference "
                     "helpful answer (origin `reference`) and `rejected` an over-refusal.\n"
                     if "template" in response_origins else "")
    provenance = []
    if "tm" in origins:
        if seed:
            provenance.append(
                "`tm` rows of the embedded seed come from the reference translations shipped with refuseu "
                "(`refuseu/data/tm/<lang>.jsonl`): human-quality translations of every seed prompt written to keep "
                "its attack style (slang stays slang, misspellings stay misspelled, dialect prompts use a regional "
                "variety of the target language).")
        else:
            provenance.append("`tm` rows come from the translation memory named above.")
    if "mt" in origins:
        provenance.append("`mt` rows are machine translations by the engine named above.")
    if "template" in response_origins and "builtin" in engines.get("respond", ""):
        provenance.append("Refusal templates and compliance openers are written natively in each language "
                          "(`refuseu/data/templates/<lang>.yaml`), not translated.")
    if any(lang != "en" for lang in languages) and "lid_score" in everything.columns \
            and counted.height and int(counted["lid_scored"].sum()):
        provenance.append("Every non-English prompt and response passed language identification "
                          "(`lid_lang`, `lid_score`).")
    provenance_text = ("Provenance: " + " ".join(provenance)) if provenance else ""
    limitations = ("Template refusals are composed from a fixed set of native sentences per language; they "
                   "vary in wording and length but not per prompt. " if "template" in response_origins else "") + \
        ("Translations of attack styles (slang, misspellings, dialects) are approximate."
         if styled and origins & {"tm", "mt"} else "")
    content_warning = ("> **Content warning.** The prompts are harmful requests (" + ", ".join(
        tax.names[c].lower() for c in tax.categories if c in values("category")) + "), collected to teach models "
        "to refuse them" + (". The embedded seed's prompts contain no operational detail, but they are requests "
                            "for harmful content" if seed and len(sources) == 1 else "")
        + ". Access is " + ("gated; use" if gated else "not gated by this card; use") + " for AI-safety research only.")

    body = f"""
# {name} v{version}

A {"multilingual" if len(languages) > 1 else "monolingual"} refusal-alignment preference dataset built with `refuseu`: DPO triples `(prompt, chosen, rejected)` where, for a
harmful prompt, `chosen` is a refusal written in the prompt's language and `rejected` is a compliant
answer. Build signature: `{signature}`.

{content_warning}

{about_sources}

## Languages

{_table(["config", "language", "train", "test", "evaluation rows"], lang_rows)}

{evaluation_text}

{_figures_section(figures)}

## Data fields

{"Conversational" if fmt == "conversational" else "Standard"} preference format. Every config has these columns:

{_fields_table(columns, fmt, sources)}

## Taxonomy

{taxonomy}

{_table(["code", "category", "pairs"], cat_rows) if cat_rows else "(no pairs)"}

{style_table}
{s4}
## How it was built

`sources -> normalize + dedup -> split -> translate -> qe -> language ID -> respond -> assemble`

{_table(["stage", "engine / settings"], engine_rows)}

Responses (`chosen_origin`, `rejected_origin`) and prompt origin (`source` = English original,
`tm` = translation memory, `mt` = machine translation):

{_table(["lang", "prompt origin", "chosen origin", "rejected origin", "rows"], origin_rows) if origin_rows else ""}
{template_note}
{("How varied the responses are (train + test): benign pairs, and over the harmful pairs the distinct "
  "`chosen` and `rejected` texts and their mean length in characters:" + chr(10) + chr(10) + _table(["lang", "benign pairs", "distinct chosen",
  "distinct rejected", "chosen mean chars", "rejected mean chars"], response_rows)) if response_rows else ""}

{provenance_text}

{_qe_section(stats) if any(lang != "en" for lang in languages) else "Translation quality: every row is an English original; nothing was translated."}

### Funnel

Every dropped row is recorded with its reason in `rejects.parquet`.

{_table(["stage", "lang", "in", "kept", "rejected", "reasons"], funnel_rows)}

## Intended use and limitations

Use: preference optimisation (DPO and similar) and evaluation of refusal behaviour across languages;
measuring attack success rate and over-refusal per language. Not for: training models to comply with
harmful requests; the `rejected` side must never be used as a target. {limitations}

## Loading

{_loading(name, version, first, fmt)}

## Citation

This release follows the method of Krasnodębska, Kusa and Lipani, "Multilingual Refusal Alignment for
Safer Large Language Models" (Findings of ACL 2026, arXiv:2606.07535). Cite the release by name,
version and build signature, and the method:

{_bibtex(name, version, signature)}
"""
    body = re.sub(r"\n{3,}", "\n\n", body)
    body = "\n".join(line.rstrip() for line in body.split("\n"))
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body.lstrip("\n")
