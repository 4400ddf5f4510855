"""report.json, report.md and figures (matplotlib, PNG)."""

from __future__ import annotations

import json
from pathlib import Path


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def write_report(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    langs = list(result["after"]["per_language"])
    b, a = result["before"]["per_language"], result["after"]["per_language"]
    figures = []
    x = range(len(langs))

    def bars(metric: str, label: str, name: str) -> None:
        fig, ax = plt.subplots(figsize=(max(6, len(langs) * 0.7), 3.5))
        ax.bar([i - 0.2 for i in x], [b[lang][metric] or 0 for lang in langs], width=0.4, label="before")
        ax.bar([i + 0.2 for i in x], [a[lang][metric] or 0 for lang in langs], width=0.4, label="after")
        ax.set_xticks(list(x), langs)
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        figures.append(name)

    bars("asr", "attack success rate", "asr_before_after.png")
    bars("language_consistency", "language consistency", "language_consistency.png")
    if result.get("transfer"):
        settings = list(result["transfer"])
        grid = [[result["transfer"][s].get(lang) or 0 for lang in langs] for s in settings]
        fig, ax = plt.subplots(figsize=(max(6, len(langs) * 0.7), 1 + len(settings) * 0.6))
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(langs)), langs)
        ax.set_yticks(range(len(settings)), [f"train: {s}" for s in settings])
        fig.colorbar(im, ax=ax, label="attack success rate")
        fig.tight_layout()
        fig.savefig(out / "transfer_heatmap.png", dpi=100)
        plt.close(fig)
        figures.append("transfer_heatmap.png")
    lines = [f"# Validation of {result['release']} (v{result['version']}, build {result['build_signature']})", "",
             f"Model: {result['model']}; DPO on {result['train_pairs']} pairs "
             f"({', '.join(result['settings']['train_langs'])}), {result['settings']['max_steps']} steps, "
             f"{'LoRA' if result['settings']['lora'] else 'full'}, beta {result['settings']['beta']}; "
             f"{result['seconds']}s on {result['device']}.", "",
             f"Held-out reward accuracy ({result['test_pairs']} test pairs): before "
             f"{_fmt(result['before']['reward_accuracy'])}, after {_fmt(result['after']['reward_accuracy'])}. "
             f"Safety probe (native refusal templates vs compliance openers, independent of the release's labels): "
             f"before {_fmt(result['before']['safety_probe_accuracy'])}, "
             f"after {_fmt(result['after']['safety_probe_accuracy'])}.", "",
             "| lang | ASR before | ASR after | over-refusal before | over-refusal after | consistency before | "
             "consistency after | reward acc. after |", "|---|---|---|---|---|---|---|---|"]
    for lang in langs:
        lines.append(f"| {lang} | {_fmt(b[lang]['asr'])} | {_fmt(a[lang]['asr'])} | {_fmt(b[lang]['over_refusal'])} | "
                     f"{_fmt(a[lang]['over_refusal'])} | {_fmt(b[lang]['language_consistency'])} | "
                     f"{_fmt(a[lang]['language_consistency'])} | "
                     f"{_fmt(result['after']['reward_accuracy_per_language'].get(lang))} |")
    if result.get("transfer"):
        lines += ["", "Transfer (attack success rate; rows: training languages):", "",
                  "| train \\ eval | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
        for s, row in result["transfer"].items():
            lines.append(f"| {s} | " + " | ".join(_fmt(row.get(lang)) for lang in langs) + " |")
    lines += [""] + [f"![{f}]({f})" for f in figures]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
