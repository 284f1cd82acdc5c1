"""The pytest plugin on tiny throwaway suites (pytester): options, selection, records, the table,
bad input, baselines, and one board per pytest-xdist worker. Stand-in variants come from the
``kws_variant_ids`` ini option, so nothing heavy (torch, TF, QEMU) runs here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.bench import results

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent

INI = """
[pytest]
kws_variant_ids =
    fp32
    qat-sym-4
    qat-sym-2
    ptq-sym-4
"""

SUITE = """
def test_measure(variant_id, record, device_spec, kws):
    acc = {"fp32": 0.95, "qat-sym-4": 0.91, "qat-sym-2": 0.5, "ptq-sym-4": 0.85}[variant_id]
    record(variant_id, "accuracy", acc * FACTOR)
    record(variant_id, "flash", 20000, "B")
    record(variant_id, "device", hash(device_spec) % 1000, "id", passed=None)
    (kws.run_dir / f"dev-{variant_id}-{kws.worker}").write_text(device_spec)
    record.assert_budgets()
"""

BUDGETS = """
[budget."*"]
accuracy_min = 0.9
flash_max = "64 KB"

[budget."*-2"]
accuracy_min = 0.4
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".ini", pytest=INI)
    pytester.makepyfile(test_suite=SUITE.replace("FACTOR", "1.0"))
    pytester.makefile(".toml", budgets=BUDGETS)
    return pytester


def _args(p: pytest.Pytester, *extra: str) -> list[str]:
    return ["-p", "harness.bench.pytestplugin", "-p", "no:cacheprovider", "--budgets", str(p.path / "budgets.toml"),
            "--results-dir", str(p.path / "res"), *extra]


def _rows(p: pytest.Pytester) -> list[results.Row]:
    runs = results.list_runs(p.path / "res")
    assert runs, "no run folder written"
    return results.load_run(runs[-1]).rows


def test_options_are_registered_once_without_clashes(suite: pytest.Pytester) -> None:
    r = suite.runpytest(*_args(suite, "--help"))
    out = r.stdout.str()
    for opt in ("--device=DEV", "--dataset=DIR", "--budgets=FILE", "--variants=IDS", "--backend",
                "--results-dir=DIR", "--baseline=last|PATH", "--device-samples=N"):
        assert out.count(opt) == 1, opt
    for foreign in ("--port", "--count"):
        assert f"  {foreign}" not in out
    for lg in ("--lg-place", "--lg-wait", "--lg-env", "--lg-coordinator"):  # labgrid's names, once (ours or its)
        assert out.count(f"  {lg}=") == 1, lg


def test_run_records_checks_budgets_and_prints_table(suite: pytest.Pytester) -> None:
    r = suite.runpytest(*_args(suite, "-v"))
    r.assert_outcomes(passed=3, failed=1)
    out = r.stdout.str()
    assert "test_measure[ptq-sym-4]" in out
    assert "ptq-sym-4: accuracy = 0.85 fails budget accuracy_min >= 0.9" in out
    assert "kws-harness results" in out and "FAIL (1/2)" in out and "PASS (2/2)" in out
    rows = _rows(suite)
    assert len(rows) == 12
    acc = {r.variant: r for r in rows if r.metric == "accuracy"}
    assert acc["qat-sym-2"].limit == 0.4 and acc["qat-sym-2"].passed is True  # later pattern wins
    assert acc["ptq-sym-4"].passed is False and acc["ptq-sym-4"].test_id.endswith("test_measure[ptq-sym-4]")
    meta = results.load_run(results.list_runs(suite.path / "res")[-1]).metadata
    assert meta["budgets"]["sections"][1]["pattern"] == "*-2" and "finished" in meta and meta["git"]["sha"]


def test_own_variant_parametrization_is_left_alone(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_own="""
import pytest

@pytest.mark.parametrize("variant_id", ["custom-1"])
def test_mine(variant_id):
    assert variant_id == "custom-1"
""")
    r = suite.runpytest(*_args(suite, "test_own.py"))
    r.assert_outcomes(passed=1)


