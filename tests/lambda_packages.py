"""Checks that a Lambda's zip (components/lambda_package.py) holds what its code imports."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from components.lambda_package import ROOT


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def assert_package_holds_its_imports(
    code: dict[str, Any], files: tuple[str, ...], handler: str
) -> None:
    """`code` is a recorded Function's `code` input."""
    assert set(code["archive"]) == set(files)
    packaged = {f.removesuffix(".py").replace("/", ".") for f in files}
    packaged |= {p.removesuffix(".__init__") for p in packaged}
    for file in files:
        ours = {m for m in imported_modules(ROOT / file) if m.startswith("pipelines")}
        assert ours <= packaged, file
    assert handler.rsplit(".", 1)[0] in packaged
