"""Bad command-line input to `python -m pipelines` is one line naming the argument, before
anything starts: a threshold outside the metric's range, a model without deployment settings
asked for its deployment pipeline."""

from __future__ import annotations

import pytest

from pipelines.__main__ import main


@pytest.mark.parametrize("threshold", ["1.5", "-0.1"])
def test_a_threshold_outside_the_metrics_range_is_refused(
    threshold: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run-local", "training", "--threshold", threshold]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --threshold {float(threshold)}: accuracy lies in [0, 1]\n"


def test_a_model_without_deployment_settings_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import __main__ as cli
    from stacks.loader import load_stack_settings

    settings = load_stack_settings("dev")
    digits = settings.models["digits"].model_copy(update={"deployment": None})
    undeployed = settings.model_copy(update={"models": {"digits": digits}})
    monkeypatch.setattr(cli, "load_stack_settings", lambda env: undeployed)
    assert main(["definition", "deployment", "--model", "digits"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --model 'digits': has no deployment settings in stack 'dev' "
        "(models.digits.deployment), so it has no deployment pipeline\n"
    )
    assert "Traceback" not in err


def test_definition_pretty_prints_the_same_json_indented(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    assert main(["definition", "training"]) == 0
    compact = capsys.readouterr().out
    assert main(["definition", "training", "--pretty"]) == 0
    pretty = capsys.readouterr().out
    assert json.loads(pretty) == json.loads(compact)
    assert pretty.count("\n") > 50 and compact.count("\n") == 1
