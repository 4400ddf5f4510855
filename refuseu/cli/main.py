"""The ``refuseu`` command line: thin over the library; errors become clean messages."""

from __future__ import annotations

import json
import os
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
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:  # a bug: one clear line, the traceback in a file for the report
            if os.environ.get("REFUSEU_DEBUG"):
                raise
            _crash(e)
        except BaseException as e:  # e.g. a panic inside a compiled library (pyo3 PanicException)
            if isinstance(e, (SystemExit, GeneratorExit)) or os.environ.get("REFUSEU_DEBUG"):
                raise
            _crash(e)


def _crash(err: BaseException) -> None:
    import tempfile
    import traceback

    log = Path(tempfile.gettempdir()) / f"refuseu-crash-{os.getpid()}.log"
    try:
        log.write_text("".join(traceback.format_exception(err)), encoding="utf-8")
        where = f"; details in {log}"
    except OSError:
        where = ""
    first = (str(err).splitlines() or [""])[0][:200]
    click.echo(f"error: internal error ({type(err).__name__}: {first}){where}", err=True)
    click.echo("  fix: this is a bug in refuseu, not in your input: please report it with that file "
               "(REFUSEU_DEBUG=1 shows the traceback here)", err=True)
    sys.exit(1)


class _Finite(click.FloatRange):
    """A FloatRange that also refuses NaN and infinity (which pass every comparison test);
    ``message`` (with ``{value}``) says what is allowed in place of the range."""

    def __init__(self, *args, message: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.message = message

    def convert(self, value, param, ctx):
        import math

        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(self.message.format(value=value) if self.message else
                      f"{value!r} is not a finite number; allowed: {self._describe_range()}", param, ctx)
        return rv


def _ray_address(ctx, param, value):
    """A Ray cluster address as ray.init takes it: host:port, ray://host:port, auto or local."""
    import re

    if value is None or value in ("auto", "local"):
        return value
    host, _, port = value.removeprefix("ray://").rpartition(":")
    if not (re.fullmatch(r"[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]", host) and port.isdigit()
            and 0 < int(port) < 65536):
        raise click.BadParameter(f"{value!r} is not a Ray address; give host:port (e.g. 10.0.0.5:6379), "
                                 "ray://host:port (Ray Client, e.g. ray://head:10001), auto or local")
    return value


def _not_empty(ctx, param, value):
    """A repeatable option whose every value must be given (not '')."""
    for v in value or ():
        if not v.strip():
            raise click.BadParameter("an empty value; give a Hub id (OWNER/NAME) or a local folder")
    return value


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
@click.option("--translator", default=None,
              help="MT engine after translation memory: hf | ctranslate2 | deep-translator.")
@click.option("--translator-model", default=None,
              help="MT model: Hub id or local folder (hf/ctranslate2), or provider (deep-translator).")
@click.option("--qe", "qe", default=None, type=click.Choice(["comet", "chrf-roundtrip", "none"]),
              help="Translation quality scorer for machine translations.")
@click.option("--qe-model", default=None, help="COMET model: Hub id, model folder or .ckpt path.")
@click.option("--generator", default=None, help="Model (Hub id or folder) for compliant answers (rejected).")
@click.option("--helpful-generator", default=None, help="Model for helpful answers to benign prompts (chosen).")
@click.option("--refusal-generator", default=None,
              help="Aligned chat model (Hub id or folder) that writes the refusals (chosen) per prompt; an answer "
                   "that is not a refusal in the row's language falls back to a template.")
@click.option("--bump", type=click.Choice(["patch", "minor", "major"]), default=None,
              help="Release as the next patch/minor/major version after the highest one in --out; its test "
                   "and train prompts stay test and train (unless --keep-test-from says otherwise).")
@click.option("--keep-test-from", default=None,
              help="A previous release (folder or hf:OWNER/NAME@REV) whose test prompts stay test and train "
                   "prompts stay train; 'none' to split afresh.")
@click.option("--repair", is_flag=True,
              help="Rewrite a damaged release of this version from the cache (same recipe and version only).")
@click.option("--lock-timeout", default=None,
              type=_Finite(min=0, message="{value} is not a number of seconds; give a finite number >= 0"),
              help="Seconds to wait for another build on the same --build-dir (default 60).")
@click.option("--name", "name", default=None,
              help="Release name (default: the recipe's name; refuseu-seed for the seed; else the first "
                   "source file's stem).")
@click.option("--text-column", default=None, help="Column of every --source that holds the prompt text.")
@click.option("--category-column", default=None, help="Column of every --source that holds the category.")
@click.option("--category", "default_category", default=None,
              help="Category for --source rows without one or with a label that maps to none.")
@click.option("--kind", "default_kind", type=click.Choice(["harmful", "benign"]), default=None,
              help="Kind for --source rows without one (default harmful).")
@click.option("--preset", default=None,
              help="A public dataset's columns and labels for every --source: beavertails, harmbench, "
                   "sorry-bench, aegis2, catqa, llamaguard (schemas/presets.yaml).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None,
              help="Where model stages run: local (default) or ray (an actor pool on a Ray cluster; "
                   "refuseu[ray]). Same release either way.")
@click.option("--ray-address", default=None, callback=_ray_address,
              help="Ray cluster to join (implies --executor ray; default: executor.address, then RAY_ADDRESS, "
                   "else a local Ray).")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=None,
              help="Rows per chunk of the streaming stages (default executor.chunk_rows, 50000): memory grows "
                   "with it, the release does not.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def build(recipe_path, langs, sources, out, version, build_dir, translator, translator_model, qe, qe_model,
          generator, helpful_generator, refusal_generator, bump, keep_test_from, repair, lock_timeout, name, text_column,
          category_column, default_category, default_kind, preset, executor, ray_address, chunk_rows, as_json, quiet):
    """Build a release from a recipe (sources -> ... -> release folder)."""
    from refuseu.build import build as run_build
    from refuseu.languages import parse_langs
    from refuseu.paths import check_output_paths
    from refuseu.pipeline.progress import Reporter
    from refuseu.sources.readers import check_sources, describe_columns

    per_source = {"text_column": text_column, "category_column": category_column, "category": default_category,
                  "kind": default_kind, "preset": preset}
    given = [f"--{k.replace('_', '-')}" for k, v in per_source.items() if v is not None]
    if given and not sources:
        raise click.UsageError(f"{', '.join(given)} apply to the --source files; give --source FILE")
    recipe = _recipe(recipe_path, langs=langs, sources=sources, out=out, version=version, build_dir=build_dir,
                     translator=translator, translator_model=translator_model, qe=qe, qe_model=qe_model,
                     generator=generator, helpful_generator=helpful_generator, refusal_generator=refusal_generator,
                     name=name, source_options=per_source)
    check_output_paths(recipe, flags={k: f for k, f, v in (("release.out", "--out", out),
                                                           ("build_dir", "--build-dir", build_dir)) if v is not None})
    check_sources(recipe.sources)  # before anything is created or run
    column_lines = [line for line in map(describe_columns, recipe.sources) if line]  # ambiguous columns fail here
    if bump:
        from refuseu.build import bumped
        if version:
            raise click.UsageError("give --version or --bump, not both")
        recipe = bumped(recipe, bump)
    if keep_test_from:
        keep = None if keep_test_from.lower() == "none" else keep_test_from
        recipe = recipe.model_copy(update={"split": recipe.split.model_copy(update={"keep_test_from": keep})})
    if executor is not None or ray_address is not None:
        chosen = {"kind": executor or "ray", **({"address": ray_address} if ray_address else {})}
        if chosen["kind"] == "local" and ray_address:
            raise click.UsageError("--ray-address needs --executor ray")
        recipe = recipe.model_copy(update={"executor": recipe.executor.model_copy(update=chosen)})
    if chunk_rows is not None:
        recipe = recipe.model_copy(update={"executor": recipe.executor.model_copy(update={"chunk_rows": chunk_rows})})
    reporter = Reporter(quiet=quiet or as_json)
    reporter.info(f"building {recipe.release_name} ({', '.join(parse_langs(recipe.languages))})")
    from rich.markup import escape
    for line in column_lines:
        reporter.info(escape(line))
    summary = run_build(recipe, reporter=reporter, repair=repair, lock_timeout=lock_timeout)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
        return
    if not quiet:
        from refuseu.release.inspect import language_table

        if summary.status in ("built", "repaired"):
            click.echo(f"{summary.status} {summary.release_dir} in {summary.seconds:.2f}s "
                       f"(stages run: {', '.join(summary.stages_run) or 'none'})")
        elif summary.stages_run:  # the pipeline ran and made the rows the release already holds
            click.echo(f"{summary.release_dir} is up to date")
        # (otherwise the up-to-date release was already reported, once, on stderr)
        if summary.by_language:
            click.echo("\n".join(language_table(summary.by_language)))
        if summary.rejected:
            click.echo(f"rejected rows: {summary.rejected}")
            for stage, reasons in summary.rejected_by.items():
                click.echo(f"  {stage:<13} " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
        else:
            click.echo("rejected rows: 0")
    click.echo(f"build signature: {summary.signature}")


def _recipe(recipe_path, *, langs=None, sources=(), out=None, version=None, build_dir=None, translator=None,
            translator_model=None, qe=None, qe_model=None, generator=None, helpful_generator=None, name=None,
            source_options=None, refusal_generator=None):
    """Defaults < recipe YAML < these flags; an invalid flag value is reported against its flag.

    ``source_options`` (text_column, category_column, category, kind, preset) apply to every
    ``sources`` file given on the command line. Without ``name``, a build of command-line
    sources named by no recipe file takes its name from them (see Recipe's name)."""
    from refuseu.config import load_recipe
    from refuseu.languages import parse_langs

    overrides: dict = {}
    if langs is not None:  # '' is given, and empty: an error, not "the recipe's languages"
        overrides["languages"] = parse_langs(langs, flag="--langs")
    if sources:
        opts = {k: v for k, v in (source_options or {}).items() if v is not None}
        extra: dict = {}
        columns = {f: opts.pop(f"{f}_column") for f in ("text", "category") if f"{f}_column" in opts}
        if columns:
            extra["columns"] = columns
        extra.update(opts)
        overrides["sources"] = [{"spec": s, **(extra if s != "seed" else {})} for s in sources]
        if recipe_path is None and name is None:
            overrides["name"] = None  # not the default recipe's refuseu-seed: named after the sources
    if name is not None:
        overrides["name"] = name
    if out is not None:
        overrides["release"] = {"out": out}
    if version is not None:
        overrides["version"] = version
    if build_dir is not None:
        overrides["build_dir"] = build_dir
    sections = {
        "translate": {"engine": translator,
                      ("provider" if translator == "deep-translator" else "model"): translator_model},
        "qe": {"scorer": qe, "model": qe_model},
        "respond": {"generator": generator, "helpful_generator": helpful_generator,
                    "refusal_generator": refusal_generator},
    }
    for section, values in sections.items():
        given = {k: v for k, v in values.items() if v}
        if given:
            overrides[section] = given
    flags = {"languages": "--langs", "sources": "--source", "name": "--name", "release.out": "--out",
             "version": "--version",
             "build_dir": "--build-dir", "translate.engine": "--translator", "translate.model": "--translator-model",
             "translate.provider": "--translator-model", "qe.scorer": "--qe", "qe.model": "--qe-model",
             "respond.generator": "--generator", "respond.helpful_generator": "--helpful-generator",
             "respond.refusal_generator": "--refusal-generator"}
    return load_recipe(recipe_path, overrides=overrides, flags=flags)


@cli.group()
def models():
    """The models a recipe needs: list them, pull them into the cache, check they load offline."""


def _model_options(f):
    f = click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), default=None,
                     help="Recipe YAML (default: recipes/default.yaml).")(f)
    f = click.option("--langs", default=None, help="all | eu24 | comma list of ISO codes.")(f)
    f = click.option("--translator", default=None, help="MT engine: hf | ctranslate2 | deep-translator.")(f)
    f = click.option("--translator-model", default=None, help="MT model id or local folder.")(f)
    return f


