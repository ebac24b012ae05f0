"""The WeChat client package must not import Flask (nor anything of the site)."""

import ast
import pathlib

import wxsite.wechat

PACKAGE = pathlib.Path(wxsite.wechat.__file__).parent
FORBIDDEN = ("flask", "flask_login", "flask_wtf", "werkzeug", "jinja2", "wxsite.")


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module
        elif isinstance(node, ast.ImportFrom) and node.level > 1:
            yield "wxsite." + (node.module or "")


def test_client_package_has_no_flask():
    files = list(PACKAGE.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        for name in _imports(path):
            assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"


def test_emulator_imports_only_protocol_from_the_site():
    emulator = PACKAGE.parent / "emulator"
    for path in emulator.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert node.module in ("wechat", "wechat.protocol") or (
                    node.module == "wechat" and all(a.name == "protocol" for a in node.names)
                ), f"{path.name} imports ..{node.module}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert (
                    not node.module.startswith("wxsite")
                    or node.module
                    in (
                        "wxsite.wechat.protocol",
                        "wxsite.wechat",
                        "wxsite.emulator",
                    )
                    or node.module.startswith("wxsite.emulator")
                ), f"{path.name} imports {node.module}"
