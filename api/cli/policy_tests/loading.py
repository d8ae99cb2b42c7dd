"""Finding test files, reading them, and resolving their policies and requests.

Everything that can be wrong with a test file itself (unreadable, unknown key, missing
request file, invalid policy) is found here, before any case runs, and raised as one
`PolicyTestFileError` listing every problem with its file and field path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from api.cli.policy_tests.schema import Expectation, PolicyTestFile
from api.field_messages import field_messages
from api.files.policy_files import PolicyFileError, load_policies
from api.store import Invalid
from api.store.global_policy import merged
from engine.resolve.global_policy import GlobalControls
from models import GlobalPolicy, PolicyDefinition

__all__ = [
    "TEST_FILE_SUFFIXES",
    "LoadedCase",
    "PolicyTestFileError",
    "Suite",
    "discover",
    "load_suite",
    "merge_requests",
]

#: A directory is searched recursively for files whose names end like this.
TEST_FILE_SUFFIXES = (".tests.yaml", ".tests.yml")


class PolicyTestFileError(Exception):
    """A test file (or a file it names) is unreadable or invalid; one problem per line."""


class _StrictYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error.

    Plain YAML keeps the last value silently, which would drop an expectation (or a
    request field) without a word: the opposite of rejecting unknown keys.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges defaults that explicit keys may override
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class LoadedCase:
    """A case with its request assembled (not yet validated) from every layer."""

    name: str
    description: str
    request: dict[str, Any]
    expect: Expectation
    controls: GlobalControls | None = None


@dataclass(frozen=True)
class Suite:
    """One test file, resolved: its policy set and its cases."""

    path: Path
    policies: list[PolicyDefinition]
    cases: list[LoadedCase]


def discover(path: Path) -> list[Path]:
    """The test files at `path`: the file itself, or every `*.tests.yaml` below a directory."""
    if not path.exists():
        raise PolicyTestFileError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    found = {p for suffix in TEST_FILE_SUFFIXES for p in path.rglob(f"*{suffix}") if p.is_file()}
    return sorted(found)


def _read_data(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PolicyTestFileError(f"{what}: {path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyTestFileError(f"{what}: {path}: cannot read: {exc}") from exc
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_StrictYamlLoader)  # a SafeLoader: no arbitrary objects
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise PolicyTestFileError(f"{what}: {path}: not valid {kind}: {exc}") from exc


def merge_requests(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` over `base`: mappings merge key by key, anything else is replaced.

    Lists are replaced whole (a case's `trades` are the trades, not extra ones).
    """
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_requests(out[key], value)
        else:
            out[key] = value
    return out


def _case_label(raw: Any, index: int) -> str:
    """`case 'name' (cases[3])` when the raw case has a usable name, else `cases[3]`."""
    cases = raw.get("cases") if isinstance(raw, dict) else None
    case = cases[index] if isinstance(cases, list) and index < len(cases) else None
    name = case.get("name") if isinstance(case, dict) else None
    return f"case {name!r} (cases[{index}])" if isinstance(name, str) else f"cases[{index}]"


def _loc_text(loc: tuple[int | str, ...], whole: str = "(file)") -> str:
    out = ""
    for k, part in enumerate(loc):
        if k and loc[k - 1] == "adjusted" and part in ("none", "mapping"):
            continue  # the form chosen for `adjusted:`, not a key the user wrote
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or whole


def _schema_problems(path: Path, raw: Any, exc: ValidationError) -> list[str]:
    """One line per schema error: file, case (by name) and the field path inside it."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
            where = f"{_case_label(raw, loc[1])}: {_loc_text(loc[2:], '(case)')}"
        else:
            where = _loc_text(loc)
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {where}: {message}")
    return lines


def _resolve(base_dir: Path, relative: str) -> Path:
    path = Path(relative)
    return path if path.is_absolute() else base_dir / path


def _policies(path: Path, items: list[Any]) -> list[PolicyDefinition]:
    """The policy set: files/directories (relative to the test file) and inline policies."""
    policies: list[PolicyDefinition] = []
    problems: list[str] = []
    for k, item in enumerate(items):
        if isinstance(item, str):
            try:
                policies.extend(load_policies(_resolve(path.parent, item)))
            except PolicyFileError as exc:
                problems += [f"{path}: policies[{k}]: {line}" for line in str(exc).splitlines()]
            continue
        try:
            policies.append(PolicyDefinition.model_validate(item))
        except ValidationError as exc:
            problems += [
                f"{path}: policies[{k}].{field}: {msg}" for field, msg in field_messages(exc)
            ]
    seen: set[str] = set()
    for policy in policies:
        if policy.policy_name in seen:
            problems.append(f"{path}: policies: {policy.policy_name!r} is defined twice")
        seen.add(policy.policy_name)
    if problems:
        raise PolicyTestFileError("\n".join(problems))
    return policies


def _global_policy(path: Path, spec: Any) -> GlobalPolicy | None:
    """The file's global policy: a path (relative to the test file) or an inline object."""
    if spec is None:
        return None
    where = "global_policy"
    data = spec
    if isinstance(spec, str):
        data = _read_data(_resolve(path.parent, spec), f"{path}: {where}")
        where = f"global_policy ({spec})"
    if not isinstance(data, dict):
        raise PolicyTestFileError(f"{path}: {where}: must be an object (field: value)")
    return _merged(path, where, GlobalPolicy(), data)


