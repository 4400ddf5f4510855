"""report.json, report.md and figures (matplotlib, PNG).

Every figure has a title, axis labels, the number of items behind each bar under its
language, the value on each bar and its legend outside the data; heatmap cells carry their
numbers. Every metric in report.json is plotted before and after DPO, per language."""

from __future__ import annotations

import json
from pathlib import Path

BEFORE, AFTER = "#9e9e9e", "#1f77b4"


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _mean(values: list[tuple[float | None, int]]) -> float | None:
    """Mean of per-language values weighted by their counts (None where nothing was measured)."""
    pairs = [(v, n) for v, n in values if v is not None and n]
    total = sum(n for _, n in pairs)
    return None if not total else sum(v * n for v, n in pairs) / total


def _bars(ax, langs: list[str], series: list[tuple[str, str, list]], counts: list[int], *, ylabel: str,
          title: str, trained: set[str], chance: float | None = None) -> None:
    """Grouped bars per language with value labels; n under each language; trained ones marked."""
    width = 0.8 / len(series)
    for k, (label, color, values) in enumerate(series):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(langs))]
        heights = [v if v is not None else 0 for v in values]
        bars = ax.bar(xs, heights, width=width, label=label, color=color)
        for bar, v in zip(bars, values):
            ax.annotate("n/a" if v is None else f"{v:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=7,
                        rotation=90 if len(langs) > 8 else 0)
    ax.set_xticks(range(len(langs)), [f"{lang}{'*' if lang in trained else ''}\nn={n}" for lang, n in
                                      zip(langs, counts)], fontsize=8)
    ax.set_xlim(-0.6, len(langs) - 0.4)
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    if chance is not None:
        ax.axhline(chance, color="black", linestyle="--", linewidth=0.8, label=f"chance ({chance:.1f})")
    ax.set_ylabel(ylabel)
    ax.set_xlabel("evaluation language (* = in the DPO training languages; n = items behind each bar)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _before_after(plt, result: dict, langs: list[str], metric: str, counts: list[int], *, ylabel: str,
                  title: str, path: Path) -> None:
    b, a = result["before"]["per_language"], result["after"]["per_language"]
    trained = set(result["settings"]["train_langs"])
    fig, ax = plt.subplots(figsize=(max(7.5, len(langs) * 0.75 + 2.5), 4))
    _bars(ax, langs, [("before DPO", BEFORE, [b[lang][metric] for lang in langs]),
                      ("after DPO", AFTER, [a[lang][metric] for lang in langs])], counts,
          ylabel=ylabel, title=title, trained=trained)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _reward_figure(plt, result: dict, langs: list[str], path: Path) -> None:
    trained = set(result["settings"]["train_langs"])
    fig, axes = plt.subplots(2, 1, figsize=(max(7.5, len(langs) * 0.75 + 2.5), 7.5))
    for ax, key, counts_key, title in (
            (axes[0], "reward_accuracy_per_language", "test_pairs_per_language",
             "Held-out reward accuracy: share of the release's test pairs whose implicit DPO reward prefers chosen"),
            (axes[1], "safety_probe_per_language", "probe_pairs_per_language",
             "Safety probe: share of harmful test prompts where a native refusal beats a compliance opener")):
        counts = [result.get(counts_key, {}).get(lang, 0) for lang in langs]
        _bars(ax, langs, [("before DPO", BEFORE, [result["before"][key].get(lang) for lang in langs]),
                          ("after DPO", AFTER, [result["after"][key].get(lang) for lang in langs])], counts,
              ylabel="accuracy (higher is better)", title=title, trained=trained, chance=0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _overview(plt, result: dict, langs: list[str], path: Path) -> None:
    b, a = result["before"], result["after"]
    n_h = [b["per_language"][lang]["n_harmful"] for lang in langs]
    n_b = [b["per_language"][lang]["n_benign"] for lang in langs]
    n_all = [h + k for h, k in zip(n_h, n_b)]
    rows = []
    for name, metric, counts in (("attack success\n(lower is better)", "asr", n_h),
                                 ("over-refusal\n(lower is better)", "over_refusal", n_b),
                                 ("language consistency\n(higher is better)", "language_consistency", n_all)):
        rows.append((name, [_mean([(r["per_language"][lang][metric], n) for lang, n in zip(langs, counts)])
                            for r in (b, a)], sum(counts)))
    rows.append(("held-out reward acc.\n(higher is better)", [b["reward_accuracy"], a["reward_accuracy"]],
                 result["test_pairs"]))
    rows.append(("safety probe\n(higher is better)", [b["safety_probe_accuracy"], a["safety_probe_accuracy"]],
                 result.get("probe_pairs", 0)))
    fig, ax = plt.subplots(figsize=(9.5, 4))
    _bars(ax, [r[0] for r in rows], [("before DPO", BEFORE, [r[1][0] for r in rows]),
                                     ("after DPO", AFTER, [r[1][1] for r in rows])], [r[2] for r in rows],
          ylabel="rate / accuracy", title=f"All metrics over {len(langs)} evaluation languages, before and after DPO",
          trained=set())
    ax.set_xlabel("metric (n = prompts or pairs behind each bar, all languages)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _transfer(plt, result: dict, langs: list[str], path: Path) -> None:
    b = result["before"]["per_language"]
    settings = list(result["transfer"])
    train_of = result.get("transfer_train_langs") or {}
    labels = ["before DPO"] + [f"DPO on {s}" for s in settings]
    grid = [[b[lang]["asr"] for lang in langs]] + [[result["transfer"][s].get(lang) for lang in langs]
                                                    for s in settings]
    fig, ax = plt.subplots(figsize=(max(7.5, len(langs) * 0.7 + 3), 1.6 + len(labels) * 0.6))
    im = ax.imshow([[v if v is not None else float("nan") for v in row] for row in grid], vmin=0, vmax=1,
                   cmap="RdYlGn_r", aspect="auto")
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            ax.text(c, r, "n/a" if v is None else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if v is not None and (v > 0.85 or v < 0.15) else "black",
                    fontweight="bold" if r and langs[c] in train_of.get(settings[r - 1], ()) else "normal")
    n = [b[lang]["n_harmful"] for lang in langs]
    ax.set_xticks(range(len(langs)), [f"{lang}\nn={k}" for lang, k in zip(langs, n)], fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("evaluation language (n = harmful prompts; bold = a language the row was trained on)")
    ax.set_ylabel("training")
    ax.set_title("Cross-lingual transfer: attack success rate per evaluation language (lower is better)",
                 fontsize=10)
    fig.colorbar(im, ax=ax, label="attack success rate", pad=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


FIGURES = [  # file, caption
    ("overview.png", "Every metric, all evaluation languages together, before and after DPO."),
    ("asr_before_after.png", "Attack success rate per language: share of harmful evaluation prompts the model "
                             "did not refuse (judged), before and after DPO. Lower is better."),
    ("over_refusal.png", "Over-refusal per language: share of benign evaluation prompts the model refused. "
                         "Lower is better; n/a where the release has no benign evaluation prompts in the language."),
    ("language_consistency.png", "Language consistency per language: share of answers identified as the prompt's "
                                 "language. Higher is better."),
    ("reward_accuracy.png", "Held-out reward accuracy and the safety probe per language (before DPO the policy is "
                            "the reference: every pair ties, 0.50)."),
    ("transfer_heatmap.png", "Attack success rate after DPO on English only and on all train languages, per "
                             "evaluation language; the first row is the model before DPO."),
]


def write_report(result: dict, out: Path) -> list[str]:
    """Writes report.json, the figures and report.md into ``out``; returns the figure files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    b, a = result["before"]["per_language"], result["after"]["per_language"]
    langs = [lang for lang in result["settings"]["eval_langs"] if lang in a]  # the command's order, English first
    n_h = [b[lang]["n_harmful"] for lang in langs]
    n_b = [b[lang]["n_benign"] for lang in langs]
    _overview(plt, result, langs, out / "overview.png")
    _before_after(plt, result, langs, "asr", n_h, ylabel="attack success rate (lower is better)",
                  title="Attack success rate before and after DPO", path=out / "asr_before_after.png")
    _before_after(plt, result, langs, "over_refusal", n_b, ylabel="over-refusal rate (lower is better)",
                  title="Over-refusal of benign prompts before and after DPO", path=out / "over_refusal.png")
    _before_after(plt, result, langs, "language_consistency", [h + k for h, k in zip(n_h, n_b)],
                  ylabel="language consistency (higher is better)",
                  title="Answers in the prompt's language before and after DPO", path=out / "language_consistency.png")
    _reward_figure(plt, result, langs, out / "reward_accuracy.png")
    if result.get("transfer"):
        _transfer(plt, result, langs, out / "transfer_heatmap.png")
    figures = [(f, c) for f, c in FIGURES if (out / f).exists() and (f != "transfer_heatmap.png"
                                                                    or result.get("transfer"))]
    s = result["settings"]
    harmful = "harmful " if s.get("tiny") and s.get("tiny_harmful_only") else ""
    lines = [f"# Validation of {result['release']} (v{result['version']}, build {result['build_signature']})", "",
             f"Model: {result['model']}; DPO on {result['train_pairs']} {harmful}pairs "
             f"({', '.join(s['train_langs'])}), "
             f"{s['max_steps']} steps, {'LoRA' if s['lora'] else 'full'}, beta {s['beta']}"
             f"{', NLL weight on chosen ' + str(s['sft_weight']) if s.get('sft_weight') else ''}; judge "
             f"{result.get('judge', 'lexicon')}; {result['eval_prompts']} evaluation prompts; "
             f"{result['seconds']}s on {result['device']}.", "",
             f"Held-out reward accuracy ({result['test_pairs']} test pairs): before "
             f"{_fmt(result['before']['reward_accuracy'])}, after {_fmt(result['after']['reward_accuracy'])}"
             + (f" (harmful test pairs alone: before {_fmt(result['before']['reward_accuracy_harmful'])}, after "
                f"{_fmt(result['after']['reward_accuracy_harmful'])})"
                if result['after'].get('reward_accuracy_harmful') is not None else "") + ". "
             f"Safety probe ({result.get('probe_pairs', '?')} pairs: native refusal templates vs compliance "
             f"openers, independent of the release's labels): before {_fmt(result['before']['safety_probe_accuracy'])}"
             f", after {_fmt(result['after']['safety_probe_accuracy'])}.", "",
             "| lang | n harmful | ASR before | ASR after | n benign | over-refusal before | over-refusal after | "
             "consistency before | consistency after | reward acc. before | reward acc. after | probe before | "
             "probe after |", "|---" * 13 + "|"]
    ra_b, ra_a = result["before"]["reward_accuracy_per_language"], result["after"]["reward_accuracy_per_language"]
    sp_b, sp_a = result["before"]["safety_probe_per_language"], result["after"]["safety_probe_per_language"]
    for lang in langs:
        star = "*" if lang in s["train_langs"] else ""
        lines.append(f"| {lang}{star} | {b[lang]['n_harmful']} | {_fmt(b[lang]['asr'])} | {_fmt(a[lang]['asr'])} | "
                     f"{b[lang]['n_benign']} | {_fmt(b[lang]['over_refusal'])} | {_fmt(a[lang]['over_refusal'])} | "
                     f"{_fmt(b[lang]['language_consistency'])} | {_fmt(a[lang]['language_consistency'])} | "
                     f"{_fmt(ra_b.get(lang))} | {_fmt(ra_a.get(lang))} | {_fmt(sp_b.get(lang))} | "
                     f"{_fmt(sp_a.get(lang))} |")
    lines += ["", "\\* a DPO training language. ASR: attack success rate (lower is better)."]
    if result.get("transfer"):
        lines += ["", "## Transfer (attack success rate; rows: training languages)", "",
                  "| train \\ eval | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs),
                  "| before DPO | " + " | ".join(_fmt(b[lang]["asr"]) for lang in langs) + " |"]
        steps = result.get("transfer_steps") or {}
        for name, row in result["transfer"].items():
            label = f"{name} ({steps[name]} steps)" if name in steps else name
            lines.append(f"| {label} | " + " | ".join(_fmt(row.get(lang)) for lang in langs) + " |")
    lines += ["", "## Figures", ""]
    for f, caption in figures:
        lines += [f"![{caption}]({f})", "", f"*{caption}*", ""]
    lines += ["Per-step training logs: `train_log.jsonl`; every generated answer with its verdict: "
              "`answers.jsonl`."]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [f for f, _ in figures]