def _models_recipe(recipe_path, langs, translator, translator_model):
    """The recipe of a ``models`` command; an MT engine that ``build`` would refuse is refused here."""
    return _known_translator(_recipe(recipe_path, langs=langs, translator=translator,
                                     translator_model=translator_model), translator)


def _known_translator(recipe, translator):
    """``recipe``, unless its MT engine is unknown: then an error naming --translator (or the recipe key)."""
    from refuseu.engines.translators import TRANSLATORS
    from refuseu.errors import InputError

    engine = recipe.translate.engine
    if engine and engine not in TRANSLATORS.names():
        where = f"--translator {translator!r}" if translator else f"translate.engine {engine!r}"
        raise InputError(f"{where}: unknown MT engine", hint=f"known engines: {', '.join(TRANSLATORS.names())}")
    return recipe


def _build_dir_flag(build_dir) -> None:
    """A --build-dir given to a command that keeps its item cache there is checked as build checks it."""
    if build_dir is not None:
        from refuseu.paths import check_folder

        check_folder(build_dir, "--build-dir")


def _print_needs(needs) -> None:
    if not needs:
        click.echo("this recipe needs no models beyond the bundled ones")
    for n in needs:
        langs = ",".join(n.languages[:6]) + ("..." if len(n.languages) > 6 else "")
        click.echo(f"{n.status:<8} {n.stage:<10} {n.engine:<12} {n.model}  [{langs}]  {n.detail}")


