"""Where each setting of a config was written: a line of the YAML file or a --set flag."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

MAX_KEY_CHARS = 40  # a key quoted in an error message: longer ones (never a real key) are cut


def dotted(key_path: Iterable) -> str:
    """A key path as messages write it (`training.optimizer.beta1`, `model.layers.2`), with any
    implausibly long key cut in the middle (a 1 MB key must not become a 1 MB message)."""
    parts = []
    for part in key_path:
        text = str(part)
        if len(text) > MAX_KEY_CHARS:
            text = f"{text[:MAX_KEY_CHARS - 12]}…{text[-6:]} ({len(text):,} characters)"
        parts.append(text)
    return ".".join(parts) or "(top level)"


@dataclass
class ConfigSource:
    """Where each setting was written: a line of the file or a --set override."""

    path: Path
    lines: dict[tuple, int] = field(default_factory=dict)  # key path -> 1-based line
    overrides: dict[tuple, str] = field(default_factory=dict)  # key path -> "--set a.b=v"

    @property
    def folder(self) -> Path:
        return self.path.parent

    def where(self, key_path: tuple) -> str:
        for n in range(len(key_path), 0, -1):
            if key_path[:n] in self.overrides:
                return self.overrides[key_path[:n]]
        for overridden, flag in self.overrides.items():
            if key_path and overridden[: len(key_path)] == key_path:
                return flag
        for n in range(len(key_path), 0, -1):
            if key_path[:n] in self.lines:
                return f"{self.path}:{self.lines[key_path[:n]]}"
        return str(self.path)

    def from_command_line(self, key: str) -> bool:
        """Was this key (or a section containing it) given with --set?"""
        parts = tuple(key.split("."))
        return any(parts[:n] in self.overrides for n in range(1, len(parts) + 1))
