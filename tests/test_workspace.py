"""The workspace itself: package manifests, pinned dependencies, dependency direction, lint."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("s2e_policy", "s2e_sim_bridge", "s2e_training")
# Which of our packages each package may import (DESIGN.md: dependencies point one way).
ALLOWED_IMPORTS = {
    "s2e_policy": {"s2e_policy"},
    "s2e_sim_bridge": {"s2e_policy", "s2e_sim_bridge"},
    "s2e_training": {"s2e_policy", "s2e_sim_bridge", "s2e_training"},
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


def _setup_call(package: str) -> ast.Call:
    tree = ast.parse((REPO / "src" / package / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup":
            return node
    raise AssertionError(f"no setup() call in src/{package}/setup.py")


def _install_requires(package: str) -> list[str]:
    for kw in _setup_call(package).keywords:
        if kw.arg == "install_requires":
            return [ast.literal_eval(elt) for elt in kw.value.elts]
    raise AssertionError(f"src/{package}/setup.py has no install_requires")


@pytest.mark.parametrize("package", PACKAGES)
def test_package_is_ament_python(package: str) -> None:
    root = REPO / "src" / package
    manifest = ET.parse(root / "package.xml").getroot()
    assert manifest.get("format") == "3"
    assert manifest.findtext("name") == package
    assert manifest.find("export/build_type").text == "ament_python"
    maintainer = manifest.find("maintainer")
    assert EMAIL.match(maintainer.get("email")), maintainer.get("email")
    assert (root / "resource" / package).is_file()
    assert (root / "setup.cfg").is_file()
    assert (root / package / "__init__.py").is_file()
    assert any((root / "test").glob("test_*.py")), f"{package} has no tests"


@pytest.mark.parametrize("package", PACKAGES)
def test_third_party_dependencies_are_pinned(package: str) -> None:
    for req in _install_requires(package):
        if req.startswith("s2e_"):
            continue
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.+]*", req), (
            f"src/{package}/setup.py: {req!r} is not pinned with =="
        )


def test_torch_only_in_training() -> None:
    for package in PACKAGES:
        has_torch = any(r.startswith("torch") for r in _install_requires(package))
        assert has_torch == (package == "s2e_training"), package


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_point_one_way(package: str) -> None:
    """No module imports a package above it, and torch stays off the robot.

    s2e_policy never imports torch; s2e_sim_bridge only lazily, inside a function (gsplat's
    optional CUDA renderer backend).
    """
    forbidden = set(PACKAGES) - ALLOWED_IMPORTS[package]
    offenders = []
    for path in (REPO / "src" / package / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        rel = path.relative_to(REPO)
        offenders += [f"{rel}: {n}" for n in _imports(tree) if n.split(".")[0] in forbidden]
        if package == "s2e_policy":
            offenders += [f"{rel}: {n}" for n in _imports(tree) if n.split(".")[0] == "torch"]
        elif package == "s2e_sim_bridge":
            top_level = ast.Module(
                body=[n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)],
                type_ignores=[])
            offenders += [f"{rel}: module-level {n}" for n in _imports(top_level)
                          if n.split(".")[0] in ("torch", "gsplat")]
    assert not offenders, "imports against the dependency direction:\n" + "\n".join(offenders)


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed (it is in requirements-dev.txt)")
    proc = subprocess.run([ruff, "check", str(REPO)], capture_output=True, text=True,
                          cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_s2e_cli_lists_subcommands() -> None:
    proc = subprocess.run([sys.executable, "-m", "s2e_policy.cli", "--help"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    for command in ("scene", "render", "navbench", "data"):
        assert command in proc.stdout


def test_cli_start_up_imports_no_torch() -> None:
    """Registering every subcommand stays cheap: torch loads only when a handler needs it."""
    code = ("import sys; from s2e_policy.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'onnx', 'tensorboard') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.slow
def test_colcon_build_and_test(tmp_path: Path) -> None:
    """``colcon build`` installs the three packages; ``colcon test`` runs a package's tests."""
    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent))
    if colcon is None:
        pytest.skip("colcon not installed (it is in requirements-dev.txt)")
    common = ["--log-base", str(tmp_path / "log")]
    paths = ["--base-paths", str(REPO / "src"), "--build-base", str(tmp_path / "build"),
             "--install-base", str(tmp_path / "install")]
    build = subprocess.run([colcon, *common, "build", *paths], capture_output=True,
                           text=True, cwd=tmp_path, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    assert "3 packages finished" in build.stdout
    for package in PACKAGES:
        marker = tmp_path / "install" / package / "share" / "ament_index" / "resource_index"
        assert (marker / "packages" / package).is_file()
    test = subprocess.run(
        [colcon, *common, "test", *paths, "--test-result-base", str(tmp_path / "results"),
         "--packages-select", "s2e_policy", "--return-code-on-test-failure"],
        capture_output=True, text=True, cwd=tmp_path, check=False)
    assert test.returncode == 0, test.stdout + test.stderr
    # colcon falls back to unittest (and "runs" 0 tests) unless pytest is declared.
    result = subprocess.run([colcon, *common, "test-result", "--test-result-base",
                             str(tmp_path / "results")], capture_output=True, text=True,
                            cwd=tmp_path, check=False)
    summary = re.search(r"Summary: (\d+) tests, (\d+) errors, (\d+) failures", result.stdout)
    assert summary, result.stdout + result.stderr
    assert int(summary.group(1)) > 50 and summary.group(2) == summary.group(3) == "0"
