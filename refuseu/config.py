"""The build recipe: typed, validated once. Defaults < recipe YAML < command-line flags.

Every section forbids unknown keys, so a typo fails with the key and the allowed keys.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from refuseu.errors import InputError, RecipeError
from refuseu.provenance import absolute_if_local
from refuseu.resources import recipes_dir

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
#: A release name (it names folders and files).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def _local(value, *, keep: tuple[str, ...] = ()):
    """Local paths in ``value`` (a string, list or dict of strings) spelled one way; the
    names in ``keep`` (built-in sentinels such as ``seed``) are never taken as paths."""
    if isinstance(value, list):
        return [_local(v, keep=keep) for v in value]
    if isinstance(value, dict):
        return {k: _local(v, keep=keep) for k, v in value.items()}
    if isinstance(value, str) and value not in keep:
        return absolute_if_local(value)
    return value


SEED_MAX = 2**32 - 1  # the widest seed every consumer takes (MinHash, numpy, torch, vLLM)


def _seed_range(v: int) -> int:
    if not 0 <= v <= SEED_MAX:
        raise ValueError(f"a seed is a whole number from 0 to {SEED_MAX} (2**32-1)")
    return v


def _test_size_rule(v):
    if isinstance(v, (int, float)) and (not v >= 0 or (isinstance(v, float) and v >= 1)):  # NaN fails >= 0
        raise ValueError("test_size must be an int >= 0 or a float in [0, 1)")
    return v


def _between(lo: float, hi: float, *, lo_open: bool = False) -> BeforeValidator:
    """A number from ``lo`` to ``hi`` (NaN refused), said in the error."""
    def check(v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not ((lo < v if lo_open else lo <= v) and v <= hi):
                raise ValueError(f"allowed: a number {'above' if lo_open else 'from'} {lo} "
                                 f"{'and at most' if lo_open else 'to'} {hi}")
        return v
    return BeforeValidator(check)


def _numeric(annotation) -> bool:
    """Whether a field's type holds numbers (int or float, possibly optional or in a dict)."""
    if annotation in (int, float):
        return True
    return any(_numeric(a) for a in getattr(annotation, "__args__", ()) or ())


def _known_keys(v: dict, allowed, what: str) -> dict:
    unknown = [k for k in v if k not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} '{unknown[0]}'; allowed: {', '.join(sorted(allowed))}")
    return v


def _language_keys(v: dict) -> dict:
    from refuseu.languages import LANGUAGES
    return _known_keys(v, LANGUAGES, "language code")


Seed = Annotated[int, AfterValidator(_seed_range)]
TestSize = Annotated[Union[int, float], BeforeValidator(_test_size_rule)]
Share = Annotated[float, _between(0, 1)]


class Section(BaseModel):
    # NaN and infinity are refused in every number: a NaN threshold or share compares false
    # with everything and would silently keep or drop every row.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, v, info: ValidationInfo):
        # YAML's true/false would pass as 1/0 where a number is meant.
        field = cls.model_fields.get(info.field_name)
        if field is not None and _numeric(field.annotation):
            for key, x in (v.items() if isinstance(v, dict) else ((None, v),)):
                if isinstance(x, bool):
                    raise ValueError(("" if key is None else f"'{key}': ")
                                     + "true/false is not a number here; give a number")
        return v


class SourceConfig(Section):
    """One input: ``seed``, a local file (JSONL/CSV/Parquet) or ``hf:owner/name[:config][@rev]``."""

    spec: str = Field(description="seed | path to .jsonl/.csv/.parquet | hf:owner/name[:config][@revision]")
    columns: dict[str, str] = Field(default_factory=dict,
                                    description="map of refuseu field -> column name in the source")
    kind: Literal["harmful", "benign"] | None = Field(
        None, description="kind for every row when the source has no kind column")
    category: str | None = Field(None, description="category for rows without one, and for labels that map to "
                                                   "no category (default: uncategorized / an error)")
    category_map: dict[str, str] = Field(default_factory=dict,
                                         description="label -> category id; adds to or overrides the built-in "
                                                     "alias tables (schemas/aliases/)")
    preset: str | None = Field(None, description="a public dataset's column names and label table "
                                                 "(schemas/presets.yaml): beavertails, harmbench, sorry-bench, ...")
    attack_style: str | None = Field(None, description="attack style for every row when the source has none")
    split: str = Field("train", description="split of a Hugging Face dataset to read")

    @field_validator("spec")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty source; allowed: 'seed', a .jsonl, .csv or .parquet file, "
                             "or hf:owner/name[:config][@revision]")
        return v


