"""Package rules that keep the design honest: who may import what, and fast answers for `list` and `--help`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PKG = ROOT / "dlbench"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _modules_importing(prefix: str) -> set[str]:
    return {str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
            if any(n == prefix or n.startswith(prefix + ".") for n in _imports(p))}


def test_only_tracking_imports_mlflow():
    assert _modules_importing("mlflow") == {"tracking.py"}


def test_optuna_only_in_spaces_the_study_modules_and_compare():
    # study.py wires; storage.py opens the storage (and alone uses Optuna's private API); claims.py and
    # lifecycle.py take and end trials.
    assert _modules_importing("optuna") <= {"spaces.py", "study.py", "storage.py", "claims.py", "lifecycle.py",
                                            "compare.py"}


def test_optunas_private_storage_api_is_used_in_one_module():
    users = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if "._storage" in p.read_text()
             or "._trial_id" in p.read_text()}
    assert users == {"storage.py"}


def test_no_module_passes_about_300_lines_without_a_reason():
    # compare.py and spec.py predate this rule and are to be split; no module may join them.
    long = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if len(p.read_text().splitlines()) > 350}
    assert long <= {"compare.py", "spec.py", "tracking.py"}


def test_models_data_and_spec_import_nothing_else_from_dlbench():
    for path in [*(PKG / "models").glob("*.py"), *(PKG / "data").glob("*.py"), PKG / "spec.py"]:
        own = {n for n in _imports(path) if n.startswith("dlbench.")}
        allowed_prefix = "dlbench." + path.parent.name if path.parent != PKG else "dlbench.spec"
        assert all(n.startswith(allowed_prefix) for n in own), (path, own)


def test_models_use_keras_only_never_a_backend():
    # Backend-agnostic: nothing under dlbench/models/ touches tf., jnp. or torch.
    for path in (PKG / "models").glob("*.py"):
        src = path.read_text()
        assert not any(tok in src for tok in ("tensorflow", "tf.", "jnp.", "torch")), path


def test_list_and_help_answer_without_importing_tensorflow():
    code = ("import sys; from dlbench import cli; cli.main(['list']); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules, 'mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False False"
    assert "mlp" in out.stdout and "digits" in out.stdout and "relu_vs_sigmoid.toml" in out.stdout
