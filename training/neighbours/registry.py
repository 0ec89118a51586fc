"""The neighbour methods, by name: one module per method, one line each here.

A method is a ``Method``: its function ``(inputs, top_n) -> Neighbours``, whether it
reads the ALS item factors, the engines it runs on, and the ``TrainConfig`` fields it
reads (which the tuning search varies for it). ``register`` adds one: a new method is a
module that defines its function and ``METHOD``, plus a ``register`` line below.
"""

from __future__ import annotations

from training.neighbours import als_cosine, cooccurrence, ease, ease_als
from training.neighbours.spec import LOCAL, Method

METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Adds ``method`` under its name; a name is registered once."""
    if method.name in METHODS:
        raise ValueError(f"neighbour method {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def method_for(name: str, engine: str = LOCAL) -> Method:
    """The method named ``name``, if ``engine`` runs it (ValueError, saying which do)."""
    if name not in METHODS:
        raise ValueError(f"unknown neighbour method {name!r}; choose from {', '.join(METHODS)}")
    method = METHODS[name]
    if engine not in method.engines:
        runs = ", ".join(sorted(m.name for m in METHODS.values() if engine in m.engines))
        raise ValueError(
            f"the {engine} engine does not run the {name!r} neighbour method; it runs: {runs}"
        )
    return method


def default_method(engine: str = LOCAL) -> str:
    """The method a run uses unless told: EASE locally, co-occurrence on Spark (pair
    counts, which Spark SQL distributes as they are)."""
    return DEFAULT_METHOD if engine == LOCAL else cooccurrence.METHOD.name


register(ease_als.METHOD)
register(ease.METHOD)
register(als_cosine.METHOD)
register(cooccurrence.METHOD)
DEFAULT_METHOD = ease.METHOD.name