class NormalizeConfig(Section):
    unicode_form: Literal["NFC", "NFKC"] = "NFC"
    min_chars: int = Field(3, ge=1, description="shorter prompts are rejected (reason too_short)")
    max_chars: int = Field(4000, ge=1, description="longer prompts are rejected (reason too_long)")

    @model_validator(mode="after")
    def _min_not_above_max(self):
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) is greater than max_chars ({self.max_chars}); "
                             "allowed: min_chars <= max_chars")
        return self


class SemanticDedupConfig(Section):
    model: str = Field(description="sentence-transformers model: Hub id (in the local Hugging Face cache) or folder")
    revision: str | None = Field(None, description="Hub revision of the model")
    threshold: float = Field(0.9, gt=0, le=1, description="cosine similarity of embeddings at or above which "
                                                          "two prompts of one (kind, category) are grouped")
    batch_size: int = Field(64, ge=1, le=4096)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("model")
    @classmethod
    def _one_spelling(cls, v):
        return _local(v)


class DedupConfig(Section):
    near: bool = Field(True, description="detect near-duplicates with MinHash/LSH")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity of word shingles (MinHash "
                                                          "candidates, confirmed on the exact value)")
    num_perm: int = Field(128, ge=16, le=512)
    shingle_words: int = Field(3, ge=1, le=8)
    near_action: Literal["group", "reject"] = Field(
        "group", description="group: keep near-duplicates, tied by group_id (split together); "
                             "reject: drop them like exact duplicates")
    semantic: SemanticDedupConfig | None = Field(
        None, description="also group paraphrases by sentence embeddings, after the MinHash pass (off by default)")


class SplitConfig(Section):
    test_size: TestSize = Field(
        0.25, description="per (kind, category): share of groups in test (float < 1) or a number of groups (int)")
    per_category: dict[str, TestSize] = Field(default_factory=dict,
                                              description="overrides of test_size by category (same rule)")
    keep_test_from: str | None = Field(
        None, description="a previous release (folder or hf:owner/name@rev) whose test prompts stay test and train "
                          "prompts stay train (with their near-duplicates); new prompts are split afresh")

    @field_validator("per_category")
    @classmethod
    def _known_categories(cls, v):
        from refuseu.taxonomy import UNCATEGORIZED, load_taxonomy
        return _known_keys(v, (*load_taxonomy().categories, UNCATEGORIZED), "category")


class TranslateConfig(Section):
    engine: str | None = Field(None, description="MT engine after translation memory: hf | ctranslate2 | "
                                                 "deep-translator (none: memory only)")
    model: str | None = Field(None, description="model id or local path (hf/ctranslate2; default NLLB-200 "
                                                "distilled 600M; 'marian' picks opus-mt per language); "
                                                "provider name for deep-translator")
    models: dict[str, str] = Field(default_factory=dict, description="per-language model overrides")
    revision: str | None = Field(None, description="Hub revision of the model")
    memory: list[str] = Field(default_factory=lambda: ["seed"],
                              description="translation memories: 'seed' (shipped) or folders/files")
    on_missing: Literal["error", "reject"] = Field(
        "error", description="a row no engine can translate: stop the build, or reject it (untranslated)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bf16 on GPUs that support it (else fp16), fp32 on CPU")
    batch_tokens: int | None = Field(None, ge=16, description="token budget per batch (padded source tokens); "
                                                              "default 4096 on CPU, 32768 on GPU")
    max_batch_size: int | None = Field(None, ge=1, description="sentences per batch; default 256 on CPU, "
                                                               "1024 on GPU")
    beam_size: int = Field(1, ge=1)
    max_length_ratio: float = Field(2.0, gt=0, description="max new tokens = ratio * source tokens + offset")
    max_length_offset: int = Field(10, ge=0)
    max_new_tokens: int | None = Field(None, ge=1, description="fixed max new tokens (overrides the ratio)")
    min_new_tokens: int | None = Field(None, ge=0, description="fixed min new tokens (benchmarks)")
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: Seed = 0
    max_source_tokens: int = Field(200, ge=8, description="longer inputs are split into sentences first")
    ct2_quantization: Literal["int8", "int8_float16", "int8_bfloat16", "float16", "bfloat16", "float32"] = "int8"
    ct2_cache: str | None = Field(None, description="folder for converted CTranslate2 models "
                                                   "(default ~/.cache/refuseu/ct2)")
    ct2_batch_tokens: int = Field(1024, ge=16, description="token budget per CTranslate2 batch")
    ct2_inter_threads: int | None = Field(None, ge=1, description="batches run in parallel (default: cores)")
    ct2_intra_threads: int | None = Field(None, ge=0, description="threads per batch (default 1 on CPU)")
    provider: str | None = Field(None, description="deep-translator provider: google | deepl | microsoft | "
                                                   "libre | mymemory")
    provider_url: str | None = Field(None, description="base URL for self-hosted LibreTranslate")
    timeout: float = Field(20.0, gt=0, description="seconds per web request")
    retries: int = Field(3, ge=0)
    requests_per_second: float = Field(2.0, gt=0)

    @field_validator("model", "models", "memory", "ct2_cache")
    @classmethod
    def _one_spelling(cls, v):
        # A local folder given as mt, ./mt or /home/me/mt is one model: one signature.
        return _local(v, keep=("seed",))

    _languages = field_validator("models")(_language_keys)


