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
    assert len(want) > 10
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
