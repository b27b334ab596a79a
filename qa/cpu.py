"""What this CPU is and can do, from /proc/cpuinfo: its name, and the instructions that change how fast
training runs (bf16) and what ONNX Runtime's int8 kernels compute (VNNI). Figures are only comparable on
one CPU: the int8 reader scores near-ties differently with and without VNNI (model card, round 9)."""
from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return CPUINFO.read_text()
    except OSError:   # not Linux
        return ""


def cpu_name() -> str:
    """'AMD EPYC', 'Intel(R) Xeon(R) Processor'...; the machine type where /proc/cpuinfo says nothing."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def cpu_flags() -> frozenset[str]:
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_bf16() -> bool:
    """Native bf16 (AVX512-BF16 or AMX), where bf16 autocast is faster than fp32."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def has_int8_vnni() -> bool:
    """AVX-512 VNNI, AVX-VNNI or AMX: ONNX Runtime's int8 kernels add exactly; on AVX2 alone (u8s8 pairs
    summed in 16 bits) they round otherwise."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def describe() -> dict:
    """The facts a measurement should carry: which CPU, and whether its int8 kernels use VNNI."""
    return {"cpu": cpu_name(), "int8_vnni": has_int8_vnni(), "bf16": has_bf16()}
