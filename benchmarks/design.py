"""The design window the benchmarks that choose defaults work on: never the reported one.

``python -m training evaluate`` reports on the last 10% of a data set's time span. The
scripts that chose the code's defaults (``choose_defaults``, ``history_choice``,
``pair_stats``) drop that window and split what is left the same way: they train before
the validation window and score on it, as the search does.
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass

import pandas as pd

from benchmarks.quality import DATA_SETS, arguments
from training.cli.main import parser as trainer_parser
from training.cli.options import config_of
from training.engines import LOCAL
from training.engines.local import Stages, TrainConfig
from training.evaluation import cases as holdout
from training.evaluation import tuning


@dataclass(frozen=True)
class Design:
    config: TrainConfig
    reported: holdout.Split
    """Only its cutoff is read: where the design window ends."""
    window: tuning.Validation
    stages: Stages

    @property
    def train(self) -> pd.DataFrame:
        return self.window.split.train


def parser(doc: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("dataset", nargs="?", default="online-retail", choices=DATA_SETS)
    return p


def design(dataset: str) -> Design:
    args = trainer_parser().parse_args(["evaluate", *arguments(dataset)])
    config = config_of(args)
    quiet = Stages(io.StringIO())
    frame, _ = LOCAL.load(args.purchases, config, quiet)
    reported = holdout.temporal_split(frame, None, 0.1)
    window = tuning.validation_window(reported.train, 0.1, seed=0)
    print(
        f"{dataset}: trained before {window.split.cutoff}, scored from then to "
        f"{reported.cutoff}; the reported window after it is not read",
        flush=True,
    )
    return Design(config, reported, window, quiet)
