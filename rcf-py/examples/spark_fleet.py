"""Fleet detection as an Apache Spark Structured Streaming job, exactly once across crashes.

Reads datapoint JSON Lines files (the input of ``rcf fleet``: one datapoint per line, naming
its thing) from a directory as they arrive, runs the fleet engine per thing
(``rcf.spark.detect``: ``groupBy(thing).transformWithStateInPandas``, each thing's state in
Spark's RocksDB state store), and writes the violation events as JSON Lines files (one event
per line, the engine's JSON) to a file sink. The checkpoint holds the source offsets, the
state and the sink's commits: killed at any point and restarted on the same checkpoint, the
committed output has every event once.

    pip install 'rcf[spark]'       # pyspark[sql]>=4.0, protobuf, pandas<3
    python spark_fleet.py --write-demo demo/            # a generated fleet and its profile
    python spark_fleet.py --profile demo/profile.json --input demo/in \\
        --output out/ --checkpoint ckpt/ --once

``--once`` processes what is in the input directory and stops (``availableNow``); without it the
job keeps polling (``--trigger-seconds``, the latency knob). Read the output through Spark
(``spark.read.text(out)``), which lists only committed files. For Kafka, replace the source
with ``spark.readStream.format("kafka").option("kafka.bootstrap.servers", B).option("subscribe",
T).load().selectExpr("CAST(value AS STRING) AS value", "CAST(key AS STRING) AS thing")`` and pass
``thing="thing"`` to ``detect`` (the connector is ``--packages
org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version>``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from pathlib import Path

#: 2026-01-01T00:00:00Z, epoch seconds.
T0 = 1_767_225_600

#: The demo's profile: a windowed rule, a per-datapoint rule and a per-thing 3-metric ML model
#: (small, so that models are warm within the first hours). Nothing in it needs the whole fleet.
DEMO_PROFILE = {
    "customMetrics": [{"metricName": "battery", "metricType": "number"}],
    "securityProfiles": [
        {
            "securityProfileName": "fleet-baseline",
            "behaviors": [
                {
                    "name": "message-burst",
                    "metric": "aws:num-messages-sent",
                    "criteria": {
                        "comparisonOperator": "less-than-equals",
                        "value": {"count": 300},
                        "durationSeconds": 300,
                        "consecutiveDatapointsToAlarm": 2,
                        "consecutiveDatapointsToClear": 2,
                    },
                },
                {
                    "name": "no-telnet",
                    "metric": "aws:listening-tcp-ports",
                    "criteria": {
                        "comparisonOperator": "not-in-port-set",
                        "value": {"ports": [23, 2323]},
                    },
                },
                {
                    "name": "traffic-ml",
                    "metric": "aws:num-messages-sent",
                    "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}},
                    "rcf": {
                        "metrics": ["aws:all-bytes-out", "battery"],
                        "numTrees": 20,
                        "sampleSize": 64,
                        "shingleSize": 2,
                    },
                },
            ],
        }
    ],
}


def write_demo(directory: Path, things: int, hours: float, files: int, seed: int = 7) -> int:
    """A fleet of ``things`` reporting every five minutes for ``hours`` (three metrics, ports
    every half hour), with message bursts, an open telnet port and drained batteries injected,
    as ``files`` JSON Lines files of consecutive time ranges in ``directory/in`` (modification
    times one second apart, in order: Spark's file source orders files by them) and the profile
    as ``directory/profile.json``. Returns the number of datapoints."""
    rng = random.Random(seed)
    windows = int(hours * 12)
    inp = directory / "in"
    inp.mkdir(parents=True, exist_ok=True)
    (directory / "profile.json").write_text(json.dumps(DEMO_PROFILE, indent=1))
    base = [(rng.uniform(40, 90), rng.uniform(150, 250), rng.uniform(60, 95)) for _ in range(things)]
    # (thing, first window, windows, kind)
    incidents = [
        (rng.randrange(things), rng.randrange(windows // 3, windows - 8), rng.randrange(2, 6), kind)
        for kind in ["burst", "telnet", "battery"] * max(1, things // 60)
    ]
    lines: list[tuple[int, str]] = []
    for w in range(windows):
        for i, (msgs0, size, battery0) in enumerate(base):
            ts = T0 + 300 * w + (i * 7) % 50
            phase = (w + 11 * i) * 2 * math.pi / 288
            msgs = max(0, int(msgs0 * (1 + 0.3 * math.sin(phase)) + rng.gauss(0, 3)))
            battery = battery0 - 0.01 * w + rng.gauss(0, 0.3)
            ports = [22, 443]
            for thing, start, span, kind in incidents:
                if thing == i and start <= w < start + span:
                    if kind == "burst":
                        msgs *= 12
                    elif kind == "telnet":
                        ports = [22, 23, 443]
                    else:
                        battery -= 40
            name = f"dev-{i:04d}"
            dps = [
                ("aws:num-messages-sent", {"count": msgs}),
                ("aws:all-bytes-out", {"count": int(msgs * (size + rng.gauss(0, 5)))}),
                ("battery", {"number": round(battery, 3)}),
            ]
            if w % 6 == 0 or ports != [22, 443]:
                dps.append(("aws:listening-tcp-ports", {"ports": ports}))
            for metric, value in dps:
                line = json.dumps(
                    {"thing": name, "metric": metric, "value": value, "timestamp": ts},
                    separators=(",", ":"),
                )
                lines.append((w, line))
    per_file = math.ceil(windows / files)
    for f in range(files):
        chunk = [line for w, line in lines if f * per_file <= w < (f + 1) * per_file]
        path = inp / f"part-{f:03d}.jsonl"
        path.write_text("".join(line + "\n" for line in chunk))
        stamp = T0 + f  # in order, a second apart
        os.utime(path, (stamp, stamp))
    return len(lines)


def spark_session(master: str = "local[2]", partitions: int = 2):
    """A local session set up as the job needs it: the RocksDB state store (required by
    transformWithStateInPandas), a fixed number of shuffle partitions (it is part of the
    checkpoint), no empty micro-batches, no UI, Python workers running this interpreter."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(master)
        .appName("rcf-fleet")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config(
            "spark.sql.streaming.stateStore.providerClass",
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
        )
        .config("spark.sql.session.timeZone", "UTC")
        # transformWithState in processing-time mode (for state TTL) otherwise keeps running
        # empty micro-batches, and an availableNow query never ends (pyspark 4.3)
        .config("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        .getOrCreate()
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", type=Path, help="the fleet configuration (rcf fleet --profile)")
    ap.add_argument("--input", type=Path, help="directory of datapoint JSON Lines files")
    ap.add_argument("--output", type=Path, help="directory of the events' JSON Lines files")
    ap.add_argument("--checkpoint", type=Path, help="the query's checkpoint directory")
    ap.add_argument("--once", action="store_true", help="process what is there, then stop")
    ap.add_argument("--trigger-seconds", type=float, default=0.0, help="micro-batch interval")
    ap.add_argument("--max-files-per-trigger", type=int, default=1)
    ap.add_argument("--api", default="transformWithState",
                    choices=["transformWithState", "applyInPandasWithState"])
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--write-demo", type=Path, metavar="DIR",
                    help="write a generated fleet (DIR/in) and its profile (DIR/profile.json)")
    ap.add_argument("--things", type=int, default=300)
    ap.add_argument("--hours", type=float, default=12.0)
    ap.add_argument("--files", type=int, default=6)
    a = ap.parse_args(argv)
    if a.write_demo:
        n = write_demo(a.write_demo, a.things, a.hours, a.files)
        print(f"rcf: wrote {n} datapoints of {a.things} things in {a.files} files to "
              f"{a.write_demo / 'in'}, the profile to {a.write_demo / 'profile.json'}",
              file=sys.stderr)
        return 0
    missing = [k for k in ("profile", "input", "output", "checkpoint") if getattr(a, k) is None]
    if missing:
        ap.error("missing " + ", ".join("--" + k for k in missing))
    profile = json.loads(a.profile.read_text())

    import rcf.spark
    from pyspark.sql import functions as F

    spark = spark_session(a.master)
    spark.sparkContext.setLogLevel("ERROR")
    lines = (
        spark.readStream.option("maxFilesPerTrigger", a.max_files_per_trigger)
        .text(str(a.input))
    )
    found = rcf.spark.detect(lines, profile, api=a.api)
    events = found.where(F.col("record") == "event").select(F.col("json").alias("value"))
    writer = (
        events.writeStream.format("text")
        .option("path", str(a.output))
        .option("checkpointLocation", str(a.checkpoint))
        .outputMode("append")
    )
    if a.once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{a.trigger_seconds} seconds")
    query = writer.start()
    print(f"rcf: query {query.id} started", file=sys.stderr, flush=True)
    query.awaitTermination()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
