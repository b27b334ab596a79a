"""What the CPU can do (qa/cpu.py), read from a cpuinfo file, and the ship gate's refusal to mix rows measured
on two CPUs (the int8 reader scores near-ties differently with and without VNNI)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qa import cpu
from qa.config import PACKAGE_ROOT

# the first processor's lines of the two CPUs this project has run on (flags shortened)
AMD = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n"
XEON = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
        "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8\n")


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    def use(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(cpu, "CPUINFO", path)
        cpu._cpuinfo.cache_clear()
    yield use
    cpu._cpuinfo.cache_clear()


def test_an_avx2_cpu_has_neither_bf16_nor_vnni(cpuinfo):
    cpuinfo(AMD)
    assert cpu.describe() == {"cpu": "AMD EPYC", "int8_vnni": False, "bf16": False}


def test_a_xeon_with_amx_has_both(cpuinfo):
    cpuinfo(XEON)
    assert cpu.describe() == {"cpu": "Intel(R) Xeon(R) Processor", "int8_vnni": True, "bf16": True}


def test_without_cpuinfo_the_machine_type_names_it(cpuinfo, tmp_path, monkeypatch):
    monkeypatch.setattr(cpu, "CPUINFO", tmp_path / "missing")
    cpu._cpuinfo.cache_clear()
    assert cpu.cpu_name() and cpu.cpu_flags() == frozenset() and not cpu.has_int8_vnni()


def test_the_ship_gate_refuses_rows_measured_on_another_cpu(tmp_path):
    rows = tmp_path / "gate.json"
    baseline = str(PACKAGE_ROOT / "models" / "reader")
    rows.write_text(json.dumps({baseline: {"machine": {"cpu": "Some Other CPU", "int8_vnni": True, "bf16": True},
                                           "reader_f1": 81.0}}))
    run = subprocess.run([sys.executable, "bench/ship_gate.py", "--json", str(rows)], cwd=PACKAGE_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "measured on {'cpu': 'Some Other CPU'" in run.stderr and "measure every row again" in run.stderr
    assert json.loads(rows.read_text())[baseline]["reader_f1"] == 81.0   # nothing measured, nothing rewritten


def test_the_ship_gate_adds_to_rows_of_this_cpu_and_to_none():
    sys.path.insert(0, str(PACKAGE_ROOT / "bench"))
    from ship_gate import same_machine

    here = cpu.describe()
    same_machine({}, here, "new reader")                                   # nothing measured yet
    same_machine({"machine": dict(here), "reader_f1": 81.0}, here, "r8")   # measured here
    with pytest.raises(SystemExit, match="a CPU not recorded"):
        same_machine({"reader_f1": 81.0}, here, "r8")                      # a file from before the record