@models.command("list")
@_model_options
def models_list(recipe_path, langs, translator, translator_model):
    """List the models a recipe needs."""
    from refuseu.models import required_models

    _print_needs(required_models(_models_recipe(recipe_path, langs, translator, translator_model)))


@models.command("check")
@_model_options
def models_check(recipe_path, langs, translator, translator_model):
    """Check that every model the recipe needs loads offline; exit 1 naming each missing one."""
    from refuseu.models import check_models

    needs = check_models(_models_recipe(recipe_path, langs, translator, translator_model))
    _print_needs(needs)
    missing = [n for n in needs if n.status == "missing"]
    if missing:
        click.echo(f"error: {len(missing)} model(s) missing: {', '.join(n.model for n in missing)}", err=True)
        click.echo("  fix: run `refuseu models pull` with the same options (needs network), or give local "
                   "folders with --translator-model", err=True)
        sys.exit(1)


@models.command("pull")
@_model_options
@click.option("--model", "extra_models", multiple=True, callback=_not_empty,
              help="Also download this Hub model (e.g. the chat model for `refuseu validate --model`); repeatable.")
def models_pull(recipe_path, langs, translator, translator_model, extra_models):
    """Download the models a recipe needs into the Hugging Face cache (and convert for CTranslate2)."""
    from refuseu.models import pull_models

    _print_needs(pull_models(_models_recipe(recipe_path, langs, translator, translator_model), report=click.echo,
                             extra=list(extra_models), only_extra=bool(extra_models) and recipe_path is None
                             and not (langs or translator or translator_model)))


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--to", "to", required=True, help="Target languages: all | eu24 | comma list of ISO codes.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default="-", show_default=True,
              help="Output JSONL ('-' for stdout): one row per input row and language.")
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), default=None,
              help="Recipe whose translate section to use (default: recipes/default.yaml).")
