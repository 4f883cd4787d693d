"""The picking stages, in one table: each stage's name (its row in summary.tsv), where its picks
go, whether it runs per batch of micrographs or per micrograph, the rule file that makes them,
the ``picks.source`` value that chooses it for the final picks and what it needs to run.

A new picking source is one :class:`Stage` entry here, its rule file (included through
:func:`rule_files`), its script and its ``picks.source`` value in config/schema.yaml (README:
"Adding a picking source"). The functions below take the validated config and never Snakemake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from cryopick.io import InputError
from cryopick.workflow import paths


@dataclass(frozen=True)
class Requirement:
    """Something a stage cannot run without: ``met(config)``, and what ``picks.source`` is told
    is missing (after "needs ")."""

    met: Callable[[dict], bool]
    missing: Callable[[dict], str]


def _sam_available(config: dict) -> bool:
    from cryopick.sam import checkpoint_available

    return checkpoint_available(config["sam"]["checkpoint"])


def _sam_missing(config: dict) -> str:
    from cryopick.sam import unavailable_message

    return "SAM weights: " + unavailable_message(config["sam"]["checkpoint"])


def _peer_requirement(peer: str) -> Requirement:
    """A peer picker's program must be installed (cryopick.peers.peer_unavailable)."""

    def reason(config: dict) -> str | None:
        from cryopick.peers import peer_unavailable

        return peer_unavailable(peer, config["report"]["topaz_command"])

    return Requirement(lambda config: reason(config) is None, reason)


REQUIREMENTS: dict[str, Requirement] = {
    "unet": Requirement(
        lambda config: bool(config["unet"]["enabled"]),
        lambda config: "unet.enabled: true (or use baseline)",
    ),
    # the SAM stage runs only when sam.checkpoint names a file (weights cannot be shipped)
    "sam": Requirement(_sam_available, _sam_missing),
    "relion_log": _peer_requirement("relion_log"),
    "topaz": _peer_requirement("topaz"),
}


@dataclass(frozen=True)
class Stage:
    """One picking stage.

    ``folder``: where its picks go under results/{dataset}/, one folder per batch of
    micrographs ({micrograph}.star inside; every stage runs one job per batch); ``rules``: its
    rule file under rules/; ``source``: the ``picks.source`` value that makes its picks the
    final picks (None: compared only); ``requires``: names in
    :data:`REQUIREMENTS`; ``switch``: the config section whose ``enabled`` adds the stage to the
    comparison (None: always, once its requirements are met; the source stage runs anyway);
    ``peer``: another project's picker, run when ``report.peers`` lists it.
    """

    name: str
    folder: str
    rules: str
    source: str | None = None
    requires: tuple[str, ...] = ()
    switch: str | None = None
    peer: bool = False

    @property
    def picks(self) -> str:
        """The pattern of its picks: a batch folder ({dataset}, {batch})."""
        return paths.batch_folder(self.folder)


# In summary.tsv order (the final picks come last).
STAGES: tuple[Stage, ...] = (
    Stage("baseline", "baseline", rules="baseline.smk", source="baseline"),
    Stage("unet", "unet_picks", rules="unet.smk", source="unet", requires=("unet",)),
    Stage(
        "unet+crf",
        "crf_picks",
        rules="crf.smk",
        source="crf",
        requires=("unet",),
        switch="crf",
    ),
    Stage("sam", "sam_raw_picks", rules="sam.smk", requires=("unet", "sam")),
    Stage(
        "sam+postprocessing",
        "sam_picks",
        rules="sam.smk",
        source="sam",
        requires=("unet", "sam"),
    ),
    # peers, on the same micrographs, scored by the same code (report.peers)
    *(
        Stage(peer, paths.peer_folder(peer), rules="peers.smk", requires=(peer,), peer=True)
        for peer in ("relion_log", "topaz")
    ),
)
BY_NAME: dict[str, Stage] = {stage.name: stage for stage in STAGES}
BY_SOURCE: dict[str, Stage] = {stage.source: stage for stage in STAGES if stage.source}
FINAL = "final"  # the name of the final picks' row in summary.tsv
# with exclusion on: the final picks before the exclusion filter (read from the final picks'
# batches, files ending in paths.BEFORE_EXCLUSION_SUFFIX), the row just above FINAL
BEFORE_EXCLUSION = "final before exclusion"


