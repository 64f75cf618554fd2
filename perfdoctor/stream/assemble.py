"""From a stream's records to the raw shape the analysis reads (what `RUN/raw/<name>.json` held
before streaming): one function per stream, each applying the records in order.

Per-step records carry the index of their first step, so every step lands where it belongs; a
`restart` record (the step clock folded the batch-steps before the first optimizer step into one
warm-up step) drops what came before it. Steps after a gap (a damaged record lost the steps
before them) are left out, and `problems` says so: a step is never guessed at.

The records are those that have their kind's shape (`shapes.py`; RunDir checks them first).
"""

from __future__ import annotations

from typing import Any, Callable

STEP_COLUMNS = (
    "start_ns", "end_ns", "dataloader_ns", "forward_ns", "backward_ns", "optimizer_ns", "overhead_ns",
    "before_forward_ns", "loss_ns", "batches",
)
HOST_COLUMNS = (
    "t_ns", "step", "process_cpu", "children_cpu", "children", "system_cpu", "core_cpu",
    "rss", "children_rss", "threads", "ctx_switches_involuntary", "memory_used_bytes",
    # the job's CPU against everyone else's (collect/cpu.py); None where a source is missing
    "tree_processes", "tree_cpu", "others_cpu", "top_others", "tree_threads", "tree_run_ms", "tree_wait_ms",
    "main_run_ms", "main_wait_ms", "throttled_periods", "throttled_ms", "pressure_some", "cgroup_pressure_some",
)


class _Columns:
    """Per-step columns filled chunk by chunk; a chunk that starts past the end (a gap: the
    chunks before it were lost) ends the filling, and the gap is remembered."""

    def __init__(self, names: tuple[str, ...], fill: Any = 0, pad_gaps: bool = False) -> None:
        self.names = names
        self.fill = fill  # for a column older chunks did not write
        self.pad_gaps = pad_gaps  # columns that carry their own step: a gap is unknown values, not the end
        self.values: dict[str, list[Any]] = {name: [] for name in names}
        self.gap: tuple[int, int] | None = None  # (steps known, index of the first step left out)
        self.left_out = 0

    def place(self, chunk: dict[str, Any]) -> None:
        known = len(self.values[self.names[0]])
        first = chunk.get("first")
        first = known if first is None else int(first)
        if first > known and self.pad_gaps and self.gap is None:
            for name in self.names:
                self.values[name].extend([self.fill] * (first - len(self.values[name])))
            known = first
        if self.gap is not None or first > known:
            self.gap = self.gap or (known, first)
            self.left_out += max((len(chunk.get(name) or []) for name in self.names), default=0)
            return
        for name in self.names:
            values = chunk.get(name) or []
            column = self.values[name]
            if values and len(column) < first:  # a column older chunks did not write
                column.extend([self.fill] * (first - len(column)))
            column[first : first + len(values)] = values

    def problem(self, what: str) -> str | None:
        if self.gap is None:
            return None
        known, first = self.gap
        lost = f"step {known}" if first == known + 1 else f"steps {known} to {first - 1}"
        return (
            f"The {what} of {lost} were lost (a damaged record): the {self.left_out} recorded after them are left "
            "out rather than put in the wrong place."
        )


def steps(records: list[dict[str, Any]], problems: list[str] | None = None) -> dict[str, Any]:
    columns = _Columns(STEP_COLUMNS)
    out: dict[str, Any] = {"mode": None, "optimizers": [], "origin_unix_s": None}
    for record in records:
        if "steps" in record:
            columns.place(record["steps"])
        elif "restart" in record:
            columns = _Columns(STEP_COLUMNS)
        elif "mode" in record:
            out["mode"] = record["mode"]
        elif "optimizer" in record:
            out["optimizers"].append(record["optimizer"])
        elif "origin_unix_s" in record:
            out["origin_unix_s"] = record["origin_unix_s"]
    _note(problems, columns.problem("times"))
    count = min(len(columns.values["start_ns"]), len(columns.values["end_ns"]))
    return {**out, **{name: values[:count] for name, values in columns.values.items()}}


def _note(problems: list[str] | None, problem: str | None) -> None:
    if problems is not None and problem is not None:
        problems.append(problem)


