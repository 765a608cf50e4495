"""Only `convoy_stream/faust_ext/` names a library's private attributes, and only the listed ones.

The libraries are faust-streaming, mode-streaming, aiokafka, rocksdict and aiohttp. The
Python code of `convoy_stream/`, `tables/` and `bridges/` (outside `faust_ext/`) is read as
syntax trees, so comments and docstrings may name anything. A line is reported (file:line)
when it:

1. reads, calls or assigns `x._name` where `_name` is a private name of `faust_ext.SEAMS`
   (`PRIVATE_NAMES`), unless `x` is `self` or `cls` in one of our own classes (a class that
   does not derive from a library class: its `self._name` is its own);
2. inside a class that derives from a library class, names `self._name`, `cls._name` or
   `super()._name` that the class does not define itself, or that the library class has
   (its attribute), or defines a method `_name` that the library class has (an override);
3. calls `getattr`, `hasattr`, `setattr` or `delattr` with a literal `"_name"` (not a
   `__dunder__`), unless on `self`/`cls` in one of our own classes;
4. imports a `_name` from one of the libraries.

No allow-list: the only names the first rule knows are the table's, so a touch that moves
out of `faust_ext/` is reported, and a new touch inside it must be added to the table
(`test_faust_ext_touches_only_listed_names` applies rules 1 to 4 to `faust_ext/`, the
first to every `x._name` there, and requires each name found to be listed), where `test_library_seams.py` checks it. A class
is a library subclass when a base resolves, through the module's imports, to a class of
one of the libraries or of `faust_ext` whose method resolution order reaches a library class.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from convoy_stream.faust_ext import PRIVATE_NAMES

ROOT = Path(__file__).parents[2]
LIBRARIES = ("faust", "mode", "aiokafka", "rocksdict", "aiohttp")
FAUST_EXT = ROOT / "convoy_stream" / "faust_ext"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_library_class(obj: Any) -> bool:
    return isinstance(obj, type) and obj.__module__.split(".")[0] in LIBRARIES


@dataclass
class _Class:
    library_bases: list[type]
    own: set[str] = field(default_factory=set)  # the private names the class body defines

    def library_has(self, name: str) -> bool:
        return any(hasattr(base, name) for base in self.library_bases)


class _Finder(ast.NodeVisitor):
    """The library touches of one module (rules 1 to 4 of the module docstring)."""

    def __init__(self, path: Path, tree: ast.Module, *, strict: bool = False) -> None:
        self.path = path
        #: Every `x._name` not on our own `self` counts, listed or not (for `faust_ext/` itself).
        self.strict = strict
        self.package = _module_name(path).rpartition(".")[0] if path.name != "__init__.py" else _module_name(path)
        self.imports: dict[str, str] = {}
        self.classes: list[_Class | None] = []  # None: one of our own classes
        self.found: list[tuple[int, str]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imports[alias.asname] = alias.name
                    else:
                        root = alias.name.split(".")[0]
                        self.imports[root] = root
            elif isinstance(node, ast.ImportFrom):
                module = self._absolute(node)
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = f"{module}.{alias.name}"
                    if module.split(".")[0] in LIBRARIES and _private(alias.name):
                        self.found.append((node.lineno, f"imports {alias.name} from {module}"))

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")
        base = base[: len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def _dotted(self, expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return self.imports.get(expr.id)
        if isinstance(expr, ast.Attribute):
            root = self._dotted(expr.value)
            return f"{root}.{expr.attr}" if root else None
        return None

    def _library_bases(self, node: ast.ClassDef) -> list[type]:
        found: list[type] = []
        for base in node.bases:
            dotted = self._dotted(base)
            if not dotted or not (dotted.split(".")[0] in LIBRARIES or dotted.startswith("convoy_stream.faust_ext")):
                continue
            module, _, attr = dotted.rpartition(".")
            try:
                obj = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError):
                obj = importlib.import_module(dotted)
            if isinstance(obj, type):
                found += [klass for klass in obj.__mro__ if _is_library_class(klass)]
        return found

    def _report(self, node: ast.AST, what: str) -> None:
        self.found.append((getattr(node, "lineno", 0), what))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = self._library_bases(node)
        info = _Class(bases) if bases else None
        if info is not None:
            for child in ast.walk(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(child.name):
                    info.own.add(child.name)
                elif isinstance(child, ast.Attribute) and isinstance(child.ctx, ast.Store) and _private(child.attr):
                    info.own.add(child.attr)
                elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store) and _private(child.id):
                    info.own.add(child.id)
            for child in node.body:
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(child.name) \
                        and info.library_has(child.name):
                    self._report(child, f"overrides {child.name} of a library class")
        self.classes.append(info)
        self.generic_visit(node)
        self.classes.pop()

    def _on_self(self, expr: ast.expr) -> bool:
        return (isinstance(expr, ast.Name) and expr.id in ("self", "cls")) or (
            isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "super")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = node.attr
        if _private(name):
            current = self.classes[-1] if self.classes else None
            if self._on_self(node.value) and self.classes:
                if current is not None and (current.library_has(name) or name not in current.own
                                            or name in PRIVATE_NAMES):
                    self._report(node, f"names {name} of a library class it derives from")
            elif name in PRIVATE_NAMES or self.strict:
                self._report(node, f"names {name}, a library's private attribute")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (isinstance(func, ast.Name) and func.id in ("getattr", "hasattr", "setattr", "delattr")
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str) and _private(node.args[1].value)):
            ours = self._on_self(node.args[0]) and self.classes and self.classes[-1] is None
            if not ours:
                self._report(node, f"{func.id}(..., {node.args[1].value!r})")
        self.generic_visit(node)


def touches(path: Path, *, strict: bool = False) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    finder = _Finder(path, tree, strict=strict)
    finder.visit(tree)
    return sorted(finder.found)


def _python_files(*roots: str) -> Iterator[Path]:
    for root in roots:
        yield from sorted((ROOT / root).rglob("*.py"))


def test_no_code_outside_faust_ext_names_a_library_private() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}: {what}"
             for path in _python_files("convoy_stream", "tables", "bridges") if FAUST_EXT not in path.parents
             for line, what in touches(path)]
    assert not found, "library internals named outside convoy_stream/faust_ext (move them there):\n" + "\n".join(found)


def test_faust_ext_touches_only_listed_names() -> None:
    """Every private name faust_ext reaches is a row of `faust_ext.SEAMS`, so the seam test checks it."""
    found = []
    for path in _python_files("convoy_stream/faust_ext"):
        for line, what in touches(path, strict=True):
            name = next((w.strip("'\"(),") for w in what.split() if _private(w.strip("'\"(),"))), "")
            if name not in PRIVATE_NAMES:
                found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not found, "add these to convoy_stream/faust_ext SEAMS:\n" + "\n".join(found)


# -- the rules find what they should --------------------------------------------------------------

SAMPLE = '''
import faust
from faust.transport.consumer import _private_helper
from convoy_stream.faust_ext.app import App


class Ours:
    def __init__(self):
        self._committed_offset = {}  # our own attribute of the same name: not a touch
        self._buffer = []

    def read(self, consumer):
        getattr(self, "_buffer", None)
        return consumer._committed_offset, self._buffer


class Worker(App):
    def _new_consumer(self):
        return super()._new_consumer()

    def mine(self):
        self._seen = 1
        return self._seen, self._fetcher


def peek(producer):
    """producer.client._conns is named here only in a docstring."""
    return getattr(producer.client, "_conns", {})
'''


def test_the_rules_report_library_touches_and_not_our_own_names() -> None:
    path = ROOT / "convoy_stream" / "_sample_for_privates_test.py"
    tree = ast.parse(SAMPLE)
    finder = _Finder(path, tree)
    finder.visit(tree)
    assert sorted(finder.found) == [
        (3, "imports _private_helper from faust.transport.consumer"),
        (14, "names _committed_offset, a library's private attribute"),
        (18, "overrides _new_consumer of a library class"),
        (19, "names _new_consumer of a library class it derives from"),
        (23, "names _fetcher of a library class it derives from"),
        (28, "getattr(..., '_conns')"),
    ]
