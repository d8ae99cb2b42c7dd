"""Reading policy definitions from YAML/JSON files or directories of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from api.field_messages import describe_validation_error
from engine import InputError
from engine.compile.language import check_policy
from models import PolicyDefinition

__all__ = ["PolicyFileError", "load_policies", "read_documents", "supported_files"]

_SUFFIXES = (".yaml", ".yml", ".json")


class PolicyFileError(Exception):
    """A policy file cannot be read or does not hold valid PolicyDefinitions."""


def read_documents(path: Path) -> Any:
    """The parsed content of a .json or YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(f"{path}: cannot read: {exc}") from exc
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PolicyFileError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc


def _from_file(path: Path) -> list[PolicyDefinition]:
    data = read_documents(path)
    items = data if isinstance(data, list) else [data]
    out = []
    for k, item in enumerate(items):
        where = f"{path}[{k}]" if isinstance(data, list) else str(path)
        try:
            policy = PolicyDefinition.model_validate(item)
        except ValidationError as exc:
            lines = describe_validation_error(exc).splitlines()
            raise PolicyFileError("\n".join(f"{where}: {line}" for line in lines)) from exc
        try:
            check_policy(policy)
        except InputError as exc:
            raise PolicyFileError(f"{where}: {exc.field}: {exc.message}") from exc
        out.append(policy)
    return out


def supported_files(path: Path) -> list[Path]:
    """`path` itself, or the .yaml/.yml/.json files under a directory, sorted."""
    if not path.exists():
        raise PolicyFileError(f"{path}: no such file or directory")
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
    return [path]


def load_policies(path: Path) -> list[PolicyDefinition]:
    """Every PolicyDefinition in a file, or in the .yaml/.yml/.json files of a directory.

    Names must be unique across all files.
    """
    files = supported_files(path)
    policies: list[PolicyDefinition] = []
    seen: dict[str, Path] = {}
    for file in files:
        for policy in _from_file(file):
            if policy.policy_name in seen:
                raise PolicyFileError(
                    f"{file}: policy {policy.policy_name!r} is also defined in "
                    f"{seen[policy.policy_name]}"
                )
            seen[policy.policy_name] = file
            policies.append(policy)
    return policies