def test_junit_xml_carries_the_measurements(suite: pytest.Pytester) -> None:
    r = suite.runpytest(*_args(suite, "--variants", "fp32", "--junitxml", str(suite.path / "junit.xml")))
    r.assert_outcomes(passed=1)
    xml = (suite.path / "junit.xml").read_text()
    assert '<property name="accuracy" value="0.95"' in xml and '<property name="flash" value="20000 B"' in xml


def test_variant_selection_and_keyword_aliases(suite: pytest.Pytester) -> None:
    r = suite.runpytest(*_args(suite, "--variants", "qat-*,fp32", "-k", "qat and 4bit", "-v"))
    r.assert_outcomes(passed=1, deselected=2)
    r.stdout.fnmatch_lines(["*test_measure[[]qat-sym-4[]] PASSED*"])


def test_harness_error_in_a_bench_test_is_one_line(pytester: pytest.Pytester) -> None:
    pytester.makefile(".ini", pytest=INI)
    pytester.makefile(".toml", budgets=BUDGETS)
    pytester.makepyfile(test_dead="""
from harness.errors import HarnessError

def test_board(variant_id, record):
    record(variant_id, "accuracy", 0.95)
    raise HarnessError("device socket://127.0.0.1:9: board stopped answering")
""")
    r = pytester.runpytest(*_args(pytester, "--variants", "fp32"))
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["device socket://127.0.0.1:9: board stopped answering"])
    assert "raise HarnessError" not in r.stdout.str()
    assert [row.metric for row in _rows(pytester)] == ["accuracy"]  # what was measured stays


def test_no_records_means_no_run_folder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_x():\n    assert 1\n")
    r = pytester.runpytest("-p", "harness.bench.pytestplugin", "--results-dir", str(pytester.path / "res"))
    r.assert_outcomes(passed=1)
    assert not (pytester.path / "res").exists()


@pytest.mark.parametrize("extra,budgets,message", [
    ((), '[budget."*"]\naccuracy_mn = 0.9\n', r"*budgets.toml:2: unknown budget key 'accuracy_mn'*"),
    (("--device", "/dev/ttyNOPE9"), None, "*--device '/dev/ttyNOPE9' matches nothing*"),
    (("--device", "emu,emu"), None, "*--device lists 2 boards (emu,emu); run with -n 2*"),
    (("--variants", "qat-*-3"), None, "*--variants 'qat-[*]-3' matches no variant id; valid ids: fp32*"),
    (("--baseline", "/nonexistent/run"), None, "*baseline /nonexistent/run does not exist*"),
    (("--baseline", "last"), None, "*--baseline last: no earlier run*"),
    (("--backend", "tflm"), None, "*--backend tflm runs on a real board only*"),
    (("--device-samples", "0"), None, "*--device-samples must be at least 1*"),
    (("--dataset", "/no/such/speech_commands"), None, "*--dataset /no/such/speech_commands: no such directory*"),
    (("--device", "labgrid"), None, "*--device=labgrid needs --lg-place NAME*"),
    (("--device", "labgrid:emu-1", "--lg-coordinator", "127.0.0.1:9"), None,
     "*--device 'labgrid:emu-1' matches nothing: labgrid *"),  # coordinator not reachable (or labgrid missing)
])
def test_bad_input_is_one_line_and_a_failed_run(suite: pytest.Pytester, extra: tuple, budgets: str | None,
                                                 message: str) -> None:
    if budgets is not None:
        (suite.path / "budgets.toml").write_text(budgets)
    r = suite.runpytest(*_args(suite, *extra))
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in r.stderr.str() + r.stdout.str()


def test_results_dir_not_writable(suite: pytest.Pytester) -> None:
    blocker = suite.path / "blocker"
    blocker.write_text("a file where the results folder should be")
    r = suite.runpytest("-p", "harness.bench.pytestplugin", "--results-dir", str(blocker / "res"))
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["ERROR: results directory */blocker/res is not writable*"])
    # the default results folder (KWS_RESULTS_DIR) is checked once a test will record
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWS_RESULTS_DIR", str(blocker / "res2"))
        r = suite.runpytest("-p", "harness.bench.pytestplugin", "--budgets", str(suite.path / "budgets.toml"))
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["ERROR: results directory */blocker/res2 is not writable*"])