def dataloader(records: list[dict[str, Any]], problems: list[str] | None = None) -> dict[str, Any]:
    loaders: dict[int, dict[str, Any]] = {}

    def loader(ident: Any) -> dict[str, Any]:
        return loaders.setdefault(int(ident), {
            "id": int(ident), "args": {}, "dataset": {}, "epochs": {}, "batch_wait_ns": [],
            "ready_wait_ns": 0, "unknown_wait_ns": 0, "cpu_in_long_waits": {},
        })

    for record in records:
        if "loader" in record:
            entry = loader(record["loader"]["id"])
            entry["args"], entry["dataset"] = record["loader"].get("args") or {}, record["loader"].get("dataset") or {}
        elif "epoch" in record:
            epoch = dict(record["epoch"])
            entry = loader(epoch.pop("loader"))
            entry["epochs"][int(epoch.pop("index"))] = epoch
        elif "waits" in record:
            loader(record["waits"]["loader"])["batch_wait_ns"].extend(record["waits"].get("ns") or [])
        elif "totals" in record:
            totals = record["totals"]
            entry = loader(totals["loader"])
            entry["ready_wait_ns"] = totals.get("ready_wait_ns", 0)
            entry["unknown_wait_ns"] = totals.get("unknown_wait_ns", 0)
            # the job's producing threads while long waits ran (older streams: the machine's busy ticks)
            entry["cpu_in_long_waits"] = {
                key: totals[key] for key in ("job_run_ns", "job_wait_ns", "job_demand_ns", "wall_ns", "busy_ticks", "total_ticks") if key in totals
            }
    result = []
    for ident in sorted(loaders):
        entry = loaders[ident]
        entry["epochs"] = [entry["epochs"][index] for index in sorted(entry["epochs"])]
        result.append(entry)
    return {"loaders": result}


def host(records: list[dict[str, Any]], problems: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"interval_s": None, "logical_cores": None, "physical_cores": None, "error": None}
    samples: dict[str, list[Any]] = {name: [] for name in HOST_COLUMNS}
    for record in records:
        if "sample" in record:
            sample = record["sample"]
            for name in HOST_COLUMNS:
                samples[name].append(sample.get(name))
        elif "meta" in record:
            out.update(record["meta"])
        elif "error" in record:
            out["error"] = record["error"]
    return {**out, "samples": samples}


