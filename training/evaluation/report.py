"""The evaluation report: one JSON document, and one self-contained HTML page rendering it.

The HTML has no scripts and no external assets: charts are inline SVG, so the page opens
from a file, from Redis through ``GET /v1/model/report?format=html``, or as a CI artefact.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from training.evaluation import evaluate as ev
from training.evaluation import intervals
from training.evaluation import recommenders as recs
from training.evaluation.intervals import verdict
from training.stages import upsell

TASKS: tuple[tuple[str, str, str], ...] = (
    (ev.CART, "hr@10", "cart completion, HR@10"),
    (ev.NEXT, "recall@10", "next purchases, recall@10"),
    (ev.NEXT_NEW, "recall@10", "next purchases (new items only), recall@10"),
)
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f")


def comparison(
    results: Sequence[ev.MethodResult],
    served: str = ev.SERVED,
    seeds: Mapping[str, Sequence[ev.MethodResult]] | None = None,
) -> dict[str, Any]:
    """Per task: the served recommender against the best baseline, and by how much.

    The interval is the paired bootstrap over cases; with ``seeds`` (each method's cart
    scores under other hide-one seeds) the cart comparison is repeated per seed, and the
    verdict is "ahead" (or "behind") only when every seed's interval excludes zero."""
    by_name = {r.name: r for r in results}
    mine = by_name.get(served)
    out: dict[str, Any] = {}
    for task, metric, label in TASKS:
        rivals = [r for r in results if r.name != served and task in r.metrics]
        if mine is None or task not in mine.metrics or not rivals:
            continue
        best = max(rivals, key=lambda r: r.metrics[task][metric])
        ours, theirs = mine.metrics[task][metric], best.metrics[task][metric]
        out[task] = {
            "label": label,
            "metric": metric,
            "served": ours,
            "best_baseline": best.name,
            "best_baseline_value": theirs,
            "margin": ours - theirs,
            "relative": (ours / theirs - 1.0) if theirs > 0 else None,
            "at_least_as_good": ours >= theirs,
        }
        key = f"{task}/{metric}"
        if key in mine.per_case and key in best.per_case and mine.per_case[key].size:
            iv = intervals.paired(mine.per_case[key], best.per_case[key])
            runs = [iv]
            for a, b in zip(
                (seeds or {}).get(served, ()), (seeds or {}).get(best.name, ()), strict=False
            ):
                if key in a.per_case and key in b.per_case and a.per_case[key].size:
                    runs.append(intervals.paired(a.per_case[key], b.per_case[key]))
            lows, highs = [r.low for r in runs], [r.high for r in runs]
            out[task].update(
                low=iv.low, high=iv.high, cases=iv.cases, verdict=verdict(min(lows), max(highs))
            )
            if len(runs) > 1:
                out[task]["seeds"] = {
                    "count": len(runs),
                    "difference": [r.mean for r in runs],
                    "low": lows,
                    "high": highs,
                }
    return out


def metric_intervals(result: ev.MethodResult) -> dict[str, list[float]]:
    """Each headline measure's 95% bootstrap interval over cases."""
    return {
        key: [iv.low, iv.high]
        for key, values in result.per_case.items()
        if values.size
        for iv in [intervals.mean(values)]
    }


def seed_spread(runs: Sequence[ev.MethodResult]) -> dict[str, list[float]]:
    """Per cart measure: its lowest and highest value over the hide-one seeds."""
    values = [r.metrics[ev.CART]["hr@10"] for r in runs if ev.CART in r.metrics]
    return {"cart/hr@10": [min(values), max(values)]} if values else {}


