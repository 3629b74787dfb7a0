"""Preflight: every permission a plan needs is asked before the first write, and what is
missing is named (exit 69) instead of failing halfway through a release."""

from __future__ import annotations

import pytest

from deployer import preflight
from deployer.errors import NotAuthorised
from deployer.exitcodes import ExitCode
from deployer.model import (
    ApplyDeployment,
    AppRef,
    AwaitRollout,
    DeleteDeployment,
    Gate,
    Plan,
    ScaleDeployment,
    SetServiceAffinity,
    SetServiceSelector,
    UndoRollout,
    UpdateDeployment,
)
from deployer.preflight import BASE, Permission
from tests.unit.fakes import FakeGateway, deployment

CANARY = Plan("canary", AppRef("test", "hello"),
              (ApplyDeployment(deployment("hello-canary", "hello:v2", replicas=1)),
               SetServiceAffinity("hello", "ClientIP"), Gate("25%")),
              (DeleteDeployment("hello-canary", "hello"),))


class Asked(FakeGateway):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, str, str, str]] = []

    def can_i(self, verb, group, resource, subresource=""):
        self.asked.append((verb, group, resource, subresource))
        return super().can_i(verb, group, resource, subresource)


def test_every_run_needs_the_base_permissions_only_for_in_place_steps():
    assert preflight.required([UpdateDeployment, AwaitRollout, UndoRollout]) == list(BASE)
    assert Permission("update", "apps", "deployments") in BASE
    assert Permission("get", "", "pods", "proxy") in BASE


def test_steps_that_create_delete_or_patch_add_their_permissions():
    extra = preflight.required([ApplyDeployment, DeleteDeployment, SetServiceSelector])[len(BASE):]
    assert extra == [Permission("create", "apps", "deployments"),
                     Permission("delete", "apps", "deployments"),
                     Permission("patch", "", "services"),
                     Permission("get", "", "endpoints")]
    assert preflight.required([SetServiceAffinity])[len(BASE):] == \
        [Permission("patch", "", "services")]


def test_permissions_are_named_as_kubectl_auth_can_i_would():
    assert str(Permission("get", "", "pods", "proxy")) == "get pods/proxy"
    assert str(Permission("delete", "apps", "deployments")) == "delete deployments.apps"
    assert str(Permission("update", "coordination.k8s.io", "leases")) == \
        "update leases.coordination.k8s.io"


def test_the_kinds_of_step_come_from_a_plan_or_from_a_plan_as_stored():
    kinds = {ApplyDeployment, SetServiceAffinity, Gate, DeleteDeployment}
    assert preflight.step_kinds(CANARY) == kinds
    assert preflight.step_kinds(CANARY.to_json()) == kinds
    assert preflight.step_kinds(None) == set()
    stored = {"steps": [{"type": "ScaleDeployment", "deployment": "x", "replicas": 1},
                        {"type": "StepOfAFutureVersion"}, {"deployment": "no type"}]}
    assert preflight.step_kinds(stored) == {ScaleDeployment}
    assert preflight.step_kinds({"rollback": [{"type": "UndoRollout"}]}) == {UndoRollout}


def test_check_asks_for_every_permission_and_passes_when_all_are_granted():
    gw = Asked()
    preflight.check(gw, preflight.step_kinds(CANARY))
    assert gw.asked == [tuple(p) for p in preflight.required(preflight.step_kinds(CANARY))]
    assert gw.writes == []


def test_missing_permissions_are_all_named_and_nothing_is_changed():
    gw = Asked()
    gw.denied = {("delete", "apps", "deployments", ""), ("patch", "", "services", ""),
                 ("get", "", "pods", "proxy")}
    with pytest.raises(NotAuthorised) as exc:
        preflight.check(gw, preflight.step_kinds(CANARY))
    error = exc.value
    assert error.message == ("this identity may not get pods/proxy, delete deployments.apps, "
                             "patch services in namespace 'test'; nothing was changed")
    assert error.id == "missing-permission"
    assert error.exit_code == ExitCode.UNREACHABLE == 69
    assert "manifests/rbac/role.yaml" in error.hint
    assert gw.writes == []


def test_a_permission_only_a_step_kind_needs_is_not_asked_for_without_it():
    gw = Asked()
    gw.denied = {("delete", "apps", "deployments", "")}
    preflight.check(gw, [UpdateDeployment, AwaitRollout])  # a rolling plan deletes nothing
    assert ("delete", "apps", "deployments", "") not in gw.asked


# --- the rules review ----------------------------------------------------------------

ROLE = [  # manifests/rbac/role.yaml's rules as a SelfSubjectRulesReview lists them
    {"verbs": ["get", "list", "watch", "update", "create", "delete"], "apiGroups": ["apps"],
     "resources": ["deployments"]},
    {"verbs": ["list"], "apiGroups": ["apps"], "resources": ["replicasets"]},
    {"verbs": ["list", "watch"], "apiGroups": [""], "resources": ["pods"]},
    {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/proxy"]},
    {"verbs": ["list"], "apiGroups": [""], "resources": ["events"]},
    {"verbs": ["get", "patch"], "apiGroups": [""], "resources": ["services"]},
    {"verbs": ["get", "create", "update"], "apiGroups": [""], "resources": ["configmaps"]},
    {"verbs": ["get", "create", "update"], "apiGroups": ["coordination.k8s.io"],
     "resources": ["leases"]},
    {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
     "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
]


@pytest.mark.parametrize(("rule", "permission", "expected"), [
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/proxy"]},
     Permission("get", "", "pods", "proxy"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
     Permission("get", "", "pods", "proxy"), False),  # a resource is not its subresources
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["*/proxy"]},
     Permission("get", "", "pods", "proxy"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["*/proxy"]},
     Permission("get", "", "pods"), False),
    ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
     Permission("delete", "apps", "deployments"), True),
    ({"verbs": ["update"], "apiGroups": ["extensions"], "resources": ["deployments"]},
     Permission("update", "apps", "deployments"), False),
    ({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["deployments"],
      "resourceNames": ["hello"]},
     Permission("update", "apps", "deployments"), False),  # one object is not every object
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["services"]},
     Permission("patch", "", "services"), False),
])
def test_a_rule_grants_a_permission_as_rbac_matches_it(rule, permission, expected):
    assert preflight.granted([rule], permission) is expected


def test_what_the_rules_grant_is_not_asked_again():
    gw = FakeGateway()
    gw.rules = ROLE
    preflight.check(gw, preflight.step_kinds(CANARY))
    assert gw.access_reviews == []


def test_what_the_rules_do_not_show_is_asked_and_named_when_refused():
    gw = FakeGateway()
    gw.rules = [r for r in ROLE if r["resources"] != ["services"]]  # no get or patch
    gw.denied = {("patch", "", "services", "")}
    with pytest.raises(NotAuthorised) as exc:
        preflight.check(gw, preflight.step_kinds(CANARY))
    assert sorted(gw.access_reviews) == [("get", "", "services", ""),
                                         ("patch", "", "services", "")]
    assert "may not patch services in namespace" in exc.value.message
    assert gw.writes == []


def test_an_incomplete_rules_review_decides_nothing():
    gw = FakeGateway()
    gw.rules, gw.rules_incomplete = ROLE, True  # a webhook authorizer may deny what RBAC allows
    gw.denied = {("update", "apps", "deployments", "")}
    with pytest.raises(NotAuthorised, match="may not update deployments.apps"):
        preflight.check(gw, preflight.step_kinds(CANARY))
    assert len(gw.access_reviews) == len(preflight.required(preflight.step_kinds(CANARY)))