def test_baseline_regression_and_other_variants(suite: pytest.Pytester) -> None:
    shutil.copy(REPO / "suites" / "test_regression.py", suite.path / "test_zregression.py")
    r = suite.runpytest(*_args(suite))
    r.assert_outcomes(passed=3, failed=1, skipped=4)  # no baseline: regression skipped with reason
    # second run: qat-sym-4 loses 5 points of accuracy -> regression against the first run
    suite.makepyfile(test_suite=SUITE.replace("FACTOR", "(0.95 if variant_id == 'qat-sym-4' else 1.0)"))
    r = suite.runpytest(*_args(suite, "--baseline", "last", "-rs"))
    out = r.stdout.str()
    assert "regression vs" in out and "qat-sym-4 accuracy: 0.91 -> 0.8645" in out
    assert "Regressions against the baseline" in out and "1 regression(s)" in out
    r.assert_outcomes(passed=2 + 3, failed=2 + 1)  # ptq-sym-4 budget, qat-sym-4 budget + regression
    # a baseline with none of the selected variants
    base = results.list_runs(suite.path / "res")[0]
    r = suite.runpytest(*_args(suite, "--baseline", str(base), "--variants", "fp32"))
    assert r.ret == 0
    partial = suite.path / "partial"
    results.RunStore(partial).record("fp32", "accuracy", 0.95)
    r = suite.runpytest(*_args(suite, "--baseline", str(partial), "-rs"))
    r.stdout.fnmatch_lines(["*note: not in baseline partial (not compared): qat-sym-4, qat-sym-2, ptq-sym-4*",
                            "*SKIPPED*qat-sym-2 is not in baseline*"])
    other = suite.path / "other"
    results.RunStore(other).record("struct-l1-40-ft", "accuracy", 0.9)
    r = suite.runpytest(*_args(suite, "--baseline", str(other)))
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["ERROR: baseline */other has none of the selected variants*struct-l1-40-ft*"])


