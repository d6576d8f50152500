"""Results folders as an attacker (or a bad copy) leaves them: every results command answers
with one line naming the file, ranks NaN and infinite values last, and escapes what it shows.

The runs are written by tests/results_factory.py through the real sink; no Ray.
"""

from __future__ import annotations

import html.parser
import json
import math
import os
import shutil
import types

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.errors import ResultsError
from scalehp.results import store
from scalehp.results.sink import ParquetSink
from scalehp.results.store import read_results
from tests.results_factory import T0, quad_run, write_plan


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def commands(path, tmp_path):
    """Every command that reads results, each on ``path`` (outputs into an empty folder)."""
    (tmp_path / "out").mkdir(exist_ok=True)
    return {
        "results ls": ("results", "ls", path),
        "results show": ("results", "show", path),
        "results best": ("results", "best", path),
        "report": ("report", path, "-o", tmp_path / "out" / "report.html"),
        "sql": ("sql", "SELECT count(*) FROM trials", "--root", path),
        "plot": ("plot", "curves", path, "-o", tmp_path / "out" / "curves.png"),
    }


def assert_one_line(result, name, code=2):
    lines = result.output.strip().splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert name in lines[0], result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)


@pytest.fixture
def run(tmp_path):
    return quad_run(tmp_path / "results", "quad-1", seed=1, trials=6)


# ---------------------------------------------------------------------------
# 1. damaged part files


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path):
    path.write_bytes(os.urandom(3000))


def _wrong_types(path):  # a Parquet file with the trials' columns, best_value as text
    pq.write_table(pa.table({"run_id": ["quad-1"], "trial_id": ["zz"], "best_value": ["oops"]}), path)


def _foreign(path):  # Parquet, but not a scalehp table
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)


def _folder(path):
    path.mkdir()


DAMAGE = {"truncated": _truncated, "garbage": _garbage, "wrong types": _wrong_types, "foreign": _foreign}


@pytest.mark.parametrize("kind", [*DAMAGE, "folder"])
def test_a_damaged_part_file_is_one_line_naming_it_in_every_command(run, tmp_path, kind):
    trials = sorted((run / "trials").glob("part-*.parquet"))
    if kind in ("truncated", "garbage"):
        damaged = trials[0]  # the run's own part, damaged in place
        DAMAGE[kind](damaged)
    else:
        damaged = run / "trials" / "part-99999999999999999999-stray.parquet"
        (_folder if kind == "folder" else DAMAGE[kind])(damaged)
    with pytest.raises(ResultsError, match="part-") as caught:
        read_results(run).trials  # noqa: B018
    assert caught.value.damaged and str(damaged) in str(caught.value)
    for name, args in commands(run, tmp_path).items():
        result = cli(*args)
        assert_one_line(result, damaged.name)
        assert damaged.name in result.output, name
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_damaged_data_behind_a_whole_footer_is_named(run):
    part = sorted((run / "reports").glob("part-*.parquet"))[0]
    data = bytearray(part.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for i in range(4, len(data) - footer):  # the column chunks: all but the header and footer
        data[i] ^= 0x5A
    part.write_bytes(bytes(data))
    with pytest.raises(ResultsError) as caught:
        read_results(run).reports  # noqa: B018
    assert part.name in str(caught.value) and caught.value.damaged


# ---------------------------------------------------------------------------
# 2. a run folder copied or renamed: the run id it recorded is the truth


def test_a_renamed_run_folder_shows_its_trials_in_every_command(run, tmp_path):
    renamed = run.parent / "quad-1-copy"
    run.rename(renamed)
    listed = json.loads(cli("results", "ls", run.parent, "--format", "json").output)
    assert [(r["run_id"], r["folder"], r["trials"]) for r in listed] == [("quad-1", "quad-1-copy", 6)]
    assert listed[0]["best"] is not None
    assert cli("results", "show", renamed).exit_code == 0
    assert json.loads(cli("results", "best", renamed, "--format", "json").output)[0]["run_id"] == "quad-1"
    out = tmp_path / "report.html"
    result = cli("report", renamed, "-o", out)
    assert result.exit_code == 0, result.output
    assert "No trial has finished" not in out.read_text() and "Leaderboard" in out.read_text()
    query = "SELECT count(*) AS n FROM trials JOIN runs USING (run_id)"
    joined = cli("sql", query, "--root", renamed, "--format", "json")
    assert json.loads(joined.output) == [{"n": 6}]


def test_a_copy_beside_its_original_is_one_run_in_two_folders(run):
    shutil.copytree(run, run.parent / "quad-1-backup")
    listed = json.loads(cli("results", "ls", run.parent, "--format", "json").output)
    assert [(r["run_id"], r["folder"], r["trials"]) for r in listed] == [("quad-1", "quad-1, quad-1-backup", 6)]


# ---------------------------------------------------------------------------
# 3. scalehp sql: the same part files as every other command, and read-only


def test_sql_refuses_the_stray_part_that_every_other_command_refuses(run):
    stray = run / "trials" / "part-99999999999999999999-stray.parquet"
    _wrong_types(stray)
    assert_one_line(cli("sql", "SELECT best_value FROM trials", "--root", run), stray.name)


def test_sql_best_value_stays_a_number_over_several_runs(tmp_path):
    root = tmp_path / "results"
    quad_run(root, "quad-1", seed=1, trials=3)
    quad_run(root, "quad-2", seed=2, trials=3, extra_metric=True)
    result = cli("sql", "SELECT DISTINCT typeof(best_value) AS t FROM trials", "--root", root, "--format", "json")
    assert json.loads(result.output) == [{"t": "DOUBLE"}]


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT * FROM trials) TO '{out}'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_parquet('{other}')",
        "INSTALL httpfs",
        "LOAD httpfs",
        "ATTACH '{out}' AS other",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
    ],
)
def test_sql_reads_the_results_and_nothing_else(run, tmp_path, query):
    other = quad_run(tmp_path / "elsewhere", "quad-9", seed=9, trials=2)
    out = tmp_path / "stolen.csv"
    sql = query.format(out=out, other=sorted((other / "trials").glob("part-*"))[0])
    result = cli("sql", sql, "--root", run)
    assert result.exit_code == 1 and result.output.count("\n") == 1 and result.output.startswith("error: sql: ")
    assert "root:" not in result.output  # nothing of /etc/passwd
    assert not out.exists()


