"""Refusals come before the first write: a typo in --app or -n, a paused Deployment, an
unfinished run or a held lock leaves the cluster as it was (no Lease, no journal), and a
dry run refuses what the real run would refuse, with the same exit code."""

from __future__ import annotations

import pytest

from deployer import cli
from deployer.exitcodes import ExitCode
from deployer.lock import Lock, lease_name
from deployer.model import ApplyDeployment, DeleteDeployment, step_to_json
from deployer.record import Journal, RunRecord
from tests.unit.fakes import FakeGateway, deployment, service


@pytest.fixture
def gw(cli_cluster) -> FakeGateway:
    return cli_cluster


def refused(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.run(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["rolling", "--app", "helo", "--image", "v2"],
    ["canary", "--app", "helo", "--image", "v2"],
    ["blue-green", "--app", "helo", "--image", "v2"],
    ["rollback", "--app", "helo"],
    ["promote", "--app", "helo"],
    ["abort", "--app", "helo"],
])
def test_a_typo_in_the_app_is_exit_2_with_a_suggestion_and_writes_nothing(gw, capsys, command):
    code, err = refused(command, capsys)
    assert code == ExitCode.INVALID, err
    assert "no Deployment named 'helo'" in err and "did you mean hello?" in err
    assert gw.writes == [] and gw.leases == {}


@pytest.mark.parametrize(("exists", "said"), [
    (False, "namespace 'test' does not exist (deployer: unknown-namespace)"),
    (None, "namespace test has no Deployments"),  # may not read namespaces: say what is missing
])
def test_an_app_missing_with_its_namespace_names_which_is_missing(gw, capsys, exists, said):
    gw.deployments.clear()
    gw.namespace_is = exists
    code, err = refused(["rolling", "--app", "hello", "--image", "v2"], capsys)
    assert code == ExitCode.INVALID and said in err
    assert gw.writes == []


def test_a_paused_deployment_is_refused_before_the_lease(gw, capsys):
    gw.deployments["hello"]["spec"]["paused"] = True
    code, err = refused(["rolling", "--app", "hello", "--image", "v2"], capsys)
    assert code == ExitCode.INVALID and "paused" in err
    assert gw.writes == []


def record_unfinished_run(gw: FakeGateway, to_image: str, phase: str) -> None:
    run = RunRecord("canary", "hello", "hello:v1", to_image, "1.0.0", "2.0.0", 1,
                    phase=phase, plan={"schemaVersion": 1, "strategy": "canary", "steps": [],
                                       "rollback": []},
                    position=1)
    Journal(gw, "hello", run).update()
    gw.writes.clear()


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_an_unfinished_run_is_refused_by_the_real_run_and_by_the_dry_run(gw, capsys, dry_run):
    record_unfinished_run(gw, "hello:v3", "paused")
    code, err = refused(["canary", "--app", "hello", "--image", "v2", *dry_run], capsys)
    assert code == ExitCode.INVALID and "run-in-progress" in err
    assert gw.writes == []


def test_a_dry_run_of_the_interrupted_command_says_it_would_resume(gw, capsys):
    record_unfinished_run(gw, "hello:v2", "running")
    code = cli.run(["canary", "--app", "hello", "--image", "v2", "--dry-run"])
    captured = capsys.readouterr()
    assert code == ExitCode.OK and "would resume run" in captured.out + captured.err
    assert gw.writes == []


def test_a_dry_run_while_another_run_holds_the_lock_exits_4_like_the_real_run(gw, capsys):
    Lock(gw, "hello", "other:ci@runner", "deployer canary --app hello").acquire()
    gw.writes.clear()
    for extra in (["--dry-run"], []):
        code, err = refused(["rolling", "--app", "hello", "--image", "v2", *extra], capsys)
        assert code == ExitCode.LOCKED and "locked by other:ci@runner" in err
    assert [w for w in gw.writes if w[1] != "lease"] == []
    assert gw.leases[lease_name("hello")]["spec"]["holderIdentity"] == "other:ci@runner"


