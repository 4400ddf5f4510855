"""PNG figures of a release, shown by its dataset card (``figures/*.png``).

The figures are part of the release, so they are byte-deterministic: matplotlib's Agg
renderer with its default style and bundled font, fixed size and dpi, and no metadata
(no software version, no date) in the PNG.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from refuseu.release.summary import TableSummary, combined, summaries_of
from refuseu.taxonomy import load_taxonomy

FIGURES_DIR = "figures"
DPI = 100
#: file -> alt text / caption, in the order the card shows them.
CARD_FIGURES = {
    "figures/languages.png": "Pairs per language and split",
    "figures/coverage.png": "Pairs per harm category and attack style",
    "figures/funnel.png": "Rows kept and rejected at each stage",
}


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})


def _languages_figure(tables: dict[tuple[str, str], TableSummary], languages: list[str], path: Path) -> None:
    train = [tables[(f"lang_{lang}", "train")].height for lang in languages]
    test = [tables[(f"lang_{lang}", "test")].height for lang in languages]
    fig = _new_figure(max(5.0, 0.55 * len(languages) + 2.5), 3.6)
    ax = fig.add_subplot()
    x = range(len(languages))
    bars_train = ax.bar(x, train, color="#4c72b0", label="train")
    bars_test = ax.bar(x, test, bottom=train, color="#dd8452", label="test")
    for i, (a, b) in enumerate(zip(train, test)):
        ax.text(i, a + b, str(a + b), ha="center", va="bottom", fontsize=8)
    ax.bar_label(bars_train, label_type="center", fontsize=7, color="white")
    ax.bar_label(bars_test, label_type="center", fontsize=7, color="white")
    ax.set_xticks(list(x), languages)
    ax.set_xlabel("language")
    ax.set_ylabel("pairs")
    ax.set_ylim(0, max([a + b for a, b in zip(train, test)] + [1]) * 1.12)
    ax.set_title("Pairs per language (train + test)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    _save(fig, path)


def coverage_matrix(pairs: pl.DataFrame) -> tuple[list[str], list[str], list[list[int]]]:
    """(category labels, style labels, counts[category][style]) over distinct prompts of ``pairs``
    (by ``prompt_id`` or its hash ``prompt_id_hash``; without either, each row is one prompt, as
    in the pairs of one language, and a column ``n`` says how many rows a row stands for, as in
    a :class:`~refuseu.release.summary.TableSummary`'s counts); categories and styles without any
    row are left out, rows without a style go to "(none)"."""
    tax = load_taxonomy()
    key = next((c for c in ("prompt_id", "prompt_id_hash") if c in pairs.columns), None)
    harm = pairs.select(c for c in (key, "category", "attack_style", "n" if not key and "n" in pairs.columns else None)
                        if c)
    if "attack_style" not in harm.columns:
        harm = harm.with_columns(attack_style=pl.lit(None, dtype=pl.String))
    # The first row of each prompt (as unique(keep="first"), in a fifth of the memory)
    harm = harm.filter(pl.col(key).is_first_distinct()) if key else harm
    size = pl.col("n").sum() if "n" in harm.columns else pl.len()
    counts = {(c, s): n for c, s, n in harm.group_by("category", "attack_style").agg(size).iter_rows()}
    cats = [c for c in tax.categories if any(k[0] == c for k in counts)]
    cats += sorted({str(k[0]) for k in counts if k[0] not in tax.categories})
    styles = [s for s in tax.attack_styles if any(k[1] == s for k in counts)]
    styles += sorted({k[1] for k in counts if k[1] is not None and k[1] not in tax.attack_styles})
    has_none = any(k[1] is None for k in counts)
    matrix = [[counts.get((c, s), 0) for s in styles] + ([counts.get((c, None), 0)] if has_none else [])
              for c in cats]
    cat_labels = [f"{tax.codes.get(c, '-')} {tax.names.get(c, c)}" for c in cats]
    style_labels = [tax.names.get(s, s) for s in styles] + (["(none)"] if has_none else [])
    return cat_labels, style_labels, matrix


def _coverage_figure(pairs: pl.DataFrame, path: Path) -> None:
    cats, styles, matrix = coverage_matrix(pairs)
    fig = _new_figure(max(6.0, 0.75 * len(styles) + 3.5), max(3.0, 0.38 * len(cats) + 1.8))
    ax = fig.add_subplot()
    if not matrix or not styles:
        ax.text(0.5, 0.5, "no pairs", ha="center", va="center")
        ax.set_axis_off()
        _save(fig, path)
        return
    top = max(max(r) for r in matrix) or 1
    im = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=top, aspect="auto")
    for i, row in enumerate(matrix):
        for j, n in enumerate(row):
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8,
                    color="white" if n > top * 0.6 else "black")
    ax.set_xticks(range(len(styles)), styles, rotation=35, ha="right")
    ax.set_yticks(range(len(cats)), cats)
    ax.set_xlabel("attack style")
    ax.set_ylabel("harm category")
    ax.set_title(f"Prompts per category and attack style ({sum(map(sum, matrix))} prompts, train + test)")
    from matplotlib.ticker import MaxNLocator

    bar = fig.colorbar(im, ax=ax, label="prompts", shrink=0.8)
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _save(fig, path)


def _funnel_figure(funnel: dict, path: Path) -> None:
    stages = list(funnel)
    kept = [sum(f["kept"] for f in funnel[s].values()) for s in stages]
    rejected = [sum(f["rejected"] for f in funnel[s].values()) for s in stages]
    fig = _new_figure(max(6.0, 0.8 * len(stages) + 2.5), 3.6)
    ax = fig.add_subplot()
    x = range(len(stages))
    b1 = ax.bar(x, kept, color="#55a868", label="kept")
    b2 = ax.bar(x, rejected, bottom=kept, color="#c44e52", label="rejected")
    ax.bar_label(b1, label_type="center", fontsize=7, color="white")
    ax.bar_label(b2, labels=[str(n) if n else "" for n in rejected], label_type="edge", fontsize=7)
    ax.set_xticks(list(x), stages, rotation=25, ha="right")
    ax.set_ylabel("rows (all languages)")
    ax.set_ylim(0, max([a + b for a, b in zip(kept, rejected)] + [1]) * 1.12)
    ax.set_title(f"Rows per stage: kept and rejected ({sum(rejected)} rejected in all)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    _save(fig, path)


def write_card_figures(root: Path, *, tables: dict, languages: list[str],
                       funnel: dict) -> dict[str, str]:
    """Write the card's figures under ``root/figures``; returns relative path -> caption.

    ``tables``: (config, split) -> the release table, whole or as a
    :class:`~refuseu.release.summary.TableSummary`; both give the same bytes."""
    import matplotlib
    import matplotlib.style

    tables = summaries_of(tables)
    pairs = combined(t for (c, _), t in tables.items() if c != "evaluation")
    first = pairs.where(lang=languages[0])
    # The default style, whatever a user's matplotlibrc says, so the bytes depend on the data only.
    with matplotlib.rc_context():
        matplotlib.style.use("default")
        matplotlib.rcParams["font.family"] = "DejaVu Sans"  # bundled with matplotlib
        _languages_figure(tables, languages, root / "figures/languages.png")
        _coverage_figure(first if first.height else pairs.counts, root / "figures/coverage.png")
        _funnel_figure(funnel, root / "figures/funnel.png")
    return dict(CARD_FIGURES)
