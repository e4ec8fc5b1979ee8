"""Reading the YAML text: a safe loader with YAML 1.2 scalars, key lines, duplicate and
alias-bomb checks, and ``--set key=value`` overrides applied to the parsed mapping.

Every size is checked against a budget (config/budgets.py) before it is trusted: the bytes
read, the nesting depth and the number of values (while the tree is built, not after), the
digits of an integer, the length and depth of a --set key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from nncli.budgets import MAX_CONFIG_DEPTH, MAX_CONFIG_NODES, MAX_INT_DIGITS, config_bytes, human_bytes
from nncli.config.source import ConfigSource, dotted
from nncli.errors import ConfigError, quoted, reading

NAME_SHORTHANDS = {  # `init: he` means `init: {name: he}`
    ("model", "init"), ("training", "optimizer"), ("training", "schedule"),
}


def read_text(path: Path) -> str:
    """The config's text: at most the budget's bytes are read, whatever the file is (a FIFO or
    /dev/zero has no size to check beforehand)."""
    limit = config_bytes()
    with reading(path, ConfigError, "config file"):
        with open(path, "rb") as file:
            pieces, size = [], 0
            while size <= limit and (piece := file.read(min(1 << 20, limit + 1 - size))):
                pieces.append(piece)  # a piece at a time: a raised budget is not allocated up front
                size += len(piece)
            data = b"".join(pieces)
    other = _other_file_kind(path, data)
    if other:
        raise ConfigError(f"{path}: {other}")
    if len(data) > limit:
        raise ConfigError(f"{path}: config file is larger than {human_bytes(limit)} (NNCLI_MAX_CONFIG_BYTES raises the limit)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}); expected YAML") from None


# Files people give where a config belongs, known by their first bytes or their name.
_DATA_FILE = "not a YAML config; pass it in the config's data.train"
_STARTER = " (`nncli init {path} --target COLUMN` writes a starter config)"
_MODEL_FILE = ("looks like an .npz archive (an nncli model or checkpoint), not a YAML config; continue a run with "
               "`nncli train --resume CHECKPOINT`, or start from a model's weights with --init-from MODEL")


def _other_file_kind(path: Path, data: bytes) -> str | None:
    """What the file is, when its first bytes or its name say it is data or a model, not a config."""
    suffix = path.suffix.lower()
    if data.startswith(b"PAR1") or suffix == ".parquet":
        return "looks like a Parquet file, " + _DATA_FILE
    if data.startswith(b"PK\x03\x04") or suffix == ".npz":
        return _MODEL_FILE
    if suffix in (".csv", ".tsv"):
        return "looks like a CSV file, " + _DATA_FILE + _STARTER.format(path=path)
    return None


def _looks_like_csv(text: str) -> bool:
    """A header and rows with the same number of commas, and no `key:` in the header: what a
    CSV file looks like to someone who expected YAML (checked only when the YAML failed)."""
    lines = [line for line in text.splitlines()[:20] if line.strip()][:5]
    if not lines or ":" in lines[0] or lines[0].lstrip().startswith(("[", "{", "-", "#")):
        return False
    commas = [line.count(",") for line in lines]
    return commas[0] > 0 and all(count == commas[0] for count in commas)


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a config refuses (a budget broken, a tagged value that is not what its
    tag says): reported with its line and column, without "syntax error"."""


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python tags, nothing executed) with YAML 1.2's core schema.

    YAML 1.1, PyYAML's default, reads `1e-3` as a string, `010` as 8, `1:30` as 90 and
    `on`/`no` as booleans: traps for `learning_rate: 1e-3`, `epochs: 010` or `target: no`.
    Only the 1.2 spellings are plain scalars here: null ~, true/false, decimal, 0o and 0x
    integers, and floats with a dot or an exponent (plus .inf/.nan, which validation rejects).

    PyYAML builds the node tree recursively and all at once, so depth and size are counted
    while it is built: 5,000 nested `[` or half a million one-character items are refused
    before they overflow the stack or fill memory.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        self._nodes += 1
        if self._nodes > MAX_CONFIG_NODES:
            problem = f"config holds more than {MAX_CONFIG_NODES:,} values; refusing to load it"
            raise _Refused(None, None, problem, event.start_mark)
        if self._depth >= MAX_CONFIG_DEPTH:
            problem = f"nested more than {MAX_CONFIG_DEPTH} levels deep (a config needs 4); refusing to load it"
            raise _Refused(None, None, problem, event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# The YAML 1.2 core schema: the only scalars a config has, as plain text or with an explicit
# tag (`!!int 5`). A tagged value must be spelt as the plain one would be: `!!int 1:30`,
# `!!float abc` or `!!bool maybe` are refused, not handed to Python's int()/float().
_CORE = {
    "null": r"~|null|Null|NULL|",
    "bool": r"true|True|TRUE|false|False|FALSE",
    "int": r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+",
    "float": r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
}
_FIRST = {"null": ["~", "n", "N", ""], "bool": list("tTfF"), "int": list("-+0123456789"), "float": list("-+0123456789.")}
_PATTERNS = {kind: re.compile(f"(?:{pattern})") for kind, pattern in _CORE.items()}

_ConfigLoader.yaml_implicit_resolvers = {}
for _kind, _pattern in _CORE.items():
    _ConfigLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_kind}", re.compile(f"^(?:{_pattern})$"), _FIRST[_kind])

