"""Pre-flight of what the cluster would refuse or undo: a ResourceQuota too small for
the plan's extra pods, and an app that a GitOps controller owns. Both are refused
before the first write (exit 2), with the numbers or the owner and the way out."""

from __future__ import annotations

import pytest

from deployer import cli, preflight
from deployer.errors import InvalidInput
from deployer.exitcodes import ExitCode
from deployer.model import (
    ApplyDeployment,
    AppRef,
    Plan,
    ScaleDeployment,
    UpdateDeployment,
)
from deployer.validation import quantity
from tests.unit.fakes import FakeGateway, deployment


def quota(name="compute", hard=None, used=None, **spec):
    return {"metadata": {"name": name}, "spec": {"hard": hard or {}, **spec},
            "status": {"hard": hard or {}, "used": used}}


def with_requests(dep, cpu="100m", memory="64Mi"):
    dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": cpu, "memory": memory}}
    return dep


@pytest.mark.parametrize(("text", "value"), [
    ("100m", 0.1), ("2", 2.0), ("1.5", 1.5), ("64Mi", 64 * 2 ** 20), ("1Gi", 2 ** 30),
    ("500k", 5e5), ("2e3", 2000.0), (3, 3.0),
])
def test_quantities_are_read_like_kubernetes(text, value):
    assert quantity(text) == pytest.approx(value)


