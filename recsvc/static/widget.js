/* recsvc storefront widget: a row of product cards for a cart or an item, with its own
 * styles and no dependencies.
 *
 *   <div data-recsvc-cart data-items="85123A,71053" data-k="4" data-upsell-k="2"
 *        data-currency="EUR" data-locale="de-DE" data-add-to-cart="In den Warenkorb"></div>
 *   <script src="https://recs.example/widget.js" async
 *           data-endpoint="https://recs.example"
 *           data-link="https://shop.example/p/{item_id}"></script>
 *
 * data-mode picks the answer: "cart" (the default: cross-sell and upsell for
 * data-items) or "similar" (data-item: what goes with one item, for a product page).
 *
 * The cards live in the container's shadow root: the page's CSS cannot break them and
 * theirs cannot leak out. Theme them with CSS custom properties on the container
 * (--recsvc-accent, --recsvc-text, --recsvc-muted, --recsvc-card-bg, --recsvc-border,
 * --recsvc-radius, --recsvc-card-width, --recsvc-font) or style the parts
 * (::part(heading), ::part(card), ::part(link), ::part(image), ::part(title),
 * ::part(price), ::part(button)).
 *
 * Every link carries the answer's id and the suggestion's slot and position
 * (?rec=...&slot=cross_sell&pos=1), the attribution scheme of the README. With
 * data-add-to-cart, each card gets a button that dispatches a bubbling "recsvc:add"
 * event on the container; its detail holds the item, the recommendation id, the slot and
 * the position, for the store's own cart code. When the service is down, slow (over
 * data-timeout-ms, 1500 by default) or answers an error, the widget renders nothing and
 * throws nothing: the page stays as it was. Once rendered, the container gets a
 * "recsvc:render" event.
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
  var TITLES = {
    cross_sell: "Goes well with your cart",
    upsell: "Upgrade your pick",
    similar: "You may also like"
  };
  var STYLE = [
    ":host{display:block}",
    ".recsvc-widget{all:initial;display:block;box-sizing:border-box;",
    "font-family:var(--recsvc-font,system-ui,-apple-system,'Segoe UI',Roboto,sans-serif);",
    "color:var(--recsvc-text,#1f2328);font-size:14px;line-height:1.4;margin:16px 0}",
    ".recsvc-widget *,.recsvc-widget *::before,.recsvc-widget *::after{box-sizing:border-box}",
    ".recsvc-slot{display:block;margin:0 0 20px}",
    ".recsvc-title{display:block;font-size:17px;font-weight:600;margin:0 0 10px;padding:0}",
    ".recsvc-items{display:grid;grid-auto-flow:column;",
    "grid-auto-columns:var(--recsvc-card-width,168px);gap:12px;list-style:none;",
    "margin:0;padding:2px 2px 8px;overflow-x:auto;scroll-snap-type:x proximity}",
    ".recsvc-item{display:flex;flex-direction:column;scroll-snap-align:start;margin:0;",
    "padding:0;background:var(--recsvc-card-bg,#fff);border:1px solid var(--recsvc-border,#d0d7de);",
    "border-radius:var(--recsvc-radius,10px);overflow:hidden}",
    ".recsvc-link{display:flex;flex-direction:column;flex:1;color:inherit;text-decoration:none;",
    "outline:none}",
    ".recsvc-link:focus-visible{box-shadow:inset 0 0 0 3px var(--recsvc-accent,#0969da)}",
    ".recsvc-link:hover .recsvc-item-title{text-decoration:underline}",
    ".recsvc-media{display:block;width:100%;aspect-ratio:1/1;background:#f3f4f6;",
    "position:relative;overflow:hidden}",
    ".recsvc-image{display:block;width:100%;height:100%;object-fit:cover;border:0;",
    "margin:0;padding:0;max-width:none}",
    ".recsvc-placeholder{display:flex;align-items:center;justify-content:center;width:100%;",
    "height:100%;font-size:40px;font-weight:600;color:var(--recsvc-muted,#8c959f);",
    "background:linear-gradient(135deg,#f6f8fa,#e6e9ed)}",
    ".recsvc-body{display:flex;flex-direction:column;gap:4px;padding:10px 12px 12px}",
    ".recsvc-item-title{display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;",
    "overflow:hidden;font-size:14px;font-weight:500;min-height:2.8em}",
    ".recsvc-price{display:block;font-size:15px;font-weight:600;",
    "color:var(--recsvc-accent,#0969da)}",
    ".recsvc-add{all:unset;box-sizing:border-box;display:block;margin:0 12px 12px;",
    "padding:8px 10px;text-align:center;cursor:pointer;border-radius:6px;font:inherit;",
    "font-weight:600;font-size:13px;color:#fff;background:var(--recsvc-accent,#0969da)}",
    ".recsvc-add:focus-visible{outline:3px solid var(--recsvc-text,#1f2328);outline-offset:2px}",
    "@media (max-width:480px){.recsvc-items{grid-auto-columns:var(--recsvc-card-width,42vw)}}"
  ].join("");

  function el(tag, cls, text, part) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (part) node.setAttribute("part", part);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function href(item, recId, slot, position) {
    var base = linkPattern.split("{item_id}").join(encodeURIComponent(item.item_id));
    var params = "rec=" + encodeURIComponent(recId) + "&slot=" + slot + "&pos=" + position;
    var url = item.url || base;
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + params;
  }

  function priceText(container, item) {
    if (typeof item.price !== "number") return null;
    var locale = container.getAttribute("data-locale") ||
      document.documentElement.lang || undefined;
    var currency = container.getAttribute("data-currency") || item.currency;
    try {
      if (currency) {
        return new Intl.NumberFormat(locale, { style: "currency", currency: currency })
          .format(item.price);
      }
      return new Intl.NumberFormat(locale, {
        minimumFractionDigits: 2, maximumFractionDigits: 2
      }).format(item.price);
    } catch (badLocaleOrCurrency) {
      return item.price.toFixed(2);
    }
  }

  function placeholder(title) {
    var box = el("span", "recsvc-placeholder", (title || "?").trim().charAt(0).toUpperCase());
    box.setAttribute("aria-hidden", "true");
    return box;
  }

  function card(container, item, slot, recId) {
    var name = item.title || item.item_id;
    var entry = el("li", "recsvc-item", null, "card");
    var link = el("a", "recsvc-link", null, "link");
    link.href = href(item, recId, slot, item.position);
    var media = el("span", "recsvc-media");
    if (item.image_url) {
      var img = el("img", "recsvc-image", null, "image");
      img.alt = name;
      img.loading = "lazy";
      img.decoding = "async";
      img.addEventListener("error", function () {
        media.replaceChildren(placeholder(name));
      });
      img.src = item.image_url;
      media.appendChild(img);
    } else {
      media.appendChild(placeholder(name));
    }
    link.appendChild(media);
    var body = el("span", "recsvc-body");
    body.appendChild(el("span", "recsvc-item-title", name, "title"));
    var price = priceText(container, item);
    if (price !== null) body.appendChild(el("span", "recsvc-price", price, "price"));
    link.appendChild(body);
    entry.appendChild(link);
    var label = container.getAttribute("data-add-to-cart");
    if (label) {
      var button = el("button", "recsvc-add", label, "button");
      button.type = "button";
      button.setAttribute("aria-label", label + ": " + name);
      button.addEventListener("click", function () {
        container.dispatchEvent(new CustomEvent("recsvc:add", {
          bubbles: true,
          composed: true,
          detail: {
            item_id: item.item_id,
            title: item.title,
            price: item.price,
            currency: container.getAttribute("data-currency") || item.currency || null,
            url: item.url || null,
            recommendation_id: recId,
            slot: slot,
            position: item.position
          }
        }));
      });
      entry.appendChild(button);
    }
    return entry;
  }

  function renderSlot(container, box, slot, items, recId) {
    if (!items || !items.length) return;
    var section = el("section", "recsvc-slot recsvc-" + slot.replace("_", "-"));
    section.setAttribute("data-slot", slot);
    var heading = container.getAttribute("data-title-" + slot.replace("_", "-")) || TITLES[slot];
    var h = el("h3", "recsvc-title", heading, "heading");
    h.id = "recsvc-" + slot + "-" + Math.random().toString(36).slice(2, 8);
    section.setAttribute("aria-labelledby", h.id);
    section.appendChild(h);
    var list = el("ul", "recsvc-items");
    for (var i = 0; i < items.length; i++) {
      list.appendChild(card(container, items[i], slot, recId));
    }
    section.appendChild(list);
    box.appendChild(section);
  }

  function intAttr(container, name, fallback) {
    var value = parseInt(container.getAttribute(name) || "", 10);
    return isNaN(value) ? fallback : value;
  }

  function request(container) {
    var mode = container.getAttribute("data-mode") || "cart";
    var k = intAttr(container, "data-k", 4) || 4;
    if (mode === "similar") {
      var item = (container.getAttribute("data-item") || "").trim();
      if (!item) return null;
      return {
        url: "/v1/items/" + encodeURIComponent(item) + "/similar?k=" + k,
        slots: ["similar"]
      };
    }
    var items = (container.getAttribute("data-items") || "")
      .split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    if (!items.length) return null;
    return {
      url: "/v1/recommendations/cart",
      slots: ["cross_sell", "upsell"],
      body: JSON.stringify({
        items: items.slice(0, 100),
        k: k,
        upsell_k: intAttr(container, "data-upsell-k", 2)
      })
    };
  }

  function load(container) {
    var ask = request(container);
    if (!ask || !window.fetch || !container.attachShadow) return;
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, timeoutMs) : null;
    var headers = {};
    if (ask.body) headers["content-type"] = "application/json";
    // A stable visitor id (the shop's own cookie) puts the answer in an A/B test's arm.
    var visitor = container.getAttribute("data-visitor-id");
    if (visitor) headers["x-visitor-id"] = visitor;
    fetch(endpoint + ask.url, {
      method: ask.body ? "POST" : "GET",
      mode: "cors",
      headers: headers,
      body: ask.body,
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      if (!response.ok) return null;
      return response.json();
    }).then(function (answer) {
      if (!answer || !answer.recommendation_id) return;
      var box = el("div", "recsvc-widget");
      box.setAttribute("data-model-version", answer.model_version || "");
      box.setAttribute("data-arm", answer.arm || "");
      for (var i = 0; i < ask.slots.length; i++) {
        renderSlot(container, box, ask.slots[i], answer[ask.slots[i]], answer.recommendation_id);
      }
      if (!box.childNodes.length) return;
      var root = container.shadowRoot || container.attachShadow({ mode: "open" });
      var style = el("style", null, STYLE);
      root.replaceChildren(style, box);
      container.setAttribute("data-recsvc-rendered", String(box.querySelectorAll("li").length));
      container.dispatchEvent(new CustomEvent("recsvc:render", {
        bubbles: true, detail: { recommendation_id: answer.recommendation_id }
      }));
    })["catch"](function () {
      /* down, slow or refused: render nothing, throw nothing */
    }).then(function () {
      if (timer) clearTimeout(timer);
    });
  }

  function start() {
    try {
      var containers = document.querySelectorAll("[data-recsvc-cart],[data-recsvc]");
      for (var i = 0; i < containers.length; i++) load(containers[i]);
    } catch (ignored) { /* never break the page */ }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
