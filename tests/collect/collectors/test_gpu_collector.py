"""The NVML sampler against a fake pynvml (two GPUs, one lacking some queries), and the real
pynvml on a machine without a driver: a fact in the stream, never an error."""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from types import SimpleNamespace

import pytest

from collect_helpers import Harness
from perfdoctor.collect.collectors.base import RunOptions
from perfdoctor.collect.collectors.gpu import NvmlSampler, throttle_names

GIB = 2**30


class FakeNvmlError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


class FakeNvml:
    """The calls the sampler makes, for two devices; device 1 supports neither power nor PCIe."""

    NVMLError = FakeNvmlError
    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0
    NVML_PCIE_UTIL_TX_BYTES, NVML_PCIE_UTIL_RX_BYTES = 0, 1

    def __init__(self) -> None:
        self.init_error: int | None = None
        self.calls: list[str] = []
        self.shutdowns = 0
        self.pid = os.getpid()

    def _log(self, name: str) -> None:
        self.calls.append(name)

    def nvmlInit(self):
        if self.init_error is not None:
            raise FakeNvmlError(self.init_error)

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return b"550.54.15"

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return SimpleNamespace(index=index)

    def nvmlDeviceGetName(self, handle):
        return ["NVIDIA A100-SXM4-80GB", b"Tesla T4"][handle.index]

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-{handle.index}"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=80 * GIB if handle.index == 0 else 16 * GIB, used=(30 + handle.index) * GIB, free=0)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        if handle.index == 1:
            raise FakeNvmlError(3)  # NVML_ERROR_NOT_SUPPORTED
        return 400_000  # mW

    def nvmlDeviceGetMaxClockInfo(self, handle, clock):
        return 1410

    def nvmlDeviceGetUtilizationRates(self, handle):
        self._log("utilization")
        return SimpleNamespace(gpu=97 - 50 * handle.index, memory=40)

    def nvmlDeviceGetClockInfo(self, handle, clock):
        return {1: 1380, 2: 1593}[clock]

    def nvmlDeviceGetPowerUsage(self, handle):
        self._log(f"power{handle.index}")
        if handle.index == 1:
            raise FakeNvmlError(3)
        return 312_500

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 66

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return 0x4 | 0x40 if handle.index == 0 else 0x1

    def nvmlDeviceGetPcieThroughput(self, handle, counter):
        self._log(f"pcie{handle.index}")
        if handle.index == 1:
            raise FakeNvmlError(3)
        return 2048 if counter == 1 else 512  # KB/s

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        mine = SimpleNamespace(pid=self.pid, usedGpuMemory=12 * GIB)
        other = SimpleNamespace(pid=self.pid + 1, usedGpuMemory=3 * GIB)
        return [mine, other] if handle.index == 0 else [other]


@pytest.fixture
def fake(monkeypatch):
    """A FakeNvml whose calls are what `import pynvml` finds (a module in sys.modules)."""
    instance = FakeNvml()
    module = types.ModuleType("pynvml")
    for name in dir(instance):
        if name.startswith(("nvml", "NVML")):
            setattr(module, name, getattr(instance, name))
    monkeypatch.setitem(sys.modules, "pynvml", module)
    instance.module = module
    return instance


def context(tmp_path, interval=0.5):
    return Harness(tmp_path, RunOptions(host_interval_s=interval))


