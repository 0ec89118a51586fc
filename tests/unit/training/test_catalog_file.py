"""A catalog file's optional columns: the price's currency is kept per item, upper-cased,
and a value that is not an ISO 4217 code skips its row with a counted reason."""

from __future__ import annotations

from pathlib import Path

from training.stages.catalog import read_catalog


def test_currency_codes_are_kept_and_bad_ones_skip_their_row(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        "item_id,title,category,price,available,currency\n"
        "A,Mug,mugs,5.00,true,eur\n"
        "B,Tea,tea,3.00,true,\n"
        "C,Spoon,cutlery,1.00,true,euro\n"
    )
    frame, report = read_catalog(path)
    assert frame["item_id"].tolist() == ["A", "B"]
    assert frame["currency"].tolist() == ["EUR", ""]
    assert report.skipped == {"bad_currency": 1}
