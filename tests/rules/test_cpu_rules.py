from dataclasses import replace

import pytest

from conftest import make_environment, make_host, make_run
from perfdoctor.analysis.rundata import StepSeries, TraceSummary
from perfdoctor.analysis.steps import step_stats
from perfdoctor.model.environment import ThreadProbe, Threads
from perfdoctor.model.host import CpuContention
from perfdoctor.rules.cpu import CpuThreadOversubscription, HostOverheadBound, MainLoopPreprocessing

HEALTHY = {"dataloader": 0.02, "forward": 0.40, "backward": 0.50, "optimizer": 0.05, "other": 0.03}


def check(rule, data, **overrides):
    return rule.check(data, replace(rule.Thresholds(), **overrides))


def threads_env(intra_op: int, probe: dict | None = None, local_world_size: int | None = None):
    environment = make_environment(threads=Threads(intra_op=intra_op, inter_op=2))
    if probe:
        environment.thread_probe = ThreadProbe(**probe)
    if local_world_size:
        environment.env = {"LOCAL_WORLD_SIZE": str(local_world_size)}
    return environment


class TestThreadOversubscription:
    def test_fires_with_a_measured_slowdown(self):
        probe = {"threads": 16, "cores": 2, "ms_at_threads": 26.0, "ms_at_cores": 10.0}
        finding = check(CpuThreadOversubscription(), make_run(HEALTHY, environment=threads_env(16, probe)))
        assert finding is not None and finding.id == "cpu-thread-oversubscription"
        assert finding.evidence["measured_slowdown"] == 2.6
        assert finding.estimated_saving == pytest.approx(0.95 * (1 - 1 / 2.6))
        assert "torch.set_num_threads(2)" in finding.fix

    def test_counts_every_process_on_the_machine(self):
        probe = {"threads": 2, "cores": 1, "ms_at_threads": 30.0, "ms_at_cores": 10.0}
        finding = check(CpuThreadOversubscription(), make_run(HEALTHY, environment=threads_env(2, probe, local_world_size=2)))
        assert finding is not None and finding.evidence["processes_on_this_machine"] == 2
        assert "torch.set_num_threads(1)" in finding.fix

    def test_silent_when_threads_fit_the_cores(self):
        assert check(CpuThreadOversubscription(), make_run(HEALTHY, environment=threads_env(2))) is None

    def test_silent_when_this_machine_shows_no_cost(self):
        probe = {"threads": 4, "cores": 2, "ms_at_threads": 10.2, "ms_at_cores": 10.0}
        assert check(CpuThreadOversubscription(), make_run(HEALTHY, environment=threads_env(4, probe))) is None


