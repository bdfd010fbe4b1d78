"""The CI/CD workflows the repository ships (.github/workflows/) and their shared composite
action: valid against GitHub's schemas, pinned, keyless, least-privilege, and doing what the
README's "CI/CD" section says. The two shell scripts they run (the step image publisher and
the pipelines workflow's change check) run here against fake `aws`/`docker` and a scratch git
repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.context import context_for_stack
from stacks.loader import load_stack_settings, stack_file

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
ACTION_DIR = ROOT / ".github" / "actions" / "pulumi-stack"
ACTION = ACTION_DIR / "action.yml"
LOCAL_ACTION = "./.github/actions/pulumi-stack"
LONG_LIVED = ("dev", "test", "prod")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# Roles come from variables: the environment's deploy role, or a preview role per account.
ROLE = re.compile(r"\$\{\{ vars(\.AWS_DEPLOY_ROLE_ARN|\[matrix\.role\]) \}\}")


def load(path: Path) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean true.
    if True in document:
        document["on"] = document.pop(True)
    return document


def workflow(name: str) -> dict[str, Any]:
    return load(WORKFLOWS / f"{name}.yml")


def all_jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in WORKFLOW_FILES:
        for job_id, job in load(path)["jobs"].items():
            yield path.stem, job_id, job


def steps_of(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "runs" in document:  # a composite action
        yield from document["runs"]["steps"]
    for job in document.get("jobs", {}).values():
        yield from job.get("steps", [])


def local_action_calls(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s.get("with", {}) for s in job.get("steps", []) if s.get("uses") == LOCAL_ACTION]


def configures_aws(job: dict[str, Any]) -> bool:
    if "uses" in job:  # a reusable workflow: whether one of its jobs does
        called = load(ROOT / job["uses"])
        return any(configures_aws(j) for j in called["jobs"].values())
    return any(call.get("role-to-assume") for call in local_action_calls(job))


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_four_workflows_and_the_action_exist() -> None:
    assert [p.stem for p in WORKFLOW_FILES] == ["deploy", "pipelines", "preview", "reap"]
    assert ACTION.is_file()


def test_workflows_match_githubs_workflow_schema() -> None:
    result = check_jsonschema("vendor.github-workflows", *WORKFLOW_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_composite_action_matches_githubs_action_schema() -> None:
    result = check_jsonschema("vendor.github-actions", ACTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_fails_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    # A job without runs-on, a misspelled key, and a permission level that does not exist.
    broken.write_text(
        "on: push\n"
        "permissions:\n  id-token: admin\n"
        "jobs:\n  build:\n    timeout-minute: 5\n    steps:\n      - run: make test\n"
    )
    result = check_jsonschema("vendor.github-workflows", broken)
    assert result.returncode == 1
    assert "broken.yml" in result.stdout + result.stderr


def test_every_third_party_action_is_pinned_to_a_commit_with_its_version() -> None:
    versions: dict[str, set[str]] = {}
    for path in [*WORKFLOW_FILES, ACTION]:
        for step in steps_of(load(path)):
            uses = step.get("uses")
            if uses is None or uses.startswith("./"):
                continue
            assert PINNED.match(uses), f"{path.name}: {uses} is not pinned to a commit SHA"
        for line in path.read_text().splitlines():
            found = re.search(r"uses: ([^.\s]\S*@\S+)(.*)$", line)
            if found:
                version = re.fullmatch(r" # (v\d+\.\d+\.\d+)", found.group(2))
                assert version, f"{path.name}: {found.group(1)} lacks its '# vX.Y.Z' comment"
                versions.setdefault(found.group(1), set()).add(version.group(1))
    assert versions, "no third-party action found"
    # One SHA, one version, everywhere.
    assert {uses: len(v) for uses, v in versions.items()} == dict.fromkeys(versions, 1)
    # One version of each action everywhere.
    actions = [uses.split("@")[0] for uses in versions]
    assert len(actions) == len(set(actions))


def test_no_long_lived_aws_keys_and_no_secret_but_the_pulumi_token() -> None:
    for path in [*WORKFLOW_FILES, ACTION]:
        text = path.read_text()
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "aws-access-key-id"):
            assert key not in text, f"{path.name} mentions {key}"
        assert set(re.findall(r"secrets\.(\w+)", text)) <= {"PULUMI_ACCESS_TOKEN"}


def test_top_level_permissions_grant_nothing() -> None:
    for path in WORKFLOW_FILES:
        assert load(path)["permissions"] == {}, path.name


def test_every_job_states_least_privilege_permissions() -> None:
    for name, job_id, job in all_jobs():
        permissions = job["permissions"]
        where = f"{name}.yml job {job_id}"
        assert permissions.get("contents") == "read", where
        assert set(permissions) <= {"contents", "id-token", "pull-requests"}, where
        assert all(level in ("read", "write") for level in permissions.values()), where
        # An OIDC token only for jobs that assume an AWS role, and those need one.
        assert (permissions.get("id-token") == "write") == configures_aws(job), where
        # Pull request comments only where one is posted.
        comments = any(c.get("comment-on-pr") == "true" for c in local_action_calls(job))
        assert (permissions.get("pull-requests") == "write") == comments, where


def test_aws_credentials_come_from_oidc_role_variables() -> None:
    action = load(ACTION)
    configure = [
        s for s in action["runs"]["steps"] if "configure-aws-credentials" in s.get("uses", "")
    ]
    assert len(configure) == 1
    assert configure[0]["with"]["role-to-assume"] == "${{ inputs.role-to-assume }}"
    assert configure[0]["with"]["aws-region"] == "${{ steps.stack.outputs.region }}"
    for name, job_id, job in all_jobs():
        for call in local_action_calls(job):
            role = call.get("role-to-assume")
            if role is not None:
                assert re.fullmatch(
                    r"\$\{\{ vars(\.AWS_DEPLOY_ROLE_ARN|\[matrix\.role\]) \}\}", role
                )
                assert call.get("stack"), f"{name}.yml job {job_id}: a role needs its stack"


def test_every_job_has_a_timeout_and_python_3_11() -> None:
    for name, job_id, job in all_jobs():
        if "uses" in job:  # a reusable workflow call: the called jobs carry their timeouts
            continue
        assert isinstance(job["timeout-minutes"], int), f"{name}.yml job {job_id}"
        # Python and the virtualenvs come from the shared action, right after the checkout.
        assert job["steps"][0]["uses"].startswith("actions/checkout@")
        assert job["steps"][0]["with"]["persist-credentials"] is False
        if job_id != "changes":  # only git, in the pipelines workflow
            assert job["steps"][1]["uses"] == LOCAL_ACTION, f"{name}.yml job {job_id}"
    setup_python = next(s for s in steps_of(load(ACTION)) if "setup-python" in s.get("uses", ""))
    assert setup_python["with"]["python-version"] == "3.11"


def test_the_action_builds_both_virtualenvs_and_pins_the_cli_to_the_sdk() -> None:
    runs = "\n".join(s.get("run", "") for s in steps_of(load(ACTION)))
    makefile = (ROOT / "Makefile").read_text()
    for target in (".venv/.installed", "policy/venv/.installed"):
        assert f"make {target}" in runs
    assert "$(STAMP):" in makefile and "STAMP := $(VENV)/.installed" in makefile
    assert "POLICY_STAMP := policy/venv/.installed" in makefile
    # The CLI version is read from the pinned SDK (the step's sed expression, here in Python).
    pin = re.search(r"^pulumi==([0-9.]+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert pin and "s/^pulumi==\\([0-9.]*\\).*/\\1/p" in runs


def test_preview_runs_the_offline_checks_then_every_stack_with_the_policy_pack() -> None:
    preview = workflow("preview")
    assert "pull_request" in preview["on"]
    checks, previews = preview["jobs"]["offline-checks"], preview["jobs"]["preview"]
    assert checks["steps"][-1]["run"].startswith("make test")
    assert previews["needs"] == "offline-checks"
    matrix = previews["strategy"]["matrix"]["include"]
    assert [entry["stack"] for entry in matrix] == list(LONG_LIVED)
    assert all(stack_file(stack).is_file() for stack in LONG_LIVED)
    # Each account's own read-only role, never a deploy role, and no environment.
    assert [e["role"] for e in matrix] == [f"AWS_PREVIEW_ROLE_ARN_{s.upper()}" for s in LONG_LIVED]
    assert "environment" not in previews
    (call,) = local_action_calls(previews)
    assert call["command"] == "preview" and call["comment-on-pr"] == "true"
    assert call["stack"] == "${{ matrix.stack }}"
    # The action runs Pulumi with the policy pack in policy/.
    pulumi = [s for s in steps_of(load(ACTION)) if s.get("with", {}).get("command")]
    assert [s["with"]["policyPacks"] for s in pulumi] == ["policy"]
    assert (ROOT / "policy" / "PulumiPolicy.yaml").is_file()


def test_deploy_goes_dev_then_test_then_prod_behind_the_prod_environment() -> None:
    deploy = workflow("deploy")
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert {"workflow_dispatch", "workflow_call"} <= set(deploy["on"])
    jobs = deploy["jobs"]
    assert list(jobs) == list(LONG_LIVED)
    assert "needs" not in jobs["dev"]
    assert jobs["test"]["needs"] == "dev" and jobs["prod"]["needs"] == "test"
    for stack, job in jobs.items():
        # Environment-scoped OIDC subject; prod's required reviewers gate its job.
        assert job["environment"] == stack
        assert job["concurrency"] == {"group": f"pulumi-{stack}", "cancel-in-progress": False}
        (call,) = local_action_calls(job)
        assert call["stack"] == stack and call["command"] == "up"
        assert call["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
        assert call["step-image"] == "true"


def test_reap_runs_hourly_and_on_demand_with_a_dry_run() -> None:
    reap = workflow("reap")
    assert reap["on"]["schedule"] == [{"cron": "0 * * * *"}]
    dry_run = reap["on"]["workflow_dispatch"]["inputs"]["dry-run"]
    assert dry_run["type"] == "boolean" and dry_run["default"] is False
    job = reap["jobs"]["reap"]
    assert job["strategy"]["matrix"]["base"] == ["dev", "test"]
    assert job["environment"] == "${{ matrix.base }}"
    run = job["steps"][-1]["run"]
    assert ".venv/bin/python -m stacks env reap" in run and "--dry-run" in run
    # Each leg reaps only its base's copies, with that account's role.
    assert '--base "${{ matrix.base }}"' in run
    assert reap["concurrency"]["cancel-in-progress"] is False


def test_pipelines_runs_on_pipeline_changes_and_deploys_through_deploy() -> None:
    pipelines, deploy = workflow("pipelines"), workflow("deploy")
    assert pipelines["on"]["push"] == {"branches": ["main"], "paths": ["pipelines/**"]}
    # deploy.yml skips exactly those pushes, so each push updates a stack once.
    assert deploy["on"]["push"]["paths-ignore"] == ["pipelines/**"]
    job = pipelines["jobs"]["deploy"]
    assert job["uses"] == "./.github/workflows/deploy.yml"
    assert job["needs"] == "changes" and job["secrets"] == "inherit"


def test_every_pulumi_job_gets_the_backend_and_only_pulumi_jobs_the_token() -> None:
    for name, job_id, job in all_jobs():
        calls = local_action_calls(job)
        pulumi = any(c.get("stack") for c in calls)
        env = job.get("env", {})
        where = f"{name}.yml job {job_id}"
        assert ("PULUMI_ACCESS_TOKEN" in env) == pulumi, where
        if pulumi:
            assert env["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}", where


# The two scripts, run for real.


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "$FAKE_LOG"\n{body}\n')
    path.chmod(0o755)


def _step_image(tmp_path: Path, repository: str, image: str, phase: str) -> tuple[int, list[str]]:
    """Run step-image.sh for dev with fake aws/docker: `repository`/`image` are "found",
    "missing" or "denied"."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    log.write_text("")
    errors = {"missing": "{}NotFoundException", "denied": "AccessDeniedException"}

    def answer(state: str, kind: str) -> str:
        if state == "found":
            return "exit 0"
        return f"echo 'An error occurred ({errors[state].format(kind)})' >&2; exit 254"

    _fake(
        bin_dir,
        "aws",
        'case "$*" in\n'
        f"  *describe-repositories*) {answer(repository, 'Repository')};;\n"
        f"  *describe-images*) {answer(image, 'Image')};;\n"
        "  *get-login-password*) echo secret;;\n"
        "esac",
    )
    _fake(bin_dir, "docker", "cat > /dev/null")
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "org/repo",
        "GITHUB_SHA": "0" * 40,
    }
    result = subprocess.run(
        ["bash", str(ACTION_DIR / "step-image.sh"), "dev", phase],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, log.read_text().splitlines()


@pytest.fixture(scope="module")
def dev_image_uris() -> tuple[str, str, str]:
    settings = load_stack_settings("dev")
    contexts = [context_for_stack("dev", m, settings=settings) for m in settings.models]
    ((step, inference, cpu),) = {
        (c.image_uri, c.inference_image_uri, c.cpu_image_uri) for c in contexts
    }
    return step, inference, cpu


@pytest.mark.skipif(not (ROOT / ".venv/bin/python").exists(), reason="the script runs .venv")
def test_step_image_builds_and_pushes_missing_tags_to_the_pipelines_uris(
    tmp_path: Path, dev_image_uris: tuple[str, str, str]
) -> None:
    step, inference, cpu = dev_image_uris
    code, calls = _step_image(tmp_path, "found", "missing", "before-up")
    assert code == 0
    registry = step.split("/")[0]
    docker = [c for c in calls if c.startswith("docker ")]
    builds = [c for c in docker if c.startswith("docker build")]
    assert all(b.startswith("docker build --pull --platform linux/amd64") for b in builds)
    # cpu (the deployment steps'), inference (the scoring code baked in: context
    # pipelines/), then the step image.
    assert builds[0].endswith(" pipelines/image/cpu")
    assert builds[1].endswith(" -f pipelines/image/inference/Dockerfile pipelines")
    assert builds[2].endswith(" pipelines/image")
    pushes = [c for c in docker if not c.startswith(("docker build", "docker login"))]
    assert pushes == [
        f"docker tag cpu-image:build {cpu}",
        f"docker push {cpu}",
        f"docker tag inference-image:build {inference}",
        f"docker push {inference}",
        f"docker tag step-image:build {step}",
        f"docker push {step}",
    ]
    assert all(
        c == f"docker login --username AWS --password-stdin {registry}"
        for c in docker
        if c.startswith("docker login")
    )
    assert cpu == f"{step}-cpu"  # the step image's repository, its tag with -cpu


@pytest.mark.skipif(not (ROOT / ".venv/bin/python").exists(), reason="the script runs .venv")
def test_step_image_leaves_a_present_tag_alone(tmp_path: Path) -> None:
    code, calls = _step_image(tmp_path, "found", "found", "before-up")
    assert code == 0 and not [c for c in calls if c.startswith("docker ")]


@pytest.mark.skipif(not (ROOT / ".venv/bin/python").exists(), reason="the script runs .venv")
def test_step_image_waits_for_a_first_update_and_stops_on_other_errors(tmp_path: Path) -> None:
    assert _step_image(tmp_path, "missing", "missing", "before-up")[0] == 0
    assert _step_image(tmp_path, "missing", "missing", "after-up")[0] == 1
    code, calls = _step_image(tmp_path, "denied", "missing", "before-up")
    assert code == 1 and not [c for c in calls if c.startswith("docker ")]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for relative, text in {
        "pipelines/training.py": "steps = 1\n",
        "pipelines/image/Dockerfile": "FROM scratch\n",
        "stacks/Pulumi.dev.yaml": 'config:\n  models:\n    digits:\n      image_tag: "1"\n',
        "components/network.py": "cidr = 1\n",
    }.items():
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / relative).write_text(text)
    _git(repo, "init", "--quiet")
    _git(repo, "add", ".")
    _git(repo, "commit", "--quiet", "-m", "first")
    return repo


