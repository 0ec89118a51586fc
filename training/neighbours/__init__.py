"""Stage 4: every item's top-N neighbours, one module per method.

Methods share the signature ``(inputs, top_n) -> Neighbours`` (``base``) and are chosen
by name from the registry (``registry``); each works in item-row blocks (``gram``) or per
item, so memory grows with the purchases and with items x N. ``alternatives`` computes
the upsell lists.
"""