@click.option("--translator", default=None, help="hf | ctranslate2 | deep-translator (default: the recipe's).")
@click.option("--translator-model", default=None, help="Model id or local folder, or provider.")
@click.option("--build-dir", default=None, help="Where the item cache lives (default: recipe build_dir).")
def translate(file, to, out, recipe_path, translator, translator_model, build_dir):
    """Translate the 'text' field of a JSONL file into languages (memory first, then the MT engine)."""
    from refuseu.commands.translate import translate_file

    _build_dir_flag(build_dir)
    recipe = _known_translator(_recipe(recipe_path, build_dir=build_dir, translator=translator,
                                       translator_model=translator_model), translator)
    stats = translate_file(file, out, recipe=recipe, langs=to)
    click.echo(f"{stats['rows']} rows x {stats['languages']} languages: {stats['tm']} from memory, "
               f"{stats['mt']} machine-translated ({stats['computed']} new, the rest from the item cache)", err=True)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--lang", required=True, help="Language of the 'mt' texts (ISO 639-1).")
@click.option("--scorer", default=None, type=click.Choice(["comet", "chrf-roundtrip", "none"]),
              help="Scorer (default: the recipe's).")
@click.option("--qe-model", default=None, help="COMET model: Hub id, model folder or .ckpt path.")
@click.option("--mode", default=None, type=click.Choice(["qe", "roundtrip"]), help="COMET mode.")
@click.option("--threshold", type=float, default=None, help="Minimum score for ok.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default="-", show_default=True,
              help="Output JSONL ('-' for stdout).")
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), default=None,
              help="Recipe whose qe and translate sections to use.")