def test_sql_allow_files_lifts_the_limit(run, tmp_path):
    assert "--allow-files" in cli("sql", "--help").output
    out = tmp_path / "trials.csv"
    result = cli("sql", f"COPY (SELECT trial_id FROM trials) TO '{out}'", "--root", run, "--allow-files")
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 7


# ---------------------------------------------------------------------------
# 4. NaN and infinite values are the worst, never the best


def _run_with_values(root, run_id, mode, values):
    """One trial per value of ``best_value``; trial ``t0`` has ``values[0]``, and so on."""
    run_dir = root / "exp" / run_id
    write_plan(run_dir, run_id, "exp", "loss", mode, {"x": {"float": [0, 1]}})
    sink = ParquetSink(run_dir, [pa.field("param_x", pa.float64())])
    keys = {"run_id": run_id, "experiment": "exp"}
    for i, value in enumerate(values):
        row = {**keys, "trial_id": f"t{i}", "param_x": i / 10}
        sink.add("reports", {**row, "step": 1, "time": T0 + i, "elapsed_s": 1.0, "metric_loss": value})
        sink.add("trials", {**row, "status": "completed", "steps": 1, "best_value": value, "best_step": 1,
                            "started_at": T0, "ended_at": T0 + i, "metric_loss": value})  # fmt: skip
    sink.close()
    return run_dir


@pytest.mark.parametrize(("mode", "bad"), [("min", -math.inf), ("max", math.inf)])
def test_an_infinite_value_in_the_good_direction_is_never_ranked_best(tmp_path, mode, bad):
    good, worse = (0.5, 0.9) if mode == "min" else (0.9, 0.5)
    run_dir = _run_with_values(tmp_path, "r1", mode, [worse, bad, good, math.nan])
    best = json.loads(cli("results", "best", run_dir, "--format", "json").output)[0]
    assert (best["trial_id"], best["best_loss"]) == ("t2", good)
    shown = json.loads(cli("results", "show", run_dir, "--format", "json").output)
    assert [r["trial_id"] for r in shown][:2] == ["t2", "t0"]
    assert json.loads(cli("results", "ls", run_dir, "--format", "json").output)[0]["best"] == good

    from scalehp.analysis.curves import anytime
    from scalehp.analysis.pareto import pareto_front
    from scalehp.runner import summarize

    summary = summarize(run_dir)
    assert (summary.best_trial, summary.best_value) == ("t2", good)
    results = read_results(run_dir)
    assert anytime(results.reports, "loss", mode, by="steps")["best"].tolist() == [worse, worse, good, good]
    front = pareto_front(results.trials, {"best_value": mode, "param_x": "min"})
    assert "t1" not in set(front["trial_id"])
    out = tmp_path / "report.html"
    assert cli("report", run_dir, "-o", out).exit_code == 0
    text = out.read_text()
    assert text.index("<td>t2</td>") < text.index("<td>t1</td>")  # the leaderboard: t2 first, t1 after


