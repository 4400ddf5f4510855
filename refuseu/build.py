"""``build``: run the pipeline for a recipe and write (or confirm) its release folder."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path


from refuseu import __version__, executors
from refuseu.config import Recipe, recipe_dump
from refuseu.errors import BuildError, ReleaseDamagedError, ReleaseExistsError
from refuseu.faults import checkpoint
from refuseu.languages import parse_langs
from refuseu.pipeline import Pipeline
from refuseu.pipeline.cache import pid_alive, remove_path
from refuseu.pipeline.lock import build_lock
from refuseu.pipeline.progress import Reporter
from refuseu.release.assemble import stream_release, write_parquet
from refuseu.release.card import render_card
from refuseu.release.figures import write_card_figures
from refuseu.release.inspect import language_counts, table_language_counts
from refuseu.release.manifest import package_versions, read_manifest, write_manifest
from refuseu.provenance import portable
from refuseu.release.splits import release_splits
from refuseu.release.verify import verify_release
from refuseu.signatures import signature_of
from refuseu.stages.base import Stage
from refuseu.stages.dedup import DedupStage
from refuseu.stages.lid import LidStage
from refuseu.stages.normalize import NormalizeStage
from refuseu.stages.qe import QeStage
from refuseu.stages.respond import RespondStage
from refuseu.stages.sources import SourcesStage
from refuseu.stages.split import SplitStage
from refuseu.stages.translate import TranslateStage

RELEASE_FORMAT = "2"  # bump when the release layout or card changes (2: figures/ shown by the card)


@dataclass
class BuildSummary:
    name: str
    version: str
    release_dir: str
    signature: str
    status: str                      # "built" | "up_to_date"
    languages: list[str]
    stages_run: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    rejected: int = 0
    seconds: float = 0.0
    by_language: dict = field(default_factory=dict)   # lang -> {"train", "test", "eval"} rows
    rejected_by: dict = field(default_factory=dict)   # stage -> reason -> rows (all languages)
    report: str | None = None                         # the build report page (report.html), outside the release

    def to_dict(self) -> dict:
        return dict(self.__dict__)



def reject_counts(funnel: dict) -> dict:
    """stage -> reason -> rejected rows over all languages, from a manifest funnel."""
    out: dict = {}
    for stage, per_lang in (funnel or {}).items():
        for counts in per_lang.values():
            for reason, n in counts.get("reasons", {}).items():
                if n:
                    out.setdefault(stage, {})[reason] = out.get(stage, {}).get(reason, 0) + n
    return {stage: dict(sorted(r.items())) for stage, r in out.items()}


def make_stages(recipe: Recipe, languages: list[str]) -> list[Stage]:
    translate = TranslateStage(recipe.translate, languages=languages, cache_dir=recipe.build_dir)
    return [
        SourcesStage(recipe.sources),
        NormalizeStage(recipe.normalize),
        DedupStage(recipe.dedup, seed=recipe.seed, cache_dir=recipe.build_dir),
        SplitStage(recipe.split, seed=recipe.seed,
                   pinned=release_splits(recipe.split.keep_test_from) if recipe.split.keep_test_from else None,
                   dedup=recipe.dedup),
        translate,
        QeStage(recipe.qe, languages=languages, cache_dir=recipe.build_dir, back_translator=translate.engine),
        LidStage(recipe.lid, languages=languages, fields=("prompt",), name="lid_prompt"),
        RespondStage(recipe.respond, languages=languages, cache_dir=recipe.build_dir, translator=translate.engine,
                     qe=recipe.qe, judge=recipe.judge, lid=recipe.lid),
        LidStage(recipe.lid, languages=languages, fields=("chosen", "rejected"), name="lid_response"),
    ]


def make_pipeline(recipe: Recipe, *, reporter: Reporter | None = None) -> Pipeline:
    languages = parse_langs(recipe.languages)
    return Pipeline(make_stages(recipe, languages), build_dir=recipe.build_dir, languages=languages,
                    reporter=reporter, chunk_rows=recipe.executor.chunk_rows)


def build_signature(recipe: Recipe, pipeline: Pipeline) -> str:
    rel = recipe.release.model_dump(mode="json")
    rel.pop("out")
    return signature_of({"pipeline": pipeline.signatures()[-1], "release": rel, "name": recipe.name,
                         "version": recipe.version, "format": RELEASE_FORMAT})


def portable_recipe(recipe: Recipe, sources: list[dict]) -> dict:
    """The recipe as published in the manifest: sources by label and checksum, no build
    folder, no output folder, no local paths."""
    data = recipe_dump(recipe)
    data.pop("build_dir", None)
    data.get("release", {}).pop("out", None)
    data["sources"] = sources
    return portable(data)


def build(recipe: Recipe, *, reporter: Reporter | None = None, repair: bool = False,
          lock_timeout: float | None = None) -> BuildSummary:
    """Build ``recipe`` into ``<release.out>/<name>-v<version>/``.

    One build at a time holds the build folder (a second one waits up to ``lock_timeout``
    seconds, then fails naming the holder). An existing release is verified by content:
    the same build signature and intact files mean up to date; damaged files are an error
    unless ``repair`` (then the release is rewritten from the cache when its manifest was
    made by this very build). Raises :class:`ReleaseExistsError` when that version exists
    with other content.
    """
    reporter = reporter or Reporter(quiet=True)
    with build_lock(recipe.build_dir, timeout=lock_timeout, reporter=reporter), executors.use(recipe.executor):
        return _build(recipe, reporter=reporter, repair=repair)


def _build(recipe: Recipe, *, reporter: Reporter, repair: bool) -> BuildSummary:
    t0 = time.perf_counter()
    pipeline = make_pipeline(recipe, reporter=reporter)
    languages = pipeline.languages
    pipeline.preflight()
    signature = build_signature(recipe, pipeline)
    out = Path(recipe.release.out)
    release_dir = out / recipe.release_name
    removed = remove_leftovers(out, Path(recipe.build_dir))
    if removed:
        reporter.info(f"removed {removed} leftover folder{'s' if removed > 1 else ''} of interrupted builds")
    summary = BuildSummary(name=recipe.name, version=recipe.version, release_dir=str(release_dir),
                           signature=signature, status="up_to_date", languages=languages)
    damaged = False
    previous = _previous(recipe)
    if release_dir.exists() or release_dir.is_symlink():
        check = verify_release(release_dir)
        found_sig = (check.manifest or {}).get("build_signature")
        if check.ok and found_sig == signature:
            summary.counts = check.manifest.get("counts", {})
            summary.rejected = check.manifest.get("rejected_rows", 0)
            summary.rejected_by = reject_counts(check.manifest.get("funnel", {}))
            summary.by_language = language_counts(release_dir, languages)
            summary.report = _write_report(recipe, release_dir, reporter=reporter, rewrite=False)
            summary.seconds = time.perf_counter() - t0
            reporter.info(f"release {release_dir} is up to date (build signature {signature})")
            return summary
        if not check.ok:
            problems = check.problems()
            shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
            if not repair:
                raise ReleaseDamagedError(
                    f"release {release_dir} is damaged: {shown}",
                    hint="run the same build with --repair to rewrite it from the cache (same recipe and "
                         "version), or remove the folder and build again")
            if found_sig != signature:
                why = ("its manifest is unreadable, so what it held cannot be told" if found_sig is None
                       else f"it was made by another build (signature {found_sig}, this build {signature})")
                raise ReleaseDamagedError(
                    f"release {release_dir} is damaged ({shown}) and cannot be repaired: {why}",
                    hint="remove the folder and build again, or build another version (--version / --bump)")
            damaged = True
            # The repaired release must be the release that was made: same manifest too.
            previous = check.manifest.get("previous")
            reporter.warn(f"release {release_dir} is damaged ({shown}): rewriting it from this build")

    result = pipeline.run()
    summary.stages_run = result.stages_run
    hint = executors.idle_gpus_hint()
    if hint:
        reporter.info(hint)
    if result.height == 0:
        reasons = [(f"{stage}/{reason}", n) for stage, per in reject_counts(result.funnel).items()
                   for reason, n in per.items()]
        why = ", ".join(f"{k}: {n}" for k, n in sorted(reasons, key=lambda kv: -kv[1])[:6]) or "no input rows"
        raise BuildError(f"no row survived the pipeline, so there is nothing to release (rejected: {why})",
                         hint="check the sources and the recipe limits named above (e.g. normalize.min_chars)")
    # Staged inside the output folder (same filesystem) and renamed into place: the release
    # exists whole or not at all, and its manifest is written last.
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{recipe.release_name}.staging-{host_tag()}-{os.getpid()}"
    remove_path(staging)
    staging.mkdir()
    sources = pipeline.stages[0].signature_parts()["sources"]
    try:
        # Data files from the pipeline's output chunk by chunk; the card, its figures and the
        # counts use summaries of each table gathered on the way (counts, lengths, text hashes).
        written, tables = stream_release(result.chunks, languages, staging, recipe.release.shard_rows,
                                         on_file=lambda rel: checkpoint("release:data"), fmt=recipe.release.format)
        rejects = result.rejects.sort("stage", "lang", "prompt_id", "reason", "detail", nulls_last=True)
        write_parquet(rejects, staging / "rejects.parquet")
        figures = write_card_figures(staging, tables=tables, languages=languages, funnel=result.funnel)
        (staging / "README.md").write_text(
            render_card(name=recipe.name, version=recipe.version, signature=signature, languages=languages,
                        tables=tables, written=written, funnel=result.funnel,
                        engines=_engine_summary(recipe, sources), license=recipe.release.license,
                        gated=recipe.release.gated, stats=result.stats, sources=[s["label"] for s in sources],
                        fmt=recipe.release.format, figures=figures), encoding="utf-8")
        checkpoint("release:card")
        counts = {f"{c}/{s}": df.height for (c, s), df in tables.items()}
        if not any(n for k, n in counts.items() if not k.startswith("evaluation/")):
            reporter.warn("the release holds no DPO pairs, only evaluation prompts: harmful prompts become pairs, "
                          "benign ones only with an answer (respond.helpful_generator or "
                          "respond.reference_answers)")
        summary.counts, summary.rejected = counts, rejects.height
        summary.rejected_by = reject_counts(result.funnel)
        summary.by_language = table_language_counts(tables, languages)
        del tables
        write_manifest(staging, {
            "name": recipe.name, "version": recipe.version, "build_signature": signature,
            "format": RELEASE_FORMAT, "previous": previous, "languages": languages,
            "refuseu": __version__,
            "packages": package_versions(), "recipe": portable_recipe(recipe, sources), "sources": sources,
            "stage_signatures": {r.name: r.signature for r in result.records},
            "funnel": result.funnel, "stage_stats": result.stats, "counts": counts,
            "rejected_rows": rejects.height,
        })
        checkpoint("release:manifest")
        summary.status = _publish(staging, release_dir, replace_damaged=damaged)
    finally:
        remove_path(staging)
    if summary.status == "up_to_date":
        reporter.info(f"release {release_dir} already holds these rows; left as it is")
    summary.report = _write_report(recipe, release_dir, reporter=reporter, rewrite=True)
    summary.seconds = time.perf_counter() - t0
    return summary


def report_path(recipe: Recipe) -> Path:
    """Where a build writes the report page of its release: in the build folder, not in the
    release (it is a view of the release, not part of it)."""
    return Path(recipe.build_dir) / "reports" / f"{recipe.release_name}.report.html"


def _write_report(recipe: Recipe, release_dir: Path, *, reporter: Reporter, rewrite: bool) -> str | None:
    """Write the report page (``rewrite`` False: only when there is none yet). The release is
    already in place, so a page that cannot be made is a warning, not a failed build."""
    from refuseu.release.report import write_report

    path = report_path(recipe)
    if path.exists() and not rewrite:
        return str(path)
    try:
        write_report(release_dir, path, verified=True)
    except Exception as e:  # noqa: BLE001 - the build itself succeeded
        reporter.warn(f"report page not written: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return None
    reporter.info(f"report: {path}")
    return str(path)


def _semver(v: str) -> tuple[int, int, int]:
    a, b, c = (int(x) for x in v.split("."))
    return a, b, c


def existing_versions(out: str | Path, name: str) -> list[str]:
    """Versions of ``name`` already released in ``out`` (folders with a manifest), ascending."""
    found = []
    for d in Path(out).glob(f"{name}-v*"):
        v = d.name[len(name) + 2:]
        if (d / "manifest.json").exists() and v.count(".") == 2 and all(x.isdigit() for x in v.split(".")):
            found.append(v)
    return sorted(found, key=_semver)


def bump_version(version: str, part: str) -> str:
    a, b, c = _semver(version)
    return {"major": f"{a + 1}.0.0", "minor": f"{a}.{b + 1}.0", "patch": f"{a}.{b}.{c + 1}"}[part]


def next_version(recipe: Recipe, part: str) -> str:
    """``part`` bumped from the highest of the recipe's version and the versions already released."""
    versions = existing_versions(recipe.release.out, recipe.name) + [recipe.version]
    return bump_version(max(versions, key=_semver), part)


