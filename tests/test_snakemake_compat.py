"""The Snakemake work-arounds (cryopick/workflow/snakemake_compat.py): groups are still
validated, once each, so a group that depends on itself is still refused; signatures are cached;
each patch logs whether it applied, and a Snakemake with other code runs unpatched."""

import subprocess

from tests.conftest import REPO, SNAKEMAKE

# Two components of group g, merged by --group-components into one group, with a path from
# one to the other through a job outside the group: the group would wait for itself.
CYCLE = """
import sys
sys.path.insert(0, {repo!r})
from cryopick.workflow.snakemake_compat import check_each_group_once
assert check_each_group_once()

rule all:
    input: "c.txt", expand("a/{{i}}.txt", i=range(2))

rule a:
    output: "a/{{i}}.txt"
    group: "g"
    shell: "touch {{output}}"

rule b:
    input: "a/0.txt"
    output: "b.txt"
    shell: "touch {{output}}"

rule c:
    input: "b.txt"
    output: "c.txt"
    group: "g"
    shell: "touch {{output}}"
"""


def test_patch_applies_to_the_pinned_snakemake():
    from cryopick.workflow.snakemake_compat import check_each_group_once

    assert check_each_group_once()
    from snakemake.dag import DAG

    assert DAG._check_groups._cryopick_once
    assert check_each_group_once()  # idempotent: wrapping twice would check twice


def test_a_group_that_depends_on_itself_is_still_refused(tmp_path):
    (tmp_path / "Snakefile").write_text(CYCLE.format(repo=str(REPO)))
    dry = [SNAKEMAKE, "-n", "--cores", "1"]
    merged = subprocess.run(
        [*dry, "--group-components", "g=3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert merged.returncode != 0
    assert "Group g depends on itself" in merged.stdout + merged.stderr
    # the same workflow without the merge is valid: the check refuses only the cycle
    separate = subprocess.run(dry, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert separate.returncode == 0, separate.stderr[-2000:]


def test_function_params_cache_gives_the_signature_and_inspects_once(monkeypatch):
    import functools
    import inspect

    import snakemake.common as common
    import snakemake.rules as rules

    from cryopick.workflow.snakemake_compat import cache_function_params

    assert cache_function_params()
    assert common.get_function_params is rules.get_function_params
    assert common.get_function_params._cryopick_cached

    calls = []
    real_signature = inspect.signature

    def counting_signature(obj, *args, **kwargs):
        calls.append(obj)
        return real_signature(obj, *args, **kwargs)

    monkeypatch.setattr(inspect, "signature", counting_signature)

    def input_function(wildcards, attempt, threads=1):
        return []

    class Resource:
        def evaluate(self, wildcards, input=None):
            return 1

    for _ in range(3):
        assert list(common.get_function_params(input_function)) == [
            "wildcards",
            "attempt",
            "threads",
        ]
        # a new bound method object per call, as Snakemake makes them: same parameters
        assert list(common.get_function_params(Resource().evaluate)) == ["wildcards", "input"]
    assert len(calls) == 2
    # partials are not cached: their parameters depend on what they bind
    bound = functools.partial(input_function, attempt=2)
    assert "attempt" in common.get_function_params(bound)
    assert list(common.get_function_params(functools.partial(input_function, 1))) == [
        "attempt",
        "threads",
    ]
    # an explicit override (snakemake.ioutils) still wins
    common.overwrite_function_params(input_function, ["wildcards"])
    assert common.get_function_params(input_function) == ["wildcards"]
    assert common.get_input_function_aux_params(
        Resource().evaluate, {"input": 1, "attempt": 2}
    ) == {"input": 1}


def test_apply_patches_logs_one_line_each(caplog):
    import logging

    from cryopick.workflow.snakemake_compat import PATCHES, apply_patches

    log = logging.getLogger("test_patches")
    with caplog.at_level(logging.INFO, logger="test_patches"):
        applied = apply_patches(log)
    assert applied == {name: True for name in PATCHES}
    assert [r.getMessage().split(" applied")[0] for r in caplog.records] == [
        f"cryopick: Snakemake patch {name}" for name in PATCHES
    ]


def test_a_snakemake_with_other_code_runs_unpatched(monkeypatch, caplog):
    """Where Snakemake's functions are not the ones measured, nothing is replaced and the log
    says so."""
    import logging

    import snakemake.api  # noqa: F401
    import snakemake.common as common
    from snakemake.dag import DAG
    from snakemake.scheduling.job_scheduler import JobScheduler

    from cryopick.workflow.snakemake_compat import apply_patches

    def _check_groups(self):  # a different implementation
        return None

    def get_function_params(func):
        return {}

    async def update_input_sizes(self, jobs):
        return None

    monkeypatch.setattr(DAG, "_check_groups", _check_groups)
    monkeypatch.setattr(common, "get_function_params", get_function_params)
    monkeypatch.setattr(JobScheduler, "update_input_sizes", update_input_sizes)
    log = logging.getLogger("test_patches")
    with caplog.at_level(logging.INFO, logger="test_patches"):
        assert apply_patches(log) == {
            "check_each_group_once": False,
            "cache_function_params": False,
            "size_inputs_once": False,
        }
    assert DAG._check_groups is _check_groups
    assert common.get_function_params is get_function_params
    assert JobScheduler.update_input_sizes is update_input_sizes
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and all(" skipped: " in m and "differs" in m for m in messages)


def test_the_scheduler_sizes_each_input_once(monkeypatch):
    """Every selection round asks for the sizes of the ready jobs' inputs: each path is
    stat'ed once (was: every round), new paths when they come, and Snakemake's bound on the
    table still holds."""
    import asyncio
    from types import SimpleNamespace

    import snakemake.api  # noqa: F401
    from snakemake.scheduling.job_scheduler import JobScheduler

    from cryopick.workflow.snakemake_compat import size_inputs_once

    assert size_inputs_once() and size_inputs_once()  # idempotent
    stats: list[str] = []

    class Path(str):
        async def exists(self):
            stats.append(self)
            return not self.startswith("gone")

        async def size(self):
            return len(self)

    scheduler = SimpleNamespace(_input_sizes={})
    ready = [SimpleNamespace(input=[Path("a"), Path("bb")]), SimpleNamespace(input=[Path("gone")])]
    for _ in range(3):  # three selection rounds with the same ready jobs
        asyncio.run(JobScheduler.update_input_sizes(scheduler, ready))
    assert sorted(stats) == ["a", "bb", "gone"]
    assert scheduler._input_sizes == {"a": 1, "bb": 2, "gone": None}
    asyncio.run(JobScheduler.update_input_sizes(scheduler, [SimpleNamespace(input=[Path("c")])]))
    assert stats[-1] == "c" and scheduler._input_sizes["c"] == 1
