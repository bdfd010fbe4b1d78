"""The cluster Train job's entrypoint: train.py on EKS, reported back to the SageMaker pipeline.

    python -m pipelines.steps.cluster_run [--name value ...]

The arguments are train.py's (hyperparameters as `--name value` pairs, and its path flags). The
pod's init container has staged the step code (pipelines/steps/stage_code.py); the launcher
Lambda sets the environment: MLOPS_CALLBACK_TOKEN, MLOPS_TRAIN_URI, MLOPS_VALIDATION_URI,
MLOPS_OUTPUT_URI (a prefix ending in `/`), the SM_* paths, AWS_DEFAULT_REGION, and MLflow's
variables with MLOPS_PIPELINE_EXECUTION_ID for tracking. This module then does what SageMaker
does around a training job's container (the contract: pipelines/steps/cluster_request.py):

1. configuration: the variables above; train.py's own argument parsing resolves the paths
   exactly as train.py will;
2. download: the train and validation channels (S3 prefixes) into their channel directories;
3. train: `pipelines.steps.train.main(argv)`, in this process;
4. package: the model directory into `model.tar.gz`, its files at the archive's root;
5. upload: `<output>model.tar.gz`, then the `metrics.json` train.py wrote, as `<output>metrics.json`
   (plain uploads: the buckets encrypt with the environment's key by default, and their policy
   denies uploads that ask for another algorithm or key);
6. report: SendPipelineExecutionStepSuccess with the contract's two output parameters.

Any stage that fails sends SendPipelineExecutionStepFailure instead, its reason
`<stage>: <error>`. The Job may run the pod again (its backoffLimit); SageMaker then refuses the
second report because the step no longer waits for the token, and this module logs that as
"already reported". Exit codes, for the Job's podFailurePolicy:

- 0 (EXIT_SUCCEEDED): success reported.
- 2 (EXIT_NO_TOKEN): no (valid) MLOPS_CALLBACK_TOKEN, so nothing can be reported; nothing ran.
- 10 (EXIT_REPORTED_FAILURE): failure reported; the step is over, another try cannot help.
- 11 (EXIT_NOT_WAITING): SageMaker refused the report: an earlier try reported, or the step was
  stopped or timed out. Another try cannot help either.
- 12 (EXIT_UNREPORTED): the report itself failed (network, credentials, throttling beyond
  botocore's retries, no region); another try may report.

A pod killed outright (OOM, node lost, SIGTERM at the Job's deadline) reports nothing; the
launcher's sweep (pipelines/steps/launcher.py) fails the step then. In a multi-node
PyTorchJob only rank 0 (RANK, set by the training operator) trains, uploads and reports: the
pilot train.py trains on one node, and a step takes one report; other ranks exit 0 at once.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from pipelines.environment_variables import (
    AWS_DEFAULT_REGION,
    MLOPS_CALLBACK_TOKEN,
    MLOPS_OUTPUT_URI,
    MLOPS_TRAIN_URI,
    MLOPS_VALIDATION_URI,
    RANK,
)
from pipelines.steps.aws_calls import boto3_client, error_code
from pipelines.steps.cluster_request import (
    METRICS_FILE,
    MODEL_ARCHIVE,
    failure_reason,
    metrics_uri,
    model_artifacts_uri,
    parse_token,
    success_parameters,
)
from pipelines.steps.stage_code import S3Reader, StagingError, download_prefix, split_s3_uri

logger = logging.getLogger(__name__)

EXIT_SUCCEEDED = 0
EXIT_NO_TOKEN = 2
EXIT_REPORTED_FAILURE = 10
EXIT_NOT_WAITING = 11
EXIT_UNREPORTED = 12

#: The errors SageMaker answers a Send*PipelineExecutionStep* with when the step no longer waits
#: for the token. The API model lists ResourceNotFound and ConflictException for both calls; a
#: ValidationException is what SageMaker answers for a request it will not act on. Our requests
#: are checked against the model before they leave (token, reason length), so a server-side
#: ValidationException is about the token's step, not the request's shape.
NOT_WAITING_CODES = frozenset({"ResourceNotFound", "ConflictException", "ValidationException"})

T = TypeVar("T")


class S3Client(S3Reader, Protocol):
    """The calls used of a boto3 `s3` client."""

    def upload_file(self, *args: Any, **kwargs: Any) -> Any: ...


class SageMakerClient(Protocol):
    """The calls used of a boto3 `sagemaker` client."""

    def send_pipeline_execution_step_success(self, **kwargs: Any) -> Any: ...
    def send_pipeline_execution_step_failure(self, **kwargs: Any) -> Any: ...


class ConfigurationError(ValueError):
    """A missing or malformed variable or argument; the message names it."""


class StageFailed(Exception):
    """A stage failed; the message is `<stage>: <error>`, the step's failure reason."""

    def __init__(self, stage: str, error: str) -> None:
        super().__init__(f"{stage}: {error}")
        self.stage = stage


