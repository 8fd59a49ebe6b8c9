"""What every document of a run directory shares. Each document is a pydantic model; its JSON
is what the writer gave the model (keys never set are left out, so optional keys stay absent
rather than ``null``), in the model's field order. Unknown keys are kept, not refused: a newer
enduro may add keys without a new schema, and a reader must not lose them. Reading says in
one line what is wrong (``DocumentError``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from enduro.base.errors import RunError

__all__ = ["MAX_DOCUMENT_BYTES", "Document", "DocumentError", "NewerDocument", "always_written",
           "problem", "read_object"]

# A document larger than this is not one enduro wrote; it is not read.
MAX_DOCUMENT_BYTES = 256 << 20


class DocumentError(RunError):
    """A document of a run directory cannot be read: missing, not JSON, not the shape enduro
    writes, or written by a newer enduro. The message is one line."""


class NewerDocument(DocumentError):
    """A document of a newer schema than this enduro reads: not corrupt, just not for us
    (its keys may mean something else), so it is never replaced."""


def problem(exc: ValidationError) -> str:
    """The first problem of a validation error in one line: where, and what is wrong."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return str(exc).splitlines()[0]
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message = first["msg"].removeprefix("Value error, ")
    return f"{where + ': ' if where else ''}{message}{more}"


def always_written(*names: str) -> Callable[[dict[str, Any]], None]:
    """A ``json_schema_extra`` for a model whose readers tolerate missing keys (a half-written
    or hand-made ``state.json``) but whose writer always writes ``names``: the exported
    schema says so, for other tools."""
    def extra(schema: dict[str, Any]) -> None:
        schema["required"] = list(names)
    return extra


def read_object(path: Path, what: str | None = None) -> dict[str, Any]:
    """The JSON object in ``path``; ``DocumentError`` when it is missing, unreadable, not a
    regular file, too large, not JSON, nested too deep to parse, or not an object."""
    from enduro.plan.source import read_bounded  # the plan package is only needed here
    name = what or path.name
    try:
        data = json.loads(read_bounded(path, MAX_DOCUMENT_BYTES))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = "nested too deep" if isinstance(exc, RecursionError) else \
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DocumentError(f"{path}: no readable {name} ({reason})") from exc
    if not isinstance(data, dict):
        raise DocumentError(f"{path}: {name} is not a JSON object")
    return data


class Document(BaseModel):
    """A JSON document of a run directory."""

    # Attribute docstrings become the fields' descriptions in the exported JSON Schema.
    model_config = ConfigDict(extra="allow", populate_by_name=True,
                              use_attribute_docstrings=True)

    def to_json(self) -> dict[str, Any]:
        """The document as plain data, ready for ``json.dumps``: the keys that were set, in
        the model's order, then unknown keys as they came."""
        return self.model_dump(mode="python", by_alias=True, exclude_unset=True)

    @classmethod
    def from_json(cls, data: object, what: str | None = None) -> Self:
        """The document from parsed JSON; ``DocumentError`` (one line) when it is not one."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise DocumentError(f"{what or cls._name()}: {problem(exc)}") from exc
        except DocumentError as exc:  # raised by the model itself (NewerDocument)
            raise type(exc)(f"{what or cls._name()}: {exc}") from exc

    @classmethod
    def _name(cls) -> str:
        return cls.model_config.get("title") or cls.__name__

    @classmethod
    def read(cls, path: Path, what: str | None = None) -> Self:
        """The document in ``path``; ``DocumentError`` (one line, naming the file) when it
        cannot be read or is not one."""
        name = what or path.name
        data = read_object(path, name)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise DocumentError(f"{path}: not a {name} enduro can read: {problem(exc)}") \
                from exc
        except DocumentError as exc:  # raised by the model itself (NewerDocument)
            raise type(exc)(f"{path}: {exc}") from exc

    @classmethod
    def salvage(cls, data: Mapping[str, Any], attempts: int = 50) -> Self:
        """The document from what can be read of ``data``: each value that does not validate
        reads as null (written, but unreadable), or where null is not allowed either, as if
        it had never been written. For documents whose readers must show what they can of a
        corrupt file (``enduro status`` of a half-written state.json); such a model declares
        no required key. Raises ``DocumentError`` when nothing is left to make a document
        of."""
        work: Any = data
        for attempt in range(attempts):
            try:
                return cls.model_validate(work)
            except ValidationError as exc:
                if attempt == 0:
                    try:  # a copy the loop may cut, leaving the caller's data as it was
                        work = json.loads(json.dumps(data, default=str))
                    except (ValueError, RecursionError):
                        break
                cut = False
                # Deepest first, later list items first: a cut never moves another's place.
                locs = sorted((tuple(e["loc"]) for e in exc.errors()),
                              key=lambda loc: (len(loc), [str(p) for p in loc]), reverse=True)
                for loc in locs:
                    cut = _cut(work, loc) or cut
                if not cut:
                    break
        raise DocumentError(f"{cls.__name__}: nothing readable is left")

    def unknown_keys(self) -> list[str]:
        """Where this document holds keys its model does not declare (``ops.w.colour``):
        what a writer wrote that readers do not know of. Tests hold it empty."""
        return sorted(_unknown(self, ""))


def _cut(root: Any, loc: tuple[int | str, ...]) -> bool:
    """Set the value at ``loc`` to None, or remove it when it is None already (or, when the
    path ends in a union's member name or a key that is missing, the deepest value the path
    reaches); False when nothing was changed."""
    parents: list[tuple[Any, int | str]] = []
    node = root
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            parents.append((node, part))
            node = node[part]
        else:
            break
    if not parents:
        return False
    container, key = parents[-1]
    if container[key] is None:
        del container[key]
    else:
        container[key] = None
    return True


def _unknown(node: Any, where: str) -> Iterator[str]:
    if isinstance(node, BaseModel):
        for key in (node.model_extra or {}):
            yield f"{where}{key}"
        for name in type(node).model_fields:
            if name in node.model_fields_set:
                field = type(node).model_fields[name]
                yield from _unknown(getattr(node, name), f"{where}{field.alias or name}.")
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _unknown(value, f"{where}{key}.")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _unknown(value, f"{where}{i}.")
