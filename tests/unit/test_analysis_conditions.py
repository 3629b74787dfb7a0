"""Conditions of analysis metrics: the subset of Argo's expression language, checked at load
time, evaluated by simpleeval."""

from __future__ import annotations

import math

import pytest

from deployer.analysis.conditions import Condition, ConditionError, to_python
from deployer.errors import InvalidInput


def holds(text: str, result) -> bool:
    return Condition(text, "metric m: successCondition").holds(result)


@pytest.mark.parametrize(("text", "result", "expected"), [
    ("result[0] >= 0.95", [0.97], True),
    ("result[0] >= 0.95", [0.5], False),
    ("result >= 0.95", 0.96, True),
    ("len(result) == 0", [], True),
    ("len(result) == 0", [1.0], False),
    ("isNaN(result[0])", [math.nan], True),
    ("isNaN(result[0])", [1.0], False),
    ("!isNaN(result[0]) && result[0] < 0.05", [0.01], True),
    ("isNaN(result[0]) || result[0] < 0.05", [math.nan], True),
    ("result[0] < 0.05 || result[0] > 100", [50.0], False),
    ("result == 'true'", "true", True),
    ("result == \"true\"", "false", False),
    ("asFloat(result) >= 0.90", "0.95", True),
    ("asInt(result) == 3", 3.7, True),
    ("result.ok && result.successPercent >= 0.90", {"ok": True, "successPercent": 0.95}, True),
    ("result.ok == true", {"ok": False}, False),
    ("isNil(result)", None, True),
    ("default(result, 0) == 0", None, True),
    ("result in ['a', 'b']", "b", True),
    ("result[0] * 100 >= 95 and not isInf(result[0])", [0.96], True),
    ("result != 'a && b'", "a && b", False),  # && inside a string is left alone
    ("result[0] != 1", [2], True),
])
def test_the_documented_conditions_evaluate_as_argo_does(text, result, expected):
    assert holds(text, result) is expected


def test_only_the_operators_outside_strings_are_rewritten():
    assert to_python("a && !b || c != 'x && !y'") == "a  and   not b  or  c != 'x && !y'"


@pytest.mark.parametrize(("text", "named"), [
    ("result[0] >= 0.95 ? true : false", "not an expression"),
    ("__import__('os').system('id')", "a call of __import__('os').system"),
    ("len > 1", "the name 'len'"),
    ("result.__class__", "the field .__class__"),
    ("open('/etc/passwd')", "a call of open"),
    ("[x for x in result]", "ListComp"),
    ("lambda: 1", "Lambda"),
    ("result[0] >= True", "True (expr writes true, false and nil)"),
    ("result[1:2] == []", "a slice"),
    ("sum(result) > 1", "a call of sum"),
    ("len(result, key=1) > 0", "named arguments to len"),
    ("rate > 1", "the name 'rate'"),
    ("'unclosed", "never closed"),
    ("", "not an expression"),
    ("result matches '^a'", "not an expression"),
])
def test_anything_outside_the_subset_is_refused_at_load_naming_the_field(text, named):
    with pytest.raises(InvalidInput) as exc:
        Condition(text, "templates/rate.yaml (AnalysisTemplate rate): metric 'm': "
                        "successCondition")
    assert exc.value.id == "invalid-condition" and exc.value.exit_code == 2
    assert exc.value.message.startswith("templates/rate.yaml (AnalysisTemplate rate): metric "
                                        "'m': successCondition: ")
    assert named in exc.value.message
    assert "len, isNaN" in (exc.value.hint or "")


@pytest.mark.parametrize(("text", "result", "said"), [
    ("result[0] >= 0.95", [], "guard it with len(result) > 0"),
    ("result[0] >= 0.95", None, "guard it with len(result) > 0"),
    ("result >= 0.95", "high", "TypeError"),
    ("asFloat(result) > 1", "n/a", "ValueError"),
    ("isNaN(result)", "NaN", "not a number"),
    ("result + 1", 1, "gave 2"),  # not a condition: neither true nor false
    ("result.missing", {"ok": True}, "could not evaluate"),
])
def test_a_condition_that_cannot_be_judged_on_a_result_is_an_error_not_a_verdict(text, result,
                                                                                  said):
    with pytest.raises(ConditionError, match=said.replace("(", r"\(").replace(")", r"\)")):
        holds(text, result)
