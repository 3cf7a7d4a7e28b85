"""The package's layout rules (CONTRIBUTING.md, Layout), checked from the source, not by hand:

(a) no import cycle among pathviz modules: neither among module-level imports (what runs when
    a module is imported) nor among all imports, those inside functions included;
    ``if TYPE_CHECKING:`` imports never run and do not count, and ``from pathviz.x import y``
    where ``y`` is a submodule counts as importing ``pathviz.x.y``;
(b) an import inside a function carries a one-line reason, ``# lazy: <reason>``, on its line or
    the line above (it keeps torch, plotly, matplotlib, transformers ... off a start-up path, or
    an optional dependency out of a module that must import without it); any other import
    belongs at the top of its module;
(c) no module over :data:`MAX_LINES` lines.

The checker is plain AST reading, so it runs without importing the package (and without torch).
The companion test feeds it tiny packages that break each rule, so each rule can fail.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
# what an in-function import may keep off a start-up path: heavy imports and optional packages
HEAVY = ("torch", "torchvision", "matplotlib", "plotly", "transformers", "numba", "onnx",
         "onnxruntime", "sklearn", "torch_pruning", "lightning", "tensorboard", "accelerate")
_LAZY = re.compile(r"#\s*lazy:\s*(\S.*)$")


@dataclass(frozen=True)
class Import:
    """One import statement's edge to a module of the package."""

    source: str  # the importing module
    target: str  # the imported module of the package
    line: int
    in_function: bool


@dataclass
class Layout:
    """What the checker read from a package."""

    modules: dict[str, Path] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    edges: list[Import] = field(default_factory=list)
    # in-function imports of anything (the package's modules, the standard library, third
    # party): (module, line, the imported name, the reason or None)
    lazy: list[tuple[str, int, str, str | None]] = field(default_factory=list)
    # the top-level packages outside the package each module imports at module level
    outside: dict[str, set[str]] = field(default_factory=dict)

    def heavy(self, names: str) -> list[str]:
        """The :data:`HEAVY` packages an import of ``names`` loads: the package itself, or for
        a module of the package, those its module-level imports load, all the way down."""
        top = next(iter(self.modules))
        first = names.split(",")[0].strip()
        if first.split(".")[0] != top:
            return [first.split(".")[0]] if first.split(".")[0] in HEAVY else []
        start = _resolve(first if first in self.modules else first.rsplit(".", 1)[0],
                         self.modules)
        seen, todo, found = set(), [start], set()
        while todo:
            m = todo.pop()
            if m in seen or m is None:
                continue
            seen.add(m)
            found |= self.outside.get(m, set()) & set(HEAVY)
            todo += [e.target for e in self.edges if e.source == m and not e.in_function]
        return sorted(found, key=HEAVY.index)


