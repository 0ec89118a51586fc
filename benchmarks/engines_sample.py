"""Both engines scored on the same evaluation sample of a large data set.

    .venv/bin/python -m benchmarks.engines_sample synthetic-20M --spark-memory 14g

The Spark engine evaluates on a seeded sample of customers (``--eval-sample-lines``, 2M
lines by default) where the local engine evaluates on every line, so their ``train``
numbers on the 20M set are not of the same cases. This reads and cleans the set with
Spark, draws that sample once, and runs the same assessment (split, cases, baselines) on
it with each engine's fit: the like-for-like comparison. Prints the headline measures
and writes them to ``benchmarks/out/engines_sample.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

from benchmarks.engines import DATASETS
from benchmarks.scale import OUT
from training.cli.main import parser as trainer_parser
from training.cli.options import config_of
from training.engines import LOCAL
from training.engines.local import Stages
from training.engines.spark.engine import SparkEngine
from training.evaluation import evaluate as ev
from training.evaluation.assessment import EvalOptions, assess


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument("--spark-memory", default="6g")
    p.add_argument("--shuffle-partitions", default="64")
    a = p.parse_args()
    args = trainer_parser().parse_args(
        ["evaluate", *DATASETS[a.dataset], "--method", "cooccurrence"]
    )
    config = replace(config_of(args), negatives=0)
    spark = SparkEngine(
        "local[2]",
        {
            "spark.driver.memory": a.spark_memory,
            "spark.sql.shuffle.partitions": a.shuffle_partitions,
        },
    )
    stages = Stages(sys.stderr)
    frame, report = spark.load(args.purchases, config, stages)
    sample = spark.evaluation_frame(frame, seed=0)
    print(f"sample: {len(sample):,} of {report.rows_kept:,} clean lines", flush=True)
    out = {"dataset": a.dataset, "sample_lines": len(sample), "of": report.rows_kept}
    for name, fit in (("local", LOCAL.fit), ("spark", spark.fit)):
        t0 = time.perf_counter()
        got = assess(sample, config, stages, EvalOptions(), fit=fit)
        served = ev.headline(got.served())
        out[name] = {"served": served, "seconds": round(time.perf_counter() - t0, 1)}
        print(name, json.dumps(out[name]), flush=True)
        got.release()
    (OUT / "engines_sample.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