@dataclass(frozen=True)
class JobLocations:
    """Where the channels come from and the outputs go (S3 URIs; `output_uri` ends in `/`)."""

    train_uri: str
    validation_uri: str
    output_uri: str


@dataclass(frozen=True)
class TrainPaths:
    """train.py's directories, resolved by its own parser (flags, else the SM_* variables)."""

    train_dir: Path
    validation_dir: Path
    model_dir: Path
    output_data_dir: Path


def callback_token() -> str | None:
    """MLOPS_CALLBACK_TOKEN where it is a well-formed callback token, else None."""
    token = MLOPS_CALLBACK_TOKEN.get()
    # The contract's own check of a token, so both ends agree on what is well-formed.
    return parse_token(json.dumps({"token": token})) if token else None


def read_locations() -> JobLocations:
    """The channel and output URIs from the environment; ConfigurationError names what is
    missing or malformed."""
    variables = (MLOPS_TRAIN_URI, MLOPS_VALIDATION_URI, MLOPS_OUTPUT_URI)
    missing = [variable.name for variable in variables if not variable.is_set()]
    if missing:
        raise ConfigurationError(f"{', '.join(missing)} not set")
    train_uri, validation_uri, output_uri = (str(variable.get()) for variable in variables)
    for variable, uri in zip(variables, (train_uri, validation_uri, output_uri), strict=True):
        try:
            split_s3_uri(uri)
        except StagingError:
            raise ConfigurationError(f"{variable.name} {uri!r} is not an S3 URI") from None
    if not output_uri.endswith("/"):
        raise ConfigurationError(f"{MLOPS_OUTPUT_URI.name} {output_uri!r} must end in '/'")
    return JobLocations(train_uri, validation_uri, output_uri)


def train_paths(argv: Sequence[str]) -> TrainPaths:
    """The directories train.py will use with `argv`, from train.py's own parser."""
    from pipelines.steps import train

    try:
        args, _ = train.parse_args(argv)
    except SystemExit:  # argparse has logged the usage error to stderr
        raise ConfigurationError(f"train.py rejects the arguments {list(argv)}") from None
    return TrainPaths(
        Path(args.train_dir),
        Path(args.validation_dir),
        Path(args.model_dir),
        Path(args.output_data_dir),
    )


def run_train(argv: Sequence[str]) -> None:
    """train.py's main in this process; an exit code other than 0 is a failure."""
    from pipelines.steps import train

    code: object
    try:
        code = train.main(list(argv))
    except SystemExit as exited:  # not a reason to skip the report
        code = exited.code
    if code != 0:
        raise RuntimeError(f"train.py exited with {code}")


def pack_model(model_dir: Path, archive: Path) -> Path:
    """`model_dir`'s contents as a gzipped tar at `archive`, each top-level entry at the
    archive's root (`model.json`, not `model/model.json` or `./model.json`), as SageMaker packs
    /opt/ml/model into model.tar.gz."""
    entries = sorted(model_dir.iterdir())  # FileNotFoundError names a missing directory
    if not entries:
        raise FileNotFoundError(f"{model_dir} is empty: train.py saved no model")
    with tarfile.open(archive, "w:gz") as tar:
        for entry in entries:
            tar.add(entry, arcname=entry.name)
    return archive


def upload(s3: S3Client, path: Path, uri: str) -> None:
    """`path` to `uri`, with no encryption settings: the bucket's default applies (SSE-KMS with
    the environment's key), and the bucket policy denies any other algorithm or key."""
    bucket, key = split_s3_uri(uri)
    s3.upload_file(Filename=str(path), Bucket=bucket, Key=key)
    logger.info("uploaded %s to %s", path, uri)


