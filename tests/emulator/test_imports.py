"""The emulator stands alone: stdlib, Flask/Werkzeug, and the shared protocol constants."""

import ast
import pathlib
import sys

import wxsite.emulator

PACKAGE = pathlib.Path(wxsite.emulator.__file__).parent
ALLOWED_THIRD_PARTY = {"flask", "werkzeug", "cryptography", "segno"}  # Pay and push; QR images


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                yield node.module, alias.name


def test_emulator_imports_only_stdlib_flask_and_protocol():
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 8
    for path in modules:
        for module, name in _imports(path):
            top = module.split(".")[0]
            if top == "wxsite":
                assert (module, name) == ("wxsite.wechat", "protocol"), f"{path.name}: {module}"
            else:
                allowed = top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY
                assert allowed, f"{path.name} imports {module}"
