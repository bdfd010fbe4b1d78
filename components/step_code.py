"""The step code SageMaker jobs run: the `pipelines/` package's Python files, addressed by
their content so that a code change yields a new S3 prefix, a new definition, and nothing
stale runs (pure; tested)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pipelines"
# Where in the models bucket the code lives: code/<hash>/pipelines/...
CODE_PREFIX = "code"
# Jobs need the package's modules only: not the image build context or caches.
EXCLUDED_PARTS = ("__pycache__", "image")


@dataclass(frozen=True)
class StepCode:
    files: tuple[tuple[str, Path], ...]  # (path relative to the package, file)
    digest: str  # sha256 over every relative path and content, in order

    @property
    def short_hash(self) -> str:
        return self.digest[:16]


def step_code(package: Path = PACKAGE) -> StepCode:
    files = tuple(
        (path.relative_to(package).as_posix(), path)
        for path in sorted(package.rglob("*.py"))
        if not any(part in EXCLUDED_PARTS for part in path.relative_to(package).parts)
    )
    digest = hashlib.sha256()
    for relative, path in files:
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return StepCode(files=files, digest=digest.hexdigest())
