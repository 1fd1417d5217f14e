"""dvc.yaml's code deps are exactly the package modules each stage runs, found from the imports.

A stage runs `handpose <command>`: cli.py, then the imports inside that command's `cmd_*` function,
then everything those modules import within the package, transitively (imports inside functions
count too: the stage may call them). A package that loads its modules by name (the backbones of
handpose.model, the sources of handpose.data.sources) may run any of them. A dep on a folder stands
for every module in it.
"""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "handpose"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


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


LOADS_BY_NAME = 'importlib.import_module(f"{__name__}.'


def closure(modules: set[str]) -> set[Path]:
    """Every file those modules run: themselves, their parent packages' __init__, and their imports."""
    seen, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]  # parent packages
        source = module_file(name).read_text()
        todo += imported_modules(ast.parse(source))
        if LOADS_BY_NAME in source:
            todo += [f"{name}.{p.stem}" for p in module_file(name).parent.glob("*.py") if p.stem != "__init__"]
    files = {module_file(name) for name in seen}
    return {f for f in files if f.read_text().strip()}  # empty __init__.py files run no code


def stage_code(command: str) -> set[Path]:
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    top_level = {n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)}
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == f"cmd_{command}")
    modules = imported_modules(func)
    for node in top_level:
        modules |= imported_modules(node)
    # cli.py itself (through __main__.py: `python -m handpose`), but only the imports this command makes
    return closure(modules) | {PACKAGE / "cli.py", PACKAGE / "__main__.py"}


def declared_code(deps: list) -> set[Path]:
    files = set()
    for dep in deps:
        path = ROOT / (dep if isinstance(dep, str) else next(iter(dep)))
        if path.is_relative_to(PACKAGE):
            found = sorted(path.rglob("*.py")) if path.is_dir() else [path]
            files |= {f for f in found if f.read_text().strip()}
    return files


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_exactly_the_code_it_runs(stage):
    spec = STAGES[stage].get("do", STAGES[stage])
    command = spec["cmd"].split()
    assert command[0] == "${handpose}", f"{stage}: expected a `${{handpose}} <command>` stage"
    runs = stage_code(command[1].replace("-", "_"))
    declared = declared_code(spec.get("deps", []))
    rel = lambda files: sorted(str(f.relative_to(ROOT)) for f in files)  # noqa: E731
    assert not runs - declared, f"{stage}: dvc.yaml misses deps on {rel(runs - declared)}"
    assert not declared - runs, f"{stage}: dvc.yaml lists deps it does not run: {rel(declared - runs)}"


def test_the_import_scan_sees_function_level_imports():
    # cmd_train imports the training loop inside the function; it must be found, with what it imports.
    train_code = stage_code("train")
    assert PACKAGE / "train.py" in train_code and PACKAGE / "losses.py" in train_code
    assert PACKAGE / "report.py" not in train_code
