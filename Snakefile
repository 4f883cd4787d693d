# cryopick: micrographs in, RELION-ready particle picks and honest metrics out.
#
#   snakemake --cores 8                                  # one machine, config/config.yaml
#   snakemake --cores 8 --configfile my_data.yaml        # your data sets
#   snakemake --profile profiles/slurm                   # a SLURM cluster
#
# Per micrograph: denoise -> picking stages -> final picks; per data set: metrics; across data
# sets: the benchmark report. Logic lives in the cryopick package; rules only wire files:
# path patterns in cryopick/workflow/paths.py, the picking stages in .../stages.py.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/batching.smk"
include: "rules/synthetic.smk"
include: "rules/denoise.smk"


# the picking stages' rule files, from their registry (cryopick/workflow/stages.py)
for _stage_rules in rule_files():

    include: f"rules/{_stage_rules}"


include: "rules/exclusion.smk"
include: "rules/picks.smk"
include: "rules/metrics.smk"
include: "rules/report.smk"
include: "rules/labels.smk"


rule all:
    default_target: True
    input:
        PLAN.targets(BATCHES),


onsuccess:
    end_with_failed_micrographs()


onerror:
    print_failed_micrographs()
