"""The example script runs and finds the injected anomalies (figure written to a temp dir)."""

import importlib.util
import json
import pathlib

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def test_fleet_example_runs_and_draws(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("fleet_telemetry", EXAMPLES / "fleet_telemetry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "figure.png"
    verdicts = module.main(str(out))
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "torque spike: alarm" in printed and "message-rate burst: alarm" in printed
    assert verdicts["is_anomaly"].sum() < 60


def test_notebook_mirrors_the_script():
    nb = json.loads((EXAMPLES / "fleet_telemetry.ipynb").read_text())
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "rcf.Detector(" in code and "process_many" in code and "def main" in code