def _changes(repo: Path, *edits: tuple[str, str]) -> tuple[dict[str, str], str]:
    """Commit `edits` (path, new text), run the pipelines workflow's change check on that
    push: its outputs and its annotations."""
    before = _git(repo, "rev-parse", "HEAD")
    for relative, text in edits:
        (repo / relative).write_text(text)
    _git(repo, "commit", "--quiet", "-am", "change")
    output = repo.parent / "output"
    output.write_text("")
    step = workflow("pipelines")["jobs"]["changes"]["steps"][1]
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=repo,
        env={
            **os.environ,
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_SHA": _git(repo, "rev-parse", "HEAD"),
            "GITHUB_OUTPUT": str(output),
            "BEFORE": before,
        },
        capture_output=True,
        text=True,
        check=True,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return outputs, result.stdout


def test_pipelines_deploys_a_push_that_only_touches_pipelines(scratch_repo: Path) -> None:
    outputs, notes = _changes(scratch_repo, ("pipelines/training.py", "steps = 2\n"))
    assert outputs == {"deploy": "true"} and notes == ""


def test_pipelines_leaves_a_mixed_push_to_deploy(scratch_repo: Path) -> None:
    outputs, notes = _changes(
        scratch_repo,
        ("pipelines/training.py", "steps = 2\n"),
        ("components/network.py", "cidr = 2\n"),
    )
    assert outputs == {"deploy": "false"} and "deploy.yml deploys it" in notes


def test_pipelines_warns_about_an_image_change_without_a_new_tag(scratch_repo: Path) -> None:
    outputs, notes = _changes(scratch_repo, ("pipelines/image/Dockerfile", "FROM busybox\n"))
    assert outputs == {"deploy": "true"} and notes.startswith("::warning::")
    tagged = 'config:\n  models:\n    digits:\n      image_tag: "2"\n'
    _, notes = _changes(
        scratch_repo,
        ("pipelines/image/Dockerfile", "FROM alpine\n"),
        ("stacks/Pulumi.dev.yaml", tagged),
    )
    assert "::warning::" not in notes