# Only the core schema's types: PyYAML's YAML 1.1 extras (!!binary, !!timestamp, !!set, !!omap,
# !!pairs) are "could not determine a constructor", as Python tags are.
_ConfigLoader.yaml_constructors = {
    tag: constructor for tag, constructor in yaml.SafeLoader.yaml_constructors.items()
    if tag is None or tag.rsplit(":", 1)[-1] in ("str", "seq", "map")
}


def _scalar(loader: _ConfigLoader, node: yaml.ScalarNode, kind: str, also: str | None = None) -> str:
    text = loader.construct_scalar(node)
    if not (_PATTERNS[kind].fullmatch(text) or (also and _PATTERNS[also].fullmatch(text))):
        shown = text if len(text) <= 40 else text[:30] + "…"
        raise _Refused(None, None, f"{shown!r} is not a valid {kind} (tagged !!{kind})", node.start_mark)
    return text


def _int_digits(text: str) -> int:
    """Significant digits of a YAML 1.2 integer literal (sign, 0x/0o prefix and leading zeros
    not counted): checked before conversion, which a long literal would make fail or crawl."""
    digits = text.lstrip("+-")
    if digits.startswith(("0o", "0x")):
        digits = digits[2:]
    return len(digits.lstrip("0"))


def _too_many_digits(text: str) -> str:
    return f"an integer of {_int_digits(text):,} digits is far out of range (a config's integers have at most {MAX_INT_DIGITS})"


def _construct_int(loader: _ConfigLoader, node: yaml.ScalarNode) -> int:
    text = _scalar(loader, node, "int")
    if _int_digits(text) > MAX_INT_DIGITS:
        raise _Refused(None, None, _too_many_digits(text), node.start_mark)
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits.startswith(("0o", "0x")):
        return sign * int(digits[2:], 8 if digits[1] == "o" else 16)
    return sign * int(digits, 10)  # `010` is ten, as in YAML 1.2


def _construct_float(loader: _ConfigLoader, node: yaml.ScalarNode) -> float:
    text = _scalar(loader, node, "float", also="int")  # `!!float 5` is 5.0
    special = text.lower().lstrip("+-")
    if special in (".inf", ".nan"):
        return float(text.lower().replace(".", ""))  # validation refuses both, with the key
    if text.startswith(("0x", "0o")):  # read (digits counted) as the integer it spells
        return float(_construct_int(loader, node))
    return float(text)


def _construct_bool(loader: _ConfigLoader, node: yaml.ScalarNode) -> bool:
    return _scalar(loader, node, "bool").lower() == "true"


def _construct_null(loader: _ConfigLoader, node: yaml.ScalarNode) -> None:
    _scalar(loader, node, "null")


