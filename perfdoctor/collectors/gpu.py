"""The GPU sampler: a background thread that reads, through NVML, each GPU's utilisation, memory,
clocks, power, temperature, clock-throttle reasons, PCIe traffic and this process's memory on it.

It only reads: nothing is ever set on the device. No driver, no NVML library, or no GPU is a fact
in the payload (`{"available": false, "reason": ...}`), not an error. A query a device does not
support is asked once, then left out (its column stays None). Samples go in columns, with the step
clock's time and step count, like the host sampler's.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .base import Collector, CollectorContext

MAX_SAMPLES = 20_000  # past this, every other sample is dropped and the interval doubles
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
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}


class NvmlSampler(Collector):
    name = "gpu"

    def __init__(self) -> None:
        self._nvml: Any = None  # pynvml, imported in start()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ctx: CollectorContext | None = None
        self._interval = 0.5
        self._devices: list[_Device] = []
        self._info: dict[str, Any] = {}
        self._times: list[int] = []
        self._steps: list[int] = []
        self._unavailable: str | None = None
        self._error: str | None = None
        self._pid = os.getpid()
        self._initialised = False

    def start(self, ctx: CollectorContext) -> None:
        self._ctx = ctx
        self._interval = ctx.options.host_interval_s
        try:
            self._open()
        except Exception as error:  # no library, no driver, no device: the run goes on without
            self._unavailable = f"{type(error).__name__}: {error}"
            self._devices = []
        if not self._devices:
            self._unavailable = self._unavailable or "NVML found no GPU"
            self._shutdown()
            return
        self._thread = threading.Thread(target=self._loop, name="perfdoctor-gpu", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        import pynvml

        nvml = self._nvml = pynvml
        nvml.nvmlInit()
        self._initialised = True
        self._info["driver_version"] = self._ask(None, "driver_version", lambda: _text(nvml.nvmlSystemGetDriverVersion()))
        devices = []
        for index in range(nvml.nvmlDeviceGetCount()):
            device = _Device(nvml, index)
            devices.append(device)
            handle = device.handle
            memory = self._ask(device, "memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
            limit = self._ask(device, "power_limit", lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
            max_clock = self._ask(device, "max_sm_clock", lambda: nvml.nvmlDeviceGetMaxClockInfo(handle, self._const("NVML_CLOCK_SM", 1)))
            self._info[index] = {
                "index": index,
                "name": self._ask(device, "name", lambda: _text(nvml.nvmlDeviceGetName(handle))),
                "uuid": self._ask(device, "uuid", lambda: _text(nvml.nvmlDeviceGetUUID(handle))),
                "memory_total_bytes": int(memory.total) if memory is not None else None,
                "power_limit_w": limit / 1000 if limit is not None else None,
                "sm_clock_max_mhz": max_clock,
            }
        self._devices = devices

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
            elif self._error is None:
                self._error = f"{what}: {type(error).__name__}: {error}"
            return None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        if self._devices:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._initialised:
            self._initialised = False
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # shutting down a library that is going away anyway
                pass

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sample()
            except Exception as error:  # a failed sample is noted; the next one may work
                self._error = f"{type(error).__name__}: {error}"

    def sample(self) -> None:
        """Read every device once (the thread calls this; tests may call it directly)."""
        nvml = self._nvml
        assert self._ctx is not None
        for device in self._devices:
            handle, ask, column = device.handle, self._ask, device.columns
            rates = ask(device, "utilization", lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
            memory = ask(device, "memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
            power = ask(device, "power", lambda: nvml.nvmlDeviceGetPowerUsage(handle))
            reasons = ask(device, "throttle_reasons", lambda: self._throttle_mask(handle))
            rx = ask(device, "pcie_rx", lambda: nvml.nvmlDeviceGetPcieThroughput(handle, self._const("NVML_PCIE_UTIL_RX_BYTES", 1)))
            tx = ask(device, "pcie_tx", lambda: nvml.nvmlDeviceGetPcieThroughput(handle, self._const("NVML_PCIE_UTIL_TX_BYTES", 0)))
            column["utilization_gpu"].append(rates.gpu if rates is not None else None)
            column["utilization_memory"].append(rates.memory if rates is not None else None)
            column["memory_used_bytes"].append(int(memory.used) if memory is not None else None)
            column["sm_clock_mhz"].append(ask(device, "sm_clock", lambda: nvml.nvmlDeviceGetClockInfo(handle, self._const("NVML_CLOCK_SM", 1))))
            column["memory_clock_mhz"].append(ask(device, "memory_clock", lambda: nvml.nvmlDeviceGetClockInfo(handle, self._const("NVML_CLOCK_MEM", 2))))
            column["power_w"].append(round(power / 1000, 1) if power is not None else None)
            column["temperature_c"].append(ask(device, "temperature", lambda: nvml.nvmlDeviceGetTemperature(handle, self._const("NVML_TEMPERATURE_GPU", 0))))
            column["throttle_reasons"].append(throttle_names(reasons) if reasons is not None else None)
            column["pcie_rx_bytes_per_s"].append(rx * 1024 if rx is not None else None)  # NVML reports KB/s
            column["pcie_tx_bytes_per_s"].append(tx * 1024 if tx is not None else None)
            column["process_memory_bytes"].append(ask(device, "processes", lambda: self._process_memory(handle)))
        self._times.append(self._ctx.clock.now())
        self._steps.append(len(self._ctx.clock.steps))
        if len(self._times) >= MAX_SAMPLES:
            self._times, self._steps = self._times[::2], self._steps[::2]
            for device in self._devices:
                device.columns = {name: values[::2] for name, values in device.columns.items()}
            self._interval *= 2

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

    def payload(self) -> dict[str, Any]:
        if self._unavailable is not None:
            return {"available": False, "reason": self._unavailable}
        devices = []
        for device in self._devices:
            info = dict(self._info.get(device.index) or {"index": device.index})
            info["unsupported"] = sorted(device.unsupported)
            info["samples"] = device.columns
            devices.append(info)
        return {
            "available": True,
            "interval_s": self._interval,
            "pid": self._pid,
            "driver_version": self._info.get("driver_version"),
            "t_ns": self._times,
            "step": self._steps,
            "devices": devices,
            "error": self._error,
        }