def test_xdist_gives_each_worker_its_own_board(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the subprocess imports this checkout's harness, not an installed one
    suite.makepyfile(test_second="""
def test_again(variant_id, kws, results_store):
    (kws.run_dir / f"again-{variant_id}-{kws.worker}").write_text(kws.device)
""")
    devices = "socket://127.0.0.1:1,socket://127.0.0.1:2"
    r = suite.runpytest_subprocess(*_args(suite, "-n", "2", "--device", devices))
    r.assert_outcomes(passed=3 + 4, failed=1)
    run = results.list_runs(suite.path / "res")[-1]
    expected = devices.split(",")
    files = list(run.glob("dev-*")) + list(run.glob("again-*"))
    assert len(files) == 8
    worker_of: dict[str, set[str]] = {}
    for f in files:  # <test>-<variant>-gwK holds the device that worker K used: entry K of --device
        _, rest = f.name.split("-", 1)
        variant, worker = rest.rsplit("-", 1)
        assert f.read_text() == expected[int(worker[2:])]
        worker_of.setdefault(variant, set()).add(worker)
    assert all(len(w) == 1 for w in worker_of.values()), worker_of  # a variant's tests share one board
    assert sorted(p.name for p in run.glob("measurements*.csv")) in (
        ["measurements-gw0.csv", "measurements-gw1.csv"], ["measurements-gw0.csv"], ["measurements-gw1.csv"])
    loaded = results.load_run(run)
    assert len(loaded.rows) == 12
    assert "kws-harness results" in r.stdout.str()
    # the controller keeps every worker's test outcomes (what explains a metric never measured)
    assert loaded.outcomes["test_suite.py::test_measure[ptq-sym-4]"]["outcome"] == "failed"
    assert "fails budget accuracy_min" in loaded.outcomes["test_suite.py::test_measure[ptq-sym-4]"]["message"]
    assert len([n for n in loaded.outcomes if n.startswith("test_suite.py")]) == 4
    (suite.path / "test_second.py").unlink()
    bad = suite.runpytest_subprocess(*_args(suite, "-n", "2", "--device", "socket://127.0.0.1:1"))
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--device lists 1 board(s)*but -n 2 starts 2 workers*"])


def test_variant_scope_and_keywords() -> None:
    from harness.bench.pytestplugin import variant_keywords, variant_scope

    ids = ["fp32", "qat-sym-4", "qat-sym-4x", "struct-l1-40-ft"]
    assert variant_scope("suites/test_host.py::test_accuracy[qat-sym-4]", ids) == "variant:qat-sym-4"
    assert variant_scope("s.py::t[qat-sym-4x]", ids) == "variant:qat-sym-4x"
    assert variant_scope("s.py::t[struct-l1-40-ft-sym]", ids) == "variant:struct-l1-40-ft"
    assert variant_scope("s.py::t[sym]", ids) == "s.py::t[sym]"
    assert variant_scope("s.py::t", ids) == "s.py::t"
    assert {"4bit", "quant", "qat", "sym"} <= set(variant_keywords("qat-sym-4"))
    assert {"pruned", "40pct", "ft"} <= set(variant_keywords("struct-l1-40-ft"))
    assert "float" in variant_keywords("fp32")


def test_board_dying_mid_variant_fails_it_as_not_measured(pytester: pytest.Pytester) -> None:
    """The board dies before the device test records `exact`: the variant is FAIL in the table (not
    PASS for what was measured), with the reason, and the run's report says so too."""
    pytester.makefile(".ini", pytest=INI)
    pytester.makefile(".toml", budgets=BUDGETS + '\n[budget."fp32"]\nexact = true\n')
    pytester.makepyfile(test_dead="""
import pytest
from harness.errors import HarnessError

@pytest.mark.kws_metrics("accuracy")
def test_host(variant_id, record):
    record(variant_id, "accuracy", 0.95)

@pytest.mark.kws_metrics("exact")
def test_board(variant_id, record):
    if variant_id == "fp32":
        raise HarnessError("device emu-main: board stopped answering during INFER")
    record(variant_id, "exact", 1.0, "bool")
""")
    r = pytester.runpytest(*_args(pytester, "--variants", "fp32,qat-sym-4"))
    r.assert_outcomes(passed=3, failed=1)
    out = r.stdout.str()
    assert "failed: fp32: exact: not measured: test_board[fp32] failed: device emu-main: board stopped answering" in out
    assert "verdict: FAIL" in out
    run = results.load_run(results.list_runs(pytester.path / "res")[-1])
    assert run.plan["fp32"] == {"accuracy": "test_dead.py::test_host[fp32]", "exact": "test_dead.py::test_board[fp32]"}
    from harness.bench import report

    summary = report.to_json(run)
    assert summary["verdict"] == "FAIL" and {v["variant"]: v["verdict"] for v in summary["variants"]} == \
        {"fp32": "FAIL", "qat-sym-4": "PASS"}
    # deselected tests expect nothing: -k host measures no exact, and nothing is missing
    r = pytester.runpytest(*_args(pytester, "--variants", "fp32", "-k", "host"))
    assert r.ret == 0 and "verdict: PASS" in r.stdout.str()


def test_interrupted_run_is_partial_and_never_the_baseline(suite: pytest.Pytester) -> None:
    r = suite.runpytest(*_args(suite, "--variants", "fp32"))
    assert r.ret == 0
    suite.makepyfile(test_zz_stop="""
import pytest

def test_zstop(variant_id):
    pytest.exit("stand-in for Ctrl-C / SIGTERM", returncode=2)
""")
    r = suite.runpytest(*_args(suite, "--variants", "fp32"))
    assert r.ret == pytest.ExitCode.INTERRUPTED
    assert "PARTIAL RUN: ended with exit status 2: interrupted" in r.stdout.str()
    first, killed = results.list_runs(suite.path / "res")
    (suite.path / "test_zz_stop.py").unlink()
    r = suite.runpytest(*_args(suite, "--variants", "fp32", "--baseline", "last"))
    assert r.ret == 0
    r.stdout.fnmatch_lines([f"*note: --baseline last: passed over partial run(s) {killed.name}*took {first.name} instead*"])


@pytest.mark.parametrize("extra,setup,message", [
    (("--results-dir", "/proc/kws-results"), None, "*results directory /proc/kws-results is not writable*"),
    (("--dataset", "DIR"), "notdata", "*--dataset */notdata: no <word>/[*].wav files in*"),
    ((), "latin1", r"*budgets.toml:2: not UTF-8 text (byte 0xe9 at offset *"),
])
def test_more_bad_input_is_one_line(suite: pytest.Pytester, extra: tuple, setup: str | None, message: str) -> None:
    if setup == "notdata":
        (suite.path / "notdata" / "docs").mkdir(parents=True)
        (suite.path / "notdata" / "docs" / "readme.txt").write_text("not a data set")
        extra = tuple(str(suite.path / "notdata") if e == "DIR" else e for e in extra)
    if setup == "latin1":
        (suite.path / "budgets.toml").write_bytes(b'[budget."*"]\n# caf\xe9\naccuracy_min = 0.9\n')
    r = suite.runpytest(*_args(suite, *extra))
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in r.stderr.str() + r.stdout.str() and "INTERNALERROR" not in r.stdout.str()


def test_findings_run_only_when_their_variants_are_selected(pytester: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """--variants fp32: every finding is skipped, naming what it lacks, and nothing is built."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the subprocess imports this checkout's harness
    pytester.makefile(".ini", pytest=INI)
    pytester.makefile(".toml", budgets=BUDGETS)
    shutil.copy(REPO / "suites" / "test_findings.py", pytester.path / "test_findings.py")
    # a subprocess: the suite imports torch, which cannot be imported again after pytester's in-process
    # run dropped it from sys.modules
    r = pytester.runpytest_subprocess(*_args(pytester, "--variants", "fp32", "-rs"))
    r.assert_outcomes(skipped=8)
    r.stdout.fnmatch_lines(["*compares 8 variants; not selected by --variants: qat-sym-2, qat-sym-4, qat-sym-6, qat-sym-8 and 4 more*",
                            "*compares 3 variants; not selected by --variants: struct-l1-70-ft, struct-l1-70-noft*"])
    assert not (pytester.path / "res").exists()


def test_a_finding_not_reproduced_is_an_xfail_and_a_lost_one_a_regression(pytester: pytest.Pytester,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The findings' verdict fixture on a stand-in finding: holds -> pass and a row; does not hold ->
    xfail with the numbers; held in the --baseline run and not now -> a failed test (a regression)."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makefile(".ini", pytest=INI)
    pytester.makefile(".toml", budgets=BUDGETS)
    module = (REPO / "suites" / "test_findings.py").read_text()
    pytester.makepyfile(test_findings=module + '''

import os

def test_stand_in(verdict):
    broken = os.environ.get("KWS_TEST_BROKEN") == "1"
    verdict(["QAT is below PTQ at [2] bits"] if broken else [], "2 bits QAT 40.0% vs PTQ 50.0%")
''')
    args = _args(pytester, "-k", "stand_in", "-rxf")
    r = pytester.runpytest_subprocess(*args)
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*stand_in*reproduced*2 bits QAT 40.0% vs PTQ 50.0%*"])
    monkeypatch.setenv("KWS_TEST_BROKEN", "1")
    r = pytester.runpytest_subprocess(*args)  # no baseline: the data at hand, not a regression
    r.assert_outcomes(xfailed=1)
    r.stdout.fnmatch_lines(["*XFAIL*not reproduced on this data: QAT is below PTQ at [[]2] bits | 2 bits QAT 40.0%*"])
    first = results.list_runs(pytester.path / "res")[0]
    r = pytester.runpytest_subprocess(*args, "--baseline", str(first))
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*regression: stand_in reproduced in the baseline run and does not now*", "*REGRESSION*"])
    run = results.load_run(results.list_runs(pytester.path / "res")[-1])
    assert run.latest()["finding"]["stand_in"].value == 0.0 and run.findings["stand_in"]["regression"] is True
