"""The configuration contract: every key described and defaulted, defaults in one place."""

import dataclasses

import pytest
import yaml
from jsonschema import Draft202012Validator

from cryopick.denoise import DenoiseSettings
from cryopick.instances import MaskPickSettings
from cryopick.picking import BlobSettings, FinalSettings
from tests.conftest import REPO

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())


def _properties(node, path=""):
    for key, value in node.get("properties", {}).items():
        yield f"{path}{key}", value
        yield from _properties(value, f"{path}{key}.")


def test_every_key_has_a_description_and_a_default():
    dataset = SCHEMA["definitions"]["dataset"]
    for path, prop in list(_properties(SCHEMA)) + list(_properties(dataset, "datasets.*.")):
        assert isinstance(prop.get("description"), str) and len(prop["description"]) > 10, path
        required = path.split(".")[-1] in dataset.get("required", []) and "datasets" in path
        assert required or "default" in prop, f"{path} has no default"


def test_schema_is_valid_and_default_config_passes():
    Draft202012Validator.check_schema(SCHEMA)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    errors = list(Draft202012Validator(SCHEMA).iter_errors(config))
    assert not errors, errors


@pytest.mark.parametrize(
    "section, settings",
    [
        ("denoise", DenoiseSettings),
        ("baseline", BlobSettings),
        ("picks", FinalSettings),
        ("crf_picks", MaskPickSettings),
    ],
)
def test_schema_defaults_match_the_package(section, settings):
    props = SCHEMA["properties"][section]["properties"]
    for field in dataclasses.fields(settings):
        assert field.name in props, f"{section}.{field.name} missing from the schema"
        assert props[field.name]["default"] == field.default, f"{section}.{field.name}"
