"""The storefront widget in real headless Chromium: a shop page on another origin loads
``/widget.js`` from the service, which renders the cart's two slots with attribution in
every link; a service that is down, or an origin it does not allow, leaves the page as
it was, with no error thrown."""

from __future__ import annotations

import html
import http.server
import json
import os
import re
import shutil
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from recsvc.config import Settings
from tests.conftest import ADMIN_AUTH, ADMIN_TOKEN, free_port, render, uvicorn_server
from training.publish import ModelPayload, Publisher

PAGE = """<!doctype html><html lang="en-GB"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Shop</title>
<style>body{font-family:Georgia,serif;margin:24px;max-width:860px} THEME</style></head>
<body>
<h1 id="shop">Your cart: a plain mug</h1>
<script>
function pageError(what) {
  var p = document.createElement('p');
  p.className = 'page' + '-error';  /* the class is only ever in the DOM, not in this text */
  p.textContent = what;
  document.body.appendChild(p);
}
window.addEventListener('error', function (e) { pageError(e.message); });
window.addEventListener('unhandledrejection', function () { pageError('rejected'); });
document.addEventListener('recsvc:add', function (e) {
  document.getElementById('added').textContent = JSON.stringify(e.detail);
});
document.addEventListener('recsvc:render', function (e) {
  setTimeout(function () { probe(e.target.shadowRoot); }, 2000);  /* pictures settled */
});
function probe(root) {
  /* what a test can read of the shadow root: a copy of its cards, and computed styles */
  var copy = document.createElement('div');
  copy.id = 'copy';
  copy.hidden = true;
  copy.innerHTML = root.querySelector('.recsvc-widget').outerHTML;
  document.body.appendChild(copy);
  function css(selector, prop) {
    var node = root.querySelector(selector);
    return node ? getComputedStyle(node)[prop] : null;
  }
  var found = {
    title_size: css('.recsvc-item-title', 'fontSize'),
    title_color: css('.recsvc-item-title', 'color'),
    card_display: css('.recsvc-item', 'display'),
    card_width: root.querySelector('.recsvc-item').getBoundingClientRect().width,
    image_width: root.querySelector('.recsvc-media').getBoundingClientRect().width,
    page_list_style: getComputedStyle(document.getElementById('own')).listStyleType,
    focusable: root.querySelector('.recsvc-link').tabIndex,
    placeholders: root.querySelectorAll('.recsvc-placeholder').length,
    images: root.querySelectorAll('img.recsvc-image').length
  };
  document.getElementById('probe').textContent = JSON.stringify(found);
  var button = root.querySelector('.recsvc-add');
  if (button) button.click();
}
</script>
<ul id="own"><li>The page's own list keeps its bullets</li></ul>
<div data-recsvc-cart data-items="M1" data-k="3" data-upsell-k="1" data-visitor-id="v-1"
     ATTRS></div>
<pre id="probe"></pre><pre id="added"></pre>
<script src="SERVICE/widget.js" data-endpoint="SERVICE"
        data-link="https://shop.example/p/{item_id}"></script>
</body></html>
"""

AGGRESSIVE = """* { font-size: 40px !important; color: red !important }
* { list-style: square !important }
img { width: 900px !important; height: 600px !important }
li { display: inline !important; margin: 40px !important }
a { text-decoration: underline wavy !important } h3 { font-size: 60px !important }
div { padding: 30px !important; border: 5px solid lime !important }"""
"""A store theme that styles every element it can reach."""


