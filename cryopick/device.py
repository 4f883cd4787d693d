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


def cpu_flags() -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is absent)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bfloat16(device: "torch.device", flags: set[str] | None = None) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA GPU that supports it, or a CPU
    with AVX512-BF16 or AMX-BF16. Elsewhere bfloat16 autocast is emulated and about 20x slower
    than float32 on CPUs."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def mixed_precision_choice(
    setting: bool | str, device: "torch.device", flags: set[str] | None = None
) -> tuple[bool, str]:
    """bfloat16 autocast or not, and why (for the log): ``auto`` follows
    :func:`native_bfloat16`; true or false are the user's explicit choice."""
    if setting == "auto":
        native = native_bfloat16(device, flags)
        if native:
            return True, f"bfloat16 autocast (auto: {device.type} computes bfloat16 natively)"
        return False, f"float32 (auto: {device.type} has no native bfloat16, autocast is slower)"
    if setting:
        return True, "bfloat16 autocast (mixed_precision: true)"
    return False, "float32 (mixed_precision: false)"
