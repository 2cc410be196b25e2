"""The layers of dsreg/ import one way: cli -> api -> store/fetching -> data core -> errors; the data path never imports the trainer.

    python tests/test_layers.py      # prints which layer imports which (module-level and deferred imports)

Imports inside functions are counted apart ("deferred"): they run only when that function is
called (e.g. a CLI command importing the trainer), so they do not make `import dsreg` heavier.
"""

from __future__ import annotations

import ast
import functools
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dsreg"
#: The data core is dsreg/'s top-level modules; every other layer is a subpackage. What each layer may import at module level (besides itself).
ALLOWED = {
    "core": {"core", "fetching"},  # api and the package's lazy exports reach into fetching
    "fetching": {"core"},
    "store": {"core", "fetching"},
    "train": {"core", "fetching", "store"},
    "testing": {"core", "fetching", "store", "train", "cli"},
    "cli": {"core", "fetching", "store", "train", "testing"},
}
#: The data path: what `dsreg.load` runs. It never imports the trainer, not even inside a function.
DATA_PATH = {"core", "fetching", "store"}


def layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    if rel.parts == ("__main__.py",):
        return "cli"  # `python -m dsreg` is the command line
    return rel.parts[0] if len(rel.parts) > 1 else "core"


def _target(module: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Return the dsreg layers an import statement in ``module`` names."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if a.name == "dsreg" or a.name.startswith("dsreg.")]
    elif node.level == 0:
        if node.module and (node.module == "dsreg" or node.module.startswith("dsreg.")):
            names = [node.module + ("." + a.name if node.module == "dsreg" else "") for a in node.names]
    else:
        base = list(module.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level])
        full = ".".join(base + ([node.module] if node.module else []))
        names = [full + ("." + a.name if not node.module else "") for a in node.names] if not node.module else [full]
    out = []
    for name in names:
        parts = name.split(".")
        if len(parts) < 2:
            continue
        sub = parts[1]
        out.append(sub if (PACKAGE / sub).is_dir() else "core")
    return out


@functools.cache  # one parse of the package serves every test
def imports() -> Counter[tuple[str, str, str, str]]:
    """Count ``(from layer, to layer, "module"|"deferred", module path)`` over every module of dsreg/."""
    found: Counter[tuple[str, str, str, str]] = Counter()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, ast.If) for n in ast.walk(s)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                    continue
                when = "module" if id(node) in top else "deferred"
                for target in _target(path, node):
                    found[(layer(path), target, when, str(path.relative_to(PACKAGE.parent)))] += 1
    return found


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = sorted({(src, dst, mod) for (src, dst, when, mod) in imports() if when == "module" and src != dst and dst not in ALLOWED[src]})
    assert not wrong, f"module-level imports against the layering: {wrong}"


def test_the_data_path_never_imports_the_trainer_or_the_cli() -> None:
    wrong = sorted({(src, dst, mod) for (src, dst, when, mod) in imports() if src in DATA_PATH and dst in {"train", "cli", "testing"}})
    assert not wrong, f"the data path imports the trainer, the CLI or the test kit: {wrong}"


if __name__ == "__main__":
    matrix: Counter[tuple[str, str, str]] = Counter()
    for (src, dst, when, _), n in imports().items():
        if src != dst:
            matrix[(src, dst, when)] += n
    for (src, dst, when), n in sorted(matrix.items()):
        print(f"{src:>9} -> {dst:<9} {when:<8} {n:3d} import(s)")
