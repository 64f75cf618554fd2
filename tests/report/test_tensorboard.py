"""TensorBoard finds the run's scalars (read back with TensorBoard's own event reader)."""

import shutil

from conftest import REPO
from perfdoctor.analysis.load import load_run
from perfdoctor.report.tensorboard import write_scalars


def test_scalars_are_readable_by_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = shutil.copytree(REPO / "tests" / "data" / "run_reference_cnn", tmp_path / "run")
    data = load_run(run)
    folder = run / "tb" / "reference_cnn"
    write_scalars(data, folder)
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/time_ms", "step/dataloader_ms", "step/forward_ms", "host/system_cpu_percent", "host/rss_mb"} <= tags
    step_times = events.Scalars("step/time_ms")
    assert [event.step for event in step_times] == list(range(data.steps.count))
    assert abs(step_times[3].value - data.series.duration_ms[3]) < 1e-3
