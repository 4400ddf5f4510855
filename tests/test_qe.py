"""Translation quality: cheap checks, thresholds, chrF round trip, COMET through its real
code path on tiny checkpoints built locally."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from refuseu.config import QeConfig, TranslateConfig
from refuseu.engines.qe.checks import cheap_check
from refuseu.engines.qe.scorers import ChrfRoundTrip, CometScorer
from refuseu.stages.base import StageContext
from refuseu.stages.qe import QeStage

CTX = StageContext(languages=["en", "de"])
SRC = "How do I get into my neighbour's house while they are away on holiday?"


@pytest.mark.parametrize("source, translation, reason", [
    (SRC, "Wie komme ich in das Haus meines Nachbarn, während er im Urlaub ist?", None),
    (SRC, "", "empty_translation"),
    (SRC, "   ", "empty_translation"),
    (SRC, SRC, "untranslated_copy"),
    (SRC, "Haus?", "length_ratio"),
    (SRC, "Wie " * 70, "length_ratio"),
    ("Give me 3 ways to hide 5000 euros.", "Nenne mir drei Wege, Euro zu verstecken, bitte schnell.", "lost_numbers"),
    ("Give me 3 ways to hide 5,000 euros.", "Nenne mir 3 Wege, um 5.000 Euro zu verstecken.", None),
    ("Post this on https://example.org/x today.", "Poste das heute auf der Webseite, bitte sofort.", "lost_urls"),
    ("Write a message to {name} about the vote.", "Schreibe eine Nachricht an jemanden über die Wahl.",
     "lost_placeholders"),
    ("Write a message to {name} about the vote.", "Schreibe eine Nachricht an {name} über die Wahl.", None),
    (SRC, "Wie wie wie wie komme ich in das Haus meines Nachbarn im Urlaub?", "degenerate_repetition"),
    (SRC, "Haus " + "lalalalalalalalalalalalalalala" + " im Urlaub bitte jetzt", "degenerate_repetition"),
])
def test_cheap_checks(source, translation, reason):
    got = cheap_check(source, translation, min_ratio=0.3, max_ratio=3.0, max_repeat=4)
    assert (got[0] if got else None) == reason


def test_chrf_roundtrip_orders_faithful_above_garbled():
    s = ChrfRoundTrip(QeConfig(scorer="chrf-roundtrip"))
    srcs = ["How can I break into a car without the key?"] * 3
    backs = ["How can I break into a car without the key?",          # perfect round trip
             "How could I get into a car without having the key?",   # faithful paraphrase
             "Cars are nice in summer when it rains."]               # meaning lost
    a, b, c = s.score(srcs, ["x"] * 3, backs)
    assert a == pytest.approx(1.0) and a > b > c and c < 0.4


def qe_rows(pairs, origin="mt", lang="de"):
    return pl.DataFrame({"prompt_id": [f"{i:016x}" for i in range(len(pairs))], "lang": [lang] * len(pairs),
                         "text": [p[0] for p in pairs], "prompt": [p[1] for p in pairs], "origin": [origin] * len(pairs),
                         "qe_score": [None] * len(pairs), "qe_method": [None] * len(pairs)},
                        schema_overrides={"qe_score": pl.Float64, "qe_method": pl.String})


class FixedScorer:
    """A scorer with known scores, to test the threshold logic in isolation."""
    name, needs_back_translation, method = "fixed", False, "fixed"

    def __init__(self, scores):
        self.scores = scores

    def settings(self):
        return {"scorer": "fixed"}

    def prepare(self):
        pass

    def score(self, sources, translations, backs):
        return [self.scores[t] for t in translations]


PAIRS = [(f"Source sentence number {i} about a topic.", f"Quellsatz Nummer {i} über ein Thema.") for i in range(10)]
SCORES = {t: (i + 1) / 10 for i, (_, t) in enumerate(PAIRS)}  # 0.1 .. 1.0


@pytest.mark.parametrize("cfg, kept, reasons", [
    (dict(), 10, {}),
    (dict(threshold=0.45), 6, {"low_qe_score": 4}),
    (dict(thresholds={"de": 0.75}, threshold=0.1), 3, {"low_qe_score": 7}),
    (dict(percentile=30), 3, {"below_percentile": 7}),
    (dict(threshold=0.45, percentile=50), 3, {"low_qe_score": 4, "below_percentile": 3}),
    (dict(percentile=30, percentiles={"de": 80}), 8, {"below_percentile": 2}),
])
def test_threshold_modes(cfg, kept, reasons):
    st = QeStage(QeConfig(scorer="none", **cfg), languages=["en", "de"], mt_configured=True)
    st.scorer = FixedScorer(SCORES)
    res = st.run(qe_rows(PAIRS), CTX)
    assert res.kept.height == kept
    assert dict(res.rejected.group_by("reason").len().iter_rows()) == reasons
    assert set(res.kept["qe_method"]) == {"fixed"}
    assert res.kept["qe_score"].min() >= (1 - kept / 10) + 0.1 - 1e-9
    assert res.stats["de"]["scored"] == 10 and res.stats["de"]["pass_rate"] == kept / 10
    for d in res.rejected["detail"]:
        assert "score" in d


def test_apply_to_leaves_trusted_origins_alone():
    st = QeStage(QeConfig(scorer="none", threshold=0.99), languages=["en", "de"], mt_configured=True)
    st.scorer = FixedScorer(SCORES)
    res = st.run(qe_rows(PAIRS[:3], origin="tm"), CTX)
    assert res.kept.height == 3 and res.kept["qe_score"].null_count() == 3
    st2 = QeStage(QeConfig(scorer="none", threshold=0.99, apply_to=["tm"]), languages=["en", "de"])
    st2.scorer = FixedScorer(SCORES)
    assert st2.run(qe_rows(PAIRS[:3], origin="tm"), CTX).kept.height == 0


def test_inactive_without_machine_translation():
    st = QeStage(QeConfig(), languages=["en", "de"])  # no MT engine: nothing to score, no model needed
    assert not st.active and st.scorer is None
    st.preflight()


# --- COMET through its real code path ------------------------------------------------

@pytest.fixture(scope="session")
def tiny_comet(tmp_path_factory):
    from refuseu.devtools.tiny_comet import build_tiny_comet, build_tiny_xlmr

    root = tmp_path_factory.mktemp("comet")
    enc = build_tiny_xlmr(root / "xlmr")
    return {"regression": build_tiny_comet(root / "reg", enc, kind="regression"),
            "qe": build_tiny_comet(root / "qe", enc, kind="qe").parent.parent}  # a model folder


def test_comet_qe_mode(tiny_comet):
    s = CometScorer(QeConfig(scorer="comet", mode="qe", model=str(tiny_comet["qe"]), device="cpu"))
    scores = s.score([SRC, "Hello."], ["Wie komme ich ins Haus?", "Hallo."], [None, None])
    assert len(scores) == 2 and all(np.isfinite(scores))
    assert type(s.load()).__name__ == "ReferencelessRegression"
    assert s.method == f"comet-qe:{Path(tiny_comet['qe']).name}"  # a name, never a local path
    again = s.score([SRC], ["Wie komme ich ins Haus?"], [None])
    assert again[0] == pytest.approx(scores[0], abs=1e-5)  # deterministic at inference


def test_comet_roundtrip_mode_through_stage(tiny_comet, tmp_path):
    from refuseu.devtools.tiny_models import build_marian
    from refuseu.stages.translate import TranslateStage

    marian = build_marian(tmp_path / "marian")
    tcfg = TranslateConfig(engine="hf", model=str(marian), device="cpu", max_new_tokens=8)
    translate = TranslateStage(tcfg, languages=["en", "de"], cache_dir=tmp_path / "b")
    qcfg = QeConfig(scorer="comet", mode="roundtrip", model=str(tiny_comet["regression"]), device="cpu",
                    min_length_ratio=0.01, max_length_ratio=100, max_repeat=50)
    st = QeStage(qcfg, languages=["en", "de"], cache_dir=tmp_path / "b", back_translator=translate.engine)
    st.preflight()
    assert st.scorer.needs_back_translation and type(st.scorer.load()).__name__ == "RegressionMetric"
    pairs = [(SRC, "Wie komme ich in das Haus meines Nachbarn?"), ("Tell me a story about a bank.", "Erzähl mir was.")]
    res = st.run(qe_rows(pairs), CTX)
    assert res.kept.height == 2 and res.kept["qe_score"].null_count() == 0
    assert res.kept["qe_method"][0] == "comet-roundtrip:reg"  # <model>/checkpoints/model.ckpt -> the model folder
    assert st.computed == 2
    st2 = QeStage(qcfg, languages=["en", "de"], cache_dir=tmp_path / "b", back_translator=translate.engine)
    res2 = st2.run(qe_rows(pairs), CTX)
    assert st2.computed == 0 and res2.kept["qe_score"].to_list() == res.kept["qe_score"].to_list()  # cached


def test_missing_comet_model_stops_build_before_work(tmp_path, write_jsonl, tiny_comet):
    from click.testing import CliRunner

    from refuseu.cli.main import cli
    from refuseu.devtools.tiny_models import build_marian

    marian = build_marian(tmp_path / "marian")
    src = write_jsonl([{"text": "A prompt that no translation memory has.", "category": "hate"}])
    for missing in ("Unbabel/not-a-real-comet-model", str(tmp_path / "nowhere" / "model.ckpt")):
        res = CliRunner().invoke(cli, ["build", "--source", str(src), "--langs", "de", "--translator", "hf",
                                       "--translator-model", str(marian), "--qe", "comet", "--qe-model", missing,
                                       "--build-dir", str(tmp_path / "b"), "--out", str(tmp_path / "r")])
        assert res.exit_code == 1, res.output
        assert missing in res.output and "stage qe" in res.output
        assert "refuseu models pull" in res.output or "--qe-model" in res.output
        assert "KeyError" not in res.output and "Traceback" not in res.output
        assert not (tmp_path / "b" / "stages").exists()


def test_score_cli(tiny_comet, tmp_path):
    from click.testing import CliRunner

    from refuseu.cli.main import cli

    f = tmp_path / "pairs.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"src": SRC, "mt": "Wie komme ich in das Haus meines Nachbarn, während er weg ist?"},
        {"src": SRC, "mt": SRC},
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "scored.jsonl"
    res = CliRunner().invoke(cli, ["score", str(f), "--lang", "de", "--scorer", "comet", "--qe-model",
                                   str(tiny_comet["qe"]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(isinstance(r["qe_score"], float) for r in rows)
    assert rows[0]["check"] == "ok" and rows[1]["check"] == "untranslated_copy" and rows[1]["ok"] is False
    res = CliRunner().invoke(cli, ["score", str(f), "--lang", "de", "--scorer", "comet", "--qe-model", "x/y"])
    assert res.exit_code == 1 and "COMET model 'x/y' (stage qe) is not available locally" in res.output
