"""Pydantic's validation errors turned into one line a user can act on."""

from __future__ import annotations

import difflib
import reprlib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from nncli.config.schema import Config
from nncli.config.source import ConfigSource, dotted
from nncli.errors import ConfigError, quoted


def validation_error(exc: ValidationError, raw: dict, source: ConfigSource) -> ConfigError:
    # include_input=False: echoing the input of a huge or alias-expanded value can take minutes.
    errors = exc.errors(include_input=False, include_url=False)
    # A misspelt key usually explains the "missing" error next to it, so it goes first.
    first = min(errors, key=lambda e: e["type"] != "extra_forbidden")
    key_path = _display_path(first["loc"])
    path = dotted(key_path)
    if first["type"] == "extra_forbidden":
        message = "unknown key" + _suggestion(first["loc"])
    elif first["type"] == "missing":
        message = "required setting is missing"
    elif first["type"] in ("model_type", "model_attributes_type", "dict_type"):
        found, value = _lookup(raw, key_path)
        got = "nothing" if value is None else f"{_kind(value)} ({_short_repr(value)})"
        message = f"expected a section (a mapping of keys), got {got}"
    elif first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        tags = _tags_at(first["loc"])
        found, value = _lookup(raw, key_path)
        given = value.get("name") if isinstance(value, dict) else value
        if isinstance(value, dict) and "name" not in value:
            got = " (the mapping has no `name:`)"
        else:
            got = f" (got {_short_repr(given)})" if found else ""
        close = difflib.get_close_matches(str(given), tags, n=1) if isinstance(given, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        message = f"expected one of: {', '.join(tags)}, or a mapping with `name:` one of them{got}{hint}"
    else:
        message = first["msg"].replace(" after validation", "")
        message = message[0].lower() + message[1:]
        found, value = _lookup(raw, key_path)
        if found and not isinstance(value, (dict, list)):
            message += f" (got {_short_repr(value)})"
    more = len({tuple(_display_path(e["loc"])) for e in errors}) - 1
    if more > 0:
        message += f" [and {more} more problem{'s' if more > 1 else ''}]"
    return ConfigError(f"{source.where(tuple(key_path))}: {path}: {message}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {int: "a number", float: "a number", str: "a string", list: "a list"}.get(type(value), type(value).__name__)


def _short_repr(value: Any) -> str:
    """A value as a message quotes it: YAML's spelling of null and booleans, strings quoted
    and escaped, anything long cut to about 40 characters (before it is turned into text:
    a 10 MB string or a list of 100,000 numbers is never formatted whole)."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()  # as YAML spells them
    if isinstance(value, str):
        return quoted(value, 40)
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length():,} bits"  # str() of a huge int is slow, or refused
    if isinstance(value, (list, dict)):
        return f"a {type(value).__name__} of {len(value):,} entries" if len(value) > 10 else _cut(_REPR.repr(value))
    return _cut(repr(value))


_REPR = reprlib.Repr()  # a list's or mapping's first levels only: a stored config may nest deep
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 40, 40, 40


def _cut(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _lookup(raw: Any, key_path: list) -> tuple[bool, Any]:
    node = raw
    for part in key_path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False, None
    return True, node


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The BaseModel classes an annotation can hold (through Annotated, Union, list, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in models_in(arg)]


def _walk_models(loc: tuple) -> tuple[list, type[BaseModel] | None]:
    """Split Pydantic's error location into the user's key path and the model it ends in.

    Pydantic inserts union member tags (``'constant'``, ``'str'``, ``'list[str]'``) into
    locations; a user never wrote those, so they are dropped from the path.
    """
    path: list = []
    model: type[BaseModel] | None = Config
    pending_union: list[type[BaseModel]] = []
    for part in loc:
        if isinstance(part, int):
            path.append(part)
            continue
        if pending_union:
            tagged = [m for m in pending_union if typing.get_args(m.model_fields["name"].annotation) == (part,)]
            pending_union = []
            if tagged:
                model = tagged[0]
                continue
        if model is not None and part in model.model_fields:
            path.append(part)
            info = model.model_fields[part]
            members = models_in(info.annotation)
            if _is_tagged_union(info):
                model, pending_union = None, members
            elif len(members) == 1:
                model = members[0]
            elif members:
                model, pending_union = None, members
            else:
                model = None
        elif model is None and not pending_union:
            continue  # a scalar union tag such as 'str' or 'list[str]'
        else:
            path.append(part)  # an unknown key: keep it so the message can name it
    return path, model


def _tags_at(loc: tuple) -> list[str]:
    """The names a tagged union (model.init, training.optimizer) accepts at ``loc``."""
    _, parent = _walk_models(tuple(loc[:-1]))
    if parent is None or loc[-1] not in parent.model_fields:
        return []
    return [typing.get_args(m.model_fields["name"].annotation)[0] for m in models_in(parent.model_fields[loc[-1]].annotation)]


def _is_tagged_union(info) -> bool:
    return any(getattr(m, "discriminator", None) for m in [info, *info.metadata])


def _display_path(loc: tuple) -> list:
    return _walk_models(loc)[0]


def _suggestion(loc: tuple) -> str:
    """A known key the unknown one was probably meant to be: the same name in another section
    (`epochs` at the top level: training.epochs), a close spelling in its own section, or a
    close spelling elsewhere; else the section's keys."""
    here, parent = _walk_models(loc[:-1])
    if parent is None or not loc:
        return ""
    key, paths = str(loc[-1]), [path for path in _key_paths() if path[:-1] != tuple(here)]
    elsewhere = [path for path in paths if path[-1] == key]
    if elsewhere:
        return f"; did you mean {_either(elsewhere)}?"
    valid = list(parent.model_fields)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    close = difflib.get_close_matches(key, sorted({path[-1] for path in paths}), n=1, cutoff=0.8)
    if close:
        return f"; did you mean {_either([path for path in paths if path[-1] == close[0]])}?"
    return f"; expected one of: {', '.join(valid)}"


def _key_paths(model: type[BaseModel] = Config, prefix: tuple = ()) -> list[tuple]:
    """Every key a config can hold, as paths (('training', 'epochs'), ...)."""
    paths = []
    for name, info in model.model_fields.items():
        paths.append(prefix + (name,))
        for member in models_in(info.annotation):
            paths.extend(_key_paths(member, prefix + (name,)))
    return list(dict.fromkeys(paths))  # a key of several union members once


def _either(paths: list[tuple]) -> str:
    names = [dotted(path) + (" (at the top level)" if len(path) == 1 else "") for path in paths[:3]]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
