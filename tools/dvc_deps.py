"""dvc.yaml's code deps, generated from the import graph: `make dvc-deps` rewrites them in place.

A stage runs `handpose <command>`: cli.py, then the imports inside that command's `cmd_*` function,
then everything those modules import within the package, transitively (imports inside functions
count too: the stage may call them). A package that loads its modules by name (the backbones of
handpose.model, the sources of handpose.data.sources) may run any of them, so it is a dep as a
folder. Only the `src/handpose` lines of each stage's `deps:` are rewritten; the data deps, the other
keys and the comments stay as written. tests/test_dvc_deps.py checks the committed file is current.

    python tools/dvc_deps.py [--check]
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "handpose"
DVC_YAML = ROOT / "dvc.yaml"
LOADS_BY_NAME = 'importlib.import_module(f"{__name__}.'
BY_NAME_COMMENT = "  # loaded by name: any of its modules may run"


def module_file(name: str) -> Path | None:
    """handpose.a.b -> src/handpose/a/b.py (or its package's __init__.py); None outside the package."""
    if name != "handpose" and not name.startswith("handpose."):
        return None
    path = ROOT / "src" / Path(*name.split("."))
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"


def imported_modules(node: ast.AST) -> set[str]:
    """Package modules imported anywhere under `node`, `from a import b` counting a.b when it is a module."""
    names = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Import):
            names |= {alias.name for alias in child.names}
        elif isinstance(child, ast.ImportFrom) and child.module:
            names.add(child.module)
            names |= {f"{child.module}.{alias.name}" for alias in child.names}
    return {name for name in names if (path := module_file(name)) is not None and path.is_file()}


def runs_code(path: Path) -> bool:
    return bool(path.read_text().strip())  # an empty __init__.py runs nothing


def closure(modules: set[str]) -> tuple[set[Path], set[Path]]:
    """Every file those modules run (themselves, their parent packages' __init__, their imports), and
    the folders of the packages among them that load their modules by name."""
    seen, todo, by_name = set(), list(modules), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]  # parent packages
        source = module_file(name).read_text()
        todo += imported_modules(ast.parse(source))
        if LOADS_BY_NAME in source:
            folder = module_file(name).parent
            by_name.add(folder)
            todo += [f"{name}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"]
    return {f for f in map(module_file, seen) if runs_code(f)}, by_name


def stage_code(command: str) -> tuple[set[Path], set[Path]]:
    """The files `handpose <command>` runs, and its by-name folders (see closure)."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    top_level = {n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)}
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == f"cmd_{command}")
    modules = imported_modules(func)
    for node in top_level:
        modules |= imported_modules(node)
    files, by_name = closure(modules)
    # cli.py itself (through __main__.py: `python -m handpose`), but only the imports this command makes
    return files | {PACKAGE / "cli.py", PACKAGE / "__main__.py"}, by_name


def stage_command(spec: dict) -> str:
    """The `handpose` command a stage runs (its cmd is `${handpose} <command> ...`)."""
    words = spec["cmd"].split()
    if words[0] != "${handpose}":
        raise ValueError(f"expected a `${{handpose}} <command>` stage, not {spec['cmd']!r}")
    return words[1].replace("-", "_")


def code_deps(command: str) -> list[str]:
    """The dep lines of a stage's code: a by-name folder whole, every other file by name, sorted."""
    files, by_name = stage_code(command)
    folders = {f for f in by_name if {p for p in f.rglob("*.py") if runs_code(p)} <= files}
    single = {f for f in files if not any(f.is_relative_to(folder) for folder in folders)}
    rel = lambda p: str(p.relative_to(ROOT))  # noqa: E731
    return sorted([rel(f) for f in single] + [rel(f) + BY_NAME_COMMENT for f in folders])


def generated(text: str) -> str:
    """dvc.yaml's text with each stage's `src/handpose` deps replaced by code_deps of its command."""
    stages = yaml.safe_load(text)["stages"]
    lines, out, stage, in_stages = text.splitlines(), [], None, False
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^\S", line):
            in_stages = line.startswith("stages:")
        elif in_stages and (match := re.match(r"^  ([\w-]+):\s*$", line)):
            stage = match[1]
        out.append(line)
        i += 1
        if in_stages and stage and re.match(r"^\s+deps:\s*$", line):
            items = []
            while i < len(lines) and re.match(r"^\s+- ", lines[i]):
                items.append(lines[i])
                i += 1
            indent = re.match(r"^(\s+)- ", items[0])[1] if items else " " * (len(line) - len(line.lstrip()) + 2)
            kept = [item for item in items if not item.strip()[2:].startswith("src/handpose")]
            spec = stages[stage].get("do", stages[stage])
            out += kept + [f"{indent}- {dep}" for dep in code_deps(stage_command(spec))]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if dvc.yaml is not current; write nothing")
    args = parser.parse_args()
    text = DVC_YAML.read_text()
    new = generated(text)
    if args.check:
        if new != text:
            print("dvc.yaml: code deps are not current; run `make dvc-deps`", file=sys.stderr)
            return 1
        return 0
    if new != text:
        DVC_YAML.write_text(new)
        print("dvc.yaml: code deps rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
