"""Reading the YAML text: a safe loader with YAML 1.2 scalars, key lines, duplicate and
alias-bomb checks, and ``--set key=value`` overrides applied to the parsed mapping."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from nncli.config.source import ConfigSource
from nncli.errors import ConfigError, reading

MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_NODES = 100_000  # after expanding YAML aliases: stops "billion laughs" files
NAME_SHORTHANDS = {  # `init: he` means `init: {name: he}`
    ("model", "init"), ("training", "optimizer"), ("training", "schedule"),
}


def read_text(path: Path) -> str:
    with reading(path, ConfigError, "config file"):
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: config file is larger than {MAX_CONFIG_BYTES >> 20} MiB")
        data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}); expected YAML") from None


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python tags, nothing executed) with YAML 1.2's core schema.

    YAML 1.1, PyYAML's default, reads `1e-3` as a string, `010` as 8, `1:30` as 90 and
    `on`/`no` as booleans: traps for `learning_rate: 1e-3`, `epochs: 010` or `target: no`.
    Only the 1.2 spellings are plain scalars here: null ~, true/false, decimal, 0o and 0x
    integers, and floats with a dot or an exponent (plus .inf/.nan, which validation rejects).
    """


_ConfigLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("bool", r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", list("-+0123456789")),
    (
        "float",
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        list("-+0123456789."),
    ),
):
    _ConfigLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), _first)


def _construct_int(loader: _ConfigLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits.startswith(("0o", "0x")):
        return sign * int(digits[2:], 8 if digits[1] == "o" else 16)
    return sign * int(digits, 10)  # `010` is ten, as in YAML 1.2


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _yaml_value(text: str, source: ConfigSource | None = None) -> Any:
    """One YAML document, parsed safely; with ``source``, key lines are recorded and checked."""
    loader = _ConfigLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if source is not None:
            _check_nodes(root, source)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def parse_yaml(text: str, source: ConfigSource) -> dict:
    try:
        data = _yaml_value(text, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source.path}:{mark.line + 1}:{mark.column + 1}" if mark else str(source.path)
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as exc:
        raise ConfigError(
            f"{source.path}: not YAML text: character {exc.character!r} at position {exc.position} is not allowed"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source.path}: YAML error: {exc}") from None
    if data is None:
        raise ConfigError(f"{source.path}: config is empty; expected a mapping with at least data.train")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source.path}:1: expected a mapping of settings (seed, data, model, training, "
            f"output) at the top level, got a {type(data).__name__}"
        )
    return data


def _check_nodes(root: yaml.Node, source: ConfigSource) -> None:
    """Record each key's line, refuse duplicate keys and refuse alias bombs.

    Aliases make the YAML tree a graph; sizes are memoised per node so the check itself
    stays linear in the text however deep the aliases nest.
    """
    expanded_size: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) not in expanded_size:
            expanded_size[id(node)] = 0  # guards against (impossible in safe YAML) cycles
            if isinstance(node, yaml.MappingNode):
                total = 1 + sum(size(k) + size(v) for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                total = 1 + sum(size(item) for item in node.value)
            else:
                total = 1
            expanded_size[id(node)] = min(total, MAX_CONFIG_NODES + 1)
        return expanded_size[id(node)]

    if size(root) > MAX_CONFIG_NODES:
        raise ConfigError(
            f"{source.path}: config expands to more than {MAX_CONFIG_NODES:,} values "
            "(nested YAML aliases?); refusing to load it"
        )

    seen: set[int] = set()

    def walk(node: yaml.Node, key_path: tuple) -> None:
        if id(node) in seen:  # an alias: already checked where it was defined
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in first_line:
                    raise ConfigError(
                        f"{source.path}:{line}: {'.'.join(map(str, key_path + (key,)))}: "
                        f"duplicate key (first set on line {first_line[key]})"
                    )
                first_line[key] = line
                source.lines[key_path + (key,)] = line
                walk(value_node, key_path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                source.lines[key_path + (index,)] = item.start_mark.line + 1
                walk(item, key_path + (index,))

    walk(root, ())


def apply_override(raw: dict, override: str | tuple[str, str], source: ConfigSource) -> None:
    """Apply ``key=value`` to the parsed config; a (key=value, flag) pair names the command-line
    option it came from in error messages (`--init-from X` rather than `--set …`)."""
    override, flag = override if isinstance(override, tuple) else (override, f"--set {override}")
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{flag}: expected KEY=VALUE, e.g. --set training.epochs=5")
    parts = key.strip().split(".")
    try:
        value = _yaml_value(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{flag}: value is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        nxt = node.get(part) if isinstance(node, dict) else None
        if nxt is None:
            nxt = node[part] = {}
        elif isinstance(nxt, str) and tuple(parts[: depth + 1]) in NAME_SHORTHANDS:
            nxt = node[part] = {"name": nxt}  # `init: constant` + --set model.init.value=3
        if not isinstance(nxt, (dict, list)):
            raise ConfigError(f"{flag}: {'.'.join(parts[:depth + 1])} is a single value, not a section")
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"{flag}: {'.'.join(parts[:-1])} has {len(node)} entries; {last!r} is not an index of it")
        node[int(last)] = value
    else:
        node[last] = value
    source.overrides[tuple(int(p) if p.isdigit() else p for p in parts)] = flag
