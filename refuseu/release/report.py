"""``report``: one self-contained HTML page about a release (charts work offline).

The page shows where rows went (the funnel per stage and language, reject reasons with a
few examples), translation quality and language-ID scores per language with their
thresholds, category x attack-style coverage per split, response lengths, origins, and a
sample of rows per language. Charts are Plotly figures with plotly.js inlined once; the
page carries no local path and no date, so the same release gives the same page.

The release is read one file at a time and only the columns each section needs: texts are
held as their lengths, and the few texts the page shows (reject examples, sample rows) are
read for those rows alone, so the memory it takes grows with a release's rows, not its text.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from refuseu.errors import InputError
from refuseu.release.assemble import as_text
from refuseu.release.figures import coverage_matrix
from refuseu.release.inspect import ReleaseColumns, release_files
from refuseu.release.manifest import read_manifest
from refuseu.release.verify import require_valid

#: Rows shown per language in the sample, and examples shown per reject reason.
SAMPLE_ROWS = 5
REJECT_EXAMPLES = 3
CONTENT_WARNING = ("Content warning: these are harmful requests collected to teach models to refuse them. "
                   "Open only if you need to read them.")
PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
           "#ccb974", "#64b5cd", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#17becf"]
SAMPLE_COLUMNS = ("kind", "category", "attack_style", "prompt", "chosen", "rejected")
_SCORE = re.compile(r"score (-?[0-9.]+)")
_PREDICTED = re.compile(r"predicted (\w+)")


class _Page:
    """Sections of the page; charts get stable ids (chart-1, chart-2, ...)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.charts = 0

    def h2(self, title: str, anchor: str) -> None:
        self.parts.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>')

    def text(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def raw(self, markup: str) -> None:
        self.parts.append(markup)

    def chart(self, fig) -> None:
        self.charts += 1
        fig.update_layout(template="plotly_white", font={"family": "sans-serif", "size": 12},
                          margin={"l": 60, "r": 30, "t": 60, "b": 60})
        self.parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{self.charts}",
                                      config={"displaylogo": False, "responsive": True}))


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if c is None else str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _n(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _details(summary: str, inner: str, *, warning: bool = False) -> str:
    note = f'<p class="warning">{html.escape(CONTENT_WARNING)}</p>' if warning else ""
    return f"<details><summary>{html.escape(summary)}</summary>{note}{inner}</details>"


def _only(rows: "pl.DataFrame | ReleaseColumns", *cols: str) -> pl.DataFrame:
    """``rows`` with only those of ``cols`` it has (read from the release files when ``rows``
    is a :class:`~refuseu.release.inspect.ReleaseColumns`: each section holds its own columns
    alone)."""
    if isinstance(rows, ReleaseColumns):
        return rows.select(*cols)
    return rows.select(c for c in cols if c in rows.columns)


def _score(detail: str | None, pattern: re.Pattern) -> str | None:
    m = pattern.search(detail or "")
    return m.group(1) if m else None


# --- sections ------------------------------------------------------------------------------

def _overview(page: _Page, manifest: dict, pairs: ReleaseColumns, ev: ReleaseColumns, languages: list[str]) -> None:
    page.h2("Overview", "overview")
    pairs, ev = _only(pairs, "lang", "file_split"), _only(ev, "lang")
    rows = []
    for lang in languages:
        p = pairs.filter(pl.col("lang") == lang)
        rows.append([lang, p.filter(pl.col("file_split") == "train").height,
                     p.filter(pl.col("file_split") == "test").height, ev.filter(pl.col("lang") == lang).height])
    page.raw(_table(["language", "train pairs", "test pairs", "evaluation rows"], rows))
    page.text(f"Rejected rows: {manifest.get('rejected_rows', 0)}. Build signature "
              f"{manifest.get('build_signature', '?')}.")


def _funnel(page: _Page, manifest: dict, languages: list[str]) -> None:
    import plotly.graph_objects as go

    funnel = manifest.get("funnel") or {}
    page.h2("Funnel: where rows went", "funnel")
    if not funnel:
        page.text("The manifest holds no funnel.")
        return
    stages = list(funnel)
    page.text("Rows kept after each stage, per language. Before translation a row is an English prompt "
              "(counted under the language of the source); from translation on, one row per prompt and language.")
    fig = go.Figure()
    langs = sorted({lang for per in funnel.values() for lang in per},
                   key=lambda x: languages.index(x) if x in languages else len(languages))
    for i, lang in enumerate(langs):
        fig.add_trace(go.Scatter(x=stages, y=[funnel[s].get(lang, {}).get("kept") for s in stages],
                                 mode="lines+markers", name=lang, line={"color": PALETTE[i % len(PALETTE)]}))
    fig.update_layout(title="Rows kept after each stage", xaxis_title="stage", yaxis_title="rows kept",
                      yaxis_rangemode="tozero", legend_title="language")
    page.chart(fig)
    reasons = sorted({(s, r) for s, per in funnel.items() for f in per.values() for r, n in f["reasons"].items() if n})
    if not reasons:
        page.text("No row was rejected at any stage.")
        return
    fig = go.Figure()
    for i, (stage, reason) in enumerate(reasons):
        fig.add_trace(go.Bar(x=langs, y=[funnel[stage].get(lang, {}).get("reasons", {}).get(reason, 0)
                                         for lang in langs],
                             name=f"{stage}: {reason}", marker_color=PALETTE[i % len(PALETTE)]))
    fig.update_layout(barmode="stack", title="Rejected rows by stage and reason", xaxis_title="language",
                      yaxis_title="rows rejected", legend_title="stage: reason")
    top = max(sum(funnel[s].get(lang, {}).get("rejected", 0) for s in stages) for lang in langs)
    fig.update_yaxes(rangemode="tozero", tickformat="d", dtick=1 if top <= 10 else None)  # whole rows
    page.chart(fig)


def _example_ids(rejects: pl.DataFrame | None) -> set[str]:
    """The prompt ids of the reject examples :func:`_rejects` shows."""
    if rejects is None or rejects.height == 0:
        return set()
    ex = rejects.with_columns(pl.int_range(pl.len()).over("stage", "reason").alias("__n"))
    return set(ex.filter(pl.col("__n") < REJECT_EXAMPLES)["prompt_id"].drop_nulls().to_list())


def _english_prompts(root: Path, prompt_ids: set[str]) -> dict[str, str]:
    """prompt id -> English original (a released row of origin ``source``) of ``prompt_ids``,
    read for those rows alone; the first row of a prompt in file order gives its text."""
    english: dict[str, str] = {}
    if not prompt_ids:
        return english
    ids = pl.Series(sorted(prompt_ids), dtype=pl.String)
    for f in release_files(root):
        names = pq.read_schema(f).names
        if not {"origin", "prompt_id", "prompt"} <= set(names):
            continue
        found = (pl.scan_parquet(f, glob=False).select("prompt_id", "prompt", "origin")
                 .filter((pl.col("origin") == "source") & pl.col("prompt_id").is_in(ids.implode())).collect())
        for pid, text in as_text(found).select("prompt_id", "prompt").iter_rows():
            english.setdefault(pid, text)
    return english


def _rejects(page: _Page, rejects: pl.DataFrame | None, english: dict[str, str]) -> None:
    page.h2("Reject reasons, with examples", "rejects")
    if rejects is None:
        page.text("This release has no rejects.parquet, so the rejected rows cannot be shown.")
        return
    if rejects.height == 0:
        page.text("No row was rejected.")
        return
    counts = rejects.group_by("stage", "reason", maintain_order=True).len()
    page.raw(_table(["stage", "reason", "rows"], [list(r) for r in counts.iter_rows()]))
    blocks = []
    for stage, reason, n in counts.iter_rows():
        ex = rejects.filter((pl.col("stage") == stage) & (pl.col("reason") == reason)).head(REJECT_EXAMPLES)
        rows = [[r["lang"], r["prompt_id"], r["detail"], english.get(r["prompt_id"], "")]
                for r in ex.iter_rows(named=True)]
        blocks.append(_details(f"{stage}: {reason} ({_n(n, 'row')}; {_n(len(rows), 'example')})",
                               _table(["lang", "prompt_id", "detail", "English prompt (where released)"], rows),
                               warning=True))
    page.raw("".join(blocks))


def box_stats(values) -> dict:
    """Five-number summary (Tukey fences at 1.5 IQR, clipped to the data) and mean of ``values``:
    a box is drawn from these, so the page stays small whatever the number of rows."""
    v = np.asarray(values, dtype=float)
    q1, med, q3 = (float(x) for x in np.percentile(v, [25, 50, 75]))
    iqr = q3 - q1
    low = float(v[v >= q1 - 1.5 * iqr].min())
    high = float(v[v <= q3 + 1.5 * iqr].max())
    return {"q1": round(q1, 4), "median": round(med, 4), "q3": round(q3, 4), "lowerfence": round(low, 4),
            "upperfence": round(high, 4), "mean": round(float(v.mean()), 4)}


def _box(x: list[str], stats: list[dict], **kw):
    """A plotly box trace from precomputed summaries (one per x)."""
    import plotly.graph_objects as go
    return go.Box(x=x, **{k: [st[k] for st in stats] for k in ("q1", "median", "q3", "lowerfence", "upperfence",
                                                                 "mean")}, **kw)


def _score_boxes(page: _Page, *, title: str, scores: dict[str, np.ndarray], thresholds: dict[str, float],
                 axis: str) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    names = [f"{lang} (n={len(v)})" for lang, v in scores.items()]
    for i, (name, values) in enumerate(zip(names, scores.values())):
        fig.add_trace(_box([name], [box_stats(values)], name=name, marker_color=PALETTE[i % len(PALETTE)],
                           showlegend=False))
    with_thr = [(n, thresholds[lang]) for n, lang in zip(names, scores) if thresholds.get(lang) is not None]
    if with_thr:
        fig.add_trace(go.Scatter(x=[n for n, _ in with_thr], y=[t for _, t in with_thr], mode="markers",
                                 name="threshold", marker={"symbol": "line-ew-open", "size": 40, "color": "#c44e52",
                                                           "line": {"width": 3}}))
    fig.update_layout(title=title, xaxis_title="language (scored rows)", yaxis_title=axis)
    page.chart(fig)


def _qe(page: _Page, manifest: dict, pairs: ReleaseColumns, rejects: pl.DataFrame | None,
        languages: list[str]) -> None:
    page.h2("Translation quality (QE) per language", "qe")
    stats = (manifest.get("stage_stats") or {}).get("qe") or {}
    scored = (_only(pairs, "lang", "qe_score").filter(pl.col("qe_score").is_not_null())
              if "qe_score" in pairs.columns else pairs.clear())
    scores: dict[str, np.ndarray] = {}
    for lang in languages:
        # Released rows' scores (as an array: a list of Python floats is 4x the memory), then
        # the rejected rows' in their order.
        vals = [scored.filter(pl.col("lang") == lang)["qe_score"].to_numpy()] if scored.height else []
        extra = []
        if rejects is not None and rejects.height:
            for d in rejects.filter((pl.col("stage") == "qe") & (pl.col("lang") == lang))["detail"].to_list():
                s = _score(d, _SCORE)
                if s is not None:
                    extra.append(float(s))
        vals = np.concatenate([*vals, np.asarray(extra, dtype=float)])
        if len(vals):
            scores[lang] = vals
    if not scores:
        page.text("No row was machine-translated and scored, so there is no QE score to show (translation-memory "
                  "rows are trusted unless the recipe's qe.apply_to names them).")
        return
    page.text("Scores of released rows and of rows rejected by the QE stage; the red mark is each language's "
              "threshold (absolute or percentile cutoff).")
    # The bar a row had to pass: the absolute threshold, or the percentile cutoff when higher.
    thresholds = {lang: max((v for v in (s.get("threshold"), s.get("cutoff")) if v is not None), default=None)
                  for lang, s in stats.items()}
    _score_boxes(page, title="QE scores per language", scores=scores, thresholds=thresholds, axis="QE score")


def _lid(page: _Page, manifest: dict, pairs: ReleaseColumns, rejects: pl.DataFrame | None,
         languages: list[str]) -> None:
    import plotly.graph_objects as go

    page.h2("Language identification", "lid")
    threshold = ((manifest.get("recipe") or {}).get("lid") or {}).get("threshold")
    checked = (_only(pairs, "lang", "pair_id_hash", "lid_lang", "lid_score").filter(pl.col("lid_score").is_not_null())
               if "lid_score" in pairs.columns else pairs.clear())
    checked = checked.unique("pair_id_hash", keep="first", maintain_order=True) if checked.height else checked
    # Prompts only: the response check's scores are about the answers, not the prompt's language.
    lid_rejects = (rejects.filter((pl.col("stage") == "lid_prompt") & pl.col("detail").str.starts_with("prompt:"))
                   if rejects is not None and rejects.height else None)
    scores: dict[str, np.ndarray] = {}
    confusion: dict[tuple[str, str], int] = {}
    for lang in languages:
        part = checked.filter(pl.col("lang") == lang) if checked.height else checked
        vals = [part["lid_score"].to_numpy()] if part.height else []
        extra = []
        for pred, n in (part.group_by("lid_lang").len().iter_rows() if part.height else []):
            confusion[(lang, pred)] = confusion.get((lang, pred), 0) + n
        if lid_rejects is not None:
            for d in lid_rejects.filter(pl.col("lang") == lang)["detail"].to_list():
                s, pred = _score(d, _SCORE), _score(d, _PREDICTED)
                if s is not None:
                    extra.append(float(s))
                if pred is not None:
                    confusion[(lang, pred)] = confusion.get((lang, pred), 0) + 1
        vals = np.concatenate([*vals, np.asarray(extra, dtype=float)])
        if len(vals):
            scores[lang] = vals
    if not scores:
        page.text("No prompt was language-checked (English rows are not checked).")
        return
    page.text("Language-ID confidence of the prompts of released rows and of prompts rejected by the language "
              f"check; the red mark is the threshold ({threshold}). Rejected responses are counted under Reject "
              "reasons.")
    _score_boxes(page, title="Language-ID confidence of prompts per language", scores=scores,
                 thresholds={lang: threshold for lang in scores}, axis="confidence")
    expected = [lang for lang in languages if any(k[0] == lang for k in confusion)]
    predicted = expected + sorted({k[1] for k in confusion if k[1] not in expected})
    z = [[confusion.get((e, p), 0) for p in predicted] for e in expected]
    fig = go.Figure(go.Heatmap(z=z, x=predicted, y=expected, colorscale="Blues", text=z, texttemplate="%{text}",
                               hovertemplate="expected %{y}, predicted %{x}: %{z}<extra></extra>",
                               colorbar={"title": "rows"}))
    fig.update_layout(title="Language-ID confusions (expected vs predicted)", xaxis_title="predicted language",
                      yaxis_title="expected language", yaxis_autorange="reversed")
    page.chart(fig)


def _coverage(page: _Page, pairs: ReleaseColumns) -> None:
    import plotly.graph_objects as go

    page.h2("Category x attack-style coverage per split", "coverage")
    if pairs.height == 0:
        page.text("No pairs.")
        return
    page.text("Distinct prompts (counted once over all languages) per harm category and attack style.")
    for split in ("train", "test"):
        part = pairs.select("prompt_id_hash", "category", "attack_style", split=split)
        if part.height == 0:
            page.text(f"No {split} pairs.")
            continue
        cats, styles, z = coverage_matrix(part)
        fig = go.Figure(go.Heatmap(z=z, x=styles, y=cats, colorscale="Blues", text=z, texttemplate="%{text}",
                                   hovertemplate="%{y} / %{x}: %{z}<extra></extra>", colorbar={"title": "prompts"}))
        fig.update_layout(title=f"{split}: prompts per category and attack style ({sum(map(sum, z))} prompts)",
                          xaxis_title="attack style", yaxis_title="harm category", yaxis_autorange="reversed",
                          height=max(380, 28 * len(cats) + 160))
        page.chart(fig)


def _lengths(page: _Page, pairs: ReleaseColumns, languages: list[str]) -> None:
    import plotly.graph_objects as go

    page.h2("Response lengths per language", "lengths")
    if pairs.height == 0 or "chosen_chars" not in pairs.columns:
        page.text("No pairs.")
        return
    pairs = _only(pairs, "lang", "chosen_chars", "rejected_chars")
    fig = go.Figure()
    present = [lang for lang in languages if pairs.filter(pl.col("lang") == lang).height]
    for i, col in enumerate(("chosen", "rejected")):
        xs, stats = [], []
        for lang in present:
            vals = pairs.filter(pl.col("lang") == lang)[f"{col}_chars"].drop_nulls().to_numpy()
            if len(vals):
                xs.append(lang)
                stats.append(box_stats(vals))
        fig.add_trace(_box(xs, stats, name=col, marker_color=PALETTE[i]))
    fig.update_layout(boxmode="group", title="Length of chosen and rejected responses (characters)",
                      xaxis_title="language", yaxis_title="characters", legend_title="response")
    page.chart(fig)


def _origins(page: _Page, pairs: ReleaseColumns, languages: list[str]) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    page.h2("Origins", "origins")
    cols = [c for c in ("origin", "chosen_origin", "rejected_origin") if c in pairs.columns]
    if pairs.height == 0 or not cols:
        page.text("No pairs.")
        return
    page.text("Where prompts come from (source = English original, tm = translation memory, mt = machine "
              "translation) and where the responses come from (template, reference, or a generator model).")
    titles = {"origin": "prompt", "chosen_origin": "chosen", "rejected_origin": "rejected"}
    fig = make_subplots(rows=1, cols=len(cols), subplot_titles=[titles[c] for c in cols], shared_yaxes=True)
    pairs = _only(pairs, "lang", *cols)
    present = [lang for lang in languages if pairs.filter(pl.col("lang") == lang).height]
    values = sorted({str(v) for c in cols for v in pairs[c].unique().to_list()})
    color = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(values)}
    for j, c in enumerate(cols, start=1):
        counts = {(lang, str(v)): n for lang, v, n in pairs.group_by("lang", c).len().iter_rows()}
        for v in values:
            ys = [counts.get((lang, v), 0) for lang in present]
            if any(ys):
                fig.add_trace(go.Bar(x=present, y=ys, name=v, marker_color=color[v], legendgroup=v,
                                     showlegend=not any(t.name == v for t in fig.data)), row=1, col=j)
    fig.update_layout(barmode="stack", title="Origins of prompts and responses per language", legend_title="origin")
    fig.update_yaxes(title_text="pairs", row=1, col=1)
    page.chart(fig)


