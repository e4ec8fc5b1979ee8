"""The `schema` service: the config's JSON Schema, for editors to complete and check YAML configs."""

from __future__ import annotations

from nncli.config import json_schema


def schema() -> dict:
    return json_schema()
