"""The package's rooms and which may import which, read from the source (``ast``), not from a running import."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "autodrop_hf"
#: room -> the rooms its modules may import. The command's dispatcher (tools/cli.py) and the launcher
#: entry point (run.py) sit above every room and may import any.
ALLOWED = {"core": {"core"}, "hf": {"core", "hf"}, "paper": {"core", "paper"}, "tools": {"core", "tools"}}
ENTRY_POINTS = {"tools/cli.py", "run.py", "__init__.py"}


def rooms_imported(path: Path) -> set[str]:
    """The rooms of ``autodrop_hf`` that the module at ``path`` imports, at any depth of its code."""
    room = path.parent.relative_to(PACKAGE).parts
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(room)[: len(room) - (node.level - 1)]
            target = [*base, *(node.module.split(".") if node.module else [])]
            names = [alias.name for alias in node.names] if not node.module else []
            rooms.update([target[0]] if target else names)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            rooms.update(m.split(".")[1] for m in modules if m and m.startswith("autodrop_hf.") and "." in m)
    return rooms


def test_each_room_imports_only_the_rooms_below_it():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert {p.parent.name for p in modules} == {"autodrop_hf", *ALLOWED}
    for path in modules:
        name = path.relative_to(PACKAGE).as_posix()
        if name in ENTRY_POINTS:
            continue
        room = path.parent.name
        assert rooms_imported(path) <= ALLOWED[room], f"{name} imports {rooms_imported(path) - ALLOWED[room]}"


def test_the_graph_reader_sees_relative_absolute_and_lazy_imports():
    assert rooms_imported(PACKAGE / "hf" / "callback.py") == {"core", "hf"}
    assert rooms_imported(PACKAGE / "paper" / "nqm_experiment.py") == {"paper"}  # from . import ...
    assert rooms_imported(PACKAGE / "tools" / "cli.py") == {"hf", "paper", "tools"}  # lazy, inside a function
    assert rooms_imported(PACKAGE / "run.py") == {"hf"}  # absolute