def _describe(error: BaseException) -> str:
    if isinstance(error, ConfigurationError | StagingError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _stage(stage: str, call: Callable[..., T], *args: Any) -> T:
    """`call(*args)`, any exception turned into StageFailed naming `stage`."""
    logger.info("stage: %s", stage)
    try:
        return call(*args)
    except Exception as error:  # every failure must reach SageMaker as a reason
        raise StageFailed(stage, _describe(error)) from error


def train_and_upload(s3: S3Client, argv: Sequence[str]) -> JobLocations:
    """Stages 1-5; returns where the outputs went. Raises StageFailed."""
    locations = _stage("configuration", read_locations)
    paths = _stage("configuration", train_paths, argv)
    _stage("download", download_prefix, s3, locations.train_uri, paths.train_dir)
    _stage("download", download_prefix, s3, locations.validation_uri, paths.validation_dir)
    metrics = paths.output_data_dir / METRICS_FILE
    # A container restarted in the same pod finds the last try's files: never upload a stale one.
    _stage("train", metrics.unlink, True)
    _stage("train", run_train, argv)
    if not metrics.is_file():
        raise StageFailed("train", f"train.py wrote no {METRICS_FILE} in {paths.output_data_dir}")
    # Beside the model directory rather than in /tmp: the pod's writable volume holds /opt/ml.
    scratch = Path(_stage("package", tempfile.mkdtemp, "", "package-", paths.model_dir.parent))
    try:
        archive = _stage("package", pack_model, paths.model_dir, scratch / MODEL_ARCHIVE)
        _stage("upload", upload, s3, archive, model_artifacts_uri(locations.output_uri))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _stage("upload", upload, s3, metrics, metrics_uri(locations.output_uri))
    return locations


def _send(what: str, call: Callable[..., Any], **params: Any) -> int | None:
    """Sends one report; None when SageMaker took it, else the exit code."""
    try:
        call(**params)
    except ClientError as error:
        if error_code(error) in NOT_WAITING_CODES:
            logger.warning(
                "SageMaker refused the %s report, so the step no longer waits for this token: "
                "an earlier try of this job already reported, or the execution was stopped or "
                "timed out (%s)",
                what,
                error,
            )
            return EXIT_NOT_WAITING
        logger.error("could not report %s to SageMaker: %s", what, error)
        return EXIT_UNREPORTED
    except BotoCoreError as error:
        logger.error("could not report %s to SageMaker: %s", what, error)
        return EXIT_UNREPORTED
    logger.info("reported %s to SageMaker", what)
    return None


def run_job(s3: S3Client, sagemaker: SageMakerClient, token: str, argv: Sequence[str]) -> int:
    """The whole job: stages 1-6, or a failure report; returns the exit code."""
    try:
        locations = train_and_upload(s3, argv)
    except StageFailed as failure:
        logger.error("cluster training failed: %s", failure, exc_info=failure.__cause__)
        refused = _send(
            "failure",
            sagemaker.send_pipeline_execution_step_failure,
            CallbackToken=token,
            FailureReason=failure_reason(str(failure)),
        )
        return EXIT_REPORTED_FAILURE if refused is None else refused
    refused = _send(
        "success",
        sagemaker.send_pipeline_execution_step_success,
        CallbackToken=token,
        OutputParameters=success_parameters(locations.output_uri),
    )
    return EXIT_SUCCEEDED if refused is None else refused


def make_clients(region: str | None) -> tuple[S3Client, SageMakerClient]:
    """boto3 `s3` and `sagemaker` clients for `region` (the pod's credentials), with botocore's
    standard retry mode."""
    s3: S3Client = boto3_client("s3", region)
    sagemaker: SageMakerClient = boto3_client("sagemaker", region)
    return s3, sagemaker


def main(argv: Sequence[str] | None = None) -> int:
    """The job container's entry point; returns the exit code (see the module's docstring)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    arguments = list(sys.argv[1:] if argv is None else argv)
    if RANK.get() != 0:
        logger.info("rank %d: only rank 0 trains and reports (train.py is single-node)", RANK.get())
        return EXIT_SUCCEEDED
    token = callback_token()
    if token is None:
        logger.error(
            "%s is %s: there is no pipeline step to report to, so nothing runs (the launcher "
            "sets it from the callback message)",
            MLOPS_CALLBACK_TOKEN.name,
            "not a callback token" if MLOPS_CALLBACK_TOKEN.is_set() else "not set",
        )
        return EXIT_NO_TOKEN
    try:
        s3, sagemaker = make_clients(AWS_DEFAULT_REGION.get())
    except BotoCoreError as error:  # no region, no credentials configuration
        logger.error("cannot make AWS clients, so nothing can be reported: %s", error)
        return EXIT_UNREPORTED
    return run_job(s3, sagemaker, token, arguments)


if __name__ == "__main__":
    sys.exit(main())