def test_samples_every_device_and_decodes_what_it_reads(tmp_path, fake):
    sampler = NvmlSampler()
    harness = context(tmp_path, interval=3600)
    sampler.start(harness.ctx)  # the thread waits; samples are taken by hand
    sampler.sample()
    sampler.sample()
    sampler.stop()
    payload = harness.read("gpu")
    assert payload["available"] is True and payload["driver_version"] == "550.54.15"
    assert len(payload["t_ns"]) == len(payload["step"]) == 2 and payload["error"] is None
    a100, t4 = payload["devices"]
    assert (a100["name"], t4["name"]) == ("NVIDIA A100-SXM4-80GB", "Tesla T4")  # bytes decoded
    assert a100["memory_total_bytes"] == 80 * GIB and a100["power_limit_w"] == 400.0 and a100["uuid"] == "GPU-0"
    samples = a100["samples"]
    assert samples["utilization_gpu"] == [97, 97] and samples["utilization_memory"] == [40, 40]
    assert samples["memory_used_bytes"] == [30 * GIB] * 2
    assert samples["sm_clock_mhz"] == [1380] * 2 and samples["memory_clock_mhz"] == [1593] * 2
    assert samples["power_w"] == [312.5] * 2 and samples["temperature_c"] == [66] * 2
    assert samples["throttle_reasons"] == [["sw_power_cap", "hw_thermal_slowdown"]] * 2
    assert samples["pcie_rx_bytes_per_s"] == [2048 * 1024] * 2 and samples["pcie_tx_bytes_per_s"] == [512 * 1024] * 2
    assert samples["process_memory_bytes"] == [12 * GIB] * 2  # only this pid's memory
    assert t4["samples"]["process_memory_bytes"] == [0, 0]
    assert t4["samples"]["throttle_reasons"] == [["gpu_idle"]] * 2
    # Unsupported queries give None, are asked once, and are listed.
    assert t4["power_limit_w"] is None and t4["samples"]["power_w"] == [None, None]
    assert t4["samples"]["pcie_rx_bytes_per_s"] == [None, None]
    assert fake.calls.count("power1") == 1 and fake.calls.count("power0") == 2
    assert fake.calls.count("pcie1") == 2 and fake.calls.count("pcie0") == 4  # rx and tx: once each on device 1
    assert t4["unsupported"] == ["pcie_rx", "pcie_tx", "power", "power_limit"]
    assert fake.shutdowns == 1


def test_the_background_thread_samples_at_the_interval_and_stops(tmp_path, fake):
    sampler = NvmlSampler()
    harness = context(tmp_path, interval=0.01)
    sampler.start(harness.ctx)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sampler.samples < 3:
        time.sleep(0.01)
    sampler.stop()
    assert not any(thread.name == "perfdoctor-gpu" for thread in threading.enumerate())
    payload = harness.read("gpu")
    count = len(payload["t_ns"])
    assert count >= 3 and payload["t_ns"] == sorted(payload["t_ns"])
    assert all(len(column) == count for device in payload["devices"] for column in device["samples"].values())


def test_nvml_that_cannot_start_is_a_fact_not_an_error(tmp_path, fake):
    fake.init_error = 9  # NVML_ERROR_DRIVER_NOT_LOADED
    sampler = NvmlSampler()
    harness = context(tmp_path)
    sampler.start(harness.ctx)
    sampler.stop()
    payload = harness.read("gpu")
    assert payload == {"available": False, "reason": "FakeNvmlError: NVML error 9"}


def test_a_failing_query_is_noted_and_sampling_goes_on(tmp_path, fake):
    fake.module.nvmlDeviceGetTemperature = lambda handle, sensor: (_ for _ in ()).throw(FakeNvmlError(999))
    sampler = NvmlSampler()
    harness = context(tmp_path, interval=3600)
    sampler.start(harness.ctx)
    sampler.sample()
    sampler.sample()
    sampler.stop()
    payload = harness.read("gpu")
    assert payload["devices"][0]["samples"]["temperature_c"] == [None, None]
    assert payload["devices"][0]["samples"]["utilization_gpu"] == [97, 97]
    assert "temperature" in payload["error"]
    assert "temperature" not in payload["devices"][0]["unsupported"]  # an error, not "not supported": asked again


def test_without_pynvml_installed_it_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    sampler = NvmlSampler()
    harness = context(tmp_path)
    sampler.start(harness.ctx)
    sampler.stop()
    assert harness.read("gpu")["available"] is False and "pynvml" in harness.read("gpu")["reason"]


def test_the_real_pynvml_without_a_driver_says_unavailable(tmp_path):
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:  # pragma: no cover - a machine with a GPU driver
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    sampler = NvmlSampler()
    harness = context(tmp_path)
    sampler.start(harness.ctx)
    sampler.stop()
    payload = harness.read("gpu")
    assert payload["available"] is False and "NVML" in payload["reason"]


def test_throttle_reason_bits_decode_to_names():
    assert throttle_names(0) == []
    assert throttle_names(0x4 | 0x8 | 0x80) == ["sw_power_cap", "hw_slowdown", "hw_power_brake_slowdown"]
    assert throttle_names(0x1000 | 0x1) == ["gpu_idle", "0x1000"]