def test_the_runs_best_tracking_skips_infinite_values_and_never_takes_them_for_the_goal(tmp_path):
    from scalehp.compiler import compile_plan
    from scalehp.recorder import RunRecorder
    from scalehp.spec import load_experiment

    plan = compile_plan(
        load_experiment(
            {
                "name": "exp",
                "trainable": "tests.trainables:quadratic",
                "metric": {"name": "loss", "mode": "min", "goal": 0.1},
                "budget": {"samples": 1, "max_steps": 3},
                "space": {"x": {"float": [0.0, 1.0]}},
                "results": str(tmp_path),
            }
        )
    )
    sink = ParquetSink(tmp_path / "run", [pa.field("param_x", pa.float64())])
    recorder = RunRecorder(plan, sink, "run")
    recorder.start("t0", {"x": 0.5})
    try:
        for step, loss in enumerate([0.7, -math.inf, math.nan, 0.4], start=1):
            recorder.report("t0", step, {"loss": loss})
        assert recorder.ended is None  # -inf <= 0.1, but it reached no goal
        assert recorder.best == (0.4, "t0")
        recorder.end_trial("t0")
    finally:
        recorder.close()
    row = pq.read_table(sorted((tmp_path / "run" / "trials").glob("part-*"))[0]).to_pylist()[0]
    assert (row["best_value"], row["best_step"]) == (0.4, 4)


# ---------------------------------------------------------------------------
# 5. scheduler events keep the value as reported (Ray's real ASHA, driven without a cluster)


def test_asha_events_record_nan_and_inf_as_reported_not_the_stand_in(tmp_path):
    from ray.tune.experiment import Trial

    from scalehp.compiler import compile_plan
    from scalehp.runner.schedulers import WORST, scheduler
    from scalehp.spec import load_experiment

    plan = compile_plan(
        load_experiment(
            {
                "name": "exp",
                "trainable": "tests.trainables:quadratic",
                "metric": {"name": "loss", "mode": "min"},
                "budget": {"samples": 4, "max_steps": 9},
                "space": {"x": {"float": [0.0, 1.0]}},
                "scheduler": "asha",
                "results": str(tmp_path),
            }
        )
    )
    events = []
    recorder = types.SimpleNamespace(decide=events.append, decided=lambda *args: None, metric_column="metric_loss")
    asha = scheduler(plan, "training_iteration", recorder)
    asha.set_search_properties("loss", "min")
    trials = [Trial("x", config={}, trial_id=f"t{i}", stub=True) for i in range(4)]
    for trial in trials:
        asha.on_trial_add(None, trial)
    values = {"t0": math.nan, "t1": math.inf, "t2": -math.inf, "t3": 0.5}
    for step in (1, 2, 3):
        for trial in trials:
            asha.on_trial_result(None, trial, {"training_iteration": step, "loss": values[trial.trial_id]})
    assert len(events) == 8  # rungs 1 and 3, four trials each
    for event in events:
        reported = values[event["trial_id"]]
        assert event["value"] == reported or (math.isnan(reported) and math.isnan(event["value"]))
        assert event["cutoff"] is None or abs(event["cutoff"]) != WORST
    assert {e["cutoff"] for e in events if e["trial_id"] == "t3"} == {math.inf}  # the worst value it had to beat


# ---------------------------------------------------------------------------
# 6. the HTML report escapes every string from the results

HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>"\''


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes = set(), set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}