def test_a_dry_run_without_permission_fails_preflight_like_the_real_run(gw, capsys):
    gw.denied.add(("update", "apps", "deployments", ""))
    code, err = refused(["rolling", "--app", "hello", "--image", "v2", "--dry-run"], capsys)
    assert code != ExitCode.OK and "update" in err
    assert gw.writes == []


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: sys, context: {cluster: c, user: u, namespace: kube-system}}]
current-context: sys
"""


def test_system_namespaces_may_be_read_but_not_changed_without_the_flag(tmp_path):
    from deployer.errors import InvalidInput

    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    g = cli.Globals(kubeconfig=str(path))
    assert cli._connect(g, read_only=True).namespace == "kube-system"
    with pytest.raises(InvalidInput, match="belongs to the cluster itself"):
        cli._connect(g)


def test_an_unknown_context_is_input_naming_the_known_ones(tmp_path, capsys):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    code = cli.run(["--kubeconfig", str(path), "status", "--app", "hello", "--context", "nope"])
    err = capsys.readouterr().err
    assert code == ExitCode.INVALID
    assert "context 'nope' is not in the kubeconfig (known: sys)" in err


@pytest.mark.parametrize("strategy", ["canary", "blue-green"])
def test_a_version_label_in_the_selector_is_carried_to_the_new_side_not_refused(gw, capsys,
                                                                                strategy):
    import json

    spec = gw.deployments["hello"]["spec"]
    spec["selector"]["matchLabels"]["version"] = "1.0.0"
    spec["template"]["metadata"]["labels"]["version"] = "1.0.0"
    code = cli.run(["-o", "json", strategy, "--app", "hello", "--image", "v2", "--dry-run"])
    report = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK, report
    apply = next(s for s in report["plan"]["steps"] if s["type"] == "ApplyDeployment")
    body = apply["body"]
    assert body["spec"]["selector"]["matchLabels"]["version"] == "2.0.0"
    assert body["spec"]["template"]["metadata"]["labels"]["version"] == "2.0.0"
    assert gw.writes == []


@pytest.mark.parametrize("strategy", ["canary", "blue-green"])
@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_a_version_label_in_the_selector_that_cannot_hold_the_version_is_refused_first(
        gw, capsys, strategy, dry_run):
    spec = gw.deployments["hello"]["spec"]
    spec["selector"]["matchLabels"]["version"] = "1.0.0"
    spec["template"]["metadata"]["labels"]["version"] = "1.0.0"
    code, err = refused([strategy, "--app", "hello", "--image", "v2", "--expect-version",
                         "2.0.0+build.7", *dry_run], capsys)
    assert code == ExitCode.INVALID, err
    assert "'2.0.0+build.7' cannot be the value of the label version" in err
    assert "version-label" in err and "--expect-version" in err
    assert "{" not in err  # selectors as app=hello,version=1.0.0
    assert gw.writes == []


def test_a_dry_run_in_json_carries_every_step_with_the_replicas_after_it(gw, capsys):
    import json

    code = cli.run(["-o", "json", "canary", "--app", "hello", "--image", "v2", "--dry-run"])
    report = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK and report["verdict"] == "planned"
    steps = report["plan"]["steps"]
    assert steps and all("description" in s and "replicasAfter" in s for s in steps)
    first_apply = next(s for s in steps if s["type"] == "ApplyDeployment")
    assert first_apply["replicasAfter"] == {"hello": 3, "hello-canary": 1}
    assert steps[-1]["replicasAfter"] == {"hello": 3}  # the canary deleted at the end
    assert report["plan"]["rollback"]
    assert gw.writes == []


def test_a_refusal_hint_names_namespace_and_context(gw, capsys):
    record_unfinished_run(gw, "hello:v3", "paused")
    code, err = refused(["canary", "--app", "hello", "--image", "v2"], capsys)
    assert code == ExitCode.INVALID
    assert "deployer abort --app hello -n test --context fake" in err


def test_a_live_run_holding_the_lock_is_named_exit_4_not_an_unfinished_run(gw, capsys):
    record_unfinished_run(gw, "hello:v3", "running")
    Lock(gw, "hello", "other:ci@runner", "deployer rolling --app hello --image v3").acquire()
    gw.writes.clear()
    code, err = refused(["rolling", "--app", "hello", "--image", "v2"], capsys)
    assert code == ExitCode.LOCKED and "locked by other:ci@runner" in err
    assert gw.writes == []


def test_waiting_for_a_live_run_decides_again_once_it_holds_the_lock(gw, capsys, monkeypatch):
    """The holder finishes while we wait: the recorded run is gone and ours starts."""
    record_unfinished_run(gw, "hello:v3", "running")
    other = Lock(gw, "hello", "other:ci@runner", "deployer rolling --app hello --image v3")
    other.acquire()

    def finish_and_release(self, **options):
        gw.config_maps.clear()  # the other run finished: nothing recorded any more
        other.release()
        return original(self, **options)

    original = Lock.acquire
    monkeypatch.setattr(Lock, "acquire", finish_and_release)
    code = cli.run(["rolling", "--app", "hello", "--image", "v2", "--wait-for-lock", "1m",
                    "--dry-run"])
    captured = capsys.readouterr()
    assert code == ExitCode.OK, captured.err  # a dry run does not wait; it says it would
    assert "the real run would wait up to 60s for it" in captured.out + captured.err
    code = cli.run(["rolling", "--app", "hello", "--image", "v2", "--wait-for-lock", "1m",
                    "--timeout", "1s"])
    err = capsys.readouterr().err
    assert "run-in-progress" not in err and "locked by" not in err, err
    assert any(w[1] == "deployment" for w in gw.writes), "our run started"


def test_rollback_dry_run_shows_the_rollback_it_would_run_and_writes_nothing(gw, capsys):
    import json

    run = RunRecord("canary", "hello", "hello:v1", "hello:v2", "1.0.0", "2.0.0", 1,
                    phase="interrupted", position=1,
                    plan={"schemaVersion": 1, "strategy": "canary", "steps": [],
                          "rollback": [{"type": "ScaleDeployment", "deployment": "hello-canary",
                                        "replicas": 0, "missing_ok": True}]})
    Journal(gw, "hello", run).update()
    gw.writes.clear()
    code = cli.run(["-o", "json", "rollback", "--app", "hello", "--dry-run"])
    report = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK and report["verdict"] == "planned"
    assert [s["description"] for s in report["plan"]["steps"]] == ["scale hello-canary to 0"]
    assert report["toImage"] == "hello:v1"
    assert gw.writes == []


def test_rollback_with_nothing_earlier_is_refused_before_the_lease(gw, capsys):
    code, err = refused(["rollback", "--app", "hello"], capsys)
    assert code == ExitCode.INVALID and "no earlier revision" in err
    assert gw.writes == [] and gw.leases == {}


@pytest.mark.parametrize("env", ["DEPLOYER_API_OUTAGE_BUDGET", "DEPLOYER_LEASE_SECONDS"])
@pytest.mark.parametrize("command", [["rollback", "--app", "hello"],
                                     ["rolling", "--app", "hello", "--image", "v2"],
                                     ["promote", "--app", "hello"]])
def test_a_bad_budget_in_the_environment_is_refused_before_the_cluster_is_read(
        gw, capsys, monkeypatch, env, command):
    monkeypatch.setenv(env, "soon")
    reads: list[str] = []
    monkeypatch.setattr(gw, "get_deployment", lambda name: reads.append(name))
    code, err = refused(command, capsys)
    assert code == ExitCode.INVALID and f"{env}='soon' is invalid" in err
    assert reads == [] and gw.writes == []


@pytest.mark.parametrize(("command", "phase", "said"), [
    (["promote", "--app", "hello"], None, "hello has no run to promote"),
    (["abort", "--app", "hello"], None, "hello has no run to abort"),
    (["promote", "--app", "hello"], "interrupted", "not paused at a gate"),
])
def test_promote_and_abort_with_nothing_to_continue_are_refused_before_the_lease(
        gw, capsys, command, phase, said):
    if phase:
        record_unfinished_run(gw, "hello:v2", phase)
    code, err = refused(command, capsys)
    assert code == ExitCode.INVALID and said in err
    assert gw.writes == [] and gw.leases == {}


def versioned(name: str, image: str, version: str, replicas: int) -> dict:
    dep = deployment(name, image, replicas=replicas)
    labels = {"app": "hello", "version": version}
    dep["spec"]["selector"]["matchLabels"] = dict(labels)
    dep["spec"]["template"]["metadata"]["labels"] = dict(labels)
    dep["spec"]["template"]["spec"]["containers"][0]["name"] = "hello"
    return dep


def stopped_between_delete_and_create(gw: FakeGateway) -> None:
    """A blue-green run of the version-label scheme deleted the idle `hello` to make it
    again with a new selector, and was killed before it created it."""
    gw.deployments.clear()
    gw.deployments["hello-green"] = versioned("hello-green", "hello:v2", "2.0.0", 3)
    gw.services["hello"] = service("hello", {"app": "hello", "version": "2.0.0"})
    body = versioned("hello", "hello:v7", "7.0.0", 3)
    for key in ("status", "uid", "resourceVersion", "generation"):
        body.pop(key, None)
        body["metadata"].pop(key, None)
    plan = {"schemaVersion": 1, "strategy": "blue-green", "rollback": [],
            "steps": [step_to_json(DeleteDeployment("hello")),
                      step_to_json(ApplyDeployment(body))]}
    run = RunRecord("blue-green", "hello", "hello:v2", "hello:v7", "2.0.0", "7.0.0", 1,
                    phase="running", plan=plan, position=1)
    Journal(gw, "hello", run).update()
    gw.writes.clear()


def test_a_run_killed_after_deleting_the_deployment_it_remakes_can_still_be_resumed(gw, capsys):
    stopped_between_delete_and_create(gw)
    code = cli.run(["blue-green", "--app", "hello", "--image", "v7", "--dry-run"])
    said = "".join(capsys.readouterr())
    assert code == ExitCode.OK, said
    assert "would resume run" in said
    assert "deployment hello is missing" in said and "stands in" in said
    code = cli.run(["rollback", "--app", "hello", "--dry-run"])
    said = "".join(capsys.readouterr())
    assert code == ExitCode.OK, said
    assert gw.writes == [] and "hello" not in gw.deployments


def test_without_such_a_run_a_missing_deployment_is_still_a_missing_app(gw, capsys):
    stopped_between_delete_and_create(gw)
    Journal(gw, "hello", RunRecord("blue-green", "hello", "hello:v2", "hello:v7", "2.0.0",
                                   "7.0.0", 1, phase="running", plan=None)).update()
    code, err = refused(["blue-green", "--app", "hello", "--image", "v7"], capsys)
    assert code == ExitCode.INVALID and "no Deployment named 'hello'" in err
