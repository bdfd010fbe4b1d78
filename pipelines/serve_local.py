"""The local deployment: serve the champion of the local MLflow registry on loopback and ask it
a few questions over HTTP, as a client of a real endpoint would.

Why: the local pipeline run ends with a registered model; this closes the loop the cloud path
closes with an endpoint. The version the `champion` alias points at (set by the local run's
Register step) is downloaded and served by the same inference server the endpoint runs
(pipelines/inference/server.py, `serve` on loopback), and sent a few held-out digits as JSON
rows; each answer's latency is measured on the client side. The model version is downloaded
first, so the server reads a local directory only, and the version reported is the one served
even if the alias moves meanwhile.

The server runs in its own process group and is always stopped by group, on errors and Ctrl-C
too. Nothing but 127.0.0.1 is contacted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from pipelines.data import FEATURES, LABEL
from pipelines.local import CHAMPION, scoped_environment
from pipelines.mlflow_server import HOST, free_port, port_is_free
from pipelines.processes import (
    kill_group,
    log_tail,
    start_in_group,
    terminate_group,
    wait_until_ready,
)

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

# The sagemaker-mlflow plugin's request-header provider logs an IndexError on every request to
# a tracking server that is not a SageMaker ARN (see pipelines/local.py).
logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)

#: The inference server module, as the image's entrypoint runs it.
SERVER_MODULE = "pipelines.inference.server"
#: Loading the model takes well under a second; a cold disk can take much longer.
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 30.0
RUN_LOCAL_FIRST = "run `python -m pipelines run-local training` first"

# No proxy, whatever the environment says: the requests go to 127.0.0.1 and nowhere else.
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NoChampion(LookupError):
    """The registry has no champion version of the model (not registered, or no alias yet)."""

    def __init__(self, model: str, tracking_uri: str, reason: str) -> None:
        super().__init__(
            f"no {CHAMPION} version of model {model!r} in the MLflow registry at "
            f"{tracking_uri} ({reason}); {RUN_LOCAL_FIRST}"
        )
        self.model = model


class ScoringServerError(RuntimeError):
    """The scoring server did not start, or answered a request with an error; the message
    says why, with the tail of the server's log where that helps."""


@dataclass(frozen=True)
class Champion:
    model: str
    version: str
    artifact_uri: str  # where the registry keeps this version's files


@dataclass(frozen=True)
class ServedModel:
    model: str
    version: str
    url: str  # base URL: /ping, /invocations
    pgid: int  # the scoring server's process group, gone once the context exits


@dataclass(frozen=True)
class Answer:
    row: int  # position in the held-out test split
    actual: int
    predicted: int
    latency_ms: float  # one request, measured by the client: connect, send, score, read


# --- the champion ---------------------------------------------------------------------------


