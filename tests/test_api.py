"""The public API is small and pinned: changing it is a decision, not an accident."""

import scalehp


def test_public_names():
    assert sorted(scalehp.__all__) == [
        "Experiment",
        "Infeasible",
        "LocalTrial",
        "Plan",
        "Results",
        "ResultsError",
        "RunError",
        "ScalehpError",
        "SpecError",
        "Trial",
        "compile_plan",
        "load_experiment",
        "read_results",
        "run",
    ]
    for name in scalehp.__all__:
        assert getattr(scalehp, name) is not None


def test_importing_scalehp_does_not_import_ray():
    import subprocess
    import sys

    code = "import scalehp, scalehp.cli, scalehp.analysis.tables, sys; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_error_tree():
    assert issubclass(scalehp.SpecError, scalehp.ScalehpError) and issubclass(scalehp.SpecError, ValueError)
    assert issubclass(scalehp.RunError, scalehp.ScalehpError)
    assert issubclass(scalehp.ResultsError, scalehp.ScalehpError)
