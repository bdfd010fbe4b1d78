"""Lambda functions whose code is modules of the `pipelines` package: the files each zip
holds (the module, what it imports, and the package around them) and the runtime."""

from __future__ import annotations

from pathlib import Path

import pulumi

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = "python3.12"
# Every such function imports through the package and reads its typed variables.
PACKAGE_BASE = (
    "pipelines/__init__.py",
    "pipelines/environment_variables.py",
    "pipelines/steps/__init__.py",
)


def package_files(*step_modules: str) -> tuple[str, ...]:
    """The zip's files for these `pipelines/steps/` modules (names without `.py`)."""
    return (*PACKAGE_BASE, *(f"pipelines/steps/{module}.py" for module in step_modules))


def code_archive(files: tuple[str, ...]) -> pulumi.AssetArchive:
    return pulumi.AssetArchive({path: pulumi.FileAsset(str(ROOT / path)) for path in files})
