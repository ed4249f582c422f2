#!/usr/bin/env python3
"""Fleet detection through Spark (local[2]) against the in-process engine, on one input
(BENCHMARKS.md, "Fleet detection on Spark").

    .venv/bin/python benches/spark_fleet.py [--things 1000] [--hours 24] [--files 8]

Writes the Spark example's generated fleet (rcf-py/examples/spark_fleet.py --write-demo), then,
in one run:
1. `rcf.Fleet` (history off) ingesting every file's datapoints (parsed beforehand) in order;
2. `rcf.FleetShard` in process, each file a micro-batch, grouped by thing, state as bytes (the
   work the Spark job does per thing, without Spark);
   and, for a per-event engine such as Flink, one datapoint per call (first file, 50 things);
3. the Spark job (`rcf.spark.detect`, transformWithStateInPandas, RocksDB state store, file
   source with one file per micro-batch, file sink), timed from the query's start to its end
   (the session's start-up is printed apart);
and prints datapoints per second for each, the ratios, the events (all three must agree), the
thing state's size in bytes (mean and max over things) and the state store's size on disk.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import rcf
import rcf.spark

ROOT = Path(__file__).resolve().parents[1]


def example():
    spec = importlib.util.spec_from_file_location("spark_fleet", ROOT / "rcf-py/examples/spark_fleet.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--things", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--files", type=int, default=8)
    a = ap.parse_args()
    ex = example()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = ex.write_demo(tmp / "demo", a.things, a.hours, a.files)
        profile = json.loads((tmp / "demo/profile.json").read_text())
        files = sorted((tmp / "demo/in").iterdir())
        texts = [f.read_text().splitlines() for f in files]
        rows = [[json.loads(x) for x in t] for t in texts]
        print(f"input: {a.things} things, {a.hours} h at 5-minute datapoints, {n} datapoints, "
              f"{len(files)} files", flush=True)

        fleet = rcf.Fleet(profile, history=False)
        t0 = time.perf_counter()
        want = [e.to_json() for batch in rows for e in fleet.ingest(batch)]
        t_fleet = time.perf_counter() - t0

        shard = rcf.FleetShard(profile)
        states: dict[str, bytes] = {}
        got_shard: list[str] = []
        t0 = time.perf_counter()
        for batch in texts:
            by_thing: dict[str, list[str]] = {}
            for line in batch:
                by_thing.setdefault(line[10 : line.index('"', 10)], []).append(line)
            for thing, lines in by_thing.items():
                r = shard.process(thing, states.get(thing), lines)
                states[thing] = r.state
                got_shard += [e.to_json() for e in r.events]
        t_shard = time.perf_counter() - t0
        assert sorted(got_shard) == sorted(want), "the shard's events differ from the engine's"
        sizes = sorted(len(s) for s in states.values())
        # a per-event engine (Flink's process_element) calls once per datapoint: the first
        # file's datapoints of 50 things, one call each
        few = {f"dev-{i:04d}" for i in range(50)}
        single = [x for x in texts[0] if x[10 : x.index('"', 10)] in few]
        one: dict[str, bytes] = {}
        t0 = time.perf_counter()
        for line in single:
            thing = line[10 : line.index('"', 10)]
            one[thing] = shard.process(thing, one.get(thing), [line]).state
        t_single = (time.perf_counter() - t0) / len(single)

        from pyspark.sql import functions as F

        t0 = time.perf_counter()
        spark = ex.spark_session()
        spark.sparkContext.setLogLevel("ERROR")
        t_session = time.perf_counter() - t0
        out, ckpt = tmp / "out", tmp / "ckpt"
        src = spark.readStream.option("maxFilesPerTrigger", 1).text(str(tmp / "demo/in"))
        events = (
            rcf.spark.detect(src, profile)
            .where(F.col("record") == "event")
            .select(F.col("json").alias("value"))
        )
        t0 = time.perf_counter()
        q = (
            events.writeStream.format("text")
            .option("path", str(out))
            .option("checkpointLocation", str(ckpt))
            .trigger(availableNow=True)
            .start()
        )
        q.awaitTermination()
        t_spark = time.perf_counter() - t0
        got_spark = [r.value for r in spark.read.text(str(out)).collect()]
        spark.stop()
        assert sorted(got_spark) == sorted(want), "Spark's events differ from the engine's"
        store = du(ckpt / "state")

    rate = lambda secs: n / secs  # noqa: E731
    print(f"events: {len(want)} (the engine, the shard and Spark agree, bit for bit)")
    print(f"rcf.Fleet in process:            {rate(t_fleet):>10,.0f} datapoints/s ({t_fleet:.1f} s)")
    print(f"rcf.FleetShard in process:       {rate(t_shard):>10,.0f} datapoints/s ({t_shard:.1f} s)")
    print(f"rcf.FleetShard, one datapoint per call: {1 / t_single:>10,.0f} datapoints/s "
          f"({t_single * 1e6:.0f} us a call, a state decoded and encoded)")
    print(f"Spark local[2], {len(files)} micro-batches: {rate(t_spark):>10,.0f} datapoints/s "
          f"({t_spark:.1f} s; session start {t_session:.1f} s)")
    print(f"ratio Spark / rcf.Fleet: {t_fleet / t_spark:.2f}; Spark / FleetShard: {t_shard / t_spark:.2f}")
    print(f"thing state: mean {sum(sizes) / len(sizes):,.0f} bytes, max {sizes[-1]:,} bytes; "
          f"state store on disk after the run: {store / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