_SCALAR_CONSTRUCTORS = {"int": _construct_int, "float": _construct_float, "bool": _construct_bool, "null": _construct_null}
for _kind, _constructor in _SCALAR_CONSTRUCTORS.items():
    _ConfigLoader.add_constructor(f"tag:yaml.org,2002:{_kind}", _constructor)


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


def _problem(exc: yaml.YAMLError, context: bool = True) -> str:
    """PyYAML's description of a problem, with what it quotes from the text (a tag, say)
    shortened."""
    if isinstance(exc, yaml.MarkedYAMLError):
        text = " ".join(str(p) for p in (exc.context if context else None, exc.problem) if p)
    else:
        text = str(exc)
    return text if len(text) <= 200 else f"{text[:150]}… ({len(text):,} characters)"


def parse_yaml(text: str, source: ConfigSource) -> dict:
    try:
        data = _yaml_value(text, source)
    except yaml.MarkedYAMLError as exc:
        _refuse_csv(text, source)
        mark = exc.problem_mark or exc.context_mark
        where = f"{source.path}:{mark.line + 1}:{mark.column + 1}" if mark else str(source.path)
        if mark is not None and not isinstance(exc, _Refused):
            indentation = _indentation_problem(exc.problem or "", text.splitlines(), mark.line)
            if indentation:
                raise ConfigError(f"{source.path}:{mark.line + 1}: {indentation}") from None
        kind = "" if isinstance(exc, _Refused) else "YAML syntax error: "
        raise ConfigError(f"{where}: {kind}{_problem(exc)}") from None
    except yaml.reader.ReaderError as exc:
        raise ConfigError(
            f"{source.path}: not YAML text: character {exc.character!r} at position {exc.position} is not allowed"
        ) from None
    except yaml.YAMLError as exc:
        _refuse_csv(text, source)
        raise ConfigError(f"{source.path}: YAML error: {_problem(exc)}") from None
    if data is None:
        raise ConfigError(f"{source.path}: config is empty; expected a mapping with at least data.train")
    if not isinstance(data, dict):
        _refuse_csv(text, source)
        raise ConfigError(
            f"{source.path}:1: expected a mapping of settings (seed, data, model, training, "
            f"output) at the top level, got a {type(data).__name__}"
        )
    return data


def _refuse_csv(text: str, source: ConfigSource) -> None:
    if _looks_like_csv(text):
        raise ConfigError(f"{source.path}: looks like a CSV file, " + _DATA_FILE + _STARTER.format(path=source.path))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _spaces(count: int) -> str:
    return f"{count} space{'s' * (count != 1)}"