class QeConfig(Section):
    scorer: Literal["comet", "chrf-roundtrip", "none"] = Field(
        "comet", description="comet: COMET model (QE or round-trip); chrf-roundtrip: sacrebleu chrF of the "
                             "back-translation against the English source; none: cheap checks only")
    mode: Literal["qe", "roundtrip"] = Field("qe", description="comet: reference-free QE of (source, translation), "
                                                              "or round-trip with a reference-based model")
    model: str | None = Field(None, description="COMET model: Hub id, a folder with checkpoints/model.ckpt, or a "
                                                ".ckpt path (default: Unbabel/wmt20-comet-qe-da for qe, "
                                                "Unbabel/wmt22-comet-da for roundtrip)")
    batch_size: int = Field(32, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    apply_to: list[Literal["mt", "tm", "source"]] = Field(default_factory=lambda: ["mt"],
                                                         description="origins to check and score")
    threshold: float | None = Field(None, description="absolute minimum score (any language)")
    thresholds: dict[str, float] = Field(default_factory=dict, description="per-language absolute minimums")
    percentile: float | None = Field(None, gt=0, le=100, description="keep the best P%% of each language")
    percentiles: dict[str, Annotated[float, _between(0, 100, lo_open=True)]] = Field(
        default_factory=dict, description="per-language percentile overrides")
    min_length_ratio: float = Field(0.3, gt=0, description="translation/source character ratio below: rejected")
    max_length_ratio: float = Field(3.0, gt=0, description="translation/source character ratio above: rejected")
    max_repeat: int = Field(4, ge=2, description="a token repeated this many times in a row: degenerate output")

    @field_validator("model")
    @classmethod
    def _one_spelling(cls, v):
        return _local(v)

    _languages = field_validator("thresholds", "percentiles")(_language_keys)

    def default_model(self) -> str:
        return self.model or ("Unbabel/wmt20-comet-qe-da" if self.mode == "qe" else "Unbabel/wmt22-comet-da")

    def threshold_for(self, lang: str) -> float | None:
        return self.thresholds.get(lang, self.threshold)

    def percentile_for(self, lang: str) -> float | None:
        return self.percentiles.get(lang, self.percentile)


class LidConfig(Section):
    enabled: bool = Field(True, description="check the language of every non-English text")
    engine: Literal["combined", "fasttext", "lingua"] = Field(
        "combined", description="combined: fastText lite, lingua where fastText confuses close languages")
    fasttext_model: str = Field("lite", description="lite (bundled lid.176.ftz), a local path or a Hub repo id")
    threshold: float = Field(0.5, ge=0, le=1, description="minimum confidence of the predicted language")
    thresholds: dict[str, Share] = Field(default_factory=dict, description="per-language overrides (0..1)")

    @field_validator("fasttext_model")
    @classmethod
    def _one_spelling(cls, v):
        return _local(v, keep=("lite",))

    _languages = field_validator("thresholds")(_language_keys)

    def threshold_for(self, lang: str) -> float:
        return self.thresholds.get(lang, self.threshold)


class RespondConfig(Section):
    templates: str = Field("builtin", description="builtin, or a folder of <lang>.yaml template files")
    generator: str | None = Field(None, description="model (Hub id or folder) for compliant answers to harmful "
                                                    "prompts (rejected); e.g. a safety-abliterated model")
    helpful_generator: str | None = Field(None, description="model for helpful answers to benign prompts (chosen); "
                                                            "benign prompts become pairs only with one")
    refusal_generator: str | None = Field(
        None, description="aligned chat model (Hub id or folder) that writes `chosen` per harmful prompt in the "
                          "row's language; an answer that is not a refusal, not in the language, empty or "
                          "degenerate falls back to a template (recorded in chosen_fallback)")
    refusal_system_prompt: str = Field(
        "You are a careful, kind assistant. Answer in {language}. The request is harmful: decline it in two to "
        "four sentences, give a short reason, and offer a safe alternative or help where it fits. Do not include "
        "any of the requested content.", description="system prompt for the refusal generator")
    reference_answers: str = Field(
        "builtin", description="builtin (reference helpful answers to the seed's benign prompts), none, or a "
                               "folder of <lang>.jsonl files ({source, answer}); benign prompts with an answer "
                               "become pairs (chosen = the answer, rejected = an over-refusal)")
    engine: Literal["hf", "vllm"] = "hf"
    revision: str | None = None
    mode: Literal["native", "translate"] = Field(
        "native", description="native: prompt the model in the row's language; translate: answer the English "
                              "prompt once, then translate the answer with the MT chain")
    modes: dict[str, Literal["native", "translate"]] = Field(default_factory=dict,
                                                            description="per-language mode overrides")
    system_prompt: str = Field("Answer in {language}.",
                               description="system prompt for native mode; {language} is the language's name")
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    do_sample: bool = True
    seed: Seed = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_tokens: int | None = Field(None, ge=16, description="prompt-token budget per batch (default 2048 CPU, "
                                                              "16384 GPU)")
    refusal_classifier: str | None = Field(None, description="optional classifier model (id or folder) for the "
                                                             "refusal detector")

    @field_validator("templates", "generator", "helpful_generator", "refusal_classifier", "refusal_generator",
                     "reference_answers")
    @classmethod
    def _one_spelling(cls, v):
        return _local(v, keep=("builtin", "none"))

    _languages = field_validator("modes")(_language_keys)

    def mode_for(self, lang: str) -> str:
        return "native" if lang == "en" else self.modes.get(lang, self.mode)


class JudgeConfig(Section):
    """The refusal judge: which answers are refusals (respond stage, ``refuseu validate``,
    ``refuseu judge``)."""

    engine: Literal["lexicon", "classifier", "llm"] = Field(
        "lexicon", description="lexicon: per-language refusal cues (fast); classifier: a sequence-classification "
                               "model; llm: a chat model judges (prompt, answer)")
    model: str | None = Field(None, description="Hub id or folder of the classifier or LLM judge (for lexicon: an "
                                                "optional classifier averaged with the cues)")
    revision: str | None = None
    mode: Literal["rubric", "llama_guard"] = Field(
        "rubric", description="llm only. rubric: a short rubric and a 'VERDICT: REFUSAL|COMPLIANCE' line; "
                              "llama_guard: the model's own template, 'safe' (refusal) or 'unsafe' (attack success)")
    threshold: float = Field(0.5, ge=0, le=1, description="score from which an answer is a refusal "
                                                         "(lexicon and classifier)")
    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(16, ge=1, description="llm only: tokens generated for the verdict")
    seed: Seed = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    @field_validator("model")
    @classmethod
    def _one_spelling(cls, v):
        return _local(v)

    @model_validator(mode="after")
    def _model_when_needed(self):
        if self.engine in ("classifier", "llm") and not self.model:
            raise ValueError(f"judge engine '{self.engine}' needs a model: give judge.model (a Hub id or a local "
                             "folder; --model for refuseu judge, --judge-model for refuseu validate), or use engine: lexicon")
        return self


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("empty path; give a folder")
    return v


class ReleaseConfig(Section):
    out: str = "releases"

    @field_validator("out")
    @classmethod
    def _home(cls, v):
        return os.path.expanduser(v)
    shard_rows: int = Field(100_000, ge=1, description="rows per Parquet file")
    license: str = "cc-by-nc-4.0"
    gated: bool = True
    format: Literal["standard", "conversational"] = Field(
        "standard", description="standard: prompt/chosen/rejected are strings; conversational: lists of "
                                "{role, content} messages (TRL's conversational preference format)")

    _out_not_blank = field_validator("out")(_not_blank)


class ExecutorConfig(Section):
    """Where the model stages compute the items missing from the item cache. Not part of any
    signature or manifest: the same recipe gives the same release on either executor."""

    kind: Literal["local", "ray"] = Field(
        "local", description="local: in this process; ray: an actor pool on a Ray cluster (refuseu[ray])")
    address: str | None = Field(None, description="ray only: the cluster to join (e.g. ray://head:10001 or "
                                                  "head:6379); default: RAY_ADDRESS, else a local Ray")
    concurrency: int | None = Field(None, ge=1, description="ray only: actors per model stage; default: one per "
                                                            "GPU of the cluster, else one per CPU")
    num_gpus: float | None = Field(None, ge=0, description="ray only: GPUs per actor; default 1 when the cluster "
                                                           "has GPUs, else 0 (a CPU pool)")
    num_cpus: float = Field(1, gt=0, description="ray only: CPUs per actor")
    max_restarts: int = Field(3, ge=-1, description="ray only: times Ray restarts an actor that died (-1: always)")
    max_task_retries: int = Field(3, ge=-1, description="ray only: times Ray retries a batch whose actor died "
                                                        "(-1: always)")
    chunk_rows: int = Field(50_000, ge=1, description="rows per chunk of the streaming stages and the release "
                                                       "writer: memory grows with it, the release does not")


class Recipe(Section):
    name: str = Field("refuseu-seed", pattern=NAME_PATTERN, max_length=100,
                      description="release name (at most 100 characters: it names folders); default: "
                                  "refuseu-seed when the sources include the seed, else the first source file's "
                                  "stem (or Hub dataset name)")

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data):
        # A name not given (or given as None) comes from the sources: only a build of the seed
        # takes the seed's name.
        if isinstance(data, dict) and data.get("name") is None:
            data = {**data, "name": default_release_name(data.get("sources"))}
        return data
    version: str = "0.1.0"
    seed: Seed = 13
    languages: list[str] = Field(default_factory=lambda: ["en"])
    sources: list[SourceConfig] = Field(default_factory=lambda: [SourceConfig(spec="seed")])
    build_dir: str = ".refuseu-build"
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    translate: TranslateConfig = Field(default_factory=TranslateConfig)
    qe: QeConfig = Field(default_factory=QeConfig)
    lid: LidConfig = Field(default_factory=LidConfig)
    respond: RespondConfig = Field(default_factory=RespondConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    release: ReleaseConfig = Field(default_factory=ReleaseConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, exclude=True,
                                     description="where model stages run (not in signatures or the manifest)")

    @field_validator("build_dir")
    @classmethod
    def _home(cls, v: str) -> str:
        return os.path.expanduser(v)

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not SEMVER.match(v):
            raise ValueError("not a semantic version; allowed: X.Y.Z (three numbers, e.g. 1.0.0)")
        return v

    _build_dir_not_blank = field_validator("build_dir")(_not_blank)

    @field_validator("languages", mode="before")
    @classmethod
    def _langs_string(cls, v):
        return v.split(",") if isinstance(v, str) else v

    @field_validator("languages")
    @classmethod
    def _known_langs(cls, v):
        from refuseu.languages import LangsError, parse_langs
        try:
            return parse_langs(v)
        except LangsError as e:  # -> a validation message naming the field
            raise ValueError(f"{e.reason} ({e.hint})") from None

    @field_validator("sources", mode="before")
    @classmethod
    def _source_strings(cls, v):
        if isinstance(v, (list, tuple)):
            return [{"spec": s} if isinstance(s, str) else s for s in v]
        return v

    @field_validator("sources")
    @classmethod
    def _some_source(cls, v):
        if not v:
            raise ValueError("no source given; allowed: a list of 'seed', .jsonl/.csv/.parquet files "
                             "or hf:owner/name[:config][@revision] (e.g. sources: [seed])")
        return v

    @property
    def release_name(self) -> str:
        return f"{self.name}-v{self.version}"


def default_release_name(sources) -> str:
    """``refuseu-seed`` when ``sources`` (raw recipe values) is missing or includes the seed;
    else the first source's file stem or Hub dataset name, sanitized to the allowed pattern."""
    specs = []
    for s in sources if isinstance(sources, (list, tuple)) else []:
        spec = s if isinstance(s, str) else s.get("spec") if isinstance(s, dict) else getattr(s, "spec", None)
        if isinstance(spec, str):
            specs.append(spec)
    if not specs or "seed" in specs:
        return "refuseu-seed"
    spec = specs[0]
    if spec.startswith("hf:"):
        stem = spec[3:].partition("@")[0].partition(":")[0].rsplit("/", 1)[-1]
    else:
        stem = Path(spec).stem
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).lstrip("_.-")[:100].rstrip(".-")
    return name or "refuseu-dataset"


