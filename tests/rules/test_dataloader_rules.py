from dataclasses import replace

import pytest

from conftest import make_environment, make_host, make_loader, make_run
from perfdoctor.model.dataloader import EpochStats
from perfdoctor.model.environment import CpuInfo
from perfdoctor.model.host import CpuContention
from perfdoctor.rules.dataloader import DataLoaderBottleneck, DataLoaderCpuSaturated, DataLoaderPersistentWorkers

WAITING = {"dataloader": 0.60, "forward": 0.15, "backward": 0.20, "optimizer": 0.03, "other": 0.02}
HEALTHY = {"dataloader": 0.02, "forward": 0.40, "backward": 0.50, "optimizer": 0.05, "other": 0.03}


def check(rule, data, **overrides):
    return rule.check(data, replace(rule.Thresholds(), **overrides))


class TestBottleneck:
    def test_fires_when_the_step_waits_with_no_workers(self):
        data = make_run(WAITING, step_ms=64.0, loaders=[make_loader(num_workers=0, wait_total_ms=0.6 * 64 * 100, cores_busy=0.1)])
        finding = check(DataLoaderBottleneck(), data)
        assert finding is not None and finding.id == "dataloader-bottleneck"
        assert finding.evidence["wait_share"] == pytest.approx(0.60)
        # CPU-bound loading (nothing says otherwise) on 2 cores beside 2 intra-op threads: 2 workers
        # would fight the threads (the Lightning MNIST, 1.7x slower). The plan that fits:
        # 1 worker and 1 thread; compute 25.6 ms doubles to 51.2 ms, the 38.4 ms load hides in it.
        assert finding.evidence["num_workers"] == 0 and finding.evidence["suggested_num_workers"] == 1
        assert finding.evidence["suggested_intra_op_threads"] == 1
        assert finding.estimated_saving == pytest.approx(1 - 51.2 / 64, abs=0.01)
        assert "torch.set_num_threads(1)" in finding.fix and "num_workers=1" in finding.fix
        assert "60%" in finding.title and finding.confidence == "high"

    @pytest.mark.parametrize(("job_cores", "compute_cores", "new_step_ms"), [(0.68, 0.5, 38.4), (1.28, 2.0, 51.2)])
    def test_threads_are_cut_at_the_cost_the_compute_measured(self, job_cores, compute_cores, new_step_ms):
        # Loading on the CPU (the loading thread at 0.8 of a core in the waits), 2 intra-op threads,
        # 2 cores: the plan is 1 worker beside 1 thread. Compute that kept half a core busy
        # (sleeps, a device) does not slow at 1 thread, and the 38.4 ms load becomes the step;
        # compute that kept both cores busy doubles to 51.2 ms, as the unmeasured estimate assumes.
        loader = make_loader(num_workers=0, wait_total_ms=0.6 * 64 * 100)
        loader.job_cores_in_waits, loader.job_cpu_wait_share_in_waits = 0.8, 0.0
        host = make_host()
        host.contention = CpuContention(samples=40, interval_s=0.5, usable_cores=2, job_cpu_cores=job_cores, shared=False)
        data = make_run(WAITING, step_ms=64.0, loaders=[loader], host=host)
        finding = check(DataLoaderBottleneck(), data)
        assert finding is not None and finding.evidence["suggested_num_workers"] == 1
        # (job cores x 64 ms - 0.8 x 38.4 ms in the waits) / 25.6 ms of compute
        assert finding.evidence["compute_cores"] == pytest.approx(compute_cores, abs=0.01)
        assert finding.estimated_saving == pytest.approx(1 - new_step_ms / 64, abs=0.01)
        assert "torch.set_num_threads(1)" in finding.fix and f"{compute_cores:.1f} cores it kept busy" in finding.advice

    def test_loading_that_sleeps_on_storage_gets_workers_without_cutting_threads(self):
        loader = make_loader(num_workers=0, wait_total_ms=0.6 * 64 * 100)
        loader.job_cores_in_waits, loader.job_cpu_wait_share_in_waits = 0.1, 0.0  # the loading thread mostly sleeps
        data = make_run(WAITING, step_ms=64.0, loaders=[loader])
        finding = check(DataLoaderBottleneck(), data)
        assert finding is not None and finding.evidence["suggested_num_workers"] == 2
        assert finding.evidence["suggested_intra_op_threads"] == 2 and "set_num_threads" not in finding.fix
        # 2 workers make a 38.4 ms load arrive every 19.2 ms, inside the 25.6 ms of compute.
        assert finding.estimated_saving == pytest.approx(0.60, abs=0.01)
        assert "storage" in finding.advice

    def test_idle_workers_are_told_the_wait_is_io(self):
        loader = make_loader(num_workers=2, wait_total_ms=0.4 * 50 * 100, cores_busy=0.2)
        data = make_run({**WAITING, "dataloader": 0.4, "forward": 0.35}, step_ms=50.0, loaders=[loader], host=make_host(children_cpu=10.0))
        finding = check(DataLoaderBottleneck(), data)
        assert finding is not None
        assert finding.evidence["worker_cpu_percent"] == 5.0
        assert "storage" in finding.advice and finding.evidence["suggested_num_workers"] == 4
        # 2 workers feeding a 50 ms step need 100 ms a batch each; 4 make it 25 ms < 30 ms compute.
        assert finding.estimated_saving == pytest.approx(0.4, abs=0.01)

    def test_busy_workers_that_fill_the_cores_get_no_advice_to_add_more(self):
        loader = make_loader(num_workers=4, wait_total_ms=0.3 * 20 * 100)
        data = make_run({**WAITING, "dataloader": 0.3, "forward": 0.45}, step_ms=20.0, loaders=[loader], host=make_host(children_cpu=150.0))
        assert check(DataLoaderBottleneck(), data) is None

    def test_busy_workers_below_the_core_count_are_told_to_use_the_cores(self):
        loader = make_loader(num_workers=1, wait_total_ms=0.3 * 20 * 100)
        data = make_run({**WAITING, "dataloader": 0.3, "forward": 0.45}, step_ms=20.0, loaders=[loader], host=make_host(children_cpu=95.0, cores=4),
                        environment=make_environment(cpu=CpuInfo(usable_cores=4)))
        finding = check(DataLoaderBottleneck(), data)
        assert finding is not None and finding.evidence["suggested_num_workers"] == 2
        # 1 worker feeding a 20 ms step needs 20 ms a batch; 2 make it 10 ms, inside 14 ms of compute
        assert finding.estimated_saving == pytest.approx(0.3)

    def test_silent_on_a_healthy_run(self):
        assert check(DataLoaderBottleneck(), make_run(HEALTHY)) is None

    def test_silent_when_cores_are_saturated(self):
        data = make_run(WAITING, loaders=[make_loader(num_workers=2, wait_total_ms=1200, cores_busy=0.98)])
        assert check(DataLoaderBottleneck(), data) is None

    def test_epoch_start_waits_are_not_a_shortage_of_batches(self):
        epochs = [EpochStats(first_batch_ms=300, iter_ms=1, batches=20, wait_ms=310, end_ms=10) for _ in range(6)]
        loader = make_loader(num_workers=2, wait_total_ms=6 * 310, epochs=epochs, epoch_start_wait_ms=6 * 300, cores_busy=0.05)
        data = make_run({**WAITING, "dataloader": 0.37, "forward": 0.38}, step_ms=50.0, steps=120, loaders=[loader])
        assert check(DataLoaderBottleneck(), data) is None

    def test_threshold_override_silences_it(self):
        data = make_run(WAITING, step_ms=64.0, loaders=[make_loader(wait_total_ms=3840, cores_busy=0.1)])
        assert check(DataLoaderBottleneck(), data, min_wait_share=0.7) is None


