"""rcf.spark on a real Spark (PySpark, local[2]): the example job, killed with kill -9 in the
middle of a micro-batch and restarted on its checkpoint, commits exactly the events the
in-process rcf.Fleet raises on the same input, bit for bit: none lost, none twice.

Needs pyspark (with protobuf and pandas < 3) and a Java runtime: `make test` installs the
Python parts; outside CI a missing one is a visible skip, in CI a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

import rcf

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "spark_fleet.py"


@pytest.fixture(scope="module")
def spark_ready() -> None:
    missing = [m for m in ("pyspark", "google.protobuf", "pandas") if not _has(m)]
    if shutil.which("java") is None:
        missing.append("java")
    if missing:
        msg = f"Spark tests need {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _example():
    spec = importlib.util.spec_from_file_location("spark_fleet", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _reference(demo: Path) -> list[str]:
    """The events of one in-process rcf.Fleet fed every file in order."""
    fleet = rcf.Fleet(json.loads((demo / "profile.json").read_text()), history=False)
    out: list[str] = []
    for path in sorted((demo / "in").iterdir()):
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        out += [e.to_json() for e in fleet.ingest(rows)]
    return out


def _committed(output: Path) -> list[str]:
    """The lines of the files the file sink committed (listed in its _spark_metadata log, as
    Spark's own reader honours it: files of a batch that never committed are not there)."""
    files: set[str] = set()
    meta = output / "_spark_metadata"
    logs = [p for p in meta.iterdir() if p.name.split(".")[0].isdigit()]
    for log in sorted(logs, key=lambda p: int(p.name.split(".")[0])):
        rows = log.read_text().splitlines()[1:]  # after the "v1" header
        for row in rows:
            entry = json.loads(row)
            path = unquote(urlparse(entry["path"]).path)
            if entry["action"] == "add":
                files.add(path)
            else:
                files.discard(path)
    return [line for f in sorted(files) for line in Path(f).read_text().splitlines()]


def _batches(directory: Path) -> set[int]:
    if not directory.exists():
        return set()
    return {int(p.name) for p in directory.iterdir() if p.name.isdigit()}


def _job(demo: Path, out: Path, ckpt: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(EXAMPLE),
        "--profile",
        str(demo / "profile.json"),
        "--input",
        str(demo / "in"),
        "--output",
        str(out),
        "--checkpoint",
        str(ckpt),
        *extra,
    ]


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def _check(got: list[str], want: list[str]) -> None:
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} events committed twice"
    missing = set(want) - set(got)
    extra = set(got) - set(want)
    assert not missing and not extra, f"{len(missing)} events lost, {len(extra)} not the engine's"
    assert sorted(got) == sorted(want)