def test_a_pod_counts_its_containers_and_its_largest_init_container():
    template = {"spec": {
        "containers": [{"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                       {"resources": {"requests": {"cpu": "50m"}}}],
        "initContainers": [{"resources": {"requests": {"cpu": "1"}}}]}}
    got = preflight.pod_resources(template)
    assert got["requests.cpu"] == pytest.approx(1.0)
    assert got["requests.memory"] == 64 * 2 ** 20
    assert got["pods"] == 1


def test_the_peak_counts_a_second_side_and_a_rolling_surge():
    app = AppRef("t", "hello")
    green = Plan("blue-green", app, (ApplyDeployment({"metadata": {"name": "hello-green"},
                                                      "spec": {"replicas": 3}}),
                                     ScaleDeployment("hello", 0)), ())
    assert preflight.peak_extra_pods(green, {"hello": 3}, {"hello": deployment()}) == 3
    rolling = Plan("rolling", app, (UpdateDeployment("hello", "hello", "hello:v2", "c"),), ())
    dep = deployment(replicas=4, strategy={"type": "RollingUpdate",
                                           "rollingUpdate": {"maxSurge": "50%"}})
    assert preflight.peak_extra_pods(rolling, {"hello": 4}, {"hello": dep}) == 2  # 50% of 4
    recreate = Plan("recreate", app, (UpdateDeployment(
        "hello", "hello", "hello:v2", "c", {"type": "Recreate", "rollingUpdate": None}),), ())
    assert preflight.peak_extra_pods(recreate, {"hello": 4}, {"hello": dep}) == 0


@pytest.fixture
def gw(cli_cluster) -> FakeGateway:
    with_requests(cli_cluster.deployments["hello"])
    return cli_cluster


def test_a_blue_green_that_a_quota_cannot_hold_is_refused_with_the_numbers(gw, capsys):
    gw.quotas = [quota(hard={"requests.cpu": "500m", "pods": "10"},
                       used={"requests.cpu": "300m", "pods": "3"})]
    code = cli.run(["blue-green", "--app", "hello", "--image", "v2"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == ExitCode.INVALID
    assert "blue-green would run up to 3 more pods than now" in err
    assert "resourcequota compute: requests.cpu 300m used of 500m, and this run needs 300m " \
           "more" in err
    assert "quota-exceeded" in err
    assert gw.writes == [] and gw.leases == {}


def test_a_quota_with_room_lets_the_run_go_and_a_scoped_one_is_said_unchecked(gw, capsys):
    gw.quotas = [quota(hard={"pods": "10"}, used={"pods": "3"}),
                 quota("besteffort", hard={"pods": "1"}, used={"pods": "0"},
                       scopes=["BestEffort"])]
    code = cli.run(["blue-green", "--app", "hello", "--image", "v2", "--dry-run"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == ExitCode.OK, err
    assert "resource quotas not checked: besteffort (scoped)" in err


def test_without_permission_to_read_quotas_the_check_says_so(gw, capsys):
    gw.denied.add(("list", "", "resourcequotas", ""))
    gw.quotas = [quota(hard={"pods": "3"}, used={"pods": "3"})]
    code = cli.run(["blue-green", "--app", "hello", "--image", "v2", "--dry-run"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == ExitCode.OK, err
    assert "resource quotas not checked: this identity may not list resourcequotas" in err


@pytest.mark.parametrize(("where", "key", "owner"), [
    ("annotations", "argocd.argoproj.io/tracking-id", "Argo CD"),
    ("labels", "kustomize.toolkit.fluxcd.io/name", "Flux (a Kustomization)"),
    ("labels", "helm.toolkit.fluxcd.io/name", "Flux (a HelmRelease)"),
])
def test_an_app_a_gitops_controller_owns_is_refused_unless_allowed(gw, capsys, where, key,
                                                                   owner):
    gw.deployments["hello"]["metadata"].setdefault(where, {})[key] = "shop"
    code = cli.run(["rolling", "--app", "hello", "--image", "v2"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == ExitCode.INVALID
    assert f"deployment hello is managed by {owner}" in err and "--allow-gitops" in err
    assert gw.writes == [] and gw.leases == {}

    code = cli.run(["rolling", "--app", "hello", "--image", "v2", "--allow-gitops",
                    "--dry-run"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == ExitCode.OK, err
    assert "going on (--allow-gitops); its next sync may revert this release" in err


def test_helms_instance_label_alone_is_no_gitops_owner():
    dep = deployment()
    dep["metadata"]["labels"] = {"app.kubernetes.io/instance": "shop",
                                 "app.kubernetes.io/managed-by": "Helm"}
    assert preflight.gitops_owner(dep) is None
    with pytest.raises(InvalidInput):
        preflight.check_owners([("service", {"metadata": {
            "name": "hello", "annotations": {"argocd.argoproj.io/tracking-id": "x"}}})],
            allowed=False)


# ------------------------------------------------------------------ disruption budgets


def budget(name="hello-pdb", selector=None, **spec):
    return {"metadata": {"name": name},
            "spec": {"selector": selector or {"matchLabels": {"app": "hello"}}, **spec}}


def dry_run(argv, capsys) -> tuple[int, str]:
    code = cli.run([*argv, "--dry-run"])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_recreate_that_would_stop_every_pod_of_a_budget_is_refused(cli_cluster, capsys):
    cli_cluster.budgets = [budget(minAvailable=1)]
    code, said = dry_run(["recreate", "--app", "hello", "--image", "v2"], capsys)
    assert code == ExitCode.INVALID, said
    assert "poddisruptionbudget hello-pdb (minAvailable 1) keeps 1 of its 3 pods " \
           "available, and step 1" in said and "leaves 0" in said
    assert "disruption-budget" in said and cli_cluster.writes == []


@pytest.mark.parametrize("command", [
    ["rolling", "--app", "hello", "--image", "v2"],  # maxUnavailable 0: never below 3
    ["canary", "--app", "hello", "--image", "v2"],  # takes pods only once new ones run
    ["blue-green", "--app", "hello", "--image", "v2"],  # the old side goes after the switch
])
def test_plans_that_keep_every_pod_pass_a_budget_of_all_of_them(cli_cluster, capsys, command):
    cli_cluster.budgets = [budget(maxUnavailable=0)]
    code, said = dry_run(command, capsys)
    assert code == ExitCode.OK, said


def test_a_rolling_update_whose_max_unavailable_exceeds_the_budget_is_refused(cli_cluster,
                                                                             capsys):
    cli_cluster.budgets = [budget(minAvailable="100%")]
    cli_cluster.deployments["hello"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 1
    code, said = dry_run(["rolling", "--app", "hello", "--image", "v2"], capsys)
    assert code == ExitCode.INVALID and "leaves 2" in said, said
    code, said = dry_run(["rolling", "--app", "hello", "--image", "v2",
                          "--max-unavailable", "0"], capsys)
    assert code == ExitCode.OK, said


def test_budgets_of_other_pods_or_without_a_selector_do_not_refuse(cli_cluster, capsys):
    cli_cluster.budgets = [budget("other", {"matchLabels": {"app": "shop"}}, minAvailable=1),
                           budget("wide", {"matchExpressions": [
                               {"key": "app", "operator": "NotIn", "values": ["hello"]}]},
                               minAvailable=1),
                           {"metadata": {"name": "empty"}, "spec": {"minAvailable": 1}}]
    code, said = dry_run(["recreate", "--app", "hello", "--image", "v2"], capsys)
    assert code == ExitCode.OK, said
    assert "disruption budgets not checked: empty (no selector)" in said


def test_without_leave_to_list_budgets_the_run_says_they_were_not_checked(cli_cluster, capsys):
    cli_cluster.denied.add(("list", "policy", "poddisruptionbudgets", ""))
    cli_cluster.budgets = [budget(minAvailable=1)]
    code, said = dry_run(["recreate", "--app", "hello", "--image", "v2"], capsys)
    assert code == ExitCode.OK and "disruption budgets not checked" in said, said


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ({"matchLabels": {"app": "hello"}}, {"app": "hello", "track": "x"}, True),
    ({"matchLabels": {"app": "hello"}}, {"app": "shop"}, False),
    ({"matchExpressions": [{"key": "track", "operator": "In", "values": ["a", "b"]}]},
     {"track": "b"}, True),
    ({"matchExpressions": [{"key": "track", "operator": "In", "values": ["a"]}]}, {}, False),
    ({"matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "track", "operator": "Exists"}]}, {"track": ""}, True),
    ({"matchExpressions": [{"key": "track", "operator": "DoesNotExist"}]}, {"track": "a"},
     False),
])
def test_label_selectors_are_evaluated_like_the_api_server(selector, labels, matches):
    from deployer.labels import selector_matches

    assert selector_matches(selector, labels) is matches