class TestMainLoopPreprocessing:
    LOOPY = {"dataloader": 0.01, "forward": 0.22, "backward": 0.45, "optimizer": 0.02, "other": 0.30}

    def test_fires_on_work_between_batch_and_forward(self):
        data = make_run(self.LOOPY, step_ms=40.0, other_parts={"before_forward": 0.27, "loss": 0.01})
        finding = check(MainLoopPreprocessing(), data)
        assert finding is not None and finding.id == "main-loop-preprocessing"
        assert finding.evidence["loop_share"] == pytest.approx(0.29)
        assert finding.estimated_saving == pytest.approx(0.27)
        assert "between the batch arriving and the forward pass" in finding.advice

    @pytest.mark.parametrize(("on_cpu", "waiting"), [(0.10, True), (0.35, False)])
    def test_a_loop_that_mostly_sleeps_is_told_to_find_what_blocks(self, on_cpu, waiting):
        # The loop is 29% of the step. A training thread on a CPU 10% of the step can have computed
        # at most 34% of the loop's time: the loop waits (a sleep, I/O, a sync), and more
        # DataLoader workers would not help. On a CPU 35% of the step, it may all be loop work.
        host = make_host()
        host.contention = CpuContention(samples=40, interval_s=0.5, usable_cores=2, main_cpu_share=on_cpu,
                                        main_wait_any_ms_per_step=0.0, shared=False)
        data = make_run(self.LOOPY, step_ms=40.0, other_parts={"before_forward": 0.27, "loss": 0.01}, host=host)
        finding = check(MainLoopPreprocessing(), data)
        assert finding is not None and finding.estimated_saving == pytest.approx(0.27)
        assert finding.evidence["max_loop_cpu_share"] == pytest.approx(min(1.0, on_cpu / 0.29), abs=1e-3)
        assert ("mostly waiting" in finding.title) is waiting
        assert ("the loop waits on something" in finding.advice) is waiting
        assert ("DataLoader workers do it in parallel" in finding.advice) is not waiting

    def test_a_big_loss_outside_the_model_is_not_preprocessing(self):
        data = make_run(self.LOOPY, step_ms=40.0, other_parts={"before_forward": 0.0, "loss": 0.28})
        assert check(MainLoopPreprocessing(), data) is None

    def test_silent_on_a_healthy_run(self):
        assert check(MainLoopPreprocessing(), make_run(HEALTHY)) is None

    def test_silent_when_the_loop_work_is_tiny_in_absolute_terms(self):
        assert check(MainLoopPreprocessing(), make_run(self.LOOPY, step_ms=2.0)) is None

    @staticmethod
    def two_speed_run(loop_ms: float, host):
        """manual_update.py under tests/loadgen.py, where the spinners and the job's threads share
        the cores thread by thread: 1 step in 10 ran nearly undisturbed (55 ms); in the others
        (320 ms) the model's parallel regions waited for a preempted intra-op thread, while the
        loop work, serial on the training thread, took about as long as in the fast steps."""
        series = StepSeries(mode="backward")
        for i in range(100):
            fast = i % 10 == 5
            duration, loop = (55.0, loop_ms) if fast else (320.0, loop_ms)
            series.duration_ms.append(duration)
            for phase, ms in {"dataloader": 0.0, "forward": (duration - loop - 1) * 0.4, "backward": (duration - loop - 1) * 0.6,
                              "optimizer": 1.0, "other": loop}.items():
                series.phases_ms[phase].append(ms)
            series.other_parts_ms["before_forward"].append(0.0)
            series.other_parts_ms["loss"].append(0.0)
            series.batches.append(0)
            series.profiled.append(False)
        data = make_run(HEALTHY, host=host)
        return replace(data, series=series, steps=step_stats(series))

    @staticmethod
    def busy_host(wait: float = 0.45, on_cpu: float = 0.52):
        host = make_host()
        host.contention = CpuContention(samples=100, interval_s=0.5, usable_cores=2, others_cpu_cores=1.07, main_wait_share=wait,
                                        main_cpu_share=on_cpu, shared=True)
        return host

    def test_on_a_busy_machine_the_least_contended_steps_show_loop_work_the_mean_hides(self):
        data = self.two_speed_run(40.0, self.busy_host())
        finding = check(MainLoopPreprocessing(), data)
        assert finding is not None and finding.confidence == "low"
        lower, fastest = finding.evidence["loop_share"], finding.evidence["fastest_steps_loop_share"]
        assert lower < 0.15 and fastest == pytest.approx(40.0 / 55.0, abs=1e-4)
        assert f"{lower:.0%} to {fastest:.0%} of each step" in finding.title
        assert "lower bound" in finding.confidence_reason and "fastest tenth" in finding.confidence_reason
        assert finding.estimated_saving == pytest.approx(lower - 0.02, abs=1e-4)

    def test_on_a_busy_machine_steps_with_little_loop_work_give_nothing(self):
        assert check(MainLoopPreprocessing(), self.two_speed_run(3.0, self.busy_host())) is None

    def test_on_a_quiet_machine_the_fastest_steps_are_not_consulted(self):
        assert check(MainLoopPreprocessing(), self.two_speed_run(40.0, make_host())) is None


def trace(ops: float, small: float, gap: float, median_us: float = 6.0, step_ms: float = 5.0) -> TraceSummary:
    return TraceSummary(files=["t.json"], windows=5, ops_per_step=ops, median_op_us=median_us, small_op_share=small, gap_share=gap,
                        step_ms=step_ms)


def busy_run(summary: TraceSummary, wait: float = 0.71, on_cpu: float = 0.14):
    """A run whose training thread waited for a CPU others held `wait` of the step (tiny_ops.py
    under tests/loadgen.py measured 0.71 and 0.14)."""
    host = make_host()
    host.contention = CpuContention(samples=100, interval_s=0.5, usable_cores=2, others_cpu_cores=1.7, main_wait_share=wait,
                                    main_cpu_share=on_cpu, shared=True)
    return make_run(HEALTHY, host=host, trace=summary)


