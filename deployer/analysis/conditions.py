"""A metric's ``successCondition`` / ``failureCondition``, in the part of Argo Rollouts'
expression language (expr) that its documentation's examples use.

    result[0] >= 0.95        len(result) == 0          isNaN(result[0])
    result.ok && asFloat(result.successPercent) >= 0.90   result == 'true' || !isNil(result)

What a condition may hold is checked when the template is loaded, so that a typo or an
operator deployer does not evaluate is refused before anything changes (exit 2), with the
field named: ``result``, ``true``/``false``/``nil``, numbers and quoted strings, ``[index]``
and ``.field``, comparisons (``== != < <= > >=``, ``in``), ``&&`` ``||`` ``!`` (or ``and``
``or`` ``not``), arithmetic (``+ - * / %``), ``[a, b]`` lists, and the functions ``len``,
``isNaN``, ``isInf``, ``asInt``, ``asFloat``, ``isNil`` and ``default``.

The expression is then evaluated by simpleeval, never by Python's ``eval``: ``&&``, ``||``
and ``!`` are written as ``and``, ``or`` and ``not`` first (outside quoted strings), which is
all that differs between the two languages in that subset.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any

from deployer.errors import InvalidInput

FUNCTIONS = ("len", "isNaN", "isInf", "asInt", "asFloat", "isNil", "default")
NAMES = ("result", "true", "false", "nil")
SUPPORTED = ("comparisons (== != < <= > >= in), && || !, + - * / %, result[N], result.field, "
             "true/false/nil, numbers, quoted strings, and " + ", ".join(FUNCTIONS))

_COMPARE = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod)
_UNARY = (ast.Not, ast.USub, ast.UAdd)


class ConditionError(Exception):
    """A condition that could not be evaluated on this result: the measurement is an
    Error, as in Argo Rollouts."""


def to_python(expression: str) -> str:
    """``&&``, ``||`` and ``!`` (not ``!=``) as Python's keywords, outside quoted strings."""
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(expression):
        c = expression[i]
        if quote is not None:
            out.append(c)
            if c == "\\" and i + 1 < len(expression):
                out.append(expression[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"`":
            quote = c
            out.append(c)
        elif expression.startswith("&&", i):
            out.append(" and ")
            i += 1
        elif expression.startswith("||", i):
            out.append(" or ")
            i += 1
        elif c == "!" and not expression.startswith("!=", i):
            out.append(" not ")
        else:
            out.append(c)
        i += 1
    if quote is not None:
        raise ValueError(f"a string opened with {quote} is never closed")
    return "".join(out)


def _refuse(node: ast.AST) -> str | None:
    """What in this node is outside the subset, or None."""
    if isinstance(node, (ast.Expression, ast.Load, ast.And, ast.Or) + _COMPARE + _ARITHMETIC
                  + _UNARY):
        return None
    if isinstance(node, ast.BoolOp | ast.Compare | ast.List | ast.Tuple):
        return None
    if isinstance(node, ast.UnaryOp):
        return None
    if isinstance(node, ast.BinOp):
        return None if isinstance(node.op, _ARITHMETIC) else "that operator"
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or node.value is None:
            return f"{node.value!r} (expr writes true, false and nil)"
        return None if isinstance(node.value, int | float | str) else repr(node.value)
    if isinstance(node, ast.Name):
        return None if node.id in NAMES else f"the name {node.id!r}"
    if isinstance(node, ast.Subscript):
        return "a slice" if isinstance(node.slice, ast.Slice) else None
    if isinstance(node, ast.Attribute):
        return f"the field .{node.attr}" if node.attr.startswith("_") else None
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            return f"a call of {ast.unparse(node.func)}"
        if node.keywords:
            return f"named arguments to {name}"
        return None
    return type(node).__name__  # a lambda, a comprehension, a conditional, ...


@dataclass(frozen=True)
class Condition:
    """One condition, checked at load time; ``holds(result)`` evaluates it."""

    text: str
    where: str  # the field, for messages: "metric success-rate: successCondition"
    python: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        hint = f"a condition may use {SUPPORTED}"
        try:
            python = to_python(self.text).strip()
            tree = ast.parse(python, mode="eval")
        except (SyntaxError, ValueError) as exc:
            detail = exc.msg if isinstance(exc, SyntaxError) else str(exc)
            raise InvalidInput(f"{self.where}: {self.text!r} is not an expression deployer "
                               f"evaluates ({detail})", id="invalid-condition",
                               hint=hint) from None
        called = {id(n.func) for n in ast.walk(tree)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        for node in ast.walk(tree):
            refused = None if isinstance(node, ast.Name) and id(node) in called \
                and node.id in FUNCTIONS else _refuse(node)
            if refused is not None:
                raise InvalidInput(f"{self.where}: {self.text!r} uses {refused}, which "
                                   "deployer does not evaluate", id="invalid-condition",
                                   hint=hint)
        object.__setattr__(self, "python", python)

    def holds(self, result: Any) -> bool:
        from simpleeval import EvalWithCompoundTypes

        if _indexes(self.python) and _empty(result):
            raise ConditionError("the metric's result is empty, and the condition indexes it: "
                                 "guard it with len(result) > 0")
        evaluator = EvalWithCompoundTypes(
            names={"result": result, "true": True, "false": False, "nil": None},
            functions={"len": len, "isNaN": _is_nan, "isInf": _is_inf, "asInt": as_int,
                       "asFloat": as_float, "isNil": lambda _=None: result is None,
                       "default": lambda _, fallback: fallback if result is None else result})
        try:
            value = evaluator.eval(self.python)
        except Exception as exc:  # noqa: BLE001 - any failure of a condition is an Error
            raise ConditionError(f"could not evaluate {self.text!r} on {show(result)}: "
                                 f"{type(exc).__name__}: {exc}") from None
        if not isinstance(value, bool):
            raise ConditionError(f"{self.text!r} gave {show(value)} on {show(result)}, "
                                 "not true or false")
        return value


def _indexes(python: str) -> bool:
    tree = ast.parse(python, mode="eval")
    return any(isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name)
               and n.value.id == "result" for n in ast.walk(tree))


def _empty(result: Any) -> bool:
    return result is None or (isinstance(result, list | tuple | str) and len(result) == 0)


def show(value: Any, limit: int = 80) -> str:
    """A value as a message shows it (as JSON where it can be: what the providers read,
    and how the expressions write true, false and nil), cut to ``limit`` characters."""
    import json

    try:
        text = json.dumps(value, default=str)
    except ValueError:  # a circular structure cannot come from a provider; say what it is
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}() of {show(value)}: not a number")
    return float(value)


def _is_nan(value: Any) -> bool:
    return math.isnan(_number(value, "isNaN"))


def _is_inf(value: Any) -> bool:
    return math.isinf(_number(value, "isInf"))


def as_int(value: Any) -> int:
    """Argo's asInt: a number truncated, or a string holding a whole number."""
    if isinstance(value, str):
        return int(value.strip(), 10)
    return int(_number(value, "asInt"))


def as_float(value: Any) -> float:
    """Argo's asFloat: a number, or a string holding one."""
    if isinstance(value, str):
        return float(value.strip())
    return _number(value, "asFloat")