def resolve_champion(model: str, tracking_uri: str) -> Champion:
    """The version the `champion` alias points at; NoChampion when there is none."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    try:
        version = client.get_model_version_by_alias(model, CHAMPION)
    except mlflow.exceptions.MlflowException as exc:
        # Not registered: RESOURCE_DOES_NOT_EXIST; registered, no alias: INVALID_PARAMETER_VALUE.
        # Anything else (the server is down, say) is not "no champion" and goes up as it is.
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NoChampion(model, tracking_uri, "no such registered model") from None
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            reason = f"no version has the {CHAMPION!r} alias"
            raise NoChampion(model, tracking_uri, reason) from None
        raise
    number = str(version.version)
    return Champion(model, number, client.get_model_version_download_uri(model, number))


def _download(champion: Champion, tracking_uri: str, directory: Path) -> Path:
    """The version's files (MLmodel, model, environment) in a local directory."""
    import mlflow

    with scoped_environment({"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}):
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=champion.artifact_uri, dst_path=str(directory), tracking_uri=tracking_uri
        )
    return Path(local)


# --- the scoring server ---------------------------------------------------------------------


@dataclass
class ScoringServer:
    """The inference server for a model directory, on loopback."""

    model_dir: Path
    log_path: Path
    port: int
    tracking_uri: str
    host: str = HOST
    start_timeout: float = START_TIMEOUT_SECONDS
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command(self) -> list[str]:
        # `-m` with this interpreter: no dependence on PATH or an activated virtualenv.
        return [
            sys.executable, "-m", SERVER_MODULE, "serve",
            "--model-dir", str(self.model_dir),
            "--host", self.host,
            "--port", str(self.port),
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        import os

        env = dict(os.environ)
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri  # never an ambient remote server
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # idle OpenMP threads must not spin (see local.py)
        return env

    def start(self) -> None:
        if not port_is_free(self.port, self.host):
            raise ScoringServerError(f"port {self.port} on {self.host} is busy")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        process = self._process = start_in_group(self.command(), self.log_path, self.environment())
        try:
            self._wait_until_ready(process)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        readiness = wait_until_ready(process, self._ready, self.start_timeout, 0.2)
        if readiness == "exited":
            raise ScoringServerError(
                f"the scoring server exited with status {process.returncode} while "
                f"starting (log: {self.log_path}):\n{self._log_tail()}"
            )
        if readiness == "timed out":
            raise ScoringServerError(
                f"the scoring server did not answer {self.url}/ping within "
                f"{self.start_timeout:.0f} s (log: {self.log_path}):\n{self._log_tail()}"
            )

    def _ready(self) -> bool:
        """/ping answers 200 once the model is loaded."""
        try:
            with _LOOPBACK.open(f"{self.url}/ping", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the group, SIGKILL to whatever is left, then wait until the group is gone."""
    if process.poll() is None:
        terminate_group(process, STOP_TIMEOUT_SECONDS)
    # Forked workers that outlived their parent are still in the group, even after a crash.
    kill_group(process.pid, STOP_TIMEOUT_SECONDS)


@contextlib.contextmanager
def serve_champion(
    model: str,
    tracking_uri: str,
    *,
    port: int | None = None,
    log_path: Path | None = None,
    start_timeout: float = START_TIMEOUT_SECONDS,
) -> Iterator[ServedModel]:
    """The model's champion, served on 127.0.0.1 (a free port unless given) until the context
    exits, whatever ends it. NoChampion when there is no champion; ScoringServerError when the
    server does not come up (the message holds its log's tail)."""
    champion = resolve_champion(model, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="serve-local-") as scratch:
        server = ScoringServer(
            model_dir=_download(champion, tracking_uri, Path(scratch) / "model"),
            log_path=log_path or Path(scratch) / "scoring-server.log",
            port=free_port() if port is None else port,
            tracking_uri=tracking_uri,
            start_timeout=start_timeout,
        )
        server.start()
        try:
            assert server.pid is not None  # started
            yield ServedModel(champion.model, champion.version, server.url, server.pid)
        finally:
            server.stop()


# --- requests -------------------------------------------------------------------------------


def sample_rows(count: int = 5) -> pd.DataFrame:
    """The first `count` rows of the held-out test split: the split the local run makes (same
    data, fractions and seed), so these are the digits its Predict step showed."""
    from pipelines.data import load_digits_frame
    from pipelines.steps.preprocess import split

    return split(load_digits_frame()).test.head(count)


def score(url: str, frame: pd.DataFrame, timeout: float = REQUEST_TIMEOUT_SECONDS) -> list[Any]:
    """POST the frame's feature columns to `<url>/invocations` as JSON rows, as a client of
    the endpoint does; returns the server's `predictions` (per row: label and the ten class
    probabilities)."""
    if urllib.parse.urlsplit(url).hostname != HOST:
        raise ValueError(f"{url}: only a scoring server on {HOST} is asked")
    payload = {"instances": frame[list(FEATURES)].to_numpy().tolist()}
    request = urllib.request.Request(  # noqa: S310 (http on loopback, checked above)
        f"{url}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with _LOOPBACK.open(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:2000]
        raise ScoringServerError(f"{url}/invocations answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ScoringServerError(f"{url}/invocations: no answer ({exc})") from None
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list):
        raise ScoringServerError(f"{url}/invocations: no `predictions` in {str(body)[:200]}")
    return predictions


def labels(predictions: list[Any]) -> list[int]:
    """The digit each prediction names."""
    return [int(p["label"]) if isinstance(p, dict) else int(p) for p in predictions]


def ask(url: str, rows: pd.DataFrame) -> list[Answer]:
    """One request per row, as separate clients would send them, each one timed."""
    answers = []
    for position in range(len(rows)):
        row = rows.iloc[[position]]
        started = time.perf_counter()
        predictions = score(url, row)
        elapsed_ms = (time.perf_counter() - started) * 1000
        answers.append(
            Answer(position, int(row[LABEL].iloc[0]), labels(predictions)[0], elapsed_ms)
        )
    return answers


# --- the demo -------------------------------------------------------------------------------


def report(console: Console, served: ServedModel, answers: list[Answer]) -> None:
    table = Table(title=f"{served.model} v{served.version} ({CHAMPION}) answers")
    for heading in ("test row", "true label", "predicted", "latency ms"):
        table.add_column(heading, justify="right")
    for answer in answers:
        mark = "" if answer.predicted == answer.actual else " [red]✗[/]"
        table.add_row(
            str(answer.row),
            str(answer.actual),
            f"{answer.predicted}{mark}",
            f"{answer.latency_ms:.1f}",
        )
    console.print(table)
    latencies = [answer.latency_ms for answer in answers]
    correct = sum(answer.predicted == answer.actual for answer in answers)
    console.print(
        f"{len(answers)} requests: {correct} correct; latency p50 "
        f"{statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms"
    )


def serve_and_ask(
    model: str,
    tracking_uri: str,
    console: Console,
    rows: int = 5,
    log_path: Path | None = None,
    hold: Callable[[str], None] | None = None,
) -> list[Answer]:
    """Serve the champion, send it `rows` held-out digits, print the answers, stop it; with
    `hold`, call it with the served URL first (it returns when the server may stop)."""
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        with console.status(f"[bold]Serve[/] {model}@{CHAMPION} with the inference server ..."):
            served = stack.enter_context(serve_champion(model, tracking_uri, log_path=log_path))
        elapsed = time.perf_counter() - started
        console.print(
            f"[green]✓[/] {'Serve':<10} {elapsed:6.1f} s  "
            f"{model} v{served.version} ({CHAMPION}) at {served.url}"
        )
        answers = ask(served.url, sample_rows(rows))
        report(console, served, answers)
        if hold is not None:
            hold(served.url)
    console.print(f"[green]✓[/] {'Stopped':<10} scoring server (process group {served.pgid})")
    return answers
