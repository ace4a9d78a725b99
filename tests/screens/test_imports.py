"""Shared pieces of the screens live in widgets/, not inside one of the screens that use them.

A screen module may import from another screen module only a screen it extends (``ConsoleScreen``,
``ChannelBatchScreen``) or the one screen that it alone opens (the batches list opens a batch's
progress). A dialog or helper that two screen modules use is a shared piece: it belongs in widgets/,
where a newcomer looks for it, and where no screen depends on another screen for it.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

from textual.screen import Screen

SCREENS = Path(__file__).resolve().parents[2] / "screens"


def _base_names(tree: ast.Module) -> set[str]:
    return {
        base.id
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for base in node.bases
        if isinstance(base, ast.Name)
    }


def test_screens_share_no_piece_through_another_screen() -> None:
    openers: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in SCREENS.glob("*.py"):
        tree = ast.parse(path.read_text())
        extended = _base_names(tree)
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.ImportFrom) and (node.module or "").startswith("screens.")
            ):
                continue
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                imported = getattr(module, alias.name)
                assert isinstance(imported, type) and issubclass(imported, Screen), (
                    f"{path.name} imports {alias.name} from {node.module}: move it to widgets/"
                )
                if alias.name not in extended:
                    openers[(node.module or "", alias.name)].add(path.name)
    shared = {name: users for name, users in openers.items() if len(users) > 1}
    assert not shared, f"screens opened from several screen modules belong in widgets/: {shared}"