def bumped(recipe: Recipe, part: str) -> Recipe:
    """The recipe released as its next ``part`` version. Unless the recipe names a release to
    keep the split of, the highest version already in ``release.out`` is that release: its
    test prompts stay test and its train prompts stay train."""
    update: dict = {"version": next_version(recipe, part)}
    released = existing_versions(recipe.release.out, recipe.name)
    if recipe.split.keep_test_from is None and released:
        keep = str(Path(recipe.release.out) / f"{recipe.name}-v{released[-1]}")
        update["split"] = recipe.split.model_copy(update={"keep_test_from": keep})
    return recipe.model_copy(update=update)


def _previous(recipe: Recipe) -> dict | None:
    older = [v for v in existing_versions(recipe.release.out, recipe.name) if _semver(v) < _semver(recipe.version)]
    if not older:
        return None
    try:
        sig = read_manifest(Path(recipe.release.out) / f"{recipe.name}-v{older[-1]}").get("build_signature")
    except (OSError, ValueError, AttributeError):
        sig = None
    return {"version": older[-1], "build_signature": sig}


def _engine_summary(recipe: Recipe, sources: list[dict]) -> dict:
    tr, p = recipe.translate, portable
    return {
        "sources": ", ".join(s["label"] for s in sources),
        "dedup": f"exact + MinHash LSH (rensa, {recipe.dedup.num_perm} perms, threshold {recipe.dedup.threshold}, "
                 f"{recipe.dedup.shingle_words}-word shingles, near-duplicates: {recipe.dedup.near_action})",
        "split": f"by group, stratified by kind/category (spread over attack styles where rows have one), test_size "
                 f"{recipe.split.test_size}, seed {recipe.seed}"
                 + (f"; test and train prompts of {p(recipe.split.keep_test_from)} kept"
                    if recipe.split.keep_test_from else ""),
        "translate": "translation memory (" + ", ".join(p(list(tr.memory))) + ")"
                     + (f" then {tr.engine}" if tr.engine else ""),
        "qe": (f"cheap checks + {recipe.qe.scorer}" + (f" ({recipe.qe.mode}, {p(recipe.qe.default_model())})"
               if recipe.qe.scorer == "comet" else "") + f" on origins {recipe.qe.apply_to}"),
        "lid": f"{recipe.lid.engine} (fastText {p(recipe.lid.fasttext_model)} + lingua), threshold {recipe.lid.threshold}",
        "respond": f"native refusal templates ({p(recipe.respond.templates)}), compliance openers",
    }


