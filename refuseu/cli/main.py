"""The ``refuseu`` command line: thin over the library; errors become clean messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from refuseu import __version__
from refuseu.errors import RefuseuError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RefuseuError as e:
            click.echo(f"error: {e.message}", err=True)
            if e.hint:
                click.echo(f"  fix: {e.hint}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: finished stages are cached; run the same command again to continue",
                       err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="refuseu")
def cli():
    """Rebuild and release multilingual refusal-alignment (DPO) datasets."""


@cli.command()
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), default=None,
              help="Recipe YAML (default: recipes/default.yaml).")
@click.option("--langs", default=None, help="all (the 12 of RefusEU) | eu24 | comma list of ISO codes.")
@click.option("--source", "sources", multiple=True,
              help="seed | FILE (.jsonl/.csv/.parquet) | hf:owner/name[:config][@rev]; repeatable.")
@click.option("--out", default=None, help="Folder that receives releases (default: recipe release.out).")
@click.option("--version", "version", default=None, help="Release version X.Y.Z (default: recipe version).")
@click.option("--build-dir", default=None, help="Cache folder for stage outputs (default: recipe build_dir).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def build(recipe_path, langs, sources, out, version, build_dir, as_json, quiet):
    """Build a release from a recipe (sources -> ... -> release folder)."""
    from refuseu.build import build as run_build
    from refuseu.config import load_recipe
    from refuseu.languages import parse_langs
    from refuseu.pipeline.progress import Reporter

    overrides: dict = {}
    if langs:
        overrides["languages"] = parse_langs(langs)
    if sources:
        overrides["sources"] = [{"spec": s} for s in sources]
    if out:
        overrides["release"] = {"out": out}
    if version:
        overrides["version"] = version
    if build_dir:
        overrides["build_dir"] = build_dir
    recipe = load_recipe(recipe_path, overrides=overrides)
    reporter = Reporter(quiet=quiet or as_json)
    reporter.info(f"building {recipe.release_name} ({', '.join(parse_langs(recipe.languages))})")
    summary = run_build(recipe, reporter=reporter)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
        return
    if not quiet:
        if summary.status == "built":
            click.echo(f"built {summary.release_dir} in {summary.seconds:.2f}s "
                       f"(stages run: {', '.join(summary.stages_run) or 'none'}; rejected rows: {summary.rejected})")
        else:
            click.echo(f"{summary.release_dir} is up to date")
        for key, n in summary.counts.items():
            click.echo(f"  {key}: {n}")
    click.echo(f"build signature: {summary.signature}")


@cli.command()
@click.argument("release", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def inspect(release, as_json):
    """Counts of a release per config, split, category, attack style and origin."""
    from refuseu.release.inspect import inspect_release

    info = inspect_release(release)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['release']}: {info['rows']} rows")
    for section in ("configs", "by_category", "by_attack_style", "by_origin"):
        if section not in info:
            continue
        click.echo(f"\n{section.replace('_', ' ')}:")
        for key, counts in info[section].items():
            click.echo(f"  {key}")
            for k, n in counts.items():
                click.echo(f"    {k:<48} {n:>8}")


@cli.command()
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), default=None,
              help="Recipe YAML (default: recipes/default.yaml).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default="DATASET_CARD.md", show_default=True,
              help="Where to write the card.")
@click.option("--build-dir", default=None, help="Cache folder for stage outputs (default: recipe build_dir).")
def card(recipe_path, out, build_dir):
    """Write the dataset card of a recipe's build (DATASET_CARD.md for the default recipe)."""
    from refuseu.build import render_recipe_card

    text = render_recipe_card(recipe_path, build_dir=build_dir)
    Path(out).write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), default="-", show_default=True,
              help="Output JSONL file ('-' for stdout).")
@click.option("--engine", type=click.Choice(["combined", "fasttext", "lingua"]), default="combined",
              show_default=True, help="Language-ID engine or rule.")
@click.option("--langs", default="all", show_default=True,
              help="Languages lingua may choose from (all | eu24 | comma list).")
@click.option("--threshold", type=float, default=None, help="Minimum score for ok (default: recipe default 0.5).")
def langid(file, out, engine, langs, threshold):
    """Identify the language of each JSONL row ('text', optional 'lang'); adds lid_lang, lid_score, ok."""
    from refuseu.langid import langid_file

    stats = langid_file(file, out, engine=engine, langs=langs, threshold=threshold)
    click.echo(f"{stats['rows']} rows; with lang: {stats['checked']}, ok: {stats['ok']}", err=True)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