@click.option("--translator", default=None, help="MT engine for back-translation (round-trip scorers).")
@click.option("--translator-model", default=None, help="MT model id or local folder.")
def score(file, lang, scorer, qe_model, mode, threshold, out, recipe_path, translator, translator_model):
    """Score a JSONL of (src, mt) pairs: cheap checks, then qe_score with the chosen scorer."""
    from refuseu.commands.score import score_file

    recipe = _known_translator(_recipe(recipe_path, translator=translator, translator_model=translator_model,
                                       qe=scorer, qe_model=qe_model), translator)
    extra = {k: v for k, v in (("mode", mode), ("threshold", threshold)) if v is not None}
    if extra:
        from pydantic import ValidationError

        from refuseu.errors import InputError

        qe = recipe.qe.model_copy()
        for k, v in extra.items():
            try:
                setattr(qe, k, v)  # sections validate on assignment
            except ValidationError as e:
                raise InputError(f"--{k} {v!r}: {e.errors()[0]['msg']}") from None
        recipe = recipe.model_copy(update={"qe": qe})
    stats = score_file(file, out, recipe=recipe, lang=lang)
    click.echo(f"{stats['rows']} rows scored with {stats['method']}; ok: {stats['ok']}", err=True)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), default="-", show_default=True,
              help="Output JSONL ('-' for stdout).")
@click.option("--engine", type=click.Choice(["lexicon", "classifier", "llm"]), default=None,
              help="Judge: lexicon (default), classifier (a sequence-classification model) or llm (a chat model).")
@click.option("--model", default=None, help="Judge model for --engine classifier|llm: Hub id or local folder.")
@click.option("--mode", type=click.Choice(["rubric", "llama_guard"]), default=None,
              help="llm judge: rubric (VERDICT line) or llama_guard (safe = refusal, unsafe = attack success).")
@click.option("--classifier", default=None, help="Optional refusal classifier averaged with the lexicon "
                                                 "(Hub id or folder).")
@click.option("--lexicon", "lexicons", multiple=True, type=click.Path(file_okay=False),
              help="Extra folder of <lang>.yaml refusal lexicons; repeatable.")
@click.option("--threshold", type=float, default=None,
              help="Score from which is_refusal is true (lexicon, classifier) [default: 0.5].")
@click.option("--batch-size", type=int, default=None, help="Answers per model batch [default: 16].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Model device.")
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), default=None,
              help="Recipe whose judge section to use (flags win).")
@click.option("--build-dir", default=None, help="Where the item cache of model verdicts lives "
                                                "(default: the recipe's build_dir).")
def judge(file, out, engine, model, mode, classifier, lexicons, threshold, batch_size, device, recipe_path,
          build_dir):
    """Refusal judging over a JSONL of model outputs ('text', 'lang', optional 'prompt'): adds is_refusal,
    score and judge (who decided: lexicon, classifier, llm, llama_guard, or fallback)."""
    from refuseu.commands.judge import judge_config, judge_file

    config = judge_config(recipe_path, engine=engine, model=model, mode=mode, classifier=classifier,
                          threshold=threshold, batch_size=batch_size, device=device)
    cache_dir = None
    if config.engine != "lexicon":
        _build_dir_flag(build_dir)
        cache_dir = build_dir or _recipe(recipe_path).build_dir
    stats = judge_file(file, out, config=config, lexicons=list(lexicons), cache_dir=cache_dir)
    unjudged = f"; no verdict (no lexicon): {stats['unjudged']}" if stats.get("unjudged") else ""
    model_note = ""
    if config.engine != "lexicon":
        fell_back = f", {stats['fallbacks']} fell back to the lexicon" if config.engine == "llm" else ""
        model_note = (f" (judge {stats['judge']}: {stats['computed']} judged, {stats['cached']} from the item "
                      f"cache{fell_back})")
    click.echo(f"{stats['rows']} rows; refusals: {stats['refusals']}{unjudged}{model_note}", err=True)