def default_recipe_path() -> Path:
    return recipes_dir() / "default.yaml"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping gives the same key twice (YAML allows it and keeps the last; a recipe does not)."""

    def __init__(self, key, first_line: int, mark):
        self.key, self.first_line = key, first_line
        super().__init__(None, None, f"duplicate key '{key}' (first given on line {first_line})", mark)


class RecipeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in the same mapping."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *anchor' merges may be overridden by explicit keys
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base constructor reports it
                    continue
                if first is not None:
                    raise DuplicateKeyError(key, first, key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _flag_for(loc: str, flags: dict[str, str]) -> str | None:
    """The command-line flag whose override holds ``loc`` (the longest matching key)."""
    best = None
    for key in flags:
        if (loc == key or loc.startswith(key + ".")) and (best is None or len(key) > len(best)):
            best = key
    return flags[best] if best is not None else None


def _format_validation(err: ValidationError, model: type[BaseModel], file: str,
                       flags: dict[str, str] | None = None) -> InputError:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    value = first.get("input")
    msg = first["msg"].removeprefix("Value error, ")  # our validators say what is allowed
    flag = _flag_for(loc, flags or {})
    if flag is not None:
        return InputError(f"{flag} {value!r}: {msg}")
    if not isinstance(value, dict):  # a section's own check names its values
        msg = f"{msg} (got {value!r})"
    if first["type"] == "extra_forbidden":
        section: Any = model
        for part in first["loc"][:-1]:
            if isinstance(part, int):
                continue
            field = section.model_fields.get(part)
            ann = field.annotation if field else None
            args = getattr(ann, "__args__", None)
            section = args[0] if args else ann
        allowed = ", ".join(sorted(section.model_fields)) if hasattr(section, "model_fields") else "?"
        return RecipeError(f"unknown key '{loc}'", file=file, field=loc, hint=f"allowed keys here: {allowed}")
    return RecipeError(msg, file=file, field=loc)


def _given(overrides: dict, dotted: str) -> bool:
    node: Any = overrides
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def load_recipe(path: str | Path | None = None, *, overrides: dict | None = None,
                flags: dict[str, str] | None = None) -> Recipe:
    """Read a recipe YAML (the default recipe when ``path`` is None) and apply overrides.

    ``overrides`` is a nested dict of command-line values that win over the file.
    ``flags`` maps dotted override keys to the flags they came from (``{"version":
    "--version"}``): an invalid overridden value is then reported against its flag, not
    against the recipe file.
    """
    file = Path(path) if path is not None else default_recipe_path()
    data: dict = {}
    if path is not None or file.exists():
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RecipeError("recipe file not found", file=str(file)) from None
        except IsADirectoryError:
            raise RecipeError("is a folder, not a recipe file", file=str(file),
                              hint="give a recipe YAML file with --recipe") from None
        except PermissionError:
            raise RecipeError("cannot read the recipe file (permission denied)", file=str(file)) from None
        except UnicodeDecodeError as e:
            raise RecipeError(f"not UTF-8 text ({e.reason} at byte {e.start})", file=str(file)) from None
        try:
            data = yaml.load(text, Loader=RecipeLoader) or {}
        except DuplicateKeyError as e:
            raise RecipeError(e.problem, file=str(file), line=e.problem_mark.line + 1,
                              hint=f"give '{e.key}' once: remove the repeated key or merge the two") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise RecipeError(f"invalid YAML: {getattr(e, 'problem', e)}", file=str(file),
                              line=mark.line + 1 if mark else None) from None
        if not isinstance(data, dict):
            raise RecipeError("a recipe is a YAML mapping of keys to values", file=str(file))
    merged = _deep_merge(data, overrides or {})
    try:
        return Recipe.model_validate(merged)
    except ValidationError as e:
        given = {k: v for k, v in (flags or {}).items() if _given(overrides or {}, k)}
        raise _format_validation(e, Recipe, str(file), given) from None


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def recipe_dump(recipe: Recipe) -> dict:
    """The recipe as plain data (what goes into signatures and the manifest)."""
    return recipe.model_dump(mode="json")


def dump_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe_dump(recipe), sort_keys=False, allow_unicode=True)