def build(
    *,
    split: Mapping[str, Any],
    results: Sequence[ev.MethodResult],
    params: Mapping[str, Any],
    tuning: Mapping[str, Any] | None,
    seconds: Mapping[str, float],
    gate: Mapping[str, Any] | None = None,
    seeds: Mapping[str, Sequence[ev.MethodResult]] | None = None,
    baselines: Sequence[Mapping[str, Any]] = (),
    upsell: Mapping[str, Any] | None = None,
    windows: Mapping[str, Any] | None = None,
    recipes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    seeds = seeds or {}
    return {
        "split": dict(split),
        "windows": dict(windows or {}),
        "recipes": dict(recipes or {}),
        "methods": [
            {
                "name": r.name,
                "metrics": r.metrics,
                "headline": ev.headline(r),
                "intervals": metric_intervals(r),
                "seed_spread": seed_spread([r, *seeds.get(r.name, ())]),
                "coverage": r.coverage,
                "fallback_share": r.fallback_share,
                "params": r.params,
            }
            for r in results
        ],
        "served": ev.SERVED,
        "comparison": comparison(results, seeds=seeds),
        "baselines": [dict(b) for b in baselines],
        "upsell": dict(upsell or {}),
        "params": dict(params),
        "tuning": dict(tuning) if tuning else None,
        "gate": dict(gate) if gate else None,
        "seconds": dict(seconds),
    }


# -- SVG ---------------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _axis(
    width: int, height: int, pad: int, top: float, ticks: int = 4, bottom: float = 0.0
) -> list[str]:
    parts = []
    for t in range(ticks + 1):
        v = bottom + (top - bottom) * t / ticks
        y = height - pad - (height - 2 * pad) * t / ticks
        parts.append(
            f'<line x1="{pad}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{pad - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{v:.3f}</text>'
        )
    return parts


def _nice_top(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(value))
    return float(math.ceil(value / step * 2) / 2 * step)


def bar_chart(methods: Sequence[Mapping[str, Any]], width: int = 860, height: int = 300) -> str:
    """Grouped bars: one group per task, one bar per method."""
    pad = 40
    groups = [(task, metric, label) for task, metric, label in TASKS]
    values = [
        [m["metrics"].get(task, {}).get(metric, 0.0) for task, metric, _ in groups] for m in methods
    ]
    top = _nice_top(max((v for row in values for v in row), default=1.0))
    plot_w = width - pad - 10
    group_w = plot_w / len(groups)
    bar_w = group_w * 0.8 / max(len(methods), 1)
    parts = _axis(width, height, pad, top)
    for g, (_task, _metric, label) in enumerate(groups):
        x0 = pad + g * group_w + group_w * 0.1
        for i, m in enumerate(methods):
            v = values[i][g]
            h = (height - 2 * pad) * v / top
            x = x0 + i * bar_w
            y = height - pad - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[i % len(PALETTE)]}"><title>{_esc(m["name"])}: {v:.4f}'
                "</title></rect>"
            )
        parts.append(
            f'<text x="{pad + (g + 0.5) * group_w:.1f}" y="{height - pad + 16}" '
            f'text-anchor="middle" font-size="11">{_esc(label)}</text>'
        )
    return _svg(width, height, parts) + _legend([m["name"] for m in methods])


def line_chart(
    methods: Sequence[Mapping[str, Any]],
    task: str,
    metric: str,
    ks: Sequence[int] = recs.KS,
    width: int = 420,
    height: int = 260,
) -> str:
    """A metric at every k, one line per method."""
    pad = 40
    series = [[m["metrics"].get(task, {}).get(f"{metric}@{k}", 0.0) for k in ks] for m in methods]
    top = _nice_top(max((v for row in series for v in row), default=1.0))
    parts = _axis(width, height, pad, top)

    def x_at(i: int) -> float:
        return pad + (width - pad - 20) * i / max(len(ks) - 1, 1)

    for i, k in enumerate(ks):
        parts.append(
            f'<text x="{x_at(i):.1f}" y="{height - pad + 16}" text-anchor="middle" '
            f'font-size="10">k={k}</text>'
        )
    for n, (m, row) in enumerate(zip(methods, series, strict=True)):
        colour = PALETTE[n % len(PALETTE)]
        points = " ".join(
            f"{x_at(i):.1f},{height - pad - (height - 2 * pad) * v / top:.1f}"
            for i, v in enumerate(row)
        )
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{_esc(m['name'])}</title></polyline>"
        )
    return _svg(width, height, parts)


