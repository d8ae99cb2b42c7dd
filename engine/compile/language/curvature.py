"""Disciplined convex programming (DCP) analysis of an expression's syntax tree.

Runs when a policy is created, before any universe exists: it knows which sub-expressions
depend on the weights `w` (the decision variables), their curvature and sign, and whether
they are numbers or vectors over the symbols. The rules are cvxpy's (sign x curvature x
monotonicity), applied to the language's own functions; cvxpy's `is_dcp()` / `is_dpp()`
confirm the result again when the expression is compiled for a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.compile.language.expression import ExpressionError, parse
from engine.compile.language.functions import FUNCTIONS, FunctionSpec
from engine.compile.language.nodes import (
    Arith,
    AttributeTest,
    Call,
    Comparison,
    Constraint,
    Index,
    Mask,
    Name,
    Negate,
    Node,
    Number,
    String,
    Tuple,
)

__all__ = ["Curvature", "Info", "Sign", "analyze", "info"]

Curvature = Literal["constant", "affine", "convex", "concave"]

PER_REQUEST = frozenset({"price", "lot_size"})
"""Instrument fields an expression may not read: they change between requests that share a
compiled layout."""
Sign = Literal["nonneg", "nonpos", "unknown"]


@dataclass(frozen=True)
class Info:
    """What the analysis knows about a sub-expression.

    `number` is its value when it is made of numeric literals only; `domain` is None for a
    vector over every symbol, the mask for a vector over selected symbols, and "scalar"
    for a single number.
    """

    curvature: Curvature
    sign: Sign
    domain: Mask | Literal["scalar"] | None
    number: float | None = None

    @property
    def varies(self) -> bool:
        """True when it depends on the weights."""
        return self.curvature != "constant"

    @property
    def scalar(self) -> bool:
        """True for a single number (not a vector over symbols)."""
        return self.domain == "scalar"


def _sign_of(value: float) -> Sign:
    return "nonneg" if value >= 0 else "nonpos"


def _negated(sign: Sign) -> Sign:
    flipped: dict[Sign, Sign] = {"nonneg": "nonpos", "nonpos": "nonneg", "unknown": "unknown"}
    return flipped[sign]


def _flip(curvature: Curvature) -> Curvature:
    return {"convex": "concave", "concave": "convex"}.get(curvature, curvature)  # type: ignore[return-value]


def _broadcast(node: Node, a: Info, b: Info) -> Mask | Literal["scalar"] | None:
    if a.scalar:
        return b.domain
    if b.scalar or a.domain == b.domain:
        return a.domain
    raise ExpressionError(
        f"{node.text}: the two vectors run over different sets of symbols; select the same "
        "symbols on both sides"
    )


def _add(node: Node, a: Info, b: Info) -> Info:
    domain = _broadcast(node, a, b)
    curvatures = {a.curvature, b.curvature} - {"constant"}
    if {"convex", "concave"} <= curvatures:
        raise ExpressionError(
            f"{node.text}: adding a convex and a concave expression gives neither; "
            "such a sum cannot be bounded"
        )
    curvature: Curvature = "constant"
    order: tuple[Curvature, ...] = ("affine", "convex", "concave")
    for c in order:
        if c in curvatures:
            curvature = c
    sign: Sign = a.sign if a.sign == b.sign else "unknown"
    number = a.number + b.number if a.number is not None and b.number is not None else None
    return Info(curvature, sign, domain, number)


def _negate(a: Info) -> Info:
    number = -a.number if a.number is not None else None
    return Info(_flip(a.curvature), _negated(a.sign), a.domain, number)


def _product_sign(a: Sign, b: Sign) -> Sign:
    if "unknown" in (a, b):
        return "unknown"
    return "nonneg" if a == b else "nonpos"


def _multiply(node: Arith, a: Info, b: Info) -> Info:
    domain = _broadcast(node, a, b)
    if a.varies and b.varies:
        raise ExpressionError(
            f"{node.text}: the product of two expressions that depend on the weights is not "
            "convex; multiply by a constant instead"
        )
    sign = _product_sign(a.sign, b.sign)
    if not a.varies and not b.varies:
        number = a.number * b.number if a.number is not None and b.number is not None else None
        return Info("constant", sign, domain, number)
    expr, factor = (a, b) if a.varies else (b, a)
    if expr.curvature == "affine" or factor.number == 0:
        return Info("affine", sign, domain)
    if factor.sign == "unknown":
        expr_text = (node.left if a.varies else node.right).text
        factor_text = (node.right if a.varies else node.left).text
        raise ExpressionError(
            f"{node.text}: {expr_text} is {expr.curvature}, and multiplying it by "
            f"{factor_text}, whose sign is not known in advance, is not convex; multiply it "
            "by a number instead"
        )
    curvature = expr.curvature if factor.sign == "nonneg" else _flip(expr.curvature)
    return Info(curvature, sign, domain)


def _divide(node: Arith, a: Info, b: Info) -> Info:
    if b.number is None:
        raise ExpressionError(f"{node.text}: divide only by a number ({node.right.text} is not)")
    if b.number == 0:
        raise ExpressionError(f"{node.text}: division by zero")
    scaled = Info("constant", _sign_of(1.0 / b.number), "scalar", 1.0 / b.number)
    out = _multiply(node, a, scaled)
    number = a.number / b.number if a.number is not None else None
    return Info(out.curvature, out.sign, out.domain, number)


def _arith(node: Arith) -> Info:
    a, b = info(node.left), info(node.right)
    if node.op == "+":
        return _add(node, a, b)
    if node.op == "-":
        return _add(node, a, _negate(b))
    if node.op == "*":
        return _multiply(node, a, b)
    return _divide(node, a, b)


def _index(node: Index) -> Info:
    base = info(node.base)
    if base.scalar:
        raise ExpressionError(f"{node.text}: {node.base.text} is a single number, not a vector")
    if base.domain is not None:
        raise ExpressionError(
            f"{node.text}: {node.base.text} already selects symbols; select once, combining "
            "conditions with and / or"
        )
    domain: Mask | Literal["scalar"] = "scalar" if isinstance(node.key, String) else node.key
    for test in _walk(node.key):
        if isinstance(test, AttributeTest) and test.attribute in PER_REQUEST:
            raise ExpressionError(
                f"{test.text}: {test.attribute} changes with every request and cannot select "
                "symbols"
            )
    return Info(base.curvature, base.sign, domain)


def _call(node: Call) -> Info:
    spec: FunctionSpec | None = FUNCTIONS.get(node.func)
    if spec is None:
        raise ExpressionError(
            f"{node.text}: {node.func} is not a function of the expression language "
            f"(functions: {', '.join(sorted(FUNCTIONS))})"
        )
    return spec.analyze(node, info)


def info(node: Node) -> Info:
    """Curvature, sign and shape of `node`, or an `ExpressionError` saying why it is invalid."""
    if isinstance(node, Number):
        return Info("constant", _sign_of(node.value), "scalar", node.value)
    if isinstance(node, Name):
        if node.name in PER_REQUEST:
            raise ExpressionError(
                f"{node.text}: {node.name} changes with every request and cannot be read by an "
                "expression (the weights already reflect prices)"
            )
        if node.name == "w":
            return Info("affine", "unknown", None)
        return Info("constant", "unknown", None)  # w0, b, or an instrument attribute
    if isinstance(node, Negate):
        return _negate(info(node.operand))
    if isinstance(node, Arith):
        return _arith(node)
    if isinstance(node, Index):
        return _index(node)
    if isinstance(node, Call):
        return _call(node)
    if isinstance(node, String):
        raise ExpressionError(
            f"{node.text}: a string is only allowed as a symbol in w[...] or compared with "
            "an attribute"
        )
    if isinstance(node, Tuple):
        raise ExpressionError(f"{node.text}: a list is only allowed after in")
    if isinstance(node, Comparison):
        raise ExpressionError(f"{node.text}: a comparison may only appear once, at the top")
    raise ExpressionError(f"{node.text}: a condition is only allowed inside [...]")


def _walk(node: Node) -> list[Node]:
    out = [node]
    for child in vars(node).values():
        items = child if isinstance(child, tuple) else (child,)
        out += [n for item in items if isinstance(item, Node) for n in _walk(item)]
    return out


def _bound(node: Node, source: str) -> float:
    value = info(node).number
    if value is None:
        raise ExpressionError(f"{source}: the bounds of a chained comparison must be numbers")
    return value


def _check(source: str, body: Node, lower: float | None, upper: float | None) -> None:
    body_info = info(body)
    if not body_info.scalar:
        raise ExpressionError(
            f"{source}: {body.text} is a vector (one value per symbol); reduce it to a number "
            "with sum(...), max(...) or a norm"
        )
    if lower is not None and upper is not None and lower > upper:
        raise ExpressionError(f"{source}: the lower bound {lower:g} exceeds the upper {upper:g}")
    if upper is not None and body_info.curvature == "concave":
        raise ExpressionError(f"{source}: a concave expression can only be bounded from below (>=)")
    if lower is not None and body_info.curvature == "convex":
        raise ExpressionError(f"{source}: a convex expression can only be bounded from above (<=)")


_DIRECTIONS = {"<=": "le", ">=": "ge", "==": "eq"}


def _constraint(source: str, tree: Comparison) -> tuple[Node, float | None, float | None]:
    for op in tree.ops:
        if op not in _DIRECTIONS:
            hint = " (use <= or >=)" if op in ("<", ">") else ""
            raise ExpressionError(f"{source}: {op} cannot bound a constraint{hint}")
    if len(tree.ops) > 2:
        raise ExpressionError(f"{source}: at most two comparisons (lower <= expression <= upper)")
    if len(tree.ops) == 2:
        if tree.ops[0] != tree.ops[1] or tree.ops[0] == "==":
            raise ExpressionError(f"{source}: write a range as lower <= expression <= upper")
        low, body, high = tree.operands
        if tree.ops[0] == ">=":
            low, high = high, low
        if not info(body).varies:
            raise ExpressionError(f"{source}: {body.text} does not depend on the weights")
        return body, _bound(low, source), _bound(high, source)
    left, right = tree.operands
    op = tree.ops[0]
    left_info, right_info = info(left), info(right)
    if not left_info.varies and not right_info.varies:
        raise ExpressionError(f"{source}: neither side depends on the weights")
    if right_info.number is not None:
        body, limit = left, right_info.number
    elif left_info.number is not None:
        body, limit = right, left_info.number
        op = {"<=": ">=", ">=": "<=", "==": "=="}[op]
    else:
        body, limit = Arith("-", left, right, text=f"({left.text}) - ({right.text})"), 0.0
    lower = limit if op in (">=", "==") else None
    upper = limit if op in ("<=", "==") else None
    return body, lower, upper


def analyze(source: str) -> Constraint:
    """Parse and DCP-check `source`; an `ExpressionError` says why it is rejected."""
    tree = parse(source)
    text = source.strip()
    if not isinstance(tree, Comparison):
        info(tree)  # an unknown function or a non-convex part is the better message
        raise ExpressionError(
            f"{text}: a constraint compares an expression with a limit "
            '(sum(w[sector == "Energy"]) <= 0.08)'
        )
    body, lower, upper = _constraint(text, tree)
    _check(text, body, lower, upper)
    nodes = _walk(body)
    return Constraint(
        text=text,
        body=body,
        lower=lower,
        upper=upper,
        uses_benchmark=any(isinstance(n, Name) and n.name == "b" for n in nodes),
        needs_cone=any(isinstance(n, Call) and FUNCTIONS[n.func].cone for n in nodes),
    )
