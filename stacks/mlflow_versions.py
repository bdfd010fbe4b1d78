"""The MLflow versions a SageMaker managed tracking server runs, and the client each pairs with.

Source: SageMaker Developer Guide, "Integrate MLflow with your environment" ("To ensure
compatibility between your MLflow client and tracking server, use the corresponding MLflow
version based on your tracking server version"). Add a row when SageMaker offers a version.
The client is the `mlflow` pin of the step image (pipelines/image/requirements.txt), which
the jobs run; settings refuse a server whose major version differs from it, since MLflow's
compatibility between SDK and server is best-effort only within a major version (MLflow
docs, "How to Upgrade MLflow": "Compatibility between MLflow SDK and the Server").
"""

from __future__ import annotations

import re
from pathlib import Path

# Tracking server version (as CreateMlflowTrackingServer takes it) -> the client AWS pairs.
SERVER_VERSIONS = {
    "2.13.2": "2.13.2",
    "2.16.2": "2.16.2",
    "3.0": "3.0.0",
}
STEP_IMAGE_REQUIREMENTS = (
    Path(__file__).resolve().parent.parent / "pipelines" / "image" / "requirements.txt"
)


def client_version(requirements: Path = STEP_IMAGE_REQUIREMENTS) -> str:
    """The mlflow version the jobs' image pins."""
    match = re.search(r"^mlflow==(\S+)", requirements.read_text(), flags=re.MULTILINE)
    if match is None:
        raise LookupError(f"no mlflow== pin in {requirements}")
    return match.group(1)