def trials_chart(trials: Sequence[Mapping[str, Any]], best: int | None) -> str:
    """Each trial's validation score, in the order they ran; the chosen one highlighted."""
    width, height, pad = 860, 240, 40
    if not trials:
        return "<p>No tuning trials were run.</p>"
    scores = [float(t["score"]) for t in trials]
    # Trials differ by a few percent: zoom on their range, or every point sits on one line.
    spread = max(max(scores) - min(scores), 1e-3)
    bottom, top = max(min(scores) - spread, 0.0), max(scores) + spread
    parts = _axis(width, height, pad, top, bottom=bottom)
    n = len(trials)
    for i, t in enumerate(trials):
        x = pad + (width - pad - 20) * (i + 0.5) / n
        y = height - pad - (height - 2 * pad) * (scores[i] - bottom) / (top - bottom)
        chosen = t["number"] == best
        tip = ", ".join(f"{k}={v}" for k, v in t["params"].items())
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{7 if chosen else 4}" '
            f'fill="{"#e15759" if chosen else "#4e79a7"}"><title>trial {t["number"]}: '
            f"{scores[i]:.4f} ({_esc(tip)})</title></circle>"
        )
    parts.append(
        f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle" font-size="11">'
        "trial, in the order run (red: chosen)</text>"
    )
    return _svg(width, height, parts)


def _svg(width: int, height: int, parts: Sequence[str]) -> str:
    body = "".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">{body}</svg>'
    )


def _legend(names: Sequence[str]) -> str:
    items = "".join(
        f'<span style="margin-right:14px"><span style="display:inline-block;width:10px;'
        f'height:10px;background:{PALETTE[i % len(PALETTE)]}"></span> {_esc(n)}</span>'
        for i, n in enumerate(names)
    )
    return f'<div style="font-size:12px">{items}</div>'


# -- page --------------------------------------------------------------------------------


