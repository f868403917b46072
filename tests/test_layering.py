"""Imports go one way: conditioner networks below bijectors, bijectors below the model,
export and the command line on top. Read from the source (ast), so an import inside a
function counts as much as one at the top of a module."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tfp_flows"

# module prefix -> prefixes it must not import (a prefix covers its submodules).
FORBIDDEN = {
    "tfp_flows.nets": ("tfp_flows.bijectors", "tfp_flows.flow_model", "tfp_flows.export",
                       "tfp_flows.cli", "tfp_flows.models"),
    "tfp_flows.bijectors": ("tfp_flows.flow_model", "tfp_flows.export", "tfp_flows.cli",
                            "tfp_flows.models"),
    "tfp_flows.flow_model": ("tfp_flows.export", "tfp_flows.cli"),
}


def _is_module(name):
    """True if `name` (tfp_flows.a.b) is a module or package of the source tree."""
    parts = name.split(".")[1:]
    if parts[:1] == ["models"]:
        base = ROOT.joinpath("models", *parts[1:])
    else:
        base = PACKAGE.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(source, module):
    """The tfp_flows modules that `source` (the text of `module`) imports, anywhere in it:
    `import a.b`, `from a import b` (b a submodule, else a), relative imports, and
    importlib.import_module / __import__ of a constant name."""
    is_package = (PACKAGE.joinpath(*module.split(".")[1:]) / "__init__.py").is_file()
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if _is_module(full) else base)
        elif isinstance(node, ast.Call) and node.args \
                and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) \
                and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                    "import_module", "__import__"):
            found.add(node.args[0].value)
    return {name for name in found if name == "tfp_flows" or name.startswith("tfp_flows.")}


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path.read_text()


def violations(modules):
    """["a imports b", ...] for every import that FORBIDDEN rules out."""
    found = []
    for module, source in modules:
        for prefix, banned in FORBIDDEN.items():
            if module != prefix and not module.startswith(prefix + "."):
                continue
            for name in sorted(imported_modules(source, module)):
                if any(name == b or name.startswith(b + ".") for b in banned):
                    found.append(f"{module} imports {name}")
    return found


def test_imports_go_one_way():
    modules = list(_sources())
    assert len(modules) > 40 and {"tfp_flows.nets.made", "tfp_flows.bijectors.planar",
                                  "tfp_flows.flow_model"} <= {m for m, _ in modules}
    assert violations(modules) == []


@pytest.mark.parametrize("module, source, expected", [
    ("tfp_flows.nets.made", "def f():\n    from tfp_flows.bijectors import Planar\n",
     "tfp_flows.nets.made imports tfp_flows.bijectors"),
    ("tfp_flows.nets.made", "from tfp_flows import flow_model\n",
     "tfp_flows.nets.made imports tfp_flows.flow_model"),
    ("tfp_flows.bijectors.planar", "from ..flow_model import FlowModel\n",
     "tfp_flows.bijectors.planar imports tfp_flows.flow_model"),
    ("tfp_flows.bijectors", "from . import amortized_flow\nimport tfp_flows.models.maf\n",
     "tfp_flows.bijectors imports tfp_flows.models.maf"),
    ("tfp_flows.flow_model", "import importlib\nimportlib.import_module('tfp_flows.export')\n",
     "tfp_flows.flow_model imports tfp_flows.export"),
])
def test_the_check_finds_an_upward_import(module, source, expected):
    assert violations([(module, source)]) == [expected]
