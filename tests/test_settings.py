"""One rule for every stage's from_config: unknown keys are refused, naming the key and the
allowed keys; what the workflow's rules pass (the schema's defaults, less what the rules
filter out) is accepted."""

from __future__ import annotations

import pytest
import yaml

from cryopick.crf import CrfSettings
from cryopick.denoise import DenoiseSettings
from cryopick.instances import MaskPickSettings
from cryopick.io import InputError
from cryopick.picking import BlobSettings, FinalSettings
from cryopick.postprocess import PostprocessSettings
from cryopick.sam import SamSettings
from cryopick.settings import config_values
from cryopick.synthetic import SyntheticSettings
from cryopick.training import TrainingConfig
from tests.conftest import REPO

# settings class, its config section (the schema's path) and the keys its rule leaves out
# (rules/common.smk: crf_settings, final_picks_settings, unet_train_settings)
SECTIONS = [
    (DenoiseSettings, ("denoise",), "denoise", ()),
    (BlobSettings, ("baseline",), "baseline", ()),
    (FinalSettings, ("picks",), "picks", ("formats",)),
    (CrfSettings, ("crf",), "crf", ("enabled",)),
    (MaskPickSettings, ("crf_picks",), "crf_picks", ()),
    (SamSettings, ("sam",), "sam", ()),
    (PostprocessSettings, ("postprocess",), "postprocess", ()),
    (TrainingConfig, ("unet", "train"), "unet training", ("name", "datasets", "use_masks")),
]


def schema_defaults(path: tuple[str, ...]) -> dict:
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    node = schema
    for key in path:
        node = node["properties"][key]
    return {k: v["default"] for k, v in node["properties"].items() if "default" in v}


@pytest.mark.parametrize("cls,path,section,filtered", SECTIONS, ids=[s[2] for s in SECTIONS])
def test_every_from_config_refuses_unknown_keys(cls, path, section, filtered):
    with pytest.raises(InputError) as refused:
        cls.from_config({"no_such_setting": 1})
    message = str(refused.value)
    assert f"unknown {section} setting" in message and "'no_such_setting'" in message
    some_field = sorted(cls.__dataclass_fields__)[0]
    assert "allowed keys: [" in message and f"'{some_field}'" in message


@pytest.mark.parametrize("cls,path,section,filtered", SECTIONS, ids=[s[2] for s in SECTIONS])
def test_what_the_rules_pass_is_accepted(cls, path, section, filtered):
    """The section's schema defaults, less the keys its rule filters out, are accepted: no key
    the workflow passes is refused."""
    config = {k: v for k, v in schema_defaults(path).items() if k not in filtered}
    assert set(config) - set(cls.__dataclass_fields__) <= {"source"}
    assert isinstance(cls.from_config(config), cls)


def test_keys_that_are_not_settings_pass_only_where_listed():
    # the picks rule passes picks.source along with the clean-up settings
    assert FinalSettings.from_config({"source": "unet", "min_distance": 0.3}) == FinalSettings(
        min_distance=0.3
    )
    # a synthetic set's size and seed sit next to its physics
    assert SyntheticSettings.from_config(
        {"n_micrographs": 3, "seed": 1, "height": 512}
    ) == SyntheticSettings(height=512)
    with pytest.raises(InputError, match=r"unknown baseline setting.*'source'"):
        BlobSettings.from_config({"source": "unet"})


def test_config_values_keeps_field_values_only():
    assert config_values(
        FinalSettings, {"source": "sam", "edge_margin": 1.0}, "picks", accepted=("source",)
    ) == {"edge_margin": 1.0}
    with pytest.raises(InputError, match=r"unknown picks setting\(s\): unknown keys \['a', 'b'\]"):
        config_values(FinalSettings, {"b": 1, "a": 2, "edge_margin": 1.0}, "picks")


def test_a_config_typo_is_one_line_naming_the_key_and_the_nearest_setting() -> None:
    """Snakemake's validator printed ~110 lines of schema for one misspelt key."""
    from cryopick.settings import config_problems, load_schema
    from tests.conftest import REPO

    schema = load_schema(str(REPO / "config" / "schema.yaml"))
    problems = config_problems({"unet": {"batch_sise": 2}, "picks": {"source": "magic"}}, schema)
    assert problems == [
        "config key picks.source: 'magic' is not one of ['baseline', 'unet', 'crf', 'sam']",
        "config key unet.batch_sise: not a setting (did you mean 'batch_size'?)",
    ]
    assert config_problems({"unet": {"batch_size": 2}}, schema) == []
