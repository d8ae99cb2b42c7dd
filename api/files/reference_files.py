"""Reading universes and risk models from YAML/JSON files or directories of them."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from api.field_messages import describe_validation_error
from api.files.policy_files import PolicyFileError, read_documents, supported_files
from models import FxSnapshot, RiskModelDefinition, Universe

__all__ = ["ReferenceFileError", "load_reference_data"]

D = TypeVar("D", Universe, RiskModelDefinition, FxSnapshot)


class ReferenceFileError(Exception):
    """A file cannot be read or does not hold valid definitions."""


def load_reference_data(path: Path, model: type[D]) -> list[D]:
    """Every definition in a file (one, or a list) or in a directory's .yaml/.yml/.json files.

    Ids must be unique across all files. Raises `ReferenceFileError` naming the file and
    the field.
    """
    try:
        files = supported_files(path)
    except PolicyFileError as exc:
        raise ReferenceFileError(str(exc)) from exc
    out: list[D] = []
    seen: dict[str, Path] = {}
    for file in files:
        try:
            data = read_documents(file)
        except PolicyFileError as exc:
            raise ReferenceFileError(str(exc)) from exc
        items = data if isinstance(data, list) else [data]
        for k, item in enumerate(items):
            where = f"{file}[{k}]" if isinstance(data, list) else str(file)
            try:
                definition = model.model_validate(item)
            except ValidationError as exc:
                lines = describe_validation_error(exc).splitlines()
                raise ReferenceFileError("\n".join(f"{where}: {line}" for line in lines)) from exc
            if definition.id in seen:
                raise ReferenceFileError(
                    f"{where}: id {definition.id!r} is also defined in {seen[definition.id]}"
                )
            seen[definition.id] = file
            out.append(definition)
    return out
