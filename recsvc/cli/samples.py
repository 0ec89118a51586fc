"""``recsvc sample``: the bundled sample, or a generated shop's export (``--platform``)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from recsvc.cli.common import EXIT_BAD_INPUT, fail, sample_path


def write_sample(out: Path) -> int:
    """Writes the bundled purchase sample (the demo's data) where a user can train on it."""
    if out.exists():
        return fail(EXIT_BAD_INPUT, f"{out} exists; choose another --out or remove it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".gz":
            shutil.copyfile(sample_path(), out)
        else:
            with gzip.open(sample_path(), "rb") as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    except OSError as exc:
        return fail(EXIT_BAD_INPUT, f"cannot write {out}: {exc}")
    print(
        f"wrote {out}: 59,985 purchase lines of the UCI Online Retail data set "
        "(Chen, 2015, CC BY 4.0); train on it with --preset online-retail"
    )
    return 0


def write_shop(platform: str, out: Path) -> int:
    """A generated shop's exports in ``platform``'s format, in the directory ``out``."""
    from training.samples.shops import Shop, write_orders, write_products

    orders, products = out / "orders_export.csv", out / "products_export.csv"
    for path in (orders, products):
        if path.exists():
            return fail(EXIT_BAD_INPUT, f"{path} exists; choose another --out or remove it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        shop = Shop()
        write_orders(shop, platform, orders)
        write_products(shop, platform, products)
    except OSError as exc:
        return fail(EXIT_BAD_INPUT, f"cannot write to {out}: {exc}")
    print(
        f"wrote {orders} ({len(shop.lines):,} order lines, refunds and cancellations "
        f"included) and {products} ({len(shop.products)} products), as {platform} exports "
        f"them; train with --preset {platform}"
    )
    return 0
