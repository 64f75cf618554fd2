"""What NVML sampled over the run, per device: means and peaks over the steady part of the run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ...model.gpu import NvmlDevice, NvmlSummary

STEADY_FROM_STEP = 1  # samples from before the end of the first step describe set-up, not training


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def summarize_nvml(raw: dict[str, Any] | None) -> NvmlSummary | None:
    """The sampler's raw file summarised; None when there is none."""
    if not raw:
        return None
    if not raw.get("available"):
        return NvmlSummary(available=False, reason=raw.get("reason"))
    steps = raw.get("step") or []
    chosen = [i for i, s in enumerate(steps) if s >= STEADY_FROM_STEP] or list(range(len(steps)))
    devices = []
    for device in raw.get("devices") or []:
        samples = device.get("samples") or {}

        def values(name: str) -> list[Any]:
            column = samples.get(name) or []
            return [column[i] for i in chosen if i < len(column) and column[i] is not None]

        def stat(name: str, how: Callable[[list[float]], float], digits: int = 1) -> float | None:
            picked = values(name)
            return round(how(picked), digits) if picked else None

        def average(picked: list[float]) -> float:
            return sum(picked) / len(picked)

        throttles = Counter(name for names in values("throttle_reasons") for name in names)
        sampled = len(values("throttle_reasons"))
        devices.append(
            NvmlDevice(
                index=device.get("index"),
                name=device.get("name"),
                utilization_mean_percent=stat("utilization_gpu", average),
                utilization_peak_percent=stat("utilization_gpu", max),
                memory_utilization_mean_percent=stat("utilization_memory", average),
                memory_used_peak_bytes=_int(stat("memory_used_bytes", max, digits=0)),
                memory_total_bytes=device.get("memory_total_bytes"),
                process_memory_peak_bytes=_int(stat("process_memory_bytes", max, digits=0)),
                sm_clock_mean_mhz=stat("sm_clock_mhz", average),
                sm_clock_max_mhz=device.get("sm_clock_max_mhz"),
                memory_clock_mean_mhz=stat("memory_clock_mhz", average),
                power_mean_w=stat("power_w", average),
                power_peak_w=stat("power_w", max),
                power_limit_w=device.get("power_limit_w"),
                temperature_peak_c=stat("temperature_c", max, digits=0),
                throttle_reasons={name: round(count / sampled, 3) for name, count in throttles.most_common()} if sampled else {},
                pcie_rx_mean_bytes_per_s=stat("pcie_rx_bytes_per_s", average, digits=0),
                pcie_tx_mean_bytes_per_s=stat("pcie_tx_bytes_per_s", average, digits=0),
            )
        )
    used = [d for d in devices if d.process_memory_peak_bytes]
    return NvmlSummary(
        available=True,
        samples=len(steps),
        interval_s=raw.get("interval_s"),
        driver_version=raw.get("driver_version"),
        used_by_this_process=[d.index for d in used if d.index is not None],
        devices=used or devices,
    )
