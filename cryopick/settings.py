"""Settings from the config: one rule for the ``from_config`` of every stage's settings.

A key that is not a setting is refused, naming it and the allowed keys, so that a misspelt
setting cannot pass silently and leave a default in its place. Keys the workflow passes along
that are not settings (a data set's size and seed, the stage that picks.source names) are
accepted only where they are listed explicitly.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Iterable, Mapping

from cryopick.io import InputError


def check_choice(value: Any, choices: Iterable[Any], key: str) -> None:
    """Refuse a setting outside its allowed values, naming the key and the choices."""
    choices = tuple(choices)
    if value not in choices:
        raise InputError(f"{key} {value!r} is not one of {', '.join(map(str, choices))}")


def config_values(
    cls: type, config: Mapping[str, Any], section: str, accepted: Iterable[str] = ()
) -> dict[str, Any]:
    """The values in ``config`` of the dataclass ``cls``'s fields, for ``cls(**values)``.

    ``section`` names the settings in the message (e.g. ``crf``); ``accepted`` lists keys that
    may be present but are not settings (they are dropped)."""
    names = [f.name for f in fields(cls)]
    allowed = set(names) | set(accepted)
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise InputError(
            f"unknown {section} setting(s): unknown keys {unknown}; allowed keys: {sorted(allowed)}"
        )
    return {name: config[name] for name in names if name in config}


def load_schema(path: str) -> dict:
    """The workflow's config schema (YAML)."""
    import yaml

    # libyaml's loader where PyYAML was built with it: the schema is read at every DAG build
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path) as handle:
        return yaml.load(handle, Loader=loader)


def config_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every way ``config`` breaks the JSON ``schema``, one line each naming the key (a
    misspelt key with the nearest valid one), instead of the validator's page of schema."""
    import difflib

    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    lines = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        where = ".".join(map(str, error.absolute_path)) or "(top level)"
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = sorted(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - set(known)):
                near = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(known)})"
                prefix = f"{where}." if error.absolute_path else ""
                lines.append(f"config key {prefix}{key}: not a setting{hint}")
            continue
        lines.append(f"config key {where}: {error.message}")
    return lines
