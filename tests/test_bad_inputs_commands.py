"""Bad inputs to the one-file commands (judge, langid, score, translate, card, report,
validate) and to command-line options end in one line and exit 2 (1 for a model that is
not there), never in an internal error.

Every case runs the real command line from inside a temporary folder, with paths typed
relative to it, so the messages must name the paths and options as typed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click
import pytest
from click.testing import CliRunner

from refuseu.cli.main import cli
from test_bad_inputs import jsonl, not_writable, write  # (not_writable: simulated for root)

ANSWER = {"text": "I cannot help with that.", "lang": "en"}
PAIR = {"src": "Hello there, my friend.", "mt": "Hallo, mein Freund."}


def inputs(mp=None) -> None:
    write("answers.jsonl", jsonl(ANSWER))
    write("pairs.jsonl", jsonl(PAIR))
    write("afile", "keep me")


def invoke(args: list[str]):
    res = CliRunner().invoke(cli, args)
    assert isinstance(res.exception, (SystemExit, type(None))), repr(res.exception)  # nothing uncaught
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    return res


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    expect: tuple[str, ...]
    setup: Callable | None = None        # (monkeypatch) -> None, run inside the temporary folder
    forbid: tuple[str, ...] = ()


# The commands that write one file, with what each needs besides --out.
WRITERS = {
    "judge": ["judge", "answers.jsonl"],
    "langid": ["langid", "answers.jsonl"],
    "score": ["score", "pairs.jsonl", "--lang", "de", "--scorer", "none"],
    "translate": ["translate", "answers.jsonl", "--to", "de"],
    "card": ["card"],
    "report": ["report", "no-release-needed"],   # --out is checked before the release is read
}

CASES = [
    # 1. --out of the one-file commands: the folder it goes in must be usable
    *[Case(f"{name}-out-under-a-file", [*args, "--out", "afile/o.jsonl"], 2,
           ("--out 'afile/o.jsonl': its folder 'afile': exists and is a file, not a folder",
            "give --out a file in a writable folder"))
      for name, args in WRITERS.items()],
    *[Case(f"{name}-out-deep-under-a-file", [*args, "--out", "afile/sub/o.jsonl"], 2,
           ("--out 'afile/sub/o.jsonl'", "'afile' is a file, so the folder cannot be created there"))
      for name, args in WRITERS.items()],
    *[Case(f"{name}-out-not-writable", [*args, "--out", "locked/o.jsonl"], 2,
           ("--out 'locked/o.jsonl': its folder 'locked'", "not writable"),
           setup=lambda mp: not_writable("locked", mp))
      for name, args in WRITERS.items()],
    Case("report-out-dash-is-a-file-name", ["report", "x", "--out", "afile/-"], 2,
         ("--out 'afile/-'", "is a file"), forbid=("'-' for stdout",)),
    Case("validate-out-is-a-file", ["validate", "x", "--tiny", "--out", "afile"], 2,
         ("--out 'afile': exists and is a file, not a folder",)),
    Case("validate-out-not-writable", ["validate", "x", "--tiny", "--out", "locked/v"], 2,
         ("--out 'locked/v'", "parent folder 'locked' is not writable"),
         setup=lambda mp: not_writable("locked", mp)),
    # the item cache's --build-dir, as build checks it
    *[Case(f"{cid}-build-dir-is-a-file", [*args, "--build-dir", "afile"], 2,
           ("--build-dir 'afile': exists and is a file, not a folder",))
      for cid, args in (("card", ["card", "--out", "c.md"]),
                        ("translate", ["translate", "answers.jsonl", "--to", "de", "--translator", "hf"]),
                        ("judge", ["judge", "answers.jsonl", "--engine", "classifier", "--model", "m"]))],
    # 2. langid --threshold, as judge --threshold
    *[Case(f"langid-threshold-{v}", ["langid", "answers.jsonl", "--threshold", v], 2, (f"--threshold {shown}", why))
      for v, shown, why in (("5", "5.0", "less than or equal to 1"), ("-1", "-1.0", "greater than or equal to 0"),
                            ("nan", "nan", ""))],
    Case("judge-threshold-nan", ["judge", "answers.jsonl", "--threshold", "nan"], 2, ("--threshold nan",)),
    # 3. judge --lexicon
    Case("lexicon-missing-folder", ["judge", "answers.jsonl", "--lexicon", "nolex"], 2,
         ("nolex: no such folder of refusal lexicons", "--lexicon")),
    *[Case(f"lexicon-{cid}", ["judge", "answers.jsonl", "--lexicon", "lx"], 2, expect,
           setup=lambda mp, c=content: write("lx/en.yaml", c))
      for cid, content, expect in (
          ("string", '"just a string"\n', ("lx/en.yaml: invalid refusal lexicon", "not a str",
                                            "lang, strong, weak, negative, ignore")),
          ("list", "- a\n- b\n", ("lx/en.yaml: invalid refusal lexicon", "not a list")),
          ("strong-number", "strong: 5\n", ("lx/en.yaml, field 'strong'", "a list of regular expressions",
                                            "not int 5")),
          ("item-number", "strong: [ok, 5]\n", ("lx/en.yaml, field 'strong'", "item 2 is not a string")),
          ("bad-regex", 'weak: ["(a"]\n', ("lx/en.yaml, field 'weak'", "item 1 is not a valid regular expression")),
          ("not-utf8", b'strong: ["caf\xe9"]\n', ("lx/en.yaml: invalid refusal lexicon: not valid UTF-8",)),
          ("bad-yaml", "lang: en\nstrong: [a\nweak: b: c\n",
           ("lx/en.yaml, line 3: invalid refusal lexicon: invalid YAML",)),
          ("misspelled-key", "strongg: [a]\n", ("lx/en.yaml, field 'strongg'", "unknown key",
                                                "allowed: lang, strong, weak, negative, ignore")),
          ("lang-number", "lang: 7\n", ("lx/en.yaml, field 'lang'", "a language code is a string")),
      )],
    # a broken lexicon of a language the rows do not use is found too
    Case("lexicon-unused-language", ["judge", "answers.jsonl", "--lexicon", "lx"], 2, ("lx/de.yaml, field 'strong'",),
         setup=lambda mp: write("lx/de.yaml", "strong: 5\n")),
    # 4. --lock-timeout
    *[Case(f"lock-timeout-{v}", ["build", "--lock-timeout", v], 2,
           ("Invalid value for '--lock-timeout'", f"{v} is not a number of seconds"))
      for v in ("nan", "inf")],
    *[Case(f"lock-timeout-env-{v}", ["build", "--langs", "en", "--out", "r", "--build-dir", "b", "-q"], 2,
           (f"REFUSEU_LOCK_TIMEOUT '{v}' is not a number of seconds",),
           setup=lambda mp, v=v: mp.setenv("REFUSEU_LOCK_TIMEOUT", v))
      for v in ("nan", "-1", "soon")],
    # 5. release names are at most 100 characters (they name folders)
    Case("name-too-long", ["build", "--name", "a" * 240, "--out", "r", "--build-dir", "b"], 2,
         ("--name 'aaaa", "at most 100 characters")),
    Case("recipe-name-too-long", ["build", "--recipe", "r.yaml", "--out", "r", "--build-dir", "b"], 2,
         ("r.yaml, field 'name'", "at most 100 characters"),
         setup=lambda mp: write("r.yaml", f"name: {'a' * 300}\n")),
    # 6. exit 2 and the option's name
    Case("ray-address-nonsense", ["build", "--executor", "ray", "--ray-address", "nonsense"], 2,
         ("Invalid value for '--ray-address'", "'nonsense' is not a Ray address", "host:port")),
    Case("score-roundtrip-without-translator", ["score", "pairs.jsonl", "--lang", "de", "--scorer", "chrf-roundtrip"],
         2, ("--scorer chrf-roundtrip scores a back-translation", "--translator")),
    Case("score-lang-unknown", ["score", "pairs.jsonl", "--lang", "xx", "--scorer", "none"], 2,
         ("--lang 'xx': unknown language code",), forbid=("field 'langs'", "eu24")),
    *[Case(f"score-threshold-{v}", ["score", "pairs.jsonl", "--lang", "de", "--scorer", "none", "--threshold", v],
           2, (f"--threshold {v}",)) for v in ("nan", "inf")],
    Case("translate-to-unknown", ["translate", "answers.jsonl", "--to", "xx"], 2,
         ("--to 'xx': unknown language code 'xx'",), forbid=("field 'langs'",)),
    Case("langid-langs-unknown", ["langid", "answers.jsonl", "--langs", "en,,de"], 2,
         ("--langs 'en,,de': item 2 of 3 is empty",), forbid=("field 'langs'",)),
    Case("validate-train-langs", ["validate", "x", "--tiny", "--train-langs", "xx"], 2,
         ("--train-langs 'xx': unknown language code 'xx'",), forbid=("field 'langs'",)),
    Case("validate-eval-langs", ["validate", "x", "--tiny", "--eval-langs", ""], 2,
         ("--eval-langs '': no language given",), forbid=("field 'langs'",)),
    Case("validate-judge-model-missing", ["validate", "x", "--tiny", "--judge-engine", "llm", "--judge-model",
                                          "/nonexistent/judge"], 1,
         ("model '/nonexistent/judge' (stage judge) not found", "--judge-model"), forbid=("--model ", "judge.model")),
    *[Case(f"langid-row-lang-{cid}", ["langid", "rows.jsonl"], 2, ("rows.jsonl, line 2, field 'lang'", why),
           setup=lambda mp, v=value: write("rows.jsonl",
                                           jsonl({"text": "Hello there."}, {"text": "Hallo.", "lang": v})))
      for cid, value, why in (("unknown", "xx", "unknown language code 'xx'"),
                              ("number", 7, "a language code is a string (got int 7)"),
                              ("list", ["de"], "a language code is a string"))],
    Case("judge-row-lang-unknown", ["judge", "rows.jsonl"], 2,
         ("rows.jsonl, line 1, field 'lang': unknown language code 'xx'",), forbid=("field 'langs'", "eu24"),
         setup=lambda mp: write("rows.jsonl", jsonl({"text": "No.", "lang": "xx"}))),
    *[Case(f"{cid}-bogus-translator", args + ["--translator", "bogus"], 2,
           ("--translator 'bogus': unknown MT engine", "ctranslate2, deep-translator, hf, tm"),
           forbid=("field 'translate'",))
      for cid, args in (("translate", ["translate", "answers.jsonl", "--to", "de"]),
                        ("score", ["score", "pairs.jsonl", "--lang", "de", "--scorer", "none"]))],
    Case("models-list-bogus-translator", ["models", "list", "--translator", "bogus"], 2,
         ("--translator 'bogus': unknown MT engine", "ctranslate2, deep-translator, hf, tm")),
    Case("models-check-bogus-translator", ["models", "check", "--translator", "bogus"], 2,
         ("--translator 'bogus': unknown MT engine",)),
    Case("models-pull-empty-model", ["models", "pull", "--model", ""], 2,
         ("Invalid value for '--model'", "an empty value")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inputs()
    if case.setup:
        case.setup(monkeypatch)
    before = sorted(str(p) for p in Path(".").rglob("*"))
    res = invoke(case.args)
    output = res.output
    assert res.exit_code == case.code, output
    for text in case.expect:
        assert text in output, f"{text!r} not in {output!r}"
    for text in case.forbid:
        assert text not in output, f"{text!r} in {output!r}"
    # one message: click's "Error: ..." or refuseu's "error: ..." with at most its fix
    assert output.lower().count("error:") == 1, output
    assert not [ln for ln in output.splitlines() if ln.strip() and not ln.startswith(
        ("error:", "  fix:", "Usage:", "Try ", "Error:"))], output
    assert sorted(str(p) for p in Path(".").rglob("*")) == before, "something was written"
    assert Path("afile").read_text() == "keep me"


def test_missing_output_folder_is_created(tmp_path, monkeypatch):
    """A missing folder on the way to --out is created, as build creates its --out."""
    monkeypatch.chdir(tmp_path)
    inputs()
    res = invoke(["judge", "answers.jsonl", "--out", "new/sub/judged.jsonl"])
    assert res.exit_code == 0, res.output
    assert json.loads(Path("new/sub/judged.jsonl").read_text())["is_refusal"] is True
    res = invoke(["translate", "answers.jsonl", "--to", "en", "--out", "other/t.jsonl"])
    assert res.exit_code == 0, res.output
    assert Path("other/t.jsonl").is_file()
    res = invoke(["score", "pairs.jsonl", "--lang", "de", "--scorer", "none", "--out", "scores/s.jsonl"])
    assert res.exit_code == 0, res.output
    assert json.loads(Path("scores/s.jsonl").read_text())["qe_method"] is None


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_failed_write_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inputs()
    res = invoke(["judge", "answers.jsonl", "--out", "/dev/full"])
    assert res.exit_code == 1, res.output
    assert "error: /dev/full: writing the output failed: No space left on device" in res.output


def test_custom_lexicon_still_works(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write("lx/de.yaml", "lang: de\nstrong:\n  - \"\\\\bfrag jemand anderen\\\\b\"\nweak: []\n")
    write("rows.jsonl", jsonl({"text": "Frag jemand anderen.", "lang": "de"}))
    res = invoke(["judge", "rows.jsonl", "--lexicon", "lx", "--out", "o.jsonl"])
    assert res.exit_code == 0, res.output
    assert json.loads(Path("o.jsonl").read_text())["is_refusal"] is True


@pytest.mark.parametrize("address", ["auto", "local", "10.0.0.5:6379", "head-node:6379", "ray://head:10001",
                                     "[::1]:6379"])
def test_ray_addresses_that_are_accepted(address):
    from refuseu.cli.main import _ray_address

    assert _ray_address(None, None, address) == address


@pytest.mark.parametrize("address", ["nonsense", "head:", ":6379", "head:port", "head:70000", "ray://", "http://x:1"])
def test_ray_addresses_that_are_refused(address):
    from refuseu.cli.main import _ray_address

    with pytest.raises(click.BadParameter):
        _ray_address(None, None, address)


def test_a_long_source_stem_gives_a_name_within_the_limit():
    from refuseu.config import default_release_name

    name = default_release_name([{"spec": "data/" + "p" * 200 + ".jsonl"}])
    assert name == "p" * 100


@pytest.mark.slow
def test_comet_import_prints_no_pkg_resources_warning():
    pytest.importorskip("comet")
    res = subprocess.run([sys.executable, "-W", "default", "-c",
                          "from refuseu.engines.qe.scorers import _import_comet; _import_comet()"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "pkg_resources" not in res.stderr, res.stderr