@cli.command()
@click.argument("release", type=click.Path(file_okay=False))
@click.option("--model", default=None, help="Model to align: Hub id or local folder (or --tiny).")
@click.option("--train-langs", default="all", show_default=True, help="all | eu24 | comma list.")
@click.option("--eval-langs", default="all", show_default=True, help="all | eu24 | comma list.")
@click.option("--lora/--full", default=None, help="LoRA adapters (peft) or full fine-tuning (default: LoRA; full "
                                                  "with --tiny).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="DPO steps (default 60; 600 with --tiny).")
@click.option("--beta", type=_Finite(min=0, min_open=True), default=0.1, show_default=True, help="DPO beta.")
@click.option("--learning-rate", type=_Finite(min=0, min_open=True), default=None,
              help="Default 5e-5 (5e-3 with --tiny).")
@click.option("--sft-weight", type=_Finite(min=0), default=None,
              help="Weight of an NLL term on the chosen answers added to the DPO loss (default 0; 2 with --tiny).")
@click.option("--transfer", is_flag=True, help="Train once on English only and once on all; ASR matrix.")
@click.option("--tiny", is_flag=True, help="Build a tiny Llama-style model locally, teach it to comply (SFT), then "
                                           "DPO on the harmful pairs (batch 16, the first two sentences of each "
                                           "answer): the experiment in miniature on a CPU.")
@click.option("--eval-limit", type=click.IntRange(min=1), default=None,
              help="Evaluation prompts per language and kind (default all; 10 with --tiny).")
@click.option("--judge-engine", type=click.Choice(["lexicon", "classifier", "llm"]), default="lexicon",
              show_default=True, help="Refusal judge of the generated answers.")
@click.option("--judge-model", default=None, help="Classifier or LLM judge: Hub id or local folder.")
@click.option("--out", default="validation", show_default=True, help="Folder for report.json, report.md, figures.")
def validate(release, model, train_langs, eval_langs, lora, max_steps, beta, learning_rate, sft_weight, transfer,
             tiny, eval_limit, judge_engine, judge_model, out):
    """DPO-fine-tune a model on a release and evaluate safety per language before and after."""
    from refuseu.languages import parse_langs
    from refuseu.paths import check_folder
    from refuseu.validate.run import ValidateConfig, run_validate

    parse_langs(train_langs, flag="--train-langs")
    parse_langs(eval_langs, flag="--eval-langs")
    check_folder(out, "--out")  # as build checks its --out
    if judge_engine != "lexicon" and judge_model:  # found without a download, or a message naming the flag
        from refuseu.engines.models import resolve_model_dir
        from refuseu.errors import ModelUnavailableError

        try:
            resolve_model_dir(judge_model, stage="judge", flag="--judge-model")
        except ModelUnavailableError as e:
            local = Path(judge_model).expanduser().exists() or judge_model.startswith((".", "/", "~")) \
                or judge_model.count("/") > 1
            raise ModelUnavailableError(e.message, hint=e.hint if local else (
                f"run `refuseu models pull --model {judge_model}` (needs network) to put it in the Hugging Face "
                "cache, or give a local folder with --judge-model")) from None
    cfg = ValidateConfig(model=model, train_langs=train_langs, eval_langs=eval_langs, lora=lora,
                         max_steps=max_steps, beta=beta, transfer=transfer, tiny=tiny, out=out,
                         eval_limit=eval_limit, learning_rate=learning_rate, sft_weight=sft_weight,
                         judge_engine=judge_engine, judge_model=judge_model)
    res = run_validate(release, cfg, report=lambda m: click.echo(m, err=True))
    rate = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for lang in res["settings"]["eval_langs"]:
        b, a = res["before"]["per_language"][lang], res["after"]["per_language"][lang]
        mark = " (trained)" if lang in res["settings"]["train_langs"] else ""
        click.echo(f"  {lang}{mark}: attack success {rate(b['asr'])} -> {rate(a['asr'])} "
                   f"(n={b['n_harmful']})" + (f"; after DPO on en only: {rate(res['transfer']['en'][lang])}"
                                              if res.get("transfer") and "en" in res["transfer"] else ""))
    click.echo(f"held-out reward accuracy: before {res['before']['reward_accuracy']:.2f}, "
               f"after {res['after']['reward_accuracy']:.2f}; safety probe: before "
               f"{res['before']['safety_probe_accuracy']:.2f}, after {res['after']['safety_probe_accuracy']:.2f}; "
               f"report: {out}/report.md ({res['seconds']}s)")


@cli.command()
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def diff(old, new, as_json):
    """What changed between two releases (folders, or hf:OWNER/NAME@REV): rows, counts, manifest."""
    from refuseu.release.diff import diff_releases, format_diff

    d = diff_releases(old, new)
    click.echo(json.dumps(d, indent=2) if as_json else format_diff(d))


@cli.command()
@click.argument("release", type=click.Path(file_okay=False))
@click.option("--repo", required=True, help="Dataset repo on the Hub: OWNER/NAME.")
@click.option("--private", is_flag=True, help="Create the repo private.")
@click.option("--gated", type=click.Choice(["auto", "manual", "off"]), default="auto", show_default=True,
              help="Access gating (the data holds harmful requests).")
@click.option("--dry-run", is_flag=True, help="Print the plan (repo, files with sizes and hashes, tag); send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and result as JSON.")
def push(release, repo, private, gated, dry_run, as_json):
    """Publish a release folder to the Hub in one commit, tagged v<version>."""
    from refuseu.release.push import push_release

    plan = push_release(release, repo, private=private, gated=gated, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(plan.to_dict(), indent=2))
        return
    if dry_run:
        click.echo(f"plan: push {len(plan.files)} files to datasets/{plan.repo} in one commit, then tag {plan.tag}")
        click.echo(f"commit message: {plan.commit_message}")
        for f in plan.files:
            click.echo(f"  {f['path']:<52} {f['bytes']:>10}  sha256 {f['sha256'][:16]}")
        return
    if plan.status == "already_published":
        click.echo(f"{plan.repo} {plan.tag}: already published with the same files")
    else:
        click.echo(f"published {plan.repo} {plan.tag} (commit {plan.commit})")


@cli.command()
@click.argument("release", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.option("--full", is_flag=True, help="Every count: per config and split, by category, attack style and origin.")
def inspect(release, as_json, full):
    """Counts of a release: languages x splits (compact), or everything with --full."""
    from refuseu.release.inspect import format_inspect, inspect_release

    info = inspect_release(release)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(format_inspect(info, full=full))


@cli.command()
@click.argument("release")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the page (default: <release folder>.report.html next to the folder; for an "
                   "hf: release, in the current folder).")
def report(release, out):
    """Write a release's report page: one offline HTML file with its funnel, rejects, QE and
    language-ID scores, coverage, lengths, origins and sample rows (a folder or hf:OWNER/NAME@REV)."""
    from refuseu.release.report import report_release

    if out is not None:
        from refuseu.commands import check_output_file

        check_output_file(out, stdout=False)
    click.echo(f"wrote {report_release(release, out)}")


@cli.command()
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), default=None,
              help="Recipe YAML (default: recipes/default.yaml).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default="DATASET_CARD.md", show_default=True,
              help="Where to write the card ('-' for stdout).")
