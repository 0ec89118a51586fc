"""The README's layout of the code is the tree's (``python -m tools.tree --write``)."""

from __future__ import annotations

from tools import tree


def test_the_readmes_layout_of_the_code_is_drawn_from_the_tree() -> None:
    readme = (tree.ROOT / "README.md").read_text("utf-8")
    assert tree.readme_copy(readme) == tree.tree(), "redraw it: python -m tools.tree --write"
    drawn = tree.tree()
    for module in (
        "recsvc/",
        "  model/",
        "    keys ",
        "training/",
        "  neighbours/",
        "    registry ",
    ):
        assert f"\n{module}" in drawn
    assert all(len(line) <= tree.WIDTH for line in drawn.splitlines())
