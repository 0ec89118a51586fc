"""``recsvc export``: both formats, audiences by recency, resuming, and Redis errors."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import orjson
import pytest

from recsvc.cli.main import main
from recsvc.config import Settings
from tests.conftest import free_port
from training.publish import ModelPayload


def lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_text().splitlines()]


def test_exports_a_customer_list_as_json_lines(
    settings: Settings, published: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("customer_id\nc0-1\nnobody\nc1-2\n")
    out = tmp_path / "out.jsonl"
    assert main(["export", "--customers", str(ids), "--out", str(out), "-k", "3"], settings) == 0
    rows = lines(out)
    assert [r["customer_id"] for r in rows] == ["c0-1", "nobody", "c1-2"]
    assert rows[1]["fallback"] is True and rows[0]["fallback"] is False
    assert all(r["model_version"] == published for r in rows)
    assert all(len(r["recommendations"]) == 3 for r in rows)  # type: ignore[arg-type]
    printed, progress = capsys.readouterr()
    assert "exported: customers=3" in printed
    assert "exported 3 customers" in progress


def test_exports_an_audience_by_recency_as_csv(
    settings: Settings, published: str, block_model: ModelPayload, tmp_path: Path
) -> None:
    as_of = date(2024, 3, 20)
    today = (as_of - date(1970, 1, 1)).days
    expected = {
        c for c, (_, days, _n) in block_model.histories.items() if 30 <= today - max(days) <= 35
    }
    assert expected  # the fixture's data has such customers
    out = tmp_path / "winback.csv"
    args = ["export", "--audience", "win-back", "--min-days", "30", "--max-days", "35"]
    code = main([*args, "--as-of", as_of.isoformat(), "--out", str(out), "-k", "2"], settings)
    assert code == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert {r["customer_id"] for r in rows} == expected
    assert all(r["item_1_id"] and r["item_2_id"] for r in rows)
    # Post-purchase, 0 days: who bought on the model's last day (the loner, on March 1st).
    pp = tmp_path / "pp.jsonl"
    args = ["export", "--audience", "post-purchase", "--days", "0", "--out", str(pp)]
    assert main(args, settings) == 0
    assert [r["customer_id"] for r in lines(pp)] == ["lonely"]


def test_resume_skips_what_an_interrupted_run_wrote(
    settings: Settings, published: str, block_model: ModelPayload, tmp_path: Path
) -> None:
    ids = tmp_path / "ids.txt"
    customers = sorted(block_model.histories)
    ids.write_text("\n".join(customers) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["export", "--customers", str(ids), "--out", str(out)], settings) == 0
    full = out.read_text().splitlines()
    # As if killed mid-write: two whole lines and a torn third.
    out.write_text("\n".join(full[:2]) + "\n" + full[2][:15])
    assert main(["export", "--customers", str(ids), "--out", str(out), "--resume"], settings) == 0
    got = [str(r["customer_id"]) for r in lines(out)]
    assert sorted(got) == customers  # each exactly once, the torn one written again


def test_redis_unreachable_fails_cleanly_with_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", data_dir=tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("a\n")
    code = main(["export", "--customers", str(ids), "--out", str(tmp_path / "o.jsonl")], dead)
    assert code == 3
    assert "rerun with --resume" in capsys.readouterr().err


def test_csv_rows_carry_each_items_title_price_link_and_picture(
    settings: Settings, published: str, block_model: ModelPayload, tmp_path: Path
) -> None:
    facts = tmp_path / "facts.csv"
    facts.write_text(
        "item_id,title,url,image_url\n"
        + "".join(
            f"{i},Item {i},https://shop.example/p/{i},https://cdn.example/{i}.jpg\n"
            for i in block_model.item_ids
        )
    )
    assert main(["catalog", "--file", str(facts)], settings) == 0
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(sorted(block_model.histories)[:5]) + "\n")
    out = tmp_path / "mail.csv"
    assert main(["export", "--customers", str(ids), "--out", str(out), "-k", "3"], settings) == 0
    with out.open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    parts = ("id", "title", "price", "url", "image", "currency")
    fields = [f"item_{n}_{x}" for n in (1, 2, 3) for x in parts]
    assert reader.fieldnames == ["customer_id", "recommendation_id", "model_version", "fallback",
                                 *fields]  # fmt: skip
    assert len(rows) == 5
    for r in rows:
        for n in (1, 2, 3):
            item = r[f"item_{n}_id"]
            assert r[f"item_{n}_title"] == f"Item {item}"
            assert r[f"item_{n}_url"] == f"https://shop.example/p/{item}"
            assert r[f"item_{n}_image"] == f"https://cdn.example/{item}.jpg"
