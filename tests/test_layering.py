"""Imports run one way: xmlc <- model_export <- training <- the command line; app -> xmlc only.

Read from the source (every import statement, at any depth, `TYPE_CHECKING` blocks included), then
checked where it matters at run time: serving, `xmlc --help` and `xmlc serve` never load torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("xmlc", "training", "model_export", "app")


def imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported package, line) for every import of one of the project's packages in ``path``."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out += [(n.split(".")[0], node.lineno) for n in names if n.split(".")[0] in PACKAGES]
    return out


def reached(package: str, skip: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Other packages that ``package`` imports, each with the places that import it."""
    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.name in skip:
            continue
        for target, line in imports(path):
            if target != package:
                out.setdefault(target, []).append(f"{path.relative_to(ROOT)}:{line}")
    return out


@pytest.mark.parametrize(
    "package,allowed",
    [
        ("xmlc", set()),
        ("app", {"xmlc"}),
        ("model_export", {"xmlc"}),
        ("training", {"xmlc", "model_export"}),
    ],
)
def test_packages_import_one_way(package: str, allowed: set[str]) -> None:
    wrong = {k: v for k, v in reached(package, skip=("cli.py",)).items() if k not in allowed}
    assert not wrong, f"{package} imports {wrong}"


def test_the_command_line_imports_other_packages_inside_its_functions() -> None:
    top = {(pkg, line) for pkg, line in imports(ROOT / "xmlc" / "cli.py", top_level_only=True)}
    assert {pkg for pkg, _ in top} <= {"xmlc"}, top


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef f():\n    from training.methods import METHODS\n    return METHODS\n")
    assert imports(bad) == [("training", 4)]
    assert imports(bad, top_level_only=True) == []


PROBE = """
import sys
{code}
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sklearn", "transformers"))
print("IMPORTED:" + ",".join(bad))
"""

SERVE = """
from fastapi.testclient import TestClient
from app.main import create_app
from app.settings import Settings
from xmlc.doc import Doc
from xmlc.loader import load_model
for folder in sys.argv[1:]:
    load_model(folder).predict([Doc("some words w_a")], k=3)
    with TestClient(create_app(Settings(bundle=folder, redis_url=None))) as client:
        r = client.post("/predict", json={"text": "some words w_a", "k": 3})
        assert r.status_code == 200, r.text
        assert len(r.json()["labels"]) == 3
assert not [m for m in sys.modules if m.split(".")[0] in ("training", "model_export")]
"""

HELP = """
from typer.testing import CliRunner
from xmlc.cli import app
for args in (["--help"], ["train", "--help"], ["serve", "--help"]):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
assert "tree+ranker" in CliRunner().invoke(app, ["train", "--help"]).output
"""


def _probe(code: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_serving_imports_neither_torch_nor_training(ranker_bundle: Path, hnsw_bundle: Path) -> None:
    assert _probe(SERVE, str(ranker_bundle), str(hnsw_bundle)) == "IMPORTED:"


def test_the_command_line_lists_methods_without_torch() -> None:
    assert _probe(HELP) == "IMPORTED:"
