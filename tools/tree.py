"""The README's "Layout of the code", drawn from the tree: every package and module of
``recsvc`` and ``training`` and every test package, with the first sentence of its
docstring. ``python -m tools.tree`` prints it; ``--write`` puts it into README.md between
its markers, and a test fails when the README's copy is not the tree's.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- tree: begin (python -m tools.tree --write) -->"
END = "<!-- tree: end -->"
WIDTH = 100


def summary(path: Path) -> str:
    """The first sentence of a module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text("utf-8"))) or ""
    text = " ".join(doc.split())
    first = re.split(r"(?<=\.)\s", text, maxsplit=1)[0].rstrip(".:")
    return first.replace("``", "")


def lines(package: Path, depth: int = 0) -> list[str]:
    """The package, then its modules and subpackages, indented by depth."""
    out = [_row(f"{package.name}/", summary(package / "__init__.py"), depth)]
    for child in sorted(package.iterdir()):
        if child.is_dir() and (child / "__init__.py").exists():
            out += lines(child, depth + 1)
        elif child.suffix == ".py" and not child.name.startswith(("__", "test_")):
            out.append(_row(child.stem, summary(child), depth + 1))
    return out


def _row(name: str, text: str, depth: int) -> str:
    head = f"{'  ' * depth}{name:<{max(18 - 2 * depth, len(name) + 1)}} "
    room = WIDTH - len(head)
    if len(text) <= room:
        return head + text
    cut = text[: room - 3].rsplit(" ", 1)[0].rstrip(" ,;:(")  # whole words only
    return head + cut + "..."


def tree() -> str:
    body = [row for top in ("recsvc", "training", "tests") for row in lines(ROOT / top)]
    return "```text\n" + "\n".join(body) + "\n```"


def readme_copy(readme: str) -> str:
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[start:end].strip()


def main(argv: list[str]) -> int:
    drawn = tree()
    if "--write" in argv:
        path = ROOT / "README.md"
        readme = path.read_text("utf-8")
        start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
        path.write_text(readme[:start] + "\n" + drawn + "\n" + readme[end:], "utf-8")
    else:
        print(drawn)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
