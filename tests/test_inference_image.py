"""The inference image (pipelines/image/inference) holds what its server imports and nothing
else: every module pipelines/inference imports is the standard library, a package the image
installs, or pipelines/inference itself; its pins are the versions the training side runs;
it starts the server SageMaker calls with `serve`."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "pipelines" / "image" / "inference"
CODE = ROOT / "pipelines" / "inference"
# Import name -> the distribution the image installs it from.
DISTRIBUTIONS = {"numpy": "numpy", "xgboost": "xgboost-cpu"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_the_server_imports_only_what_the_image_holds() -> None:
    installed = _pins(IMAGE / "requirements.txt")
    for module in CODE.glob("*.py"):
        for name in _imports(module):
            top = name.split(".")[0]
            if name.startswith("pipelines"):
                assert name.startswith("pipelines.inference"), f"{module.name} imports {name}"
            elif top not in sys.stdlib_module_names and top != "__future__":
                assert DISTRIBUTIONS.get(top) in installed, f"{module.name} imports {name}"


def test_pins_match_the_training_side() -> None:
    image, local = _pins(IMAGE / "requirements.txt"), _pins(ROOT / "requirements.txt")
    for distribution in ("xgboost-cpu", "numpy", "scipy"):
        assert image[distribution] == local[distribution], distribution
    training = _pins(ROOT / "pipelines" / "image" / "requirements.txt")
    assert image["xgboost-cpu"] == training["xgboost-cu12"]  # the same xgboost release


def test_the_image_runs_the_server_and_copies_only_the_scoring_code() -> None:
    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "pipelines.inference.server"]' in dockerfile
    copies = re.findall(r"^COPY (?!--from)(\S+) ", dockerfile, flags=re.MULTILINE)
    assert copies == ["image/inference/requirements.txt", "__init__.py", "inference/"]
    assert "EXPOSE 8080" in dockerfile
    assert re.search(r"^USER \d+", dockerfile, flags=re.MULTILINE)  # not root
    assert "FROM nvidia/cuda" not in dockerfile  # CPU-only