def _sample_rows(root: Path, languages: list[str]) -> dict[str, list[dict]]:
    """lang -> its first :data:`SAMPLE_ROWS` pairs by pair id (a deterministic spread), with their
    texts: the ids are read from every pair file, the texts of the chosen rows alone."""
    files = release_files(root, include="pairs")
    picks = []
    for i, f in enumerate(files):
        names = pq.read_schema(f).names
        if "pair_id" not in names or "lang" not in names:
            continue
        ids = (pl.read_parquet(f, columns=["pair_id", "lang"], glob=False)
               .filter(pl.col("lang").is_in(languages)).sort("pair_id")
               .group_by("lang", maintain_order=True).head(SAMPLE_ROWS))
        picks.append(ids.with_columns(__file=pl.lit(i, dtype=pl.UInt32)))
    if not picks:
        return {}
    picks = (pl.concat(picks, how="vertical_relaxed").sort("pair_id")
             .group_by("lang", maintain_order=True).head(SAMPLE_ROWS))
    if picks.height == 0:
        return {}
    texts = []
    for i, part in picks.partition_by("__file", as_dict=True).items():
        f = files[i[0]]
        names = pq.read_schema(f).names
        cols = ["pair_id", *(c for c in SAMPLE_COLUMNS if c in names)]
        # By pair id (unique in the pair configs): the reader decodes the texts of those rows only.
        found = (pl.scan_parquet(f, glob=False).select(cols)
                 .filter(pl.col("pair_id").is_in(part["pair_id"].implode())).collect())
        texts.append(as_text(found).with_columns(file_split=pl.lit(f.name.split("-")[0])))
    rows = pl.concat(texts, how="diagonal_relaxed").sort("pair_id")
    return {lang: part.to_dicts() for (lang,), part in
            rows.join(picks.select("pair_id", "lang"), on="pair_id", maintain_order="left")
            .partition_by("lang", as_dict=True).items()}


