"""``build``: run the pipeline for a recipe and write (or confirm) its release folder."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path


from refuseu import __version__
from refuseu.config import Recipe, recipe_dump
from refuseu.errors import ReleaseExistsError
from refuseu.languages import parse_langs
from refuseu.pipeline import Pipeline, signature_of
from refuseu.pipeline.progress import Reporter
from refuseu.release.assemble import release_tables, write_parquet, write_tables
from refuseu.release.card import render_card
from refuseu.release.manifest import file_hashes, package_versions, read_manifest, write_manifest
from refuseu.stages.base import Stage
from refuseu.stages.dedup import DedupStage
from refuseu.stages.lid import LidStage
from refuseu.stages.normalize import NormalizeStage
from refuseu.stages.qe import QeStage
from refuseu.stages.respond import RespondStage
from refuseu.stages.sources import SourcesStage
from refuseu.stages.split import SplitStage
from refuseu.stages.translate import TranslateStage

RELEASE_FORMAT = "1"  # bump when the release layout or card changes


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

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def make_stages(recipe: Recipe, languages: list[str]) -> list[Stage]:
    translate = TranslateStage(recipe.translate, languages=languages, cache_dir=recipe.build_dir)
    return [
        SourcesStage(recipe.sources),
        NormalizeStage(recipe.normalize),
        DedupStage(recipe.dedup, seed=recipe.seed),
        SplitStage(recipe.split, seed=recipe.seed),
        translate,
        QeStage(recipe.qe, languages=languages, cache_dir=recipe.build_dir, back_translator=translate.engine),
        LidStage(recipe.lid, languages=languages, fields=("prompt",), name="lid_prompt"),
        RespondStage(recipe.respond, languages=languages, cache_dir=recipe.build_dir, translator=translate.engine,
                     qe=recipe.qe),
        LidStage(recipe.lid, languages=languages, fields=("chosen", "rejected"), name="lid_response"),
    ]


def make_pipeline(recipe: Recipe, *, reporter: Reporter | None = None) -> Pipeline:
    languages = parse_langs(recipe.languages)
    return Pipeline(make_stages(recipe, languages), build_dir=recipe.build_dir, languages=languages,
                    reporter=reporter)


def build_signature(recipe: Recipe, pipeline: Pipeline) -> str:
    rel = recipe.release.model_dump(mode="json")
    rel.pop("out")
    return signature_of({"pipeline": pipeline.signatures()[-1], "release": rel, "name": recipe.name,
                         "version": recipe.version, "format": RELEASE_FORMAT})


def _release_intact(release_dir: Path, signature: str) -> bool:
    try:
        manifest = read_manifest(release_dir)
    except (FileNotFoundError, ValueError):
        return False
    if manifest.get("build_signature") != signature:
        return False
    for rel, info in manifest.get("files", {}).items():
        p = release_dir / rel
        if not p.is_file() or p.stat().st_size != info["bytes"]:
            return False
    return True


def build(recipe: Recipe, *, reporter: Reporter | None = None) -> BuildSummary:
    """Build ``recipe`` into ``<release.out>/<name>-v<version>/``.

    Raises :class:`ReleaseExistsError` when that version exists with other content.
    """
    t0 = time.perf_counter()
    reporter = reporter or Reporter(quiet=True)
    pipeline = make_pipeline(recipe, reporter=reporter)
    languages = pipeline.languages
    pipeline.preflight()
    signature = build_signature(recipe, pipeline)
    release_dir = Path(recipe.release.out) / recipe.release_name
    summary = BuildSummary(name=recipe.name, version=recipe.version, release_dir=str(release_dir),
                           signature=signature, status="up_to_date", languages=languages)
    if _release_intact(release_dir, signature):
        manifest = read_manifest(release_dir)
        summary.counts = manifest.get("counts", {})
        summary.seconds = time.perf_counter() - t0
        reporter.info(f"release {release_dir} is up to date (build signature {signature})")
        return summary

    result = pipeline.run()
    summary.stages_run = result.stages_run
    tables = release_tables(result.table, languages)
    staging = Path(recipe.build_dir) / "staging" / f"{recipe.release_name}.{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        written = write_tables(tables, staging, recipe.release.shard_rows)
        rejects = result.rejects.sort("stage", "lang", "prompt_id", "reason", nulls_last=True)
        write_parquet(rejects, staging / "rejects.parquet")
        (staging / "README.md").write_text(
            render_card(name=recipe.name, version=recipe.version, signature=signature, languages=languages,
                        tables=tables, written=written, funnel=result.funnel,
                        engines=_engine_summary(recipe), license=recipe.release.license,
                        gated=recipe.release.gated, stats=result.stats), encoding="utf-8")
        counts = {f"{c}/{s}": df.height for (c, s), df in tables.items()}
        summary.counts, summary.rejected = counts, rejects.height
        write_manifest(staging, {
            "name": recipe.name, "version": recipe.version, "build_signature": signature,
            "format": RELEASE_FORMAT, "previous": _previous(recipe), "languages": languages,
            "refuseu": __version__,
            "packages": package_versions(), "recipe": recipe_dump(recipe),
            "stage_signatures": {r.name: r.signature for r in result.records},
            "funnel": result.funnel, "stage_stats": result.stats, "counts": counts,
            "rejected_rows": rejects.height,
        })
        summary.status = _publish(staging, release_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    if summary.status == "up_to_date":
        reporter.info(f"release {release_dir} already holds these rows; left as it is")
    summary.seconds = time.perf_counter() - t0
    return summary


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


def _previous(recipe: Recipe) -> dict | None:
    older = [v for v in existing_versions(recipe.release.out, recipe.name) if _semver(v) < _semver(recipe.version)]
    if not older:
        return None
    m = read_manifest(Path(recipe.release.out) / f"{recipe.name}-v{older[-1]}")
    return {"version": older[-1], "build_signature": m.get("build_signature")}


def _engine_summary(recipe: Recipe) -> dict:
    tr = recipe.translate
    return {
        "sources": ", ".join(s.spec for s in recipe.sources),
        "dedup": f"exact + MinHash LSH (rensa, {recipe.dedup.num_perm} perms, threshold {recipe.dedup.threshold}, "
                 f"{recipe.dedup.shingle_words}-word shingles, near-duplicates: {recipe.dedup.near_action})",
        "split": f"by group, stratified by kind/category, test_size {recipe.split.test_size}, seed {recipe.seed}",
        "translate": "translation memory (" + ", ".join(tr.memory) + ")" + (f" then {tr.engine}" if tr.engine else ""),
        "qe": (f"cheap checks + {recipe.qe.scorer}" + (f" ({recipe.qe.mode}, {recipe.qe.default_model()})"
               if recipe.qe.scorer == "comet" else "") + f" on origins {recipe.qe.apply_to}"),
        "lid": f"{recipe.lid.engine} (fastText {recipe.lid.fasttext_model} + lingua), threshold {recipe.lid.threshold}",
        "respond": f"native refusal templates ({recipe.respond.templates}), compliance openers",
    }


def _publish(staging: Path, release_dir: Path) -> str:
    """Move the staged release into place; "up_to_date" when the same data is already there."""
    if release_dir.exists():
        new, old = file_hashes(staging), _hashes_or_none(release_dir)
        data_new = {k: v for k, v in new.items() if k.startswith("data/")}
        data_old = {k: v for k, v in (old or {}).items() if k.startswith("data/")}
        if old is not None and data_new == data_old:
            # Same rows, other provenance (e.g. a changed but equivalent recipe): keep the original.
            return "up_to_date"
        raise ReleaseExistsError(
            f"release {release_dir} already exists with other content; a published version is never "
            "overwritten",
            hint="bump the version (recipe 'version:' or --version X.Y.Z), or build into another --out")
    release_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(staging, release_dir)
    except OSError:  # another filesystem
        shutil.copytree(staging, release_dir)
    return "built"


def _hashes_or_none(release_dir: Path):
    try:
        return {k: {"sha256": v["sha256"], "bytes": v["bytes"]} for k, v in read_manifest(release_dir)["files"].items()}
    except (FileNotFoundError, KeyError, ValueError):
        return None


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
