"""The GPU sampler: a background thread that reads, through NVML, each GPU's utilisation, memory,
clocks, power, temperature, clock-throttle reasons, PCIe traffic and this process's memory on it.

It only reads: nothing is ever set on the device. No driver, no NVML library, or no GPU is a fact
in the stream (`{"unavailable": reason}`), not an error. A query a device does not support is
asked once, then left out (its value stays None). Each sample is one record, with the step clock's
time and step count, like the host sampler's.
"""

from __future__ import annotations

import os
from typing import Any

from .sampler import Sampler

NVML_ERROR_NOT_SUPPORTED = 3

# Clock-throttle ("clock event") reason bits, as nvml.h defines them.
THROTTLE_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
COLUMNS = (
    "utilization_gpu", "utilization_memory", "memory_used_bytes", "sm_clock_mhz", "memory_clock_mhz",
    "power_w", "temperature_c", "throttle_reasons", "pcie_rx_bytes_per_s", "pcie_tx_bytes_per_s",
    "process_memory_bytes",
)


def throttle_names(mask: int) -> list[str]:
    """The reasons set in a throttle-reason bit mask; unknown bits as their hex value."""
    names = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    unknown = mask & ~sum(THROTTLE_REASONS)
    return names + ([hex(unknown)] if unknown else [])


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class _Device:
    """One GPU's handle and what it turned out not to support."""

    def __init__(self, nvml: Any, index: int) -> None:
        self.index = index
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.unsupported: set[str] = set()
        self.reported: set[str] = set()  # unsupported queries already streamed


class NvmlSampler(Sampler):
    name = "gpu"
    thread_name = "perfdoctor-gpu"

    def __init__(self) -> None:
        super().__init__()
        self._nvml: Any = None  # pynvml, imported in open()
        self._devices: list[_Device] = []
        self._pid = os.getpid()
        self._initialised = False

    def open(self) -> bool:
        try:
            info = self._open()
        except Exception as error:  # no library, no driver, no device: the run goes on without
            self._devices = []
            reason = f"{type(error).__name__}: {error}"
        else:
            reason = "NVML found no GPU"
        if not self._devices:
            self.emit({"unavailable": reason})
            self._shutdown()
            return False
        self.emit({"meta": info})
        for device in self._devices:
            if device.unsupported:
                self.emit({"unsupported": {"index": device.index, "what": sorted(device.unsupported)}})
                device.reported = set(device.unsupported)
        return True

    def _open(self) -> dict[str, Any]:
        import pynvml

        nvml = self._nvml = pynvml
        nvml.nvmlInit()
        self._initialised = True
        driver = self._ask(None, "driver_version", lambda: _text(nvml.nvmlSystemGetDriverVersion()))
        devices, infos = [], []
        for index in range(nvml.nvmlDeviceGetCount()):
            device = _Device(nvml, index)
            devices.append(device)
            handle = device.handle
            memory = self._ask(device, "memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
            limit = self._ask(device, "power_limit", lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
            max_clock = self._ask(device, "max_sm_clock", lambda: nvml.nvmlDeviceGetMaxClockInfo(handle, self._const("NVML_CLOCK_SM", 1)))
            infos.append({
                "index": index,
                "name": self._ask(device, "name", lambda: _text(nvml.nvmlDeviceGetName(handle))),
                "uuid": self._ask(device, "uuid", lambda: _text(nvml.nvmlDeviceGetUUID(handle))),
                "memory_total_bytes": int(memory.total) if memory is not None else None,
                "power_limit_w": limit / 1000 if limit is not None else None,
                "sm_clock_max_mhz": max_clock,
            })
        self._devices = devices
        return {"interval_s": self.interval_s, "pid": self._pid, "driver_version": driver, "devices": infos}

    def _const(self, name: str, default: int) -> int:
        return getattr(self._nvml, name, default)

    def _ask(self, device: _Device | None, what: str, call: Any) -> Any:
        """One NVML query; None when it fails, and never asked again when the device lacks it."""
        if device is not None and what in device.unsupported:
            return None
        try:
            return call()
        except Exception as error:
            if device is not None and getattr(error, "value", None) == NVML_ERROR_NOT_SUPPORTED:
                device.unsupported.add(what)
            else:
                self._note_error(f"{what}: {type(error).__name__}: {error}")
            return None

    def close(self) -> None:
        if self._devices:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._initialised:
            self._initialised = False
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # shutting down a library that is going away anyway
                pass

    def sample(self) -> None:
        """Read every device once and stream the readings as one record."""
        nvml = self._nvml
        readings = []
        for device in self._devices:
            handle, ask = device.handle, self._ask
            rates = ask(device, "utilization", lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
            memory = ask(device, "memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
            power = ask(device, "power", lambda: nvml.nvmlDeviceGetPowerUsage(handle))
            reasons = ask(device, "throttle_reasons", lambda: self._throttle_mask(handle))
            rx = ask(device, "pcie_rx", lambda: nvml.nvmlDeviceGetPcieThroughput(handle, self._const("NVML_PCIE_UTIL_RX_BYTES", 1)))
            tx = ask(device, "pcie_tx", lambda: nvml.nvmlDeviceGetPcieThroughput(handle, self._const("NVML_PCIE_UTIL_TX_BYTES", 0)))
            readings.append({
                "index": device.index,
                "utilization_gpu": rates.gpu if rates is not None else None,
                "utilization_memory": rates.memory if rates is not None else None,
                "memory_used_bytes": int(memory.used) if memory is not None else None,
                "sm_clock_mhz": ask(device, "sm_clock", lambda: nvml.nvmlDeviceGetClockInfo(handle, self._const("NVML_CLOCK_SM", 1))),
                "memory_clock_mhz": ask(device, "memory_clock", lambda: nvml.nvmlDeviceGetClockInfo(handle, self._const("NVML_CLOCK_MEM", 2))),
                "power_w": round(power / 1000, 1) if power is not None else None,
                "temperature_c": ask(device, "temperature", lambda: nvml.nvmlDeviceGetTemperature(handle, self._const("NVML_TEMPERATURE_GPU", 0))),
                "throttle_reasons": throttle_names(reasons) if reasons is not None else None,
                "pcie_rx_bytes_per_s": rx * 1024 if rx is not None else None,  # NVML reports KB/s
                "pcie_tx_bytes_per_s": tx * 1024 if tx is not None else None,
                "process_memory_bytes": ask(device, "processes", lambda: self._process_memory(handle)),
            })
            if device.unsupported - device.reported:
                self.emit({"unsupported": {"index": device.index, "what": sorted(device.unsupported)}})
                device.reported = set(device.unsupported)
        clock = self.ctx.clock
        self.emit({"sample": {"t_ns": clock.now(), "step": clock.step_count, "devices": readings}})

    def _throttle_mask(self, handle: Any) -> int:
        nvml = self._nvml
        # Renamed "clock event reasons" in newer drivers; the old name is kept as an alias.
        read = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        return int(read(handle))

    def _process_memory(self, handle: Any) -> int:
        """This process's memory on the device (0 when it holds none); None-able via _ask."""
        used = 0
        for process in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle) or []:
            if getattr(process, "pid", None) == self._pid and getattr(process, "usedGpuMemory", None) is not None:
                used += int(process.usedGpuMemory)
        return used