def _samples(page: _Page, pairs: ReleaseColumns, samples: dict[str, list[dict]], languages: list[str]) -> None:
    page.h2("Sample rows per language", "samples")
    if pairs.height == 0:
        page.text("No pairs.")
        return
    blocks = []
    pairs = _only(pairs, "lang")
    for lang in languages:
        part = pairs.filter(pl.col("lang") == lang)
        if part.height == 0:
            continue
        rows = [[r.get("file_split"), r.get("kind"), r.get("category"), r.get("attack_style"), r.get("prompt"),
                 r.get("chosen"), r.get("rejected")] for r in samples.get(lang, [])]
        blocks.append(_details(f"{lang}: {len(rows)} of {part.height} pairs",
                               _table(["split", "kind", "category", "attack style", "prompt", "chosen", "rejected"],
                                      rows), warning=True))
    page.raw("".join(blocks))


STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 1em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
td, th { border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; text-align: left; }
details { margin: .4em 0; } summary { cursor: pointer; }
.warning { color: #8a4b00; background: #fff4e0; padding: 4px 8px; }
nav a { margin-right: 1em; }
"""


def render_report(release: str | Path, *, verified: bool = False) -> str:
    """The report page of a release folder, as HTML text (self-contained, offline).

    The release is verified by content first unless ``verified`` says it already was."""
    import plotly.offline

    root = Path(release)
    if not verified:
        require_valid(root, action="report on it")
    manifest = read_manifest(root)
    languages = list(manifest.get("languages") or [])
    rejects = pl.read_parquet(root / "rejects.parquet", glob=False) if (root / "rejects.parquet").is_file() else None
    # The few texts shown first, each file's texts read and dropped before the light rows are held.
    english = _english_prompts(root, _example_ids(rejects))
    samples = _sample_rows(root, languages)
    # Each section reads the columns it needs from the files (light rows: lengths and hashes
    # instead of texts), so memory holds one section's columns at a time.
    pairs = ReleaseColumns(root, include="pairs")
    ev = ReleaseColumns(root, include="evaluation")
    if pairs.height + ev.height == 0:
        raise InputError("the release holds no rows, so there is nothing to report", file=str(root))

    page = _Page()
    _overview(page, manifest, pairs, ev, languages)
    _funnel(page, manifest, languages)
    _rejects(page, rejects, english)
    _qe(page, manifest, pairs, rejects, languages)
    _lid(page, manifest, pairs, rejects, languages)
    _coverage(page, pairs)
    _lengths(page, pairs, languages)
    _origins(page, pairs, languages)
    _samples(page, pairs, samples, languages)

    title = f"{manifest.get('name', '?')} v{manifest.get('version', '?')}"
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("overview", "overview"), ("funnel", "funnel"), ("rejects", "rejects"), ("qe", "QE"), ("lid", "language ID"),
        ("coverage", "coverage"), ("lengths", "lengths"), ("origins", "origins"), ("samples", "samples")))
    meta = json.dumps({"name": manifest.get("name"), "version": manifest.get("version"),
                       "build_signature": manifest.get("build_signature"), "charts": page.charts})
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}: build report</title>
<style>{STYLE}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
<script type="application/json" id="report-meta">{html.escape(meta, quote=False)}</script>
</head>
<body>
<h1>{html.escape(title)}: build report</h1>
<p>Languages: {html.escape(", ".join(languages))}. {html.escape(CONTENT_WARNING.split(":")[0])}: the rows shown
below (collapsed) are harmful requests.</p>
<nav>{nav}</nav>
{chr(10).join(page.parts)}
</body>
</html>
"""


def write_report(release: str | Path, out: str | Path, *, verified: bool = False) -> Path:
    """Write the report page of ``release`` to ``out`` (folders created); returns ``out``."""
    text = render_report(release, verified=verified)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


def default_report_path(spec: str) -> Path:
    """Where ``refuseu report`` writes when no --out is given: next to a release folder
    (``<folder>.report.html``), or in the current folder for a Hub release."""
    if spec.startswith("hf:"):
        repo, _, rev = spec[3:].partition("@")
        name = repo.replace("/", "__") + (f"-{rev}" if rev else "")
        return Path(f"{name}.report.html")
    p = Path(spec.rstrip("/") or spec)
    return p.with_name(p.name + ".report.html")


def report_release(spec: str, out: str | Path | None = None) -> Path:
    """``refuseu report``: the report page of a release folder or ``hf:OWNER/NAME[@REV]``."""
    from refuseu.release.diff import fetch_release

    root = fetch_release(spec)
    require_valid(root, action="report on it", hub_snapshot=spec.startswith("hf:"))
    return write_report(root, out or default_report_path(spec), verified=True)