def _hostile_run(root):
    run_id = f"r{HOSTILE}"
    run_dir = root / "exp" / "r1"
    param = f"p{HOSTILE}"
    write_plan(
        run_dir, run_id, f"exp{HOSTILE}", f"loss{HOSTILE}", "min", {param: {"choice": ["a", HOSTILE]}},
        searcher=f"s{HOSTILE}", scheduler=f"asha{HOSTILE}", created_at=f"2026{HOSTILE}",
    )  # fmt: skip
    column = "param_p"
    names = {"metric_loss": f"loss{HOSTILE}", "metric_acc": f"acc{HOSTILE}"}
    sink = ParquetSink(run_dir, [pa.field(column, pa.string())], metric_names=names)
    keys = {"run_id": run_id, "experiment": f"exp{HOSTILE}"}
    for i in range(4):
        trial = f"t{i}{HOSTILE}"
        value = {column: HOSTILE if i % 2 else "a", f"param_{HOSTILE}": HOSTILE}
        for step in (1, 2):
            loss = 1.0 / (i + step)
            sink.add("reports", {**keys, "trial_id": trial, "step": step, "time": T0 + 10 * i + step,
                                 "elapsed_s": float(step), **value, "metric_loss": loss, "metric_acc": 1 - loss})  # fmt: skip
            sink.add("events", {**keys, "trial_id": trial, "time": T0 + 10 * i + step, "step": step,
                                "scheduler": "asha", "action": "continue" if i else "stop", "rung": step,
                                "value": loss, "cutoff": 0.5, "reason": HOSTILE})  # fmt: skip
        sink.add("trials", {**keys, "trial_id": trial, "status": f"completed{HOSTILE}", "error": f"boom{HOSTILE}",
                            "steps": 2, "best_value": loss, "best_step": 2, "started_at": T0, "ended_at": T0 + 9,
                            "node": HOSTILE, **value, "metric_loss": loss, "metric_acc": 1 - loss})  # fmt: skip
    sink.add("events", {**keys, "trial_id": HOSTILE, "time": T0 + 99, "action": "end", "reason": HOSTILE})
    sink.close()
    return run_dir


def test_the_report_escapes_every_string_from_the_results(tmp_path):
    run_dir = _hostile_run(tmp_path)
    out = tmp_path / "report.html"
    result = cli("report", run_dir, "-o", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    parser = _Tags()
    parser.feed(text)
    assert parser.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "table",
                           "thead", "tbody", "tr", "th", "td", "img"}  # fmt: skip
    assert not [a for a in parser.attributes if a.startswith("on")]
    assert "<script" not in text.lower() and "<img src=x" not in text
    # the data did reach the page, escaped: names, ids, values, statuses and the end reason
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;&#x27;"
    for field in ("exp", "loss", "acc", "t1", "completed", "asha", "r", "s"):
        assert field + escaped in text, field


def test_a_plan_with_a_hostile_mode_is_refused(tmp_path):
    run_dir = quad_run(tmp_path, "quad-1", seed=1, trials=2)
    plan = json.loads((run_dir / "plan.json").read_text())
    plan["experiment"]["metric"]["mode"] = HOSTILE
    (run_dir / "plan.json").write_text(json.dumps(plan))
    result = cli("report", run_dir, "-o", tmp_path / "report.html")
    assert_one_line(result, "experiment.metric.mode")
    assert "<script" not in result.output and not (tmp_path / "report.html").exists()


# ---------------------------------------------------------------------------
# 7. plots draw a $ in a name as a $


@pytest.mark.parametrize("name", ["$\\frac{$", "a$x^2$", "cost $ (\\$)", "$$"])
def test_plots_draw_names_with_dollars_as_they_are(tmp_path, name):
    from matplotlib.text import Text

    from scalehp.analysis import asha, curves, importance, plots

    run_dir = tmp_path / "exp" / f"r{name}"
    write_plan(run_dir, f"r{name}", "exp", name, "min", {name: {"float": [0, 1]}, "opt": {"choice": ["a", name]}})
    column = "param_" + "x"
    sink = ParquetSink(run_dir, [pa.field(column, pa.float64()), pa.field("param_opt", pa.string())],
                       metric_names={"metric_m": name})  # fmt: skip
    keys = {"run_id": f"r{name}", "experiment": "exp"}
    for i in range(4):
        params = {column: i / 4, "param_opt": name if i % 2 else "a"}
        for step in (1, 2):
            sink.add("reports", {**keys, "trial_id": f"t{i}{name}", "step": step, "time": T0 + 10 * i + step,
                                 **params, "metric_m": float(i + step)})  # fmt: skip
            sink.add("events", {**keys, "trial_id": f"t{i}{name}", "time": T0 + 10 * i + step, "step": step,
                                "scheduler": "asha", "action": "continue", "rung": step, "value": float(i)})  # fmt: skip
        sink.add("trials", {**keys, "trial_id": f"t{i}{name}", "status": "completed", "steps": 2,
                            "best_value": float(i + 1), "best_step": 1, **params, "metric_m": float(i + 2)})  # fmt: skip
    sink.close()
    results = read_results(run_dir)
    trials, reports, events = results.trials, results.reports, results.events
    figures = [
        plots.learning_curves(curves.learning_curves(reports, name), name, f"t0{name}"),
        plots.anytime(curves.anytime(reports, name, "min"), name),
        plots.importance(importance.param_importance(trials, "min").assign(param=name)),
        plots.parallel_coordinates(trials, ["x", "opt"], "min"),
        plots.asha_rungs(events, asha.rung_stats(events), name),
    ]
    for figure in figures:
        assert plots.png(figure)[:4] == b"\x89PNG"
        shown = []
        for text in figure.findobj(Text):
            drawn, math_text = text._preprocess_math(text.get_text())  # what matplotlib draws, and how
            assert not math_text, text.get_text()
            shown.append(drawn)
        assert any(name in drawn for drawn in shown), shown  # the name as written, every character
    out = tmp_path / "curves.png"
    assert cli("plot", "curves", run_dir, "-o", out).exit_code == 0