def picture(size: int = 120) -> bytes:
    """A PNG of a cup of tea's colours (a warm gradient), made here: no file to ship."""
    rows = b"".join(
        b"\x00" + bytes(c for x in range(size) for c in (150 + x // 2, 90 + y // 3, 40 + x // 4))
        for y in range(size)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = picture()
"""The picture the page's server gives the tea (the spoon's picture is missing)."""

ERROR = 'class="page-error"'
WIDGET = 'class="recsvc-widget"'


@contextmanager
def shop_page(service: str, port: int = 0, theme: str = "", attrs: str = "") -> Iterator[str]:
    """A page on its own origin (``port``, or any free one) embedding ``service``'s widget,
    with ``theme`` in its style sheet and ``attrs`` on the widget's container."""
    html = (
        PAGE.replace("SERVICE", service).replace("THEME", theme).replace("ATTRS", attrs)
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = (PNG, "image/png") if self.path == "/tea.png" else (html, "text/html")
            if self.path not in ("/", "/tea.png"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-type", f"{kind}; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port or free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def widget_shop(settings: Settings, theme: str = "", attrs: str = "") -> Iterator[tuple[str, str]]:
    """The service (admin API on) and a shop page embedding its widget, on an origin the
    service allows: ``(service, page)``."""
    page_port = free_port()
    allowed = settings.model_copy(
        update={
            "cors_origins": [f"http://127.0.0.1:{page_port}"],
            "admin_token": SecretStr(ADMIN_TOKEN),
        }
    )
    with (
        uvicorn_server(allowed) as service,
        shop_page(service, page_port, theme=theme, attrs=attrs) as page,
    ):
        yield service, page


def links(dom: str, slot: str) -> list[str]:
    section = re.search(rf'data-slot="{slot}".*?</section>', dom, re.S)
    return re.findall(r'href="([^"]+)"', section.group(0)) if section else []


def pre(dom: str, name: str) -> dict[str, Any]:
    found = re.search(rf'<pre id="{name}">(.*?)</pre>', dom, re.S)
    assert found is not None and found.group(1), dom
    loaded: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return loaded


def with_pictures(service: str, page: str) -> None:
    """The catalog's pictures, links and currency, set through the admin API as a store's
    catalog sync would: the tea has a picture, the spoon's is missing."""
    done = httpx.post(
        f"{service}/v1/admin/catalog",
        headers=ADMIN_AUTH,
        json={
            "items": [
                {"item_id": "T1", "image_url": f"{page}tea.png", "currency": "EUR"},
                {"item_id": "SP", "image_url": f"{page}missing.png", "currency": "EUR"},
                {"item_id": "M2", "currency": "EUR"},
                {"item_id": "M3", "currency": "EUR"},
            ]
        },
    )
    assert done.status_code == 200, done.text


SHOTS = os.environ.get("RECSVC_WIDGET_SHOTS", "")
"""Where the screenshots go besides the test's own directory: ``docs/`` when the README's
pictures are made again (``RECSVC_WIDGET_SHOTS=docs pytest tests/system/test_widget.py``)."""


def shoot(page: str, profile: Path, name: str, size: str, out: Path) -> Path:
    shot = out / name
    render(page, profile, f"--window-size={size}", "--hide-scrollbars", f"--screenshot={shot}")
    assert shot.stat().st_size > 5_000
    if SHOTS:
        shutil.copy(shot, Path(SHOTS) / name)
    return shot


def test_the_widget_renders_styled_cards_with_attribution_in_chromium(
    chromium: str,
    settings: Settings,
    publisher: Publisher,
    shop_model: ModelPayload,
    tmp_path: Path,
) -> None:
    publisher.publish(shop_model)
    with widget_shop(settings, attrs='data-add-to-cart="Add"') as (service, page):
        assert (
            httpx.get(f"{service}/widget.js").headers["content-type"].startswith("text/javascript")
        )
        with_pictures(service, page)
        dom = render(page, tmp_path / "profile", "--dump-dom")
        shoot(page, tmp_path / "profile", "widget.png", "900,900", tmp_path)
        shoot(page, tmp_path / "profile", "widget-phone.png", "390,1000", tmp_path)
    assert ERROR not in dom and WIDGET in dom
    assert 'data-arm="live"' in dom  # the visitor id passed CORS; no A/B test runs
    cross, up = links(dom, "cross_sell"), links(dom, "upsell")
    assert len(cross) == 3 and len(up) == 1, dom
    rec = re.search(r"rec=([0-9a-f]+)", cross[0])
    assert rec is not None
    for n, href in enumerate(cross, start=1):
        assert f"rec={rec.group(1)}&amp;slot=cross_sell&amp;pos={n}" in href
        assert href.startswith("https://shop.example/p/")
    assert up[0] == f"https://shop.example/p/M2?rec={rec.group(1)}&amp;slot=upsell&amp;pos=1"
    assert "Tea spoon" in dom and "Breakfast tea" in dom  # titles from the catalog
    assert "€3.00" in dom and "€8.00" in dom  # the catalog's currency, the page's locale
    assert 'alt="Breakfast tea"' in dom
    probe = pre(dom, "probe")
    assert probe["card_display"] == "flex" and probe["title_size"] == "14px"
    assert probe["focusable"] == 0  # cards are links: in the tab order
    assert probe["images"] == 1  # the tea's picture; the spoon's is missing
    assert probe["placeholders"] == 3  # the spoon and the two mugs without one
    assert probe["image_width"] <= probe["card_width"] <= 200
    added = pre(dom, "added")  # the page's own listener got the first card's button
    assert added["recommendation_id"] == rec.group(1)
    assert added["slot"] == "cross_sell" and added["position"] == 1
    assert added["item_id"] == "T1" and added["currency"] == "EUR" and added["price"] == 3
    assert f"/p/{added['item_id']}?" in cross[0]


def test_a_store_theme_that_styles_everything_does_not_reach_the_cards(
    chromium: str,
    settings: Settings,
    publisher: Publisher,
    shop_model: ModelPayload,
    tmp_path: Path,
) -> None:
    publisher.publish(shop_model)
    attrs = 'data-currency="GBP" data-locale="de-DE"'
    with widget_shop(settings, theme=AGGRESSIVE, attrs=attrs) as (_, page):
        dom = render(page, tmp_path / "profile", "--dump-dom")
        shoot(page, tmp_path / "profile", "widget-themed.png", "900,960", tmp_path)
    assert ERROR not in dom and WIDGET in dom
    probe = pre(dom, "probe")
    assert probe["page_list_style"] == "square"  # the theme is live on the page's own list
    assert probe["title_size"] == "14px" and probe["title_color"] != "rgb(255, 0, 0)"
    assert probe["card_display"] == "flex"
    assert probe["image_width"] <= probe["card_width"] <= 200
    assert "3,00\xa0£" in html.unescape(dom)  # the page's currency and locale win
    assert 'class="recsvc-add"' not in dom  # no button unless asked for


def test_a_down_service_or_a_foreign_origin_leaves_the_page_intact(
    chromium: str,
    settings: Settings,
    publisher: Publisher,
    shop_model: ModelPayload,
    tmp_path: Path,
) -> None:
    publisher.publish(shop_model)
    with shop_page(f"http://127.0.0.1:{free_port()}") as page:  # nothing listens there
        down = render(page, tmp_path / "p1", "--dump-dom")
    with uvicorn_server(settings) as service, shop_page(service) as page:  # no CORS origin
        foreign = render(page, tmp_path / "p2", "--dump-dom")
    for dom in (down, foreign):
        assert "Your cart: a plain mug" in dom
        assert WIDGET not in dom and ERROR not in dom


def test_on_a_product_page_the_widget_shows_what_goes_with_the_item(
    chromium: str,
    settings: Settings,
    publisher: Publisher,
    shop_model: ModelPayload,
    tmp_path: Path,
) -> None:
    publisher.publish(shop_model)
    with widget_shop(settings, attrs='data-mode="similar" data-item="M1"') as (service, page):
        dom = render(page, tmp_path / "profile", "--dump-dom")
        similar = httpx.get(f"{service}/v1/items/M1/similar", params={"k": 3}).json()
    shown = links(dom, "similar")
    assert shown and ERROR not in dom and "You may also like" in dom
    assert 'data-slot="cross_sell"' not in dom
    assert [re.sub(r"^https://shop.example/p/([^?]+)\?.*", r"\1", h) for h in shown] == [
        s["item_id"] for s in similar["similar"]
    ]