class TestCpuSaturated:
    def test_fires_when_waiting_with_every_core_busy(self):
        loader = make_loader(num_workers=2, wait_total_ms=1500, cores_busy=0.99)
        data = make_run({**WAITING, "dataloader": 0.38, "forward": 0.37}, step_ms=130.0, loaders=[loader], host=make_host(children_cpu=130.0))
        finding = check(DataLoaderCpuSaturated(), data)
        assert finding is not None and finding.id == "dataloader-cpu-saturated"
        assert finding.evidence["cores_busy_during_waits_share"] == 0.99
        assert finding.estimated_saving == pytest.approx(0.38)
        assert "more workers" in finding.advice
        # Its fix makes samples cheaper and leaves the workers as they are (no fewer, no more), and
        # its docs are about fast transforms, not the DataLoader's worker options.
        assert "num_workers=2," in finding.fix and "num_workers=1" not in finding.fix
        assert "TensorDataset" in finding.fix
        assert "transforms" in finding.docs and "docs/stable/data.html" not in finding.docs

    def test_silent_when_cores_idle_during_waits(self):
        data = make_run(WAITING, loaders=[make_loader(num_workers=2, wait_total_ms=1200, cores_busy=0.3)])
        assert check(DataLoaderCpuSaturated(), data) is None

    def test_silent_when_busy_cores_were_never_measured(self):
        data = make_run(WAITING, loaders=[make_loader(num_workers=2, wait_total_ms=1200, cores_busy=None)])
        assert check(DataLoaderCpuSaturated(), data) is None

    def test_silent_on_a_healthy_run_with_busy_cores(self):
        data = make_run(HEALTHY, loaders=[make_loader(num_workers=2, wait_total_ms=40, cores_busy=1.0)])
        assert check(DataLoaderCpuSaturated(), data) is None


