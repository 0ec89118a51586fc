/* recsvc storefront widget: cross-sell and upsell slots for a cart, no dependencies.
 *
 *   <div data-recsvc-cart data-items="85123A,71053" data-k="4" data-upsell-k="2"></div>
 *   <script src="https://recs.example/widget.js" async
 *           data-endpoint="https://recs.example"
 *           data-link="https://shop.example/p/{item_id}"></script>
 *
 * Every link carries the answer's id and the suggestion's slot and position
 * (?rec=...&slot=cross_sell&pos=1), the attribution scheme of the README. When the
 * service is down, slow (over data-timeout-ms, 1500 by default) or answers an error, the
 * widget renders nothing and throws nothing: the page stays as it was.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var endpoint = ((script && script.getAttribute("data-endpoint")) || "").replace(/\/+$/, "");
  if (!endpoint && script && script.src) {
    endpoint = script.src.replace(/\/widget\.js(\?.*)?$/, "");
  }
  var linkPattern = (script && script.getAttribute("data-link")) || "/p/{item_id}";
  var timeoutMs = parseInt((script && script.getAttribute("data-timeout-ms")) || "1500", 10);
  var TITLES = { cross_sell: "Goes well with your cart", upsell: "Upgrade your pick" };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function href(item, recId, slot, position) {
    var base = linkPattern.split("{item_id}").join(encodeURIComponent(item.item_id));
    var params = "rec=" + encodeURIComponent(recId) + "&slot=" + slot + "&pos=" + position;
    var url = item.url || base;
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + params;
  }

  function renderSlot(container, slot, items, recId) {
    if (!items || !items.length) return;
    var section = el("section", "recsvc-slot recsvc-" + slot.replace("_", "-"));
    section.setAttribute("data-slot", slot);
    section.appendChild(el("h3", "recsvc-title", TITLES[slot]));
    var list = el("ul", "recsvc-items");
    for (var i = 0; i < items.length; i++) {
      var item = items[i];
      var entry = el("li", "recsvc-item");
      var link = el("a", "recsvc-link");
      link.href = href(item, recId, slot, item.position);
      if (item.image_url) {
        var img = el("img", "recsvc-image");
        img.src = item.image_url;
        img.alt = item.title || item.item_id;
        img.loading = "lazy";
        link.appendChild(img);
      }
      link.appendChild(el("span", "recsvc-item-title", item.title || item.item_id));
      if (typeof item.price === "number") {
        link.appendChild(el("span", "recsvc-price", item.price.toFixed(2)));
      }
      entry.appendChild(link);
      list.appendChild(entry);
    }
    section.appendChild(list);
    container.appendChild(section);
  }

  function load(container) {
    var items = (container.getAttribute("data-items") || "")
      .split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    if (!items.length || !window.fetch) return;
    var body = {
      items: items.slice(0, 100),
      k: parseInt(container.getAttribute("data-k") || "4", 10) || 4,
      upsell_k: parseInt(container.getAttribute("data-upsell-k") || "2", 10) || 0
    };
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, timeoutMs) : null;
    var headers = { "content-type": "application/json" };
    // A stable visitor id (the shop's own cookie) puts the cart in an A/B test's arm.
    var visitor = container.getAttribute("data-visitor-id");
    if (visitor) headers["x-visitor-id"] = visitor;
    fetch(endpoint + "/v1/recommendations/cart", {
      method: "POST",
      mode: "cors",
      headers: headers,
      body: JSON.stringify(body),
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      if (!response.ok) return null;
      return response.json();
    }).then(function (answer) {
      if (!answer || !answer.recommendation_id) return;
      var box = el("div", "recsvc-widget");
      box.setAttribute("data-model-version", answer.model_version || "");
      box.setAttribute("data-arm", answer.arm || "");
      renderSlot(box, "cross_sell", answer.cross_sell, answer.recommendation_id);
      renderSlot(box, "upsell", answer.upsell, answer.recommendation_id);
      if (box.childNodes.length) container.appendChild(box);
    })["catch"](function () {
      /* down, slow or refused: render nothing, throw nothing */
    }).then(function () {
      if (timer) clearTimeout(timer);
    });
  }

  function start() {
    try {
      var containers = document.querySelectorAll("[data-recsvc-cart]");
      for (var i = 0; i < containers.length; i++) load(containers[i]);
    } catch (ignored) { /* never break the page */ }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