def _publish(staging: Path, release_dir: Path, *, replace_damaged: bool = False) -> str:
    """Rename the staged release into place: "built", "repaired", or "up_to_date" when an
    intact release with the same data is already there."""
    if replace_damaged:
        aside = release_dir.parent / f".{release_dir.name}.damaged-{host_tag()}-{os.getpid()}"
        os.rename(release_dir, aside)
        checkpoint("release:aside")
        os.rename(staging, release_dir)
        remove_path(aside)
        return "repaired"
    checkpoint("release:rename")
    try:
        os.rename(staging, release_dir)  # fails when the folder exists and is not empty
        checkpoint("release:renamed")
        return "built"
    except OSError:
        if not (release_dir.exists() or release_dir.is_symlink()):
            raise
    check = verify_release(release_dir)
    if not check.ok:
        raise ReleaseDamagedError(f"release {release_dir} appeared during this build and is damaged: "
                                  + "; ".join(check.problems()[:6]),
                                  hint="remove the folder and build again")
    new = read_manifest(staging)["files"]  # hashed when the staged manifest was written
    data_new = {k: v for k, v in new.items() if k.startswith("data/")}
    data_old = {k: v for k, v in check.files.items() if k.startswith("data/")}
    if data_new == data_old:
        # Same rows, other provenance (e.g. a changed but equivalent recipe): keep the original.
        return "up_to_date"
    raise ReleaseExistsError(
        f"release {release_dir} already exists with other content; a published version is never "
        "overwritten",
        hint="bump the version (recipe 'version:' or --version X.Y.Z), or build into another --out")


