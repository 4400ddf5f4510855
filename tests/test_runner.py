import json

import polars as pl
import pytest

from refuseu.errors import InvariantError
from refuseu.pipeline import Pipeline
from refuseu.stages.base import Stage, StageResult, empty_rejects


class Source(Stage):
    name = "src"
    outputs = ("prompt_id", "x")
    is_source = True

    def __init__(self, n=6, calls=None):
        self.n, self.calls = n, calls if calls is not None else []

    def signature_parts(self):
        return {"n": self.n}

    def run(self, df, ctx):
        self.calls.append(self.name)
        return StageResult(pl.DataFrame({"prompt_id": [f"p{i}" for i in range(self.n)], "x": list(range(self.n))}),
                           empty_rejects())


class DropOdd(Stage):
    name = "drop_odd"
    inputs = ("prompt_id", "x")
    outputs = inputs

    def __init__(self, setting=0, calls=None, lose_one=False, interrupt=False):
        self.setting, self.calls, self.lose_one, self.interrupt = setting, calls if calls is not None else [], lose_one, interrupt

    def signature_parts(self):
        return {"setting": self.setting}

    def run(self, df, ctx):
        self.calls.append(self.name)
        if self.interrupt:
            raise KeyboardInterrupt
        odd = pl.col("x") % 2 == 1
        kept = df.filter(~odd)
        if self.lose_one:
            kept = kept.head(kept.height - 1)
        return StageResult(kept, self.reject(df.filter(odd), "odd", pl.format("x={}", "x")))


class Double(Stage):
    name = "double"
    inputs = ("x",)
    outputs = ("prompt_id", "x", "y")

    def __init__(self, calls=None):
        self.calls = calls if calls is not None else []

    def run(self, df, ctx):
        self.calls.append(self.name)
        return StageResult(df.with_columns(y=pl.col("x") * 2), empty_rejects())


def pipe(tmp_path, stages):
    return Pipeline(stages, build_dir=tmp_path / "b", languages=["en"])


def test_funnel_and_rejects(tmp_path):
    res = pipe(tmp_path, [Source(), DropOdd(), Double()]).run()
    assert res.table.get_column("y").to_list() == [0, 4, 8]
    assert res.funnel["drop_odd"]["en"] == {"in": 6, "kept": 3, "rejected": 3, "reasons": {"odd": 3}}
    assert res.funnel["src"]["en"]["in"] == 6
    assert res.rejects.columns == ["stage", "prompt_id", "lang", "reason", "detail"]
    assert set(res.rejects.get_column("stage")) == {"drop_odd"}


def test_funnel_invariant_catches_a_lost_row(tmp_path):
    with pytest.raises(InvariantError, match="6 rows in but 2 kept \\+ 3 rejected"):
        pipe(tmp_path, [Source(), DropOdd(lose_one=True)]).run()


def test_columns_checked_before_any_work(tmp_path):
    calls = []

    class NeedsZ(Stage):
        name = "needs_z"
        inputs = ("z",)

        def run(self, df, ctx):
            calls.append("needs_z")

    with pytest.raises(InvariantError, match="needs columns \\['z'\\]"):
        pipe(tmp_path, [Source(calls=calls), NeedsZ()]).run()
    assert calls == []  # nothing ran


def test_cache_reuse_and_invalidation(tmp_path):
    calls = []
    first = pipe(tmp_path, [Source(calls=calls), DropOdd(calls=calls), Double(calls=calls)]).run()
    assert calls == ["src", "drop_odd", "double"]
    calls.clear()
    again = pipe(tmp_path, [Source(calls=calls), DropOdd(calls=calls), Double(calls=calls)]).run()
    assert calls == [] and again.stages_run == []
    assert again.table.equals(first.table) and again.funnel == first.funnel
    assert again.rejects.height == first.rejects.height
    # A change to the middle stage reruns it and what follows, not what precedes.
    calls.clear()
    changed = pipe(tmp_path, [Source(calls=calls), DropOdd(setting=1, calls=calls), Double(calls=calls)]).run()
    assert calls == ["drop_odd", "double"]
    assert changed.records[0].cached and not changed.records[1].cached
    assert changed.signature != first.signature


def test_interrupted_run_keeps_finished_stages(tmp_path):
    calls = []
    with pytest.raises(KeyboardInterrupt):
        pipe(tmp_path, [Source(calls=calls), DropOdd(calls=calls, interrupt=True), Double(calls=calls)]).run()
    assert calls == ["src", "drop_odd"]
    # No half-written cache entry is left behind for the interrupted stage.
    assert not list((tmp_path / "b" / "stages").glob("01-drop_odd/*/meta.json"))
    calls.clear()
    res = pipe(tmp_path, [Source(calls=calls), DropOdd(calls=calls), Double(calls=calls)]).run()
    assert calls == ["drop_odd", "double"]
    assert res.records[0].cached


def test_meta_records_funnel(tmp_path):
    p = pipe(tmp_path, [Source(), DropOdd()])
    p.run()
    meta = json.loads(next((tmp_path / "b" / "stages").glob("01-drop_odd/*/meta.json")).read_text())
    assert meta["funnel"]["en"]["rejected"] == 3


def test_progress_bars_leave_no_empty_lines_in_a_log(capsys):
    """Off a terminal (a log file, a pipe) a stage's progress bar is not drawn, so the build's
    output has no empty line where a bar stood; the messages are all there."""
    from refuseu.pipeline.progress import Reporter

    r = Reporter()
    r.info("  done    a")
    with r.bar("translate", total=10) as bar:
        bar.update(10)
    r.info("  done    b")
    err = capsys.readouterr().err
    assert err == "  done    a\n  done    b\n"