# ---------------------------------------------------------------------------
# 8. a plan.json that is not a plan


def _plan_cases():
    def edit(change):
        def apply(plan_file):
            plan = json.loads(plan_file.read_text())
            change(plan)
            plan_file.write_text(json.dumps(plan))

        return apply

    def text(value):
        return lambda plan_file: plan_file.write_text(value)

    def fifo(plan_file):
        plan_file.unlink()
        os.mkfifo(plan_file)

    return {
        "a list": (text("[1, 2]"), "(top level)"),
        "a number": (text("42"), "(top level)"),
        "invalid JSON": (text('{"run_id": '), "not JSON"),
        "not UTF-8": (lambda p: p.write_bytes(b"\xff\xfe{}"), "UTF-8"),
        "too deep": (text("[" * 100_000 + "]" * 100_000), "plan.json"),
        "too large": (text('{"pad": "' + "x" * 5000 + '"}'), "too large"),
        "a FIFO": (fifo, "not a regular file"),
        "experiment a list": (edit(lambda p: p.update(experiment=[])), "experiment"),
        "no metric": (edit(lambda p: p["experiment"].pop("metric")), "experiment.metric"),
        "metric name a number": (edit(lambda p: p["experiment"]["metric"].update(name=5)), "experiment.metric.name"),
        "mode not min or max": (
            edit(lambda p: p["experiment"]["metric"].update(mode="down")),
            "experiment.metric.mode",
        ),
        "metrics not a list": (edit(lambda p: p["experiment"].update(metrics={"a": 1})), "experiment.metrics"),
        "trials text": (edit(lambda p: p.update(trials="many")), "trials"),
        "created_at a number": (edit(lambda p: p.update(created_at=5)), "created_at"),
        "run_id a list": (edit(lambda p: p.update(run_id=[1])), "run_id"),
        "columns a list": (edit(lambda p: p.update(columns=["x"])), "columns"),
        "space a list": (edit(lambda p: p["experiment"].update(space=[1])), "experiment.space"),
    }


PLAN_CASES = _plan_cases()


@pytest.mark.parametrize("case", list(PLAN_CASES))
def test_a_plan_json_that_is_not_a_plan_is_one_line_in_every_command(run, tmp_path, monkeypatch, case):
    damage, key = PLAN_CASES[case]
    monkeypatch.setattr(store, "MAX_PLAN_BYTES", 4096)
    damage(run / "plan.json")
    with pytest.raises(ResultsError) as caught:
        read_results(run)
    assert caught.value.damaged and "plan.json" in str(caught.value) and key in str(caught.value)
    for name, args in commands(run, tmp_path).items():
        result = cli(*args)
        assert_one_line(result, "plan.json")
        assert key in result.output, (name, result.output)


def test_results_best_of_a_row_without_steps(tmp_path):
    run_dir = tmp_path / "exp" / "r1"
    write_plan(run_dir, "r1", "exp", "loss", "min", {})
    sink = ParquetSink(run_dir, [])
    row = {"run_id": "r1", "experiment": "exp", "trial_id": "t0", "status": "completed", "best_value": 1.0}
    sink.add("trials", row)
    sink.close()
    best = json.loads(cli("results", "best", run_dir, "--format", "json").output)[0]
    assert (best["best_loss"], best["best_step"], best["steps"]) == (1.0, None, None)