def test_killed_mid_batch_then_restarted_commits_every_event_once(spark_ready, tmp_path):
    demo = tmp_path / "demo"
    n = _example().write_demo(demo, things=300, hours=12, files=6)
    assert n > 100_000
    want = _reference(demo)
    kinds = {(json.loads(e)["behavior"]["name"], json.loads(e)["violationEventType"]) for e in want}
    assert {b for b, _ in kinds} == {"message-burst", "no-telnet", "traffic-ml"}, kinds
    out, ckpt, log = tmp_path / "out", tmp_path / "ckpt", tmp_path / "run1.log"
    # 1. the job in continuous mode (a micro-batch per file), in its own process group
    with log.open("wb") as sink:
        job = subprocess.Popen(
            _job(demo, out, ckpt, "--trigger-seconds", "0"),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    killed_in = None
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and job.poll() is None:
            planned, done = _batches(ckpt / "offsets"), _batches(ckpt / "commits")
            # batch 3 planned (its offsets written) and not committed: it is running
            if 3 in planned and 3 not in done:
                time.sleep(0.3)
                if 3 not in _batches(ckpt / "commits"):
                    killed_in = 3
                    break
            time.sleep(0.05)
    finally:
        # the whole group: the driver, the JVM and its Python workers
        try:
            os.killpg(job.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        job.wait(timeout=30)
    assert job.returncode == -signal.SIGKILL, f"the job ended by itself:\n{_tail(log)}"
    assert killed_in == 3, f"never caught batch 3 in flight:\n{_tail(log)}"
    assert 3 not in _batches(ckpt / "commits")
    before = _committed(out)
    assert 0 < len(before) < len(want), "the first run committed part of the events"
    # 2. restarted on the same checkpoint: what is left, then stop
    log2 = tmp_path / "run2.log"
    with log2.open("wb") as sink:
        rerun = subprocess.run(
            _job(demo, out, ckpt, "--once"),
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=240,
            start_new_session=True,
        )
    assert rerun.returncode == 0, _tail(log2)
    assert _batches(ckpt / "commits") == set(range(6)), "one micro-batch per file, all committed"
    _check(_committed(out), want)


def test_apply_in_pandas_with_state_gives_the_same_events(spark_ready, tmp_path):
    demo = tmp_path / "demo"
    _example().write_demo(demo, things=60, hours=8, files=3)
    want = _reference(demo)
    # enough to compare: ML and rule events both (8 with the fleet's steady-state levels)
    names = {json.loads(e)["behavior"]["name"] for e in want}
    assert len(want) >= 6 and {"traffic-ml", "message-burst"} <= names, want
    out, ckpt, log = tmp_path / "out", tmp_path / "ckpt", tmp_path / "run.log"
    with log.open("wb") as sink:
        run = subprocess.run(
            _job(demo, out, ckpt, "--once", "--api", "applyInPandasWithState"),
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=240,
            start_new_session=True,
        )
    assert run.returncode == 0, _tail(log)
    _check(_committed(out), want)


class _Value:
    """A stand-in for Spark's ValueState."""

    def __init__(self) -> None:
        self.value: tuple | None = None

    def exists(self) -> bool:
        return self.value is not None

    def get(self) -> tuple:
        assert self.value is not None
        return self.value

    def update(self, v: tuple) -> None:
        self.value = v


class _Handle:
    def __init__(self) -> None:
        self.asked: list = []
        self.state = _Value()

    def getValueState(self, name, schema, ttl=None):  # noqa: N802 (Spark's name)
        self.asked.append((name, schema, ttl))
        return self.state


class _GroupState:
    def __init__(self, timed_out: bool = False) -> None:
        self.hasTimedOut = timed_out
        self.value: tuple | None = None
        self.timeout = None
        self.removed = False

    @property
    def exists(self) -> bool:
        return self.value is not None

    @property
    def get(self) -> tuple:
        return self.value

    def update(self, v: tuple) -> None:
        self.value = v

    def remove(self) -> None:
        self.removed, self.value = True, None

    def setTimeoutDuration(self, ms: int) -> None:  # noqa: N802 (Spark's name)
        self.timeout = ms


def _demo_lines(things: int = 2, hours: float = 3) -> tuple[dict, list[str]]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        _example().write_demo(Path(d), things=things, hours=hours, files=1)
        profile = json.loads((Path(d) / "profile.json").read_text())
        lines = (Path(d) / "in" / "part-000.jsonl").read_text().splitlines()
    return profile, lines


def test_the_processor_keeps_state_with_a_ttl_and_emits_the_schema(spark_ready):
    import pandas as pd

    import rcf.spark

    profile, lines = _demo_lines()
    p = rcf.spark.FleetProcessor(profile, ttl_hours=2, verdicts=True)
    h = _Handle()
    p.init(h)
    assert h.asked == [("rcf_thing", "state binary", 2 * 3_600_000)]
    mine = [x for x in lines if '"dev-0000"' in x]
    half = len(mine) // 2
    frames = list(p.handleInputRows(("dev-0000",), iter([pd.DataFrame({"value": mine[:half]})]), None))
    state = h.state.get()[0]
    assert isinstance(state, bytes) and state.startswith(b"RCFS")
    frames += list(
        p.handleInputRows(("dev-0000",), iter([pd.DataFrame({"value": mine[half:] + ["{bad"]})]), None)
    )
    out = pd.concat(frames)
    assert list(out.columns) == rcf.spark.OUTPUT_COLUMNS
    assert {"verdict", "rejected"} <= set(out["record"])
    assert (out["record"] == "rejected").sum() == 1
    assert out.loc[out["record"] == "verdict", "violationEventTime"].is_monotonic_increasing


def test_the_group_function_times_out_silent_things(spark_ready):
    import rcf.spark

    profile, lines = _demo_lines()
    fn = rcf.spark.group_function(profile, ttl_hours=1)
    import pandas as pd

    st = _GroupState()
    list(fn(("dev-0001",), iter([pd.DataFrame({"value": [x for x in lines if '"dev-0001"' in x]})]), st))
    assert st.exists and st.timeout == 3_600_000
    silent = _GroupState(timed_out=True)
    silent.value = st.value
    assert list(fn(("dev-0001",), iter([]), silent)) == [] and silent.removed
    # a line without a thing name is rejected, not a crash
    none = _GroupState()
    frames = list(fn((None,), iter([pd.DataFrame({"value": ['{"metric": "x"}']})]), none))
    assert frames[0]["record"].tolist() == ["rejected"] and not none.exists
