"""Every import rule of the package, in one place (SPEC §1), read with ``ast``.

- the WeChat client (``wxsite/wechat/``) imports no Flask and nothing else of the site;
- the store (``wxsite/store/``) imports no blueprint;
- the emulator (``wxsite/emulator/``) imports nothing of ``wxsite`` outside itself, and
  of the rest only the standard library and the few packages it serves with;
- database drivers (sqlite3, sqlite-utils, psycopg) are imported only by the store and its
  engine adapter (``wxsite/engines.py``); the emulator's own state file is its own.

Imports inside functions count, relative imports are resolved, and
``importlib.import_module("…")`` / ``__import__("…")`` with a literal name count too.
The last tests run the same checks on a small made-up package that breaks each rule.
"""

import ast
import pathlib
import sys

import pytest

import wxsite

ROOT = pathlib.Path(wxsite.__file__).parent

#: What the client package may not import (besides the rest of wxsite).
WEB_FRAMEWORK = ("flask", "flask_login", "flask_wtf", "werkzeug", "jinja2", "itsdangerous")
#: Third-party packages the emulator may use: serving, Pay/push crypto, QR images.
EMULATOR_THIRD_PARTY = {"flask", "werkzeug", "cryptography", "segno"}
#: Database drivers: only the store and the engine adapter may import them.
DRIVERS = ("sqlite3", "sqlite_utils", "psycopg", "psycopg_pool")


def _module_name(path, root):
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path, root=ROOT):
    """Yield (line, absolute module name) for every import in the file at *path*."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield node.lineno, module
            # ``from pkg import mod`` imports the module pkg.mod (names resolve the same way).
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{module}.{alias.name}"
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            if node.args and isinstance(node.args[0], ast.Constant):
                target = str(node.args[0].value)
                if target.startswith("."):  # import_module(".x", __name__)
                    target = package + target
                yield node.lineno, target


def _is_dynamic_import(func):
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _within(module, prefix):
    return module == prefix or module.startswith(prefix + ".")


def _files(root, package):
    return sorted((root / package).rglob("*.py"))


def _where(path, root, line):
    return f"{path.relative_to(root.parent)}:{line}"


def client_violations(root=ROOT):
    """Imports of Flask (and friends) or of the site in the WeChat client package."""
    own = f"{root.name}.wechat"
    found = []
    for path in _files(root, "wechat"):
        for line, module in imports(path, root):
            if module.split(".")[0] in WEB_FRAMEWORK:
                found.append(f"{_where(path, root, line)} imports {module} (a web framework)")
            elif _within(module, root.name) and not _within(module, own):
                found.append(f"{_where(path, root, line)} imports {module} (the site)")
    return found


def blueprint_packages(root=ROOT):
    """Return the site packages (or modules) that define a Flask Blueprint."""
    found = set()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] == "emulator":
            continue  # the emulator's blueprints are the emulator's (a rule of their own)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name == "Blueprint":
                    top = relative.parts[0].removesuffix(".py")
                    found.add(f"{root.name}.{top}")
    return found


def store_violations(root=ROOT):
    """Imports of a blueprint package (or of the emulator) from the store."""
    forbidden = blueprint_packages(root) | {f"{root.name}.emulator"}
    found = []
    for path in _files(root, "store"):
        for line, module in imports(path, root):
            hit = next((p for p in forbidden if _within(module, p)), None)
            if hit:
                found.append(f"{_where(path, root, line)} imports {module} (blueprint {hit})")
    return found


def emulator_violations(root=ROOT):
    """Imports of the site, or of third-party packages it does not need, from the emulator."""
    own = f"{root.name}.emulator"
    found = []
    for path in _files(root, "emulator"):
        for line, module in imports(path, root):
            top = module.split(".")[0]
            if top == root.name:
                if not _within(module, own):
                    found.append(f"{_where(path, root, line)} imports {module} (the site)")
            elif top not in sys.stdlib_module_names and top not in EMULATOR_THIRD_PARTY:
                found.append(f"{_where(path, root, line)} imports {module} (not allowed)")
    return found


def driver_violations(root=ROOT):
    """Imports of a database driver outside the store, its engine adapter and the emulator."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] in ("store", "emulator") or str(relative) == "engines.py":
            continue
        for line, module in imports(path, root):
            if module.split(".")[0] in DRIVERS:
                found.append(f"{_where(path, root, line)} imports {module} (a database driver)")
    return found