def gpu(records: list[dict[str, Any]], problems: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    devices: dict[int, dict[str, Any]] = {}
    times: list[int] = []
    step_counts: list[int] = []
    error = None
    for record in records:
        if "unavailable" in record:
            return {"available": False, "reason": record["unavailable"]}
        if "meta" in record:
            meta.update({key: value for key, value in record["meta"].items() if key != "devices"})
            for info in record["meta"].get("devices") or []:
                devices[int(info["index"])] = {**info, "unsupported": [], "samples": {}}
        elif "sample" in record:
            sample = record["sample"]
            count = len(times)
            times.append(sample.get("t_ns"))
            step_counts.append(sample.get("step"))
            for reading in sample.get("devices") or []:
                device = devices.setdefault(int(reading["index"]), {"index": int(reading["index"]), "unsupported": [], "samples": {}})
                for name, value in reading.items():
                    if name == "index":
                        continue
                    column = device["samples"].setdefault(name, [])
                    column.extend([None] * (count - len(column)))
                    column.append(value)
        elif "unsupported" in record:
            entry = record["unsupported"]
            known = devices.get(int(entry["index"]))
            if known is not None:
                known["unsupported"] = sorted(set(known["unsupported"]) | set(entry.get("what") or []))
        elif "error" in record:
            error = record["error"]
    if not meta and not devices:
        return {}
    for device in devices.values():
        for column in device["samples"].values():
            column.extend([None] * (len(times) - len(column)))
    return {
        "available": True,
        "interval_s": meta.get("interval_s"),
        "pid": meta.get("pid"),
        "driver_version": meta.get("driver_version"),
        "t_ns": times,
        "step": step_counts,
        "devices": [devices[index] for index in sorted(devices)],
        "error": error,
    }


MEMORY_COLUMNS = (
    "step", "t_ns", "rss", "children_rss", "children",
    "cuda_allocated", "cuda_reserved", "cuda_peak_allocated", "cuda_peak_reserved", "cuda_alloc_retries",
    "cuda_inactive_split",
)


def memory(records: list[dict[str, Any]], problems: list[str] | None = None) -> dict[str, Any]:
    """The memory collector's samples as columns (None where a value was not read), its meta,
    the CUDA device it read, and an out-of-memory error if the script raised one."""
    out: dict[str, Any] = {"meta": {}, "cuda": None, "oom": None, "error": None, "cost": None}
    filled = _Columns(MEMORY_COLUMNS, fill=None, pad_gaps=True)  # every sample names its step
    for record in records:
        if "samples" in record:
            filled.place(record["samples"])
        elif "restart" in record:
            filled = _Columns(MEMORY_COLUMNS, fill=None, pad_gaps=True)
        elif "meta" in record:
            out["meta"].update(record["meta"])
        elif "cuda" in record:
            out["cuda"] = record["cuda"]
        elif "oom" in record:
            out["oom"] = record["oom"]
        elif "cost" in record:
            out["cost"] = record["cost"]
        elif "error" in record and out["error"] is None:
            out["error"] = record["error"]
    columns = filled.values
    count = len(columns["step"])
    out["samples"] = {name: (values + [None] * (count - len(values)))[:count] for name, values in columns.items()}
    return out


def ddp(records: list[dict[str, Any]], problems: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"process_group": None, "ddp": [], "data_parallel": []}
    instances: dict[int, dict[str, Any]] = {}
    forwards = _Columns(("synced", "unsynced"))
    for record in records:
        if "process_group" in record:
            out["process_group"] = record["process_group"]
        elif "ddp" in record:
            instance = dict(record["ddp"])
            instances[int(instance.pop("index"))] = instance
        elif "logged" in record:
            entry = record["logged"]
            if int(entry["index"]) in instances:
                instances[int(entry["index"])]["logged"] = entry.get("logged")
        elif "data_parallel" in record:
            out["data_parallel"].append(record["data_parallel"])
        elif "forwards" in record:
            forwards.place(record["forwards"])
        elif "restart" in record:
            forwards = _Columns(("synced", "unsynced"))
    _note(problems, forwards.problem("DDP forward counts"))
    out["ddp"] = [instances[index] for index in sorted(instances)]
    out["synced_forwards"] = forwards.values["synced"]
    out["unsynced_forwards"] = forwards.values["unsynced"]
    return out


def profiler(records: list[dict[str, Any]], problems: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "enabled": True, "window": None, "profiled_steps": [], "traces": [], "export_s": 0.0,
        "stood_aside": None, "export": None,
    }
    for record in records:
        if "window" in record:
            out["window"] = record["window"]
            out["output"] = record.get("output")
        elif "profiled" in record:
            out["profiled_steps"].append(record["profiled"])
        elif "trace" in record:
            out["traces"].append(record["trace"]["path"])
            out["export_s"] = round(out["export_s"] + float(record["trace"].get("export_s") or 0.0), 6)
        elif "export" in record:
            out["export"] = dict(record["export"] or {})
        elif "stood_aside" in record:
            out["stood_aside"] = record["stood_aside"]
        elif "restart" in record:
            out.update(profiled_steps=[], traces=[], export_s=0.0, export=None)
    return out


def settings(records: list[dict[str, Any]], problems: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for record in records:
        if "settings" in record:
            out.update(record["settings"])
        elif "update" in record:
            for key, value in record["update"].items():
                if isinstance(value, dict) and isinstance(out.get(key), dict):
                    out[key] = {**out[key], **value}
                else:
                    out[key] = value
    return out


def run(records: list[dict[str, Any]], problems: list[str] | None = None) -> dict[str, Any]:
    """The run record: who started it (`start`: the supervisor, or the in-process session), the
    session inside the script's process (`session`), how that process said it ended (`end`), and
    how the supervisor saw it end (`outcome`, which has the last word: it also sees signals)."""
    out: dict[str, Any] = {"notes": []}
    ended = False
    for record in records:
        for kind in ("start", "session", "end", "outcome"):
            if kind in record:
                fields = dict(record[kind])
                out["notes"] += fields.pop("notes", None) or []
                out.update(fields)
                ended = ended or kind in ("end", "outcome")
    if not ended:  # a run stream of nothing but its header, too: the process died at once
        out.update(status="killed", exit_code=None, error={"type": "unknown", "message": "the run's end was not recorded"})
        out["notes"].append(
            "How this run ended was not recorded (perfdoctor itself was stopped, or the run is still going): "
            "the report holds what was streamed until then."
        )
    out.setdefault("collector_errors", {})
    return out


ASSEMBLERS: dict[str, Callable[[list[dict[str, Any]], list[str] | None], dict[str, Any]]] = {
    "steps": steps, "dataloader": dataloader, "host": host, "gpu": gpu, "ddp": ddp,
    "profiler": profiler, "settings": settings, "run": run, "memory": memory,
}
