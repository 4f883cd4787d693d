# Peer pickers (report.peers) on the same micrographs as cryopick's own stages, one job per
# batch; their picks are scored by the metrics job like every stage (cryopick/peers.py).


rule pick_peer:
    """A peer picker's picks (RELION's LoG picker or Topaz's pretrained model) of one batch of
    micrographs, one {micrograph}.star each in the micrograph file's pixels."""
    input:
        micrographs=batch_micrograph_paths,
    output:
        directory(paths.PEER_PICKS),
        paths.batch_complete(paths.PEER_PICKS),
    log:
        paths.log("pick_peer_{peer}", paths.BATCH),
    benchmark:
        paths.benchmark("pick_peer_{peer}", paths.BATCH)
    wildcard_constraints:
        peer="|".join(stage.name for stage in peer_stages()),
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=DENOISE_BATCH_RUNTIME,
    params:
        micrographs=batch_micrograph_files,
        pixel_size=dataset_pixel_size,
        diameter=dataset_diameter,
        invert=dataset_invert,
        topaz_command=config["report"]["topaz_command"],
    script:
        "../scripts/pick_peer.py"
