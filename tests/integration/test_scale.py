"""Large catalogs: no path is quadratic in items, the method follows the memory, and a
run that cannot fit its budget is refused cleanly (exit 2) before it allocates."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from training import memory
from training.cli.main import main as trainer_main
from training.engines.local import Stages, TrainConfig, fit
from training.errors import EXIT_BAD_INPUT
from training.neighbours.ease import dense_ease_bytes, ease_solver
from training.samples.synthetic import generate
from training.stages import ingest

ROOT = Path(__file__).resolve().parents[2]
THEME = 50


def synthetic_frame(
    lines: int, customers: int, items: int, seed: int = 0, zipf: float = 1.0
) -> pd.DataFrame:
    frame, _ = generate(lines, customers, items, theme_size=THEME, zipf=zipf, seed=seed)
    return pd.DataFrame(
        {
            "customer": frame["customer_id"].astype(str),
            "item": frame["item_id"].astype(str),
            "order": frame["order_id"].astype(str),
            "timestamp": frame["timestamp"],
            "quantity": frame["quantity"].astype(float),
            "price": frame["price"],
        }
    )


def test_budget_parses_sizes_and_refuses_too_small() -> None:
    assert memory.parse_size("3.5GiB") == int(3.5 * 2**30)
    assert memory.parse_size("4Gi") == 4 * 2**30
    assert memory.parse_size("3500MB") == 3_500_000_000
    assert memory.parse_size("1024") == 1024
    with pytest.raises(memory.MemoryBudgetError.__mro__[1], match="not a memory size"):
        memory.parse_size("lots")
    with pytest.raises(memory.MemoryBudgetError.__mro__[1], match="too small"):
        memory.Budget.parse("10MiB")


def test_a_stage_that_cannot_fit_is_refused_before_it_runs() -> None:
    budget = memory.Budget(memory.rss() + 64 * memory.MIB)
    budget.require("als", 16 * memory.MIB, "small")  # fits: no error
    with pytest.raises(memory.MemoryBudgetError, match="raise --memory-budget") as info:
        budget.require("neighbours", 2 * 2**30, "lists for 1,000,000 items")
    assert "neighbours stage needs about 2.00 GiB" in str(info.value)


def test_the_cli_refuses_a_file_too_large_for_its_budget_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.parquet"
    synthetic_frame(2_000_000, 20_000, 2_000).to_parquet(path)
    args = ["train", "--purchases", str(path), "--customer-col", "customer",
            "--item-col", "item", "--order-col", "order", "--timestamp-col", "timestamp",
            "--dry-run"]  # fmt: skip
    # 2M lines need ~190 MiB to read; the budget leaves far less than that free.
    tight = f"{max(memory.rss() // memory.MIB + 8, 256)}MiB"
    code = trainer_main([*args, "--memory-budget", tight])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT == 2
    assert "read stage needs about" in err and "raise --memory-budget" in err
    assert trainer_main([*args, "--memory-budget", "tiny"]) == EXIT_BAD_INPUT
    assert "not a memory size" in capsys.readouterr().err


def test_ease_solver_is_chosen_from_the_memory_estimate() -> None:
    assert dense_ease_bytes(10_000) == 3 * 8 * 10_000**2
    assert ease_solver(3_000, 2 * 2**30) == "dense"
    assert ease_solver(30_000, 2 * 2**30) == "local"
    # The same catalog flips with the budget, never with a fixed item count.
    assert ease_solver(10_000, dense_ease_bytes(10_000)) == "dense"
    assert ease_solver(10_000, dense_ease_bytes(10_000) - 1) == "local"


def test_small_catalogs_train_with_dense_ease() -> None:
    frame = synthetic_frame(20_000, 500, 400)
    config = TrainConfig(columns=ingest.Columns(customer="customer", item="item"))
    payload = fit(frame, config, Stages(io.StringIO()), for_serving=False)
    assert payload.meta["neighbour_solver"] == "dense"


CATALOG_30K = """
import io, resource, sys
import numpy as np
from tests.integration.test_scale import synthetic_frame, THEME
from training.stages import ingest
from training.engines.local import Stages, TrainConfig, fit
# Address space capped below one 35,000 x 35,000 float32 matrix (4.9 GB): any path
# that made an items x items array would fail here with MemoryError.
cap = 4 << 30
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
frame = synthetic_frame(300_000, 10_000, 35_000, zipf=0.5)
config = TrainConfig(columns=ingest.Columns(customer="customer", item="item"))
payload = fit(frame, config, Stages(io.StringIO()))
import pandas as pd
items = np.array(payload.item_ids).astype(int)
nb = payload.neighbours
print(payload.meta["neighbour_solver"], len(items), sep=",")
# Known answer: an item's complements are its theme's items.
codes = pd.Index(payload.item_ids).get_indexer(frame["item"])
pop = np.argsort(-np.bincount(codes, minlength=len(items)))[:50]
same = total = 0
for i in pop:
    idx, _ = nb.row(int(i))
    idx = idx[:10]
    same += int(np.sum(items[idx] // THEME == items[i] // THEME))
    total += idx.size
print(same / max(total, 1))
alts = payload.alternatives
# Computed at scale, then dropped: these items have no category or title to say their kind.
dropped = payload.meta["catalog"]["alternatives_of_another_kind_dropped"]
print(int((alts.indices >= 0).sum()) + dropped if alts is not None else -1)
"""


@pytest.mark.slow
def test_a_35k_item_catalog_trains_in_seconds_with_no_items_squared_array() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CATALOG_30K)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    solver_line, share, alternatives = proc.stdout.strip().splitlines()
    solver, n_items = solver_line.split(",")
    assert solver == "local"
    assert int(n_items) >= 30_000
    assert float(share) >= 0.8, "complements of popular items stay within their theme"
    assert int(alternatives) > 0