# -- the rules, on the real package ----------------------------------------------------


def test_the_rules_read_real_files():
    assert len(_files(ROOT, "wechat")) >= 5
    assert len(_files(ROOT, "store")) >= 5
    assert len(_files(ROOT, "emulator")) >= 10
    packages = blueprint_packages()
    assert {"wxsite.auth", "wxsite.pay", "wxsite.media", "wxsite.jssdk"} <= packages
    assert "wxsite.store" not in packages and "wxsite.wechat" not in packages


def test_wechat_client_imports_no_flask_and_nothing_of_the_site():
    assert client_violations() == []


def test_store_imports_no_blueprint():
    assert store_violations() == []


def test_emulator_imports_nothing_of_the_site():
    assert emulator_violations() == []


def test_only_the_store_imports_a_database_driver():
    assert driver_violations() == []


# -- each rule fails when broken (a made-up package) ----------------------------------------


@pytest.fixture
def fake(tmp_path):
    """A tiny package laid out like wxsite whose files the test writes."""
    root = tmp_path / "wxsite"

    def write(relative, text=""):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(text, encoding="utf-8")

    write("wechat/client.py", "import json\nfrom . import protocol\n")
    write("wechat/protocol.py")
    write("store/db.py", "import sqlite3\nfrom ..engines import connect\n")
    write("engines.py")
    write("pay/views.py", "from flask import Blueprint\nbp = Blueprint('pay', __name__)\n")
    write("emulator/app.py", "from flask import Flask\nfrom . import wechat_facts\n")
    write("emulator/wechat_facts.py")
    return root, write


def test_the_made_up_package_is_clean(fake):
    root, _ = fake
    assert blueprint_packages(root) == {"wxsite.pay"}
    assert client_violations(root) == []
    assert store_violations(root) == []
    assert emulator_violations(root) == []
    assert driver_violations(root) == []


@pytest.mark.parametrize(
    "text",
    [
        "import flask\n",
        "from werkzeug.utils import secure_filename\n",
        "def f():\n    from flask import current_app\n",
        "from .. import store\n",
        "from ..config import load\n",
        "import wxsite.wx\n",
        "import importlib\nimportlib.import_module('wxsite.app')\n",
    ],
)
def test_client_rule_fails_when_broken(fake, text):
    root, write = fake
    write("wechat/http.py", text)
    assert client_violations(root), text


@pytest.mark.parametrize(
    "text",
    [
        "from ..pay import views\n",
        "from wxsite.pay.views import bp\n",
        "def f():\n    from ..pay.views import bp\n",
        "from .. import pay\n",
        "from ..emulator import app\n",
    ],
)
def test_store_rule_fails_when_broken(fake, text):
    root, write = fake
    write("store/orders.py", text)
    assert store_violations(root), text


@pytest.mark.parametrize(
    "text",
    [
        "from wxsite.wechat import protocol\n",
        "from ..wechat import protocol\n",
        "from .. import wechat\n",
        "import wxsite.wechat.protocol as p\n",
        "def f():\n    from ..config import load\n",
        "__import__('wxsite.wechat.protocol')\n",
        "import requests\n",
    ],
)
def test_emulator_rule_fails_when_broken(fake, text):
    root, write = fake
    write("emulator/api.py", text)
    assert emulator_violations(root), text


@pytest.mark.parametrize(
    "path, text",
    [
        ("errors.py", "import sqlite3\n"),
        ("pages/views.py", "from psycopg import OperationalError\n"),
        ("doctor.py", "def f():\n    import sqlite_utils\n"),
        ("accounts.py", "import psycopg_pool\n"),
    ],
)
def test_driver_rule_fails_when_broken(fake, path, text):
    root, write = fake
    write(path, text)
    assert driver_violations(root), text
