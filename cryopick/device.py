"""The one reading of a ``device`` setting (``auto``, ``cpu``, ``cuda``...), for every stage
that runs torch: U-Net training and inference, and Segment Anything.

torch is imported when a device is resolved, not with this module, so that importing a stage
that may never run torch stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryopick.io import InputError

if TYPE_CHECKING:
    import torch


def resolve_device(setting: str, name: str = "device") -> "torch.device":
    """``auto`` takes the GPU when torch sees one; asking for CUDA without one is an error, not
    a silent fallback. ``name`` is the config key the setting came from (for the message)."""
    import torch

    setting = str(setting).lower()
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(
            f"{name} is {setting!r} but this machine has no usable CUDA device "
            "(torch sees no GPU); use auto or cpu"
        )
    try:
        return torch.device(setting)
    except RuntimeError as exc:
        raise InputError(f"{name} {setting!r} is not a device (auto, cpu or cuda)") from exc


def describe_device(device: "torch.device") -> str:
    """The device as logs and output metadata name it: the GPU's model, or the CPU threads."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
