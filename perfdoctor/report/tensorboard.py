"""TensorBoard scalars for a run: step time and its phases per step, host CPU and memory over time.

Written beside the profiler traces (`RUN/tb/<run-name>/`), so one TensorBoard run holds both.
"""

from __future__ import annotations

from pathlib import Path

from ..analysis.rundata import RunData


def write_scalars(data: RunData, folder: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(log_dir=str(folder))
    try:
        series = data.series
        for step, duration in enumerate(series.duration_ms):
            writer.add_scalar("step/time_ms", duration, step)
            for phase, values in series.phases_ms.items():
                writer.add_scalar(f"step/{phase}_ms", values[step], step)
        host = data.host
        if host is not None:
            timeline = host.timeline
            for i, t_s in enumerate(timeline.get("t_s", [])):
                sample = int(round(t_s * 1000))  # x axis: milliseconds since the run started
                writer.add_scalar("host/system_cpu_percent", timeline["system_cpu"][i], sample)
                writer.add_scalar("host/process_cpu_percent", timeline["process_cpu"][i], sample)
                writer.add_scalar("host/workers_cpu_percent", timeline["children_cpu"][i], sample)
                writer.add_scalar("host/rss_mb", timeline["rss_mb"][i], sample)
    finally:
        writer.close()