def restarting_loader(restart_ms: float, epochs: int = 6, persistent: bool = False):
    stats = [EpochStats(first_batch_ms=restart_ms + 1.0, iter_ms=0.5, batches=16, wait_ms=restart_ms + 16, end_ms=10.0) for _ in range(epochs)]
    return make_loader(num_workers=2, batches=16 * epochs, wait_total_ms=epochs * (restart_ms + 16), epochs=stats, persistent=persistent)


class TestPersistentWorkers:
    def test_fires_when_workers_restart_every_epoch(self):
        loader = restarting_loader(320.0)
        data = make_run(HEALTHY, step_ms=27.0, steps=96, loaders=[loader])
        finding = check(DataLoaderPersistentWorkers(), data)
        assert finding is not None and finding.id == "dataloader-persistent-workers"
        # five restarts after the first epoch, each 320 ms beyond a 1 ms batch, plus 10 ms shutdown
        assert finding.evidence["lost_total_ms"] == pytest.approx(5 * (321 + 10 - loader.wait_p50_ms), rel=0.01)
        assert finding.estimated_saving == pytest.approx(finding.evidence["lost_total_ms"] / (27.0 * 96), rel=0.01)
        assert "persistent_workers=True" in finding.fix

    def test_silent_with_persistent_workers(self):
        data = make_run(HEALTHY, steps=96, loaders=[restarting_loader(320.0, persistent=True)])
        assert check(DataLoaderPersistentWorkers(), data) is None

    def test_silent_with_one_epoch(self):
        data = make_run(HEALTHY, steps=96, loaders=[restarting_loader(320.0, epochs=1)])
        assert check(DataLoaderPersistentWorkers(), data) is None

    def test_silent_when_restarts_are_cheap(self):
        data = make_run(HEALTHY, steps=96, loaders=[restarting_loader(5.0)])
        assert check(DataLoaderPersistentWorkers(), data) is None

    def test_silent_when_restarts_are_a_sliver_of_a_long_run(self):
        data = make_run(HEALTHY, step_ms=100.0, steps=20000, loaders=[restarting_loader(320.0)])
        assert check(DataLoaderPersistentWorkers(), data) is None
