"""The CPU images hold what their code imports. The inference image (pipelines/image/inference):
every module pipelines/inference imports is the standard library, a package the image
installs, or pipelines/inference itself; its pins are the versions the training side runs;
it starts the server SageMaker calls with `serve`. The CPU step image (pipelines/image/cpu):
everything the Deploy and Monitor steps import, transitively, and the deployment pipelines
run those steps in it."""

from __future__ import annotations

import ast
import json
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


# --- the CPU step image (pipelines/image/cpu): Deploy and Monitor -----------------------------

CPU_IMAGE = ROOT / "pipelines" / "image" / "cpu"
CPU_DISTRIBUTIONS = {
    "boto3": "boto3",
    "botocore": "botocore",
    "numpy": "numpy",
    "pandas": "pandas",
    "xgboost": "xgboost-cpu",
}
# Imported somewhere in the closure but never on the Deploy or Monitor path, with why.
NOT_ON_THE_PATH = {
    "sklearn": "pipelines.data imports it inside load_digits_frame, which neither step calls",
    "_typeshed": "typing only",
}


def _closure(*modules: str) -> tuple[set[str], set[str]]:
    """The pipelines modules the given ones import, transitively, and the third-party
    top-level packages any of them imports."""
    seen: set[str] = set()
    third: set[str] = set()
    stack = list(modules)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.is_file():
            continue
        for imported in _imports(path):
            top = imported.split(".")[0]
            if imported.startswith("pipelines"):
                stack.append(imported)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third.add(top)
    return seen, third


def test_the_cpu_image_holds_what_deploy_and_monitor_import() -> None:
    modules, third = _closure("pipelines.steps.deploy", "pipelines.steps.monitor")
    assert "pipelines.inference.scoring" in modules  # Monitor scores its baseline
    installed = _pins(CPU_IMAGE / "requirements.txt")
    for package in sorted(third - set(NOT_ON_THE_PATH)):
        assert CPU_DISTRIBUTIONS.get(package) in installed, package
    local = _pins(ROOT / "requirements.txt")
    for distribution, version in installed.items():
        assert local[distribution] == version, distribution


def test_the_deployment_steps_run_in_the_cpu_image() -> None:
    from tests.conftest import recorded

    stack = recorded("prod")
    (pipeline,) = [
        p
        for p in stack.of_type("aws:sagemaker/pipeline:Pipeline")
        if p.inputs["pipelineName"].endswith("-deployment")
    ]
    steps = json.loads(pipeline.inputs["pipelineDefinition"])["Steps"]
    images = {s["Name"]: s["Arguments"]["AppSpecification"]["ImageUri"] for s in steps}
    assert set(images) == {"Deploy", "Monitor"}
    assert all(uri.endswith(":2026.11.1-cpu") for uri in images.values()), images
    assert "FROM nvidia/cuda" not in (CPU_IMAGE / "Dockerfile").read_text()
