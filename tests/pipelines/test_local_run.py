"""The local pipeline run against a real MLflow server: tracking, gate, registry, aliases."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import mlflow
import pytest
from rich.console import Console

from pipelines.__main__ import main
from pipelines.local import (
    CHALLENGER,
    CHAMPION,
    GateFailed,
    LocalRunResult,
    pipeline_runs,
    run_training,
)
from pipelines.mlflow_server import MlflowServer
from stacks.loader import load_stack_settings

DIGITS = load_stack_settings("dev").models["digits"]


def _run(
    server: MlflowServer, registered: str, tmp_path: Path, threshold: float | None = None
) -> LocalRunResult:
    """A local run of the digits model, registered under its own name for this test."""
    with (tmp_path / "console.txt").open("a") as output:
        return run_training(
            "digits",
            DIGITS,
            server.url,
            tmp_path / "runs",
            Console(file=output),
            threshold,
            registered_name=registered,
        )


def test_run_tracks_gates_registers_and_predicts(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    before = len(pipeline_runs(mlflow_server.url))
    result = _run(mlflow_server, "digits-first", tmp_path)

    assert result.metrics["accuracy"] >= DIGITS.quality_gate.threshold
    assert result.gate_value == result.metrics["accuracy"]
    assert (result.model_version, result.champion_version, result.promoted) == ("1", "1", True)
    client = mlflow.MlflowClient(mlflow_server.url)
    assert client.get_model_version_by_alias("digits-first", CHAMPION).version == "1"
    assert client.get_model_version_by_alias("digits-first", CHALLENGER).version == "1"
    # The model was loaded back from the registry and predicts held-out digits.
    assert len(result.predictions) == 5
    assert sum(actual == guess for actual, guess in result.predictions) >= 4

    # One parent run for the execution, with one nested run per step.
    assert len(pipeline_runs(mlflow_server.url)) == before + 1
    parent = next(
        r for r in pipeline_runs(mlflow_server.url)
        if r.data.tags.get("mlops.pipeline_execution_id") == result.execution_id
    )  # fmt: skip
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    steps = {run.data.tags["mlops.step"]: run for run in children}
    assert set(steps) == {"preprocess", "train", "evaluate"}
    assert steps["evaluate"].data.metrics["test_accuracy"] == pytest.approx(result.gate_value)
    assert "eta" in steps["train"].data.params or "max_depth" in steps["train"].data.params


def test_second_run_is_challenger_until_it_beats_the_champion(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    first = _run(mlflow_server, "digits-rivals", tmp_path)
    second = _run(mlflow_server, "digits-rivals", tmp_path)
    # Same data and seed: an equal score does not dethrone the champion.
    assert (second.model_version, second.champion_version, second.promoted) == ("2", "1", False)
    client = mlflow.MlflowClient(mlflow_server.url)
    assert client.get_model_version_by_alias("digits-rivals", CHALLENGER).version == "2"

    # Once the champion's recorded score is lower, the next run takes its place.
    client.set_model_version_tag("digits-rivals", first.model_version, "accuracy", "0.5")
    third = _run(mlflow_server, "digits-rivals", tmp_path)
    assert (third.model_version, third.champion_version, third.promoted) == ("3", "3", True)
    assert client.get_model_version_by_alias("digits-rivals", CHAMPION).version == "3"


def test_failed_gate_registers_nothing(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    with pytest.raises(GateFailed, match=r"accuracy 0\.9\d+ < threshold 0\.9990") as failed:
        _run(mlflow_server, "digits-gated", tmp_path, threshold=0.999)
    assert failed.value.threshold == 0.999
    client = mlflow.MlflowClient(mlflow_server.url)
    assert client.search_model_versions("name = 'digits-gated'") == []


def test_cli_definition_prints_the_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["definition", "training", "--env", "prod"]) == 0
    definition = json.loads(capsys.readouterr().out)
    assert [s["Name"] for s in definition["Steps"]][:3] == ["Preprocess", "Train", "Evaluate"]


def test_cli_definition_prints_the_deployment_pipeline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["definition", "deployment", "--env", "prod"]) == 0
    definition = json.loads(capsys.readouterr().out)
    assert [s["Name"] for s in definition["Steps"]] == ["Deploy", "Monitor"]
    parameters = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert parameters["EndpointInstanceCount"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["definition", "inference"],
            "unknown pipeline 'inference'; pipelines: training, deployment",
        ),
        (["run-local", "deployment"], "the 'deployment' pipeline runs in SageMaker"),
        (["definition", "training", "--env", "staging"], "--env 'staging': no such stack"),
        (["definition", "training", "--model", "mnist"], "--model 'mnist': not in stack 'dev'"),
        (["run-local", "training", "--model", "mnist"], "models: digits"),
    ],
)
def test_cli_bad_names_are_clear_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_busy_port_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["run-local", "training", "--port", str(port), "--home", str(tmp_path)])
    assert code == 2
    assert f"port {port} on 127.0.0.1 is busy" in capsys.readouterr().err


def test_the_parent_run_carries_the_headline_and_the_verdict(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """Executions compare in MLflow's experiment table: each parent run has the test metrics
    and the gate's verdict; a failed gate says so too."""
    import mlflow

    from pipelines.local import GATE_TAG, GateFailed, pipeline_runs

    with (tmp_path / "out.txt").open("w") as output:
        passed = run_training(
            "digits", DIGITS, mlflow_server.url, tmp_path / "a", Console(file=output),
            registered_name="digits-headline",
        )  # fmt: skip
        with pytest.raises(GateFailed):
            run_training(
                "digits", DIGITS, mlflow_server.url, tmp_path / "b", Console(file=output),
                threshold=1.0, registered_name="digits-headline",
            )  # fmt: skip
    parents = {
        r.data.tags["mlops.pipeline_execution_id"]: r for r in pipeline_runs(mlflow_server.url)
    }
    ok = parents[passed.execution_id]
    assert ok.data.metrics["test_accuracy"] == passed.metrics["accuracy"]
    assert ok.data.metrics["test_macro_f1"] == passed.metrics["macro_f1"]
    assert ok.data.tags[GATE_TAG] == "passed"
    assert ok.data.tags[f"{GATE_TAG}.rule"] == f"accuracy >= {DIGITS.quality_gate.threshold}"
    failed = [
        r for r in parents.values() if r.data.tags.get(f"{GATE_TAG}.rule") == "accuracy >= 1.0"
    ]
    assert [r.data.tags[GATE_TAG] for r in failed] == ["failed"]
    assert passed.champion_value == passed.gate_value  # the first run is the champion
    assert mlflow.MlflowClient(mlflow_server.url).get_registered_model("digits-headline")
