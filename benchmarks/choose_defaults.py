"""Choose the defaults shipped in code on windows before the reported one.

    .venv/bin/python -m benchmarks.choose_defaults [online-retail]

The reported window of ``python -m training evaluate`` is the last 10% of the data's time
span. This drops it, splits what is left the same way (the validation window ``evaluate``
tunes on), and sweeps each recipe parameter in turn over its candidate values
(``training.evaluation.tuning.SPACE``, plus the neighbour method), starting from the current
defaults and keeping a value only when it raises the search's objective (the mean of cart
HR@10, next recall@10 and new-items recall@10, served as served). One pass, in the order
printed. The reported window is never read. Writes ``benchmarks/out/choose_defaults.json``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from benchmarks.design import design, parser
from benchmarks.scale import OUT
from training.engines.local import fit
from training.evaluation import evaluate as ev
from training.evaluation import tuning

METHODS = ("ease-als", "ease", "cooccurrence")


def main() -> None:
    a = parser(__doc__).parse_args()
    d = design(a.dataset)
    config, quiet, window, reported = d.config, d.stages, d.window, d.reported

    def score(params: dict[str, Any], method: str) -> float:
        recipe = tuning.with_params(config, params)
        recipe = type(recipe)(**{**recipe.__dict__, "method": method})
        payload = fit(window.split.train, recipe, quiet, for_serving=False)
        payload = window.as_stored(payload, recipe.history_items)
        return tuning.objective(
            ev.headline(ev.evaluate(ev.served_from_payload(payload), window.cases))
        )

    params = tuning.params_of(config)
    method = config.method
    best = score(params, method)
    trials: list[dict[str, Any]] = [{"params": dict(params), "method": method, "score": best}]
    print(f"start: {method} {params}: {best:.4f}", flush=True)
    axes: list[tuple[str, tuple[Any, ...]]] = [("method", METHODS), *tuning.SPACE.items()]
    for name, values in axes:
        for value in values:
            current = method if name == "method" else params[name]
            if value == current:
                continue
            t0 = time.perf_counter()
            trial_params = params if name == "method" else {**params, name: value}
            trial_method = value if name == "method" else method
            got = score(trial_params, trial_method)
            trials.append({"params": dict(trial_params), "method": trial_method, "score": got})
            kept = got > best
            print(
                f"{name}={value}: {got:.4f} ({time.perf_counter() - t0:.1f}s)"
                + (" kept" if kept else ""),
                flush=True,
            )
            if kept:
                best = got
                if name == "method":
                    method = str(value)
                else:
                    params = trial_params
    print(f"chosen: method={method} " + " ".join(f"{k}={v}" for k, v in params.items()))
    print(f"objective {best:.4f}")
    out = {
        "dataset": a.dataset,
        "reported_from": str(reported.cutoff),
        "validation_from": str(window.split.cutoff),
        "trained_from": str(window.split.train["timestamp"].min()),
        "chosen": {"method": method, **params},
        "objective": best,
        "trials": trials,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "choose_defaults.json").write_text(json.dumps(out, indent=1, default=str))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