def _merged(path: Path, where: str, base: GlobalPolicy, patch: dict[str, Any]) -> GlobalPolicy:
    try:
        return merged(base, patch)
    except Invalid as exc:
        raise PolicyTestFileError(f"{path}: {where}.{exc.field}: {exc.message}") from exc
    except ValidationError as exc:
        lines = [f"{path}: {where}.{f}: {m}" for f, m in field_messages(exc)]
        raise PolicyTestFileError("\n".join(lines)) from exc


def _request_layer(path: Path, relative: str, label: str) -> dict[str, Any]:
    target = _resolve(path.parent, relative)
    data = _read_data(target, f"{path}: {label}: request_file")
    if not isinstance(data, dict):
        raise PolicyTestFileError(
            f"{path}: {label}: request_file: {target}: must hold one request (a mapping)"
        )
    return data


def _assemble(
    path: Path, spec: PolicyTestFile, index: int, policy: GlobalPolicy | None = None
) -> LoadedCase:
    """The case's request: defaults' file < defaults' fields < case file < case fields.

    `policy` is the file's global policy; the case's own `global_policy` patches it.
    """
    case = spec.cases[index]
    label = f"case {case.name!r} (cases[{index}])"
    if case.global_policy is not None:
        base = GlobalPolicy() if policy is None else policy
        policy = _merged(path, f"{label}: global_policy", base, case.global_policy)
    request: dict[str, Any] = {}
    if spec.defaults.request_file is not None:
        request = _request_layer(path, spec.defaults.request_file, "defaults")
    request = merge_requests(request, spec.defaults.request or {})
    if case.request_file is not None:
        request = merge_requests(request, _request_layer(path, case.request_file, label))
    request = merge_requests(request, case.request or {})
    if not request:
        raise PolicyTestFileError(
            f"{path}: {label}: no request: give `request`, `request_file` or file `defaults`"
        )
    decision = request.get("decision")
    state = request.get("portfolio_state")
    if isinstance(decision, dict):
        # Inline cases may leave out the identifiers: the case name and the portfolio's id.
        decision = {"decision_id": case.name, **decision}
        if isinstance(state, dict) and "portfolio_id" in state:
            decision = {"portfolio_id": state["portfolio_id"], **decision}
        request["decision"] = decision
    controls = None if policy is None else GlobalControls(policy)
    return LoadedCase(case.name, case.description, request, case.expect, controls)


def load_suite(path: Path) -> Suite:
    """Read and resolve one test file; raises `PolicyTestFileError` naming every problem."""
    raw = _read_data(path, "test file")
    if not isinstance(raw, dict):
        raise PolicyTestFileError(f"{path}: a test file is a mapping with `policies` and `cases`")
    try:
        spec = PolicyTestFile.model_validate(raw)
    except ValidationError as exc:
        raise PolicyTestFileError("\n".join(_schema_problems(path, raw, exc))) from exc
    problems: list[str] = []
    policies: list[PolicyDefinition] = []
    global_policy: GlobalPolicy | None = None
    try:
        policies = _policies(path, spec.policies)
    except PolicyTestFileError as exc:
        problems.append(str(exc))
    try:
        global_policy = _global_policy(path, spec.global_policy)
    except PolicyTestFileError as exc:
        problems.append(str(exc))
    cases = []
    for index in range(len(spec.cases)):
        try:
            cases.append(_assemble(path, spec, index, global_policy))
        except PolicyTestFileError as exc:
            problems.append(str(exc))
    if problems:
        # A broken `defaults.request_file` breaks every case the same way: say it once.
        raise PolicyTestFileError("\n".join(dict.fromkeys(problems)))
    return Suite(path, policies, cases)