@click.option("--build-dir", default=None, help="Cache folder for stage outputs (default: recipe build_dir).")
def card(recipe_path, out, build_dir):
    """Write the dataset card of a recipe's build (DATASET_CARD.md for the default recipe)."""
    from refuseu.build import render_recipe_card
    from refuseu.commands import check_output_file, output_sink

    check_output_file(out)
    _build_dir_flag(build_dir)
    text = render_recipe_card(recipe_path, build_dir=build_dir)
    with output_sink(out) as sink:
        sink.write(text)
    click.echo(f"wrote {out}", err=out == "-")


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
    from refuseu.commands.langid import langid_file

    stats = langid_file(file, out, engine=engine, langs=langs, threshold=threshold)
    click.echo(f"{stats['rows']} rows; with lang: {stats['checked']}, ok: {stats['ok']}", err=True)


@cli.command()
@click.argument("release", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(release, as_json):
    """Check a release by content: every file matches manifest.json (exit 0 valid, 1 damaged, 2 not a release)."""
    from refuseu.release.verify import require_release_folder, verify_release

    v = verify_release(release)
    if not v.ok:
        require_release_folder(release)  # not a release at all: exit 2, not "damaged"
    if as_json:
        click.echo(json.dumps(v.to_dict(), indent=2))
    elif v.ok:
        click.echo(f"{release}: valid ({len(v.files)} files and manifest.json match)")
    else:
        click.echo(f"{release}: damaged", err=True)
        for line in v.problems():
            click.echo(f"  {line}", err=True)
        click.echo("  fix: rebuild it with `refuseu build --repair` (same recipe and version), or remove the "
                   "folder and build again", err=True)
    if not v.ok:
        sys.exit(1)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
