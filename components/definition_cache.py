"""Built pipeline definitions, kept on disk by the hash of everything they are built from.

Building a definition needs the SageMaker SDK, whose import and session cost about 4 s: more
than the rest of the program. A definition depends only on its context (this environment's
names and ARNs), the model's settings, which pipeline it is (its builder), the step code
(which includes the builder itself) and the SDK's version, so a definition built once for
those inputs is reused by every later `pulumi preview`/`up` and test run on the machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from pipelines.context import PipelineContext
from stacks.settings import ModelSettings

CACHE_DIR = Path(__file__).resolve().parent.parent / ".local" / "cache" / "definitions"
Builder = Callable[[PipelineContext, ModelSettings], str]


def cache_key(
    context: PipelineContext, model: ModelSettings, code_digest: str, build: Builder
) -> str:
    inputs = {
        "builder": f"{build.__module__}.{build.__qualname__}",
        "context": dataclasses.asdict(context),
        "model": model.model_dump(mode="json"),
        "code": code_digest,
        "sdk": importlib.metadata.version("sagemaker"),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def cached_definition(
    context: PipelineContext,
    model: ModelSettings,
    code_digest: str,
    build: Builder,
    cache_dir: Path = CACHE_DIR,
) -> str:
    path = cache_dir / f"{cache_key(context, model, code_digest, build)}.json"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    definition = build(context, model)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Written whole or not at all: concurrent runs may build the same definition.
        with tempfile.NamedTemporaryFile(
            "w", dir=cache_dir, delete=False, suffix=".tmp", encoding="utf-8"
        ) as partial:
            partial.write(definition)
        Path(partial.name).replace(path)
    except OSError:
        pass  # a read-only checkout still deploys; it only rebuilds every time
    return definition
