"""cryopick: particle picking for cryo-EM micrographs (denoise, U-Net, SAM, CRF, ice, picks)."""

__version__ = "0.1.0"
