"""Screen styles live in a ``.tcss`` file beside the screen's module, not in Python strings.

That holds for the screens in screens/ and the shared dialogs in widgets/; plain widgets keep
Textual's ``DEFAULT_CSS``, since Textual reads ``CSS_PATH`` only for apps and screens.

Textual applies a screen's ``CSS_PATH`` to the whole app, not just to that screen, so every
selector in a screen's file must start with one of the screens that module defines: a bare
``#summary`` rule would restyle every screen's ``#summary``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest
from textual.app import App
from textual.css.stylesheet import Stylesheet
from textual.screen import Screen

import screens
import widgets

PACKAGES = {package.__name__: Path(package.__file__).parent for package in (screens, widgets)}


def _screen_classes() -> list[type[Screen[object]]]:
    found = []
    for package, folder in PACKAGES.items():
        for info in pkgutil.iter_modules([str(folder)]):
            found += _screens_of(importlib.import_module(f"{package}.{info.name}"))
    return found


def _screens_of(module: ModuleType) -> list[type[Screen[object]]]:
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Screen) and cls.__module__ == module.__name__
    ]


def _css_paths(cls: type[Screen[object]]) -> list[Path]:
    paths = cls.CSS_PATH if isinstance(cls.CSS_PATH, list) else [cls.CSS_PATH]
    module_dir = Path(inspect.getfile(cls)).parent
    return [module_dir / path for path in paths if path is not None]


def _first_types(css: str) -> set[str]:
    """The type each top-level rule's selectors start with (comments and nested rules skipped)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    heads, depth, start = [], 0, 0
    for index, char in enumerate(css):
        if char == "{":
            if depth == 0:
                heads.append(css[start:index])
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                start = index + 1
    return {
        re.split(r"[\s>.#:]", selector.strip(), maxsplit=1)[0]
        for head in heads
        for selector in head.split(",")
    }


@pytest.mark.parametrize("cls", _screen_classes(), ids=lambda cls: cls.__name__)
def test_screen_styles_come_from_a_file_beside_it(cls: type[Screen[object]]) -> None:
    assert "DEFAULT_CSS" not in vars(cls), f"{cls.__name__}: move DEFAULT_CSS to a .tcss file"
    assert "CSS" not in vars(cls), f"{cls.__name__}: move CSS to a .tcss file"
    module_screens = {other.__name__ for other in _screens_of(inspect.getmodule(cls))}
    for path in _css_paths(cls):
        assert path.parent == Path(inspect.getfile(cls)).parent and path.is_file(), path
        stylesheet = Stylesheet(variables=App().get_css_variables())  # $primary, $surface ...
        stylesheet.read(path)
        stylesheet.parse()  # raises on a syntax error, as the app would when the screen opens
        assert _first_types(path.read_text()) <= module_screens, path


def test_every_screen_style_file_is_used() -> None:
    used = {path for cls in _screen_classes() for path in _css_paths(cls)}
    assert {path for folder in PACKAGES.values() for path in folder.glob("*.tcss")} == used
