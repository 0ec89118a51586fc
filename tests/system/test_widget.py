"""The storefront widget in real headless Chromium: a shop page on another origin loads
``/widget.js`` from the service, which renders the cart's two slots with attribution in
every link; a service that is down, or an origin it does not allow, leaves the page as
it was, with no error thrown."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from recsvc.config import Settings
from tests.conftest import free_port, render, uvicorn_server
from training.publish import ModelPayload, Publisher

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
<style>body{{font-family:sans-serif;margin:24px}} .recsvc-items{{display:flex;gap:12px;
list-style:none;padding:0}} .recsvc-item a{{display:flex;flex-direction:column;
border:1px solid #ccc;border-radius:6px;padding:10px;width:140px;color:#222;
text-decoration:none}} .recsvc-price{{color:#0a7}}</style></head><body>
<h1 id="shop">Your cart: a plain mug</h1>
<script>
function pageError(what) {{
  var p = document.createElement('p');
  p.className = 'page' + '-error';  /* the class is only ever in the DOM, not in this text */
  p.textContent = what;
  document.body.appendChild(p);
}}
window.addEventListener('error', function (e) {{ pageError(e.message); }});
window.addEventListener('unhandledrejection', function () {{ pageError('rejected'); }});
</script>
<div data-recsvc-cart data-items="M1" data-k="3" data-upsell-k="1" data-visitor-id="v-1"></div>
<script src="{service}/widget.js" data-endpoint="{service}"
        data-link="https://shop.example/p/{{item_id}}"></script>
</body></html>
"""


ERROR = 'class="page-error"'
WIDGET = 'class="recsvc-widget"'


@contextmanager
def shop_page(service: str, port: int = 0) -> Iterator[str]:
    """A page on its own origin (``port``, or any free one) embedding ``service``'s widget."""
    html = PAGE.format(service=service).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

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


def links(dom: str, slot: str) -> list[str]:
    section = re.search(rf'data-slot="{slot}".*?</section>', dom, re.S)
    return re.findall(r'href="([^"]+)"', section.group(0)) if section else []


def test_the_widget_renders_both_slots_with_attribution_in_chromium(
    chromium: str,
    settings: Settings,
    publisher: Publisher,
    shop_model: ModelPayload,
    tmp_path: Path,
) -> None:
    publisher.publish(shop_model)
    page_port = free_port()
    origin = f"http://127.0.0.1:{page_port}"
    with uvicorn_server(settings.model_copy(update={"cors_origins": [origin]})) as service:
        assert (
            httpx.get(f"{service}/widget.js").headers["content-type"].startswith("text/javascript")
        )
        with shop_page(service, page_port) as page:
            dom = render(page, tmp_path / "profile", "--dump-dom")
            shot = tmp_path / "widget.png"
            render(page, tmp_path / "profile", "--window-size=900,520", f"--screenshot={shot}")
    assert page.startswith(origin)
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
    assert "Tea spoon" in dom or "Breakfast tea" in dom  # titles from the catalog
    assert shot.stat().st_size > 10_000


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