def _indentation_problem(problem: str, lines: list[str], number: int) -> str | None:
    """PyYAML's report of a misplaced line (``number``, 0-based), as a sentence about its
    indentation; None when the problem is not one of indentation."""
    if number >= len(lines):
        return None
    line = lines[number]
    if "'\\t'" in problem or line[: _indent(line) + 1].endswith("\t"):
        return "bad indentation: this line is indented with a tab; YAML indents with spaces only"
    above = [i for i in range(number - 1, -1, -1) if lines[i].strip() and not lines[i].lstrip().startswith("#")]
    if not above:
        return None
    previous, indent = above[0], _indent(line)
    before = _indent(lines[previous])
    if problem == "mapping values are not allowed here":
        # `key: value` and then a key indented deeper: YAML reads the second line as the rest
        # of the first one's value, and then finds a second `:` in it.
        if indent > before and not lines[previous].split("#")[0].rstrip().endswith(":"):
            return (f"bad indentation: this line is indented by {_spaces(indent)}, more than line {previous + 1} "
                    f"({_spaces(before)}), which already has a value; indent the keys of one section alike")
        return None
    if problem.startswith(("expected <block end>", "expected '<document start>'")):
        if indent == before and lines[previous].lstrip().startswith("- "):
            return (f"bad indentation: this line is indented like the list item on line {previous + 1} but does not "
                    "start with '- '; make it an item, or indent it under the item")
        return (f"bad indentation: this line is indented by {_spaces(indent)}, which lines up with no section above it "
                f"(line {previous + 1} has {_spaces(before)}); the keys of one section must start in the same column")
    return None


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
        if isinstance(node, yaml.ScalarNode):  # refused here with its key; the constructor would too
            if node.tag == "tag:yaml.org,2002:int" and _int_digits(node.value) > MAX_INT_DIGITS:
                raise ConfigError(f"{source.path}:{node.start_mark.line + 1}: {dotted(key_path)}: {_too_many_digits(node.value)}")
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    raise ConfigError(f"{source.path}:{line}: {dotted(key_path)}: a key must be a name, not a list or mapping")
                key = key_node.value
                if key in first_line:
                    raise ConfigError(
                        f"{source.path}:{line}: {dotted(key_path + (key,))}: "
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


MAX_KEY_PARTS = MAX_CONFIG_DEPTH  # `a.b.c…`: no deeper than a config file may nest
_INDEX = re.compile(r"[0-9]{1,9}")  # a list index in a --set key (layers.1); ASCII digits only


def _key_part(part: str) -> str | int:
    return int(part) if _INDEX.fullmatch(part) else part


def apply_override(raw: dict, override: str | tuple[str, str], source: ConfigSource) -> None:
    """Apply ``key=value`` to the parsed config; a (key=value, flag) pair names the command-line
    option it came from in error messages (`--init-from X` rather than `--set …`)."""
    override, flag = override if isinstance(override, tuple) else (override, f"--set {override}")
    flag = _short_flag(flag)
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{flag}: expected KEY=VALUE, e.g. --set training.epochs=5")
    limit = config_bytes()
    if len(override) > limit:  # characters: cheaper than encoding 10 MB, and never more than bytes
        raise ConfigError(
            f"{flag}: longer than a whole config may be ({human_bytes(limit)}; NNCLI_MAX_CONFIG_BYTES raises the limit)"
        )
    parts = key.strip().split(".", MAX_KEY_PARTS)
    if len(parts) > MAX_KEY_PARTS:
        raise ConfigError(f"{flag}: the key is nested more than {MAX_KEY_PARTS} levels deep; a config needs 4")
    try:
        value = _yaml_value(text) if text.strip() else None
    except _Refused as exc:
        raise ConfigError(f"{flag}: {dotted(parts)}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{flag}: value is not valid YAML: {_problem(exc, context=False)}") from None
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        nxt = node.get(part) if isinstance(node, dict) else _item(node, part)
        if nxt is None:
            if not isinstance(node, dict):
                raise ConfigError(
                    f"{flag}: {dotted(parts[:depth])} has {len(node)} entries; {quoted(part)} is not an index of it"
                )
            nxt = node[part] = {}
        elif isinstance(nxt, str) and tuple(parts[: depth + 1]) in NAME_SHORTHANDS:
            nxt = node[part] = {"name": nxt}  # `init: constant` + --set model.init.value=3
        if not isinstance(nxt, (dict, list)):
            raise ConfigError(f"{flag}: {dotted(parts[:depth + 1])} is a single value, not a section")
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        index = _key_part(last)
        if not isinstance(index, int) or index >= len(node):
            raise ConfigError(f"{flag}: {dotted(parts[:-1])} has {len(node)} entries; {quoted(last)} is not an index of it")
        node[index] = value
    else:
        node[last] = value
    source.overrides[tuple(_key_part(p) for p in parts)] = flag


def _item(items: list, part: str) -> Any:
    """``items[part]`` for a --set key part naming a list entry (`model.layers.1`), else None."""
    index = _key_part(part)
    return items[index] if isinstance(index, int) and index < len(items) else None


def _short_flag(flag: str) -> str:
    """`--set key=value` as error messages quote it: cut after 100 characters, with its length
    (control characters are escaped for every message: errors.one_line)."""
    if len(flag) <= 120:
        return flag
    return f"{flag[:100]}… ({len(flag):,} characters)"
