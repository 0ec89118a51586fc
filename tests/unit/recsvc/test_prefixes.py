"""The prefix a version pointer belongs to, on either layout: what ``status`` lists."""

from __future__ import annotations

from recsvc.model import Layout


def test_a_pointer_names_its_prefix_and_no_other_key_does() -> None:
    for layout in (Layout("my-shop"), Layout.for_cluster("my-shop")):
        assert Layout.prefix_of_live(layout.live) == "my-shop"
        for other in (layout.previous, layout.candidate, layout.meta("v1"), layout.lock):
            assert Layout.prefix_of_live(other) is None, other
    assert Layout.prefix_of_live("x:model:v1:live") is None