class TestHostOverheadBound:
    def test_fires_on_many_tiny_ops(self):
        finding = check(HostOverheadBound(), make_run(HEALTHY, trace=trace(1200, 0.45, 0.25)))
        assert finding is not None and finding.id == "host-overhead-bound"
        assert finding.evidence["overhead_share"] == pytest.approx(0.70 - 0.03)  # less the loop's own 3%
        assert finding.evidence["left_out_loop_work_share"] == pytest.approx(0.03)
        assert finding.estimated_saving == pytest.approx(0.335)

    def test_tiny_ops_of_work_in_the_loop_are_left_to_main_loop_preprocessing(self):
        # loop_preprocessing.py: per-sample augmentation in the loop, 2,500 tiny ops a step; its
        # ops and Python are the loop work main-loop-preprocessing reports (30% of the step)
        loopy = {"dataloader": 0.03, "forward": 0.24, "backward": 0.36, "optimizer": 0.07, "other": 0.30}
        data = make_run(loopy, step_ms=52.0, trace=trace(2507, 0.22, 0.22, median_us=2.4, step_ms=75.7),
                        other_parts={"before_forward": 0.28, "loss": 0.0})
        assert check(HostOverheadBound(), data) is None
        assert check(MainLoopPreprocessing(), data) is not None

    def test_silent_on_few_large_ops(self):
        assert check(HostOverheadBound(), make_run(HEALTHY, trace=trace(150, 0.05, 0.05))) is None

    def test_silent_when_the_gaps_are_waiting_not_tiny_ops(self):
        # a DDP rank waiting for a straggler: long stretches between ops, few tiny ones
        assert check(HostOverheadBound(), make_run(HEALTHY, trace=trace(1200, 0.02, 0.72))) is None

    def test_silent_when_many_ops_are_each_big(self):
        assert check(HostOverheadBound(), make_run(HEALTHY, trace=trace(2000, 0.10, 0.05))) is None

    def test_silent_without_a_trace(self):
        assert check(HostOverheadBound(), make_run(HEALTHY)) is None

    def test_on_a_busy_machine_the_shares_it_can_measure_still_decide(self):
        finding = check(HostOverheadBound(), busy_run(trace(1200, 0.30, 0.20, step_ms=20.0), wait=0.3, on_cpu=0.6))
        assert finding is not None and finding.confidence == "medium" and "shared machine" in finding.confidence_reason
        lost = 0.3 / (0.3 + 0.6)  # of its runnable time, the thread waited this share
        assert finding.severity != "info" and finding.evidence["small_op_share"] == pytest.approx(0.30 * (1 - lost) / 0.7, abs=1e-4)

    def test_tiny_ops_whose_share_waiting_hid_are_said_at_info_with_low_confidence(self):
        # tiny_ops.py under the load generator: ops that waited for CPUs swamp the step
        finding = check(HostOverheadBound(), busy_run(trace(1238, 0.0018, 0.12, median_us=4.0, step_ms=1750.0)))
        assert finding is not None and finding.id == "host-overhead-bound"
        assert (finding.severity, finding.confidence) == ("info", "low")
        assert "could not be measured" in finding.title and "quiet machine" in finding.confidence_reason
        assert finding.evidence["ops_at_median_ms_per_step"] == pytest.approx(1238 * 4.0 / 1e3)
        assert finding.estimated_saving == pytest.approx(0.5 * 4.952 / 1750.0)

    def test_on_a_busy_machine_ops_that_are_not_tiny_give_nothing(self):
        assert check(HostOverheadBound(), busy_run(trace(1238, 0.0018, 0.12, median_us=40.0, step_ms=1750.0))) is None
        assert check(HostOverheadBound(), busy_run(trace(150, 0.0018, 0.12, median_us=4.0, step_ms=1750.0))) is None

    def test_on_a_quiet_machine_unmeasured_shares_are_not_guessed_at(self):
        assert check(HostOverheadBound(), make_run(HEALTHY, trace=trace(1238, 0.0018, 0.12, median_us=4.0))) is None
