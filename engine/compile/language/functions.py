"""The functions of the expression language and their DCP rules.

Each function has a curvature (of the function itself), a monotonicity in its argument
and a sign. Composition follows cvxpy: `f(g)` is convex when `f` is convex and `g` is
affine, or `f` is non-decreasing and `g` convex, or `f` is non-increasing and `g` concave
(and the mirror image for concave `f`). Absolute values and norms are non-decreasing
only where their argument is non-negative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from engine.compile.language.expression import ExpressionError
from engine.compile.language.nodes import Call, Mask, Node, Number

if TYPE_CHECKING:
    from engine.compile.language.curvature import Info

__all__ = ["FUNCTIONS", "FunctionSpec"]

Monotone = Literal["increasing", "decreasing", "by_sign", "none"]


@dataclass(frozen=True)
class FunctionSpec:
    """One function: its shape, curvature, monotonicity and sign.

    `reduces`: a vector argument gives one number (sum, norms); otherwise elementwise.
    `count`: takes a second argument, a positive whole number (sum_largest's k).
    `variadic`: several arguments combine elementwise (max(a, b)).
    `cone`: needs a second-order cone solver.
    """

    name: str
    curvature: Literal["affine", "convex", "concave"]
    monotone: Monotone
    sign: Literal["nonneg", "argument"]
    reduces: bool
    summary: str
    count: bool = False
    variadic: bool = False
    vector_only: bool = False
    cone: bool = False

    def _composed(self, call: Call, arg_text: str, arg: Info) -> str:
        if arg.curvature in ("constant", "affine") or self.curvature == "affine":
            return self.curvature if self.curvature != "affine" else arg.curvature
        monotone = self.monotone
        if monotone == "by_sign":
            monotone = {"nonneg": "increasing", "nonpos": "decreasing"}.get(arg.sign, "none")  # type: ignore[assignment]
        same = {"increasing": arg.curvature, "decreasing": _flip(arg.curvature)}.get(monotone)
        if same != self.curvature:
            raise ExpressionError(
                f"{call.text}: {self.name} of the {arg.curvature} expression {arg_text} is not "
                f"convex or concave; {self.name} needs an affine argument here"
            )
        return self.curvature

    def analyze(self, call: Call, info: Callable[[Node], Info]) -> Info:
        """Curvature, sign and shape of `call`, or an `ExpressionError`."""
        from engine.compile.language.curvature import Info

        args = list(call.args)
        if self.count:
            self._check_count(call, args)
        if not args or (len(args) > 1 and not self.variadic):
            raise ExpressionError(f"{call.text}: {self.name} takes {self._arity()}")
        infos = [info(a) for a in args]
        if self.vector_only and infos[0].scalar:
            raise ExpressionError(f"{call.text}: {self.name} needs a vector, not a single number")
        domains = {i.domain for i in infos if not i.scalar}
        if len(domains) > 1:
            raise ExpressionError(f"{call.text}: the vectors run over different sets of symbols")
        curvature: str
        if all(not i.varies for i in infos):
            curvature = "constant"
        else:
            results = {self._composed(call, a.text, i) for a, i in zip(args, infos, strict=True)}
            results.discard("constant")
            curvature = (results - {"affine"} or {"affine"}).pop()
        domain: Mask | str | None = "scalar"
        if not self.reduces and not (self.name in ("max", "min") and len(args) == 1):
            domain = next(iter(domains), "scalar")
        return Info(curvature, self._sign(infos), domain)  # type: ignore[arg-type]

    def _sign(self, infos: list[Info]) -> str:
        if self.sign == "nonneg":
            return "nonneg"
        signs = {i.sign for i in infos}
        if self.name == "max" and "nonneg" in signs:
            return "nonneg"
        if self.name == "min" and "nonpos" in signs:
            return "nonpos"
        return signs.pop() if len(signs) == 1 else "unknown"

    def _check_count(self, call: Call, args: list[Node]) -> None:
        if len(args) != 2:
            raise ExpressionError(f"{call.text}: {self.name} takes {self._arity()}")
        k = args.pop()
        if not isinstance(k, Number) or k.value != int(k.value) or k.value < 1:
            raise ExpressionError(f"{call.text}: k must be a whole number of at least 1")

    def _arity(self) -> str:
        if self.count:
            return "a vector and a whole number k"
        return "one or more arguments" if self.variadic else "one argument"


def _flip(curvature: str) -> str:
    return {"convex": "concave", "concave": "convex"}.get(curvature, curvature)


_SPECS = [
    FunctionSpec("sum", "affine", "increasing", "argument", True, "sum of the entries"),
    FunctionSpec("abs", "convex", "by_sign", "nonneg", False, "absolute value, entry by entry"),
    FunctionSpec("pos", "convex", "increasing", "nonneg", False, "max(x, 0), entry by entry"),
    FunctionSpec("neg", "convex", "decreasing", "nonneg", False, "max(-x, 0), entry by entry"),
    FunctionSpec(
        "max",
        "convex",
        "increasing",
        "argument",
        False,
        "largest entry of one vector, or the entrywise largest of several arguments",
        variadic=True,
    ),
    FunctionSpec(
        "min",
        "concave",
        "increasing",
        "argument",
        False,
        "smallest entry of one vector, or the entrywise smallest of several arguments",
        variadic=True,
    ),
    FunctionSpec(
        "sum_largest",
        "convex",
        "increasing",
        "argument",
        True,
        "sum of the k largest entries",
        count=True,
        vector_only=True,
    ),
    FunctionSpec(
        "sum_smallest",
        "concave",
        "increasing",
        "argument",
        True,
        "sum of the k smallest entries",
        count=True,
        vector_only=True,
    ),
    FunctionSpec("norm1", "convex", "by_sign", "nonneg", True, "sum of absolute values"),
    FunctionSpec("norm2", "convex", "by_sign", "nonneg", True, "Euclidean norm", cone=True),
    FunctionSpec(
        "risk",
        "convex",
        "none",
        "nonneg",
        True,
        "sqrt(x' Sigma x), Sigma the request's risk model",
        vector_only=True,
        cone=True,
    ),
]

FUNCTIONS: dict[str, FunctionSpec] = {spec.name: spec for spec in _SPECS}
"""Every function of the language by name."""