def _module_name(pkg_dir: Path, path: Path) -> str:
    parts = list(path.relative_to(pkg_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Yield (node, in_function) for each import that can run: TYPE_CHECKING blocks skipped."""
    def walk(node: ast.AST, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for c in child.orelse:  # the else branch runs
                    yield from walk(ast.Module(body=[c], type_ignores=[]), in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, in_function
            yield from walk(child, in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
    yield from walk(tree, False)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` starts with (``pkg.a.b.attr`` -> ``pkg.a.b``)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _reason(src_lines: list[str], line: int) -> str | None:
    m = _LAZY.search(src_lines[line - 1])
    if m is None and line >= 2 and src_lines[line - 2].lstrip().startswith("#"):
        m = _LAZY.search(src_lines[line - 2])  # a comment line above (not another import's)
    return m.group(1).strip() if m else None


def scan(pkg_dir: Path) -> Layout:
    """Read every module under the package folder ``pkg_dir``."""
    lay = Layout()
    for path in sorted(pkg_dir.rglob("*.py")):
        lay.modules[_module_name(pkg_dir, path)] = path
    top = pkg_dir.name
    for mod, path in lay.modules.items():
        text = path.read_text()
        src = text.splitlines()
        lay.lines[mod] = len(src)
        is_pkg = path.name == "__init__.py"
        for node, in_fn in _imports(ast.parse(text, str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
                targets = names
            else:
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{a.name}" if base else a.name for a in node.names]
                # ``from pkg.x import y``: the submodule pkg.x.y where there is one, else pkg.x
                targets = [n if n in lay.modules else base for n in names]
            if not in_fn:
                for n in names:
                    if n.split(".")[0] != top:
                        lay.outside.setdefault(mod, set()).add(n.split(".")[0])
            if in_fn:
                lay.lazy.append((mod, node.lineno, ", ".join(names), _reason(src, node.lineno)))
            for t in targets:
                if t == top or t.startswith(top + "."):
                    r = _resolve(t, lay.modules)
                    if r is not None and r != mod:
                        lay.edges.append(Import(mod, r, node.lineno, in_fn))
    return lay


def cycles(edges: list[Import]) -> list[list[str]]:
    """The import cycles: each strongly connected set of two or more modules, as one cycle
    through it (``[a, b, a]``), so a failure names the modules and the order."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    sccs: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan; the package is small enough to recurse
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    out = []
    for comp in sccs:  # one concrete cycle: a shortest way back to the first module
        start = min(comp)
        prev: dict[str, str] = {}
        frontier, seen = [start], {start}
        found = None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & comp):
                    if w == start:
                        found = v
                        break
                    if w not in seen:
                        seen.add(w)
                        prev[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        path = [found]
        while path[-1] != start:
            path.append(prev[path[-1]])
        out.append([*reversed(path), start])
    return out


def problems(lay: Layout) -> list[str]:
    """Every broken rule, one sentence each, naming the module (and line) at fault."""
    out = []
    for kind, edges in (("module-level", [e for e in lay.edges if not e.in_function]),
                        ("all (in-function included)", lay.edges)):
        for cyc in cycles(edges):
            out.append(f"import cycle among {kind} imports: {' -> '.join(cyc)}")
    for mod, line, names, reason in lay.lazy:
        if reason is None:
            out.append(f"{lay.modules[mod]}:{line}: `{names}` is imported inside a function "
                       f"without a `# lazy: <reason>` comment; move it to the top of the "
                       f"module, or say which heavy or optional import it keeps off which path")
        elif not lay.heavy(names):
            out.append(f"{lay.modules[mod]}:{line}: `{names}` is imported inside a function "
                       f"but loads none of {', '.join(HEAVY)}; move it to the top of the module")
    for mod, n in lay.lines.items():
        if n > MAX_LINES:
            out.append(f"{lay.modules[mod]} has {n} lines, over {MAX_LINES}: move a coherent "
                       f"piece of it to its own module")
    return out


def summary(lay: Layout) -> str:
    """The counts the notes quote."""
    kinds = Counter((lay.heavy(names) or ["nothing heavy"])[0]
                    for _, _, names, reason in lay.lazy if reason)
    biggest = max(lay.lines, key=lay.lines.get)
    where = lay.modules[biggest]
    where = where.relative_to(ROOT) if ROOT in where.parents else where
    return (f"{len(lay.modules)} modules, {len(lay.edges)} import edges "
            f"({sum(not e.in_function for e in lay.edges)} module-level), "
            f"cycles: {len(cycles([e for e in lay.edges if not e.in_function]))} module-level, "
            f"{len(cycles(lay.edges))} in all; {len(lay.lazy)} in-function imports, "
            f"{sum(r is not None for *_, r in lay.lazy)} with a reason ("
            + ", ".join(f"{k} {n}" for k, n in kinds.most_common())
            + f"); largest module {where} ({lay.lines[biggest]} lines)")


def test_pathviz_layout():
    lay = scan(ROOT / "pathviz")
    print("\nlayout:", summary(lay))
    assert not problems(lay), "\n".join(problems(lay))
    assert len(lay.modules) > 50 and len(lay.edges) > 100  # it read the package


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    return pkg


def test_each_rule_can_fail(tmp_path):
    # (a) a cycle among module-level imports, through a submodule named by `from pkg import b`
    lay = scan(_package(tmp_path / "a", {"a.py": "from pkg import b\n",
                                         "b.py": "import pkg.c\n",
                                         "c.py": "from pkg.a import x\n"}))
    assert problems(lay) == ["import cycle among module-level imports: pkg.a -> pkg.b -> pkg.c "
                             "-> pkg.a",
                             "import cycle among all (in-function included) imports: pkg.a -> "
                             "pkg.b -> pkg.c -> pkg.a"]
    # ... one that only an in-function import closes (with its reason: only the cycle fails);
    # a relative import counts, a TYPE_CHECKING one does not
    lay = scan(_package(tmp_path / "a2", {
        "a.py": "from . import b\nimport torch\n",
        "b.py": "def f():\n    from pkg import a  # lazy: keeps torch off\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n",
        "d.py": "from pkg import c\n"}))
    assert problems(lay) == ["import cycle among all (in-function included) imports: pkg.a -> "
                             "pkg.b -> pkg.a"]
    # (b) an in-function import without a reason; the reason on the line above is enough
    # (another import's comment on the line above is not; a reason on an import that keeps
    # nothing heavy off fails too; a module of the package that loads torch is heavy)
    pkg = _package(tmp_path / "b", {
        "m.py": "def f():\n    import html\n    return html\n\n"
                "def g():\n    # lazy: torch is heavy\n    import torch\n"
                "    import torchvision  # lazy: heavy too\n"
                "    import sklearn\n    return torch\n\n"
                "def h():\n    import json  # lazy: for no reason\n"
                "    from pkg import t  # lazy: t loads torch\n",
        "t.py": "import pkg.u\n",
        "u.py": "from torch import nn\n"})
    bare = "without a `# lazy: <reason>` comment; move it to the top of the module, or say " \
           "which heavy or optional import it keeps off which path"
    assert problems(scan(pkg)) == [
        f"{pkg / 'm.py'}:2: `html` is imported inside a function {bare}",
        f"{pkg / 'm.py'}:9: `sklearn` is imported inside a function {bare}",
        f"{pkg / 'm.py'}:13: `json` is imported inside a function but loads none of "
        f"{', '.join(HEAVY)}; move it to the top of the module"]
    # (c) a long module
    pkg = _package(tmp_path / "c", {"long.py": "x = 1\n" * (MAX_LINES + 1),
                                    "ok.py": "x = 1\n" * MAX_LINES})
    assert problems(scan(pkg)) == [f"{pkg / 'long.py'} has {MAX_LINES + 1} lines, over "
                                   f"{MAX_LINES}: move a coherent piece of it to its own module"]
