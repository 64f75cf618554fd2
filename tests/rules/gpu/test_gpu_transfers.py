"""Host-device rules: host-device-sync, pageable-memcpy (and dataloader-pin-memory, which it defers to)."""

from __future__ import annotations

import pytest

from conftest import make_loader
from gpu_runs import check, gpu_run
from perfdoctor.config import Config
from perfdoctor.rules.registry import evaluate
from perfdoctor.model.gpu import OpCause
from perfdoctor.rules.dataloader import DataLoaderPinMemory
from perfdoctor.rules.gpu.transfers import HostDeviceSync, PageableMemcpy


SYNCING = {"syncs": 12.0, "sync_ms": 20.0, "idle_after_sync_ms": 8.0}


class TestHostDeviceSync:
    def test_fires_with_the_ops_that_synced_and_the_idle_they_caused(self):
        causes = [OpCause(op="aten::item", per_step=10.0, ms_per_step=18.0), OpCause(op="aten::nonzero", per_step=2.0, ms_per_step=2.0)]
        finding = check(HostDeviceSync, gpu_run(steps=SYNCING, sync_causes=causes))
        assert finding is not None and finding.id == "host-device-sync"
        assert finding.evidence["causes_per_step"] == {"aten::item": 10.0, "aten::nonzero": 2.0}
        assert finding.evidence["idle_after_sync_ms"] == 8.0 and finding.evidence["host_blocked_ms"] == 20.0
        assert finding.estimated_saving == pytest.approx(0.08)
        assert ".item()" in finding.advice and "nonzero" in finding.advice

    def test_silent_when_syncs_cost_the_device_nothing(self):
        assert check(HostDeviceSync, gpu_run(steps={**SYNCING, "idle_after_sync_ms": 0.05})) is None
        assert check(HostDeviceSync, gpu_run()) is None


PAGEABLE = {"pageable_htod_copies": 2.0, "pageable_htod_ms": 6.0, "pageable_copies": 2.0, "pageable_bytes": 2**26}


class TestPageableCopies:
    def test_pageable_memcpy_fires_without_a_dataloader(self):
        causes = [OpCause(op="aten::to", per_step=2.0, ms_per_step=6.0)]
        finding = check(PageableMemcpy, gpu_run(steps=PAGEABLE, pageable_causes=causes))
        assert finding is not None and finding.id == "pageable-memcpy"
        assert finding.evidence["pageable_htod_copies_per_step"] == 2.0 and finding.evidence["pageable_htod_ms"] == 6.0
        assert finding.estimated_saving == pytest.approx(0.06) and "aten::to" in finding.advice
        assert check(DataLoaderPinMemory, gpu_run(steps=PAGEABLE)) is None

    def test_an_unpinned_dataloader_takes_it_over(self):
        data = gpu_run(steps=PAGEABLE, loaders=[make_loader(num_workers=4, wait_total_ms=100)])
        reported = {finding.id for finding in evaluate(data, Config())}
        assert "dataloader-pin-memory" in reported and "pageable-memcpy" not in reported  # the engine's precedence
        finding = check(DataLoaderPinMemory, data)
        assert finding is not None and finding.id == "dataloader-pin-memory"
        assert finding.evidence["pin_memory"] is False and finding.evidence["num_workers"] == 4
        assert finding.estimated_saving == pytest.approx(0.06)
        assert "pin_memory=True" in finding.fix and "non_blocking=True" in finding.fix

    def test_a_pinned_dataloader_leaves_other_pageable_copies_to_pageable_memcpy(self):
        loader = make_loader(wait_total_ms=100)
        loader.args["pin_memory"] = True
        data = gpu_run(steps=PAGEABLE, loaders=[loader])
        assert check(DataLoaderPinMemory, data) is None
        assert check(PageableMemcpy, data) is not None

    def test_silent_without_pageable_copies(self):
        data = gpu_run(loaders=[make_loader(wait_total_ms=100)])
        assert check(DataLoaderPinMemory, data) is None and check(PageableMemcpy, data) is None