LEFTOVER = re.compile(r"^\..+\.(staging|damaged)-(?P<host>[^.]+)-(?P<pid>\d+)$")
OLD_STAGING = re.compile(r"^.+-v\d+\.\d+\.\d+\.(?P<pid>\d+)$")  # <build_dir>/staging/<release>.<pid>
#: A leftover of a build on another machine (shared folder) is removed only after this long.
FOREIGN_LEFTOVER_SECONDS = 24 * 3600


def host_tag() -> str:
    """This machine's name as it appears in staging folder names (no dots or slashes)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"


def _gone(host: str, pid: int, path: Path) -> bool:
    if host != host_tag():  # another machine: its processes cannot be seen from here
        try:
            return time.time() - path.stat().st_mtime > FOREIGN_LEFTOVER_SECONDS
        except OSError:
            return False
    return pid != os.getpid() and not pid_alive(pid)


def remove_leftovers(out: Path, build_dir: Path) -> int:
    """Remove staging and set-aside folders in ``out`` whose build process is gone, and the
    staging folders older versions kept in the build folder; returns how many. Only folders
    with refuseu's own names are touched."""
    n = 0
    if out.is_dir():
        for p in out.iterdir():
            m = LEFTOVER.match(p.name)
            if m and _gone(m.group("host"), int(m.group("pid")), p):
                remove_path(p)
                n += 1
    old = build_dir / "staging"
    if old.is_dir() and not old.is_symlink():
        for p in old.iterdir():
            m = OLD_STAGING.match(p.name)
            if m and p.is_dir() and not pid_alive(int(m.group("pid"))):
                remove_path(p)
                n += 1
        try:
            old.rmdir()  # only when nothing else is in it
        except OSError:
            pass
    return n


def render_recipe_card(recipe_path: str | None = None, *, build_dir: str | None = None) -> str:
    """The dataset card of a recipe's release, built (or reused) in a private folder of the
    build directory, so the repository's DATASET_CARD.md can be regenerated and checked."""
    from refuseu.config import load_recipe

    overrides = {"build_dir": build_dir} if build_dir else {}
    recipe = load_recipe(recipe_path, overrides=overrides)
    recipe = recipe.model_copy(update={"release": recipe.release.model_copy(
        update={"out": str(Path(recipe.build_dir) / "card-releases")})})
    # A private scratch release, rebuilt each time (stage caches keep it fast).
    shutil.rmtree(Path(recipe.release.out), ignore_errors=True)
    summary = build(recipe)
    return (Path(summary.release_dir) / "README.md").read_text(encoding="utf-8")