def stage_picks_suffix(name: str) -> str:
    """What a stage's pick files end with in its batch folders."""
    return paths.BEFORE_EXCLUSION_SUFFIX if name == BEFORE_EXCLUSION else ".star"


def stage_input_name(stage: str) -> str:
    """Name of a stage's picks among the metrics job's inputs ("unet+crf" -> "stage_unet_crf"):
    stage names are for people, input names must be identifiers."""
    return "stage_" + "".join(c if c.isalnum() else "_" for c in stage)


def stage_picks(name: str) -> str:
    """The picks pattern of a stage (what its rule declares as output)."""
    return BY_NAME[name].picks


def rule_files() -> list[str]:
    """The stages' rule files under rules/, each once, in table order."""
    return list(dict.fromkeys(stage.rules for stage in STAGES))


def requirements_met(config: dict) -> dict[str, bool]:
    """Requirement name -> whether the config meets it (computed once per DAG build)."""
    return {name: requirement.met(config) for name, requirement in REQUIREMENTS.items()}


def _switched_on(stage: Stage, config: dict) -> bool:
    if stage.peer:
        return stage.name in config["report"]["peers"]
    return stage.switch is None or config[stage.switch]["enabled"]


def enabled_stages(config: dict, met: Mapping[str, bool] | None = None) -> list[str]:
    """Comparison stages the config turns on (SAM only with a checkpoint file, a peer only
    when installed)."""
    met = requirements_met(config) if met is None else met
    return [
        stage.name
        for stage in STAGES
        if all(met[r] for r in stage.requires) and _switched_on(stage, config)
    ]


def skipped_peers(config: dict, met: Mapping[str, bool] | None = None) -> dict[str, str]:
    """Peer -> why it does not run, for each peer ``report.peers`` lists that cannot run here
    (the report names them instead of leaving them out silently)."""
    met = requirements_met(config) if met is None else met
    skipped = {}
    for name in config["report"]["peers"]:
        stage = BY_NAME[name]
        missing = [r for r in stage.requires if not met[r]]
        if missing:
            skipped[name] = "; ".join(REQUIREMENTS[r].missing(config) for r in missing)
    return skipped


def peer_stages() -> list[Stage]:
    """The peers' stages (their rule wildcards)."""
    return [stage for stage in STAGES if stage.peer]


def source_stage(config: dict, met: Mapping[str, bool] | None = None) -> Stage:
    """The stage picks.source names; an InputError when the config cannot run it."""
    met = requirements_met(config) if met is None else met
    source = config["picks"]["source"]
    stage = BY_SOURCE[source]
    for name in stage.requires:
        if not met[name]:
            raise InputError(f"picks.source {source!r} needs {REQUIREMENTS[name].missing(config)}")
    return stage


def picking_stages(
    config: dict, has_ground_truth: bool, met: Mapping[str, bool] | None = None
) -> dict[str, str]:
    """Stage name -> picks pattern for every stage the config runs on a data set, the final
    picks last: each gets a row in summary.tsv. Without ground truth only the source stage runs,
    since the others could not be scored."""
    met = requirements_met(config) if met is None else met
    source = source_stage(config, met).name
    names = set(enabled_stages(config, met)) | {source} if has_ground_truth else {source}
    stages = {stage.name: stage.picks for stage in STAGES if stage.name in names}
    if config.get("exclusion", {}).get("enabled"):
        stages[BEFORE_EXCLUSION] = paths.FINAL_PICKS
    stages[FINAL] = paths.FINAL_PICKS
    return stages
