"""DESIGN.md rule 1: no module of mailbag.wire imports asyncio, sockets or the store."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import mailbag.wire

FORBIDDEN = ("asyncio", "socket", "ssl", "selectors", "mailbag.store", "mailbag.imap")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_wire_module_imports_io() -> None:
    root = Path(mailbag.wire.__file__).parent
    modules = [m.name for m in pkgutil.iter_modules([str(root)])]
    assert "parser" in modules
    for name in modules:
        for imported in _imports(root / f"{name}.py"):
            for bad in FORBIDDEN:
                assert imported != bad and not imported.startswith(bad + "."), (
                    f"mailbag.wire.{name} imports {imported}")