def _table(rows: Sequence[Sequence[object]], head: Sequence[str]) -> str:
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{c:.4f}</td>" if isinstance(c, float) else f"<td>{_esc(c)}</td>" for c in r)
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def render_html(report: Mapping[str, Any], title: str = "recsvc evaluation") -> str:
    methods = report["methods"]
    cols = [
        "cart_hr@10",
        "cart_ndcg@10",
        "next_recall@10",
        "next_ndcg@10",
        "next_new_recall@10",
    ]
    rows = [
        [
            m["name"],
            *(m["headline"].get(c, "-") for c in cols),
            m["coverage"].get(ev.CART, m["coverage"].get(ev.NEXT, float("nan"))),
            m.get("fallback_share", 0.0),
        ]
        for m in methods
    ]
    interval_rows = [[m["name"], *interval_cells(m)] for m in methods]
    window_rows = [
        [name, f"{w.get('from', '')} to {w.get('to', '')}".strip(" to") or w.get("window", ""),
         w.get("chose", "")]
        for name, w in (report.get("windows") or {}).items()
    ]  # fmt: skip
    baseline_rows = [
        [b["family"], f"{len(b['trials'])} of {b['grid_size']}", b["seconds"],
         "; ".join(f"{t}: {_pretty_params(p)}" for t, p in sorted(b["best"].items()))]
        for b in report.get("baselines") or []
    ]  # fmt: skip
    upsell_doc = report.get("upsell") or {}
    verdicts = [
        [
            c["label"],
            c["served"],
            f"{c['best_baseline']}",
            c["best_baseline_value"],
            f"{c['margin']:+.4f}",
            f"{c['low']:+.4f} to {c['high']:+.4f}" if "low" in c else "-",
            c.get("verdict", "yes" if c["at_least_as_good"] else "NO"),
        ]
        for c in report["comparison"].values()
    ]
    tuning = report.get("tuning") or {}
    trials = tuning.get("trials", [])
    trial_rows = [[t["number"], t["score"], *t["params"].values()] for t in trials]
    trial_head = ["trial", "score", *(trials[0]["params"] if trials else [])]
    gate = report.get("gate")
    split = report["split"]
    parts = [
        f"<h1>{_esc(title)}</h1>",
        "<p>" + " · ".join(f"{_esc(k)}: {_esc(v)}" for k, v in split.items()) + "</p>",
        "<h2>Which window chose what</h2>",
        _table(window_rows, ["window", "period", "chose"]),
        "<h2>What is served for each task</h2>",
        "<ul>"
        + "".join(
            f"<li>{_esc(t.get('why', ''))}</li>" for t in (report.get("recipes") or {}).values()
        )
        + "<li>the cart: the model's lists</li></ul>",
        "<h2>Served recommender against the best baseline</h2>",
        _table(
            verdicts,
            ["task", "served", "best baseline", "value", "margin", "95% interval", "verdict"],
        ),
    ]
    if gate:
        parts += ["<h2>Quality gate</h2>", f"<pre>{_esc(_pretty(gate))}</pre>"]
    parts += [
        "<h2>Each method's metrics</h2>",
        bar_chart(methods),
        _table(rows, ["method", *cols, "coverage", "popular-filled share"]),
        "<h2>95% intervals (bootstrap over cases; cart: and over hide-one seeds)</h2>",
        _table(interval_rows, ["method", *INTERVAL_HEAD]),
        "<h2>Baselines' settings, chosen on the validation window</h2>",
        _table(baseline_rows, ["family", "settings tried", "seconds", "chosen per task"]),
        "<h2>Upsell: bought later by the same customer</h2>",
        "<pre>" + _esc("\n".join(upsell.lines(upsell_doc))) + "</pre>",
        "<h2>Metrics by k</h2>",
        '<div style="display:flex;flex-wrap:wrap;gap:12px">',
        "<div><h3>cart completion, HR@k</h3>" + line_chart(methods, ev.CART, "hr") + "</div>",
        "<div><h3>next purchases, recall@k</h3>"
        + line_chart(methods, ev.NEXT, "recall")
        + "</div>",
        "<div><h3>new items only, recall@k</h3>"
        + line_chart(methods, ev.NEXT_NEW, "recall")
        + "</div>",
        "</div>",
        _legend([m["name"] for m in methods]),
        "<h2>Tuning trials</h2>",
        f"<p>validation window from {_esc(tuning.get('validation_cutoff', '-'))}; "
        f"objective: {_esc(tuning.get('objective', '-'))}; "
        f"{len(trials)} trials in {_esc(tuning.get('seconds', 0))} s of a "
        f"{_esc(tuning.get('budget_seconds', 0))} s budget</p>",
        trials_chart(trials, tuning.get("best")),
        _table(trial_rows, trial_head) if trials else "",
        "<h2>Chosen parameters</h2>",
        f"<pre>{_esc(_pretty(report['params']))}</pre>",
        f"<p>seconds: {_esc(_pretty(report['seconds']))}</p>",
    ]
    style = (
        "body{font-family:sans-serif;margin:24px;max-width:1100px}"
        "table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )


INTERVAL_HEAD = ("cart_hr@10", "cart seeds", "next_recall@10", "next_new_recall@10")


def interval_cells(method: Mapping[str, Any]) -> list[str]:
    """A method's headline measures with their intervals, for the printout and the page."""
    head, iv = method["headline"], method.get("intervals", {})
    spread = method.get("seed_spread", {}).get("cart/hr@10")

    def cell(name: str, key: str) -> str:
        if name not in head:
            return "-"
        low_high = iv.get(key)
        around = f" [{low_high[0]:.4f}, {low_high[1]:.4f}]" if low_high else ""
        return f"{head[name]:.4f}{around}"

    return [
        cell("cart_hr@10", "cart/hr@10"),
        f"{spread[0]:.4f} to {spread[1]:.4f}" if spread else "-",
        cell("next_recall@10", "next/recall@10"),
        cell("next_new_recall@10", "next_new/recall@10"),
    ]


def _pretty_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items())


def _pretty(value: Mapping[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in value.items())
