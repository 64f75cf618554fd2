"""The step clock on real torch objects, in-process."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from collect_helpers import Harness
from perfdoctor.collect.collectors.dataloader import DataLoaderProbe
from perfdoctor.collect.stepclock import MODE_BATCH, MODE_OPTIMIZER, StepClock, StopRun


@pytest.fixture
def clock(tmp_path):
    clock = StepClock()
    clock.install()
    probe = DataLoaderProbe()
    probe.start(Harness(tmp_path, clock=clock).ctx)
    yield clock
    probe.stop()
    clock.uninstall()


def loader(batches=6, batch_size=4):
    data = TensorDataset(torch.randn(batches * batch_size, 8), torch.randint(0, 2, (batches * batch_size,)))
    return DataLoader(data, batch_size=batch_size)


def model_and_optimizer():
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def train_step(model, optimizer, x, y, step=True):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    if step:
        optimizer.step()
        optimizer.zero_grad()


def test_each_optimizer_step_ends_a_step_with_its_phases(clock):
    model, optimizer = model_and_optimizer()
    for x, y in loader(6):
        train_step(model, optimizer, x, y)
    steps = clock.steps
    assert clock.mode == MODE_OPTIMIZER and len(steps) == 6
    assert list(steps.batches) == [1] * 6
    for i in range(6):
        assert steps.end_ns[i] > steps.start_ns[i]
        for column in (steps.dataloader_ns, steps.forward_ns, steps.backward_ns, steps.optimizer_ns):
            assert column[i] > 0
        phases = steps.dataloader_ns[i] + steps.forward_ns[i] + steps.backward_ns[i] + steps.optimizer_ns[i]
        assert phases <= steps.end_ns[i] - steps.start_ns[i]
    # contiguous: each step starts where the previous ended
    assert all(steps.start_ns[i] == steps.end_ns[i - 1] for i in range(1, 6))


def test_without_an_optimizer_each_batch_is_a_step(clock):
    model, _ = model_and_optimizer()
    with torch.no_grad():
        for x, _ in loader(5):
            model(x)
    clock.finish()
    assert clock.mode == MODE_BATCH and len(clock.steps) == 5
    assert list(clock.steps.batches) == [1] * 5
    assert all(ns > 0 for ns in clock.steps.forward_ns)


def test_gradient_accumulation_folds_micro_batches_into_one_step(clock):
    model, optimizer = model_and_optimizer()
    for i, (x, y) in enumerate(loader(12)):
        train_step(model, optimizer, x, y, step=(i + 1) % 4 == 0)
    assert clock.mode == MODE_OPTIMIZER
    assert list(clock.steps.batches) == [4, 4, 4]


def test_a_second_optimizer_belongs_to_the_same_step(clock):
    generator, g_opt = model_and_optimizer()
    critic, c_opt = model_and_optimizer()
    for x, y in loader(5):
        train_step(critic, c_opt, x, y)
        train_step(generator, g_opt, x, y)
    assert len(clock.steps) == 5


def test_loss_and_preprocessing_gaps_are_timed_apart(clock):
    import time

    model, optimizer = model_and_optimizer()
    for x, y in loader(4):
        time.sleep(0.004)  # per-sample work in the loop, before the forward
        out = model(x)
        time.sleep(0.002)  # a slow loss outside the model
        torch.nn.functional.cross_entropy(out, y).backward()
        optimizer.step()
    steps = clock.steps
    assert all(ns >= 4_000_000 for ns in steps.before_forward_ns)
    assert all(ns >= 2_000_000 for ns in steps.loss_ns)
    for i in range(len(steps)):  # the two gaps are parts of the step's "other" time, never more
        phases = steps.dataloader_ns[i] + steps.forward_ns[i] + steps.backward_ns[i] + steps.optimizer_ns[i]
        other = steps.end_ns[i] - steps.start_ns[i] - phases
        assert steps.before_forward_ns[i] + steps.loss_ns[i] <= other


def test_max_steps_stops_the_script_even_through_except_exception(tmp_path):
    clock = StepClock(max_steps=3)
    clock.install()
    try:
        model, optimizer = model_and_optimizer()
        with pytest.raises(StopRun):
            for x, y in loader(10):
                try:
                    train_step(model, optimizer, x, y)
                except Exception:
                    pass
        assert len(clock.steps) == 3
    finally:
        clock.uninstall()


def test_uninstall_restores_torch():
    original = (torch.autograd.backward, torch.optim.Optimizer.zero_grad, torch.nn.Module.zero_grad)
    clock = StepClock()
    clock.install()
    assert torch.autograd.backward is not original[0]
    clock.uninstall()
    assert (torch.autograd.backward, torch.optim.Optimizer.zero_grad, torch.nn.Module.zero_grad) == original


def test_listeners_hear_every_step_end(clock):
    heard = []
    clock.add_listener(heard.append)
    model, optimizer = model_and_optimizer()
    for x, y in loader(4):
        train_step(model, optimizer, x, y)
    assert heard == [0, 1, 2, 3]


def test_after_discovery_only_top_level_modules_carry_hooks(clock):
    from torch.nn.modules import module as nn_module

    from perfdoctor.collect.stepclock import DISCOVERY_STEPS

    model, optimizer = model_and_optimizer()
    for x, y in loader(DISCOVERY_STEPS + 3):
        train_step(model, optimizer, x, y)
    assert not nn_module._global_forward_pre_hooks and not nn_module._global_forward_hooks
    assert model._forward_pre_hooks and not model[0]._forward_pre_hooks  # the model, not its layers
    assert all(ns > 0 for ns in clock.steps.forward_ns[DISCOVERY_STEPS:])


def test_validation_between_epochs_is_not_charged_to_the_next_step(clock):
    import time

    model, optimizer = model_and_optimizer()
    validation_ends = []
    for epoch in range(2):
        for x, y in loader(3):  # a new training loader each epoch
            train_step(model, optimizer, x, y)
        with torch.no_grad():
            for x, _ in loader(4):  # validation
                model(x)
                time.sleep(0.01)
        validation_ends.append(time.perf_counter_ns() - clock.origin_ns)
    steps = clock.steps
    first_of_second_epoch = 3
    # The step starts with the new epoch's iterator, after the validation: never before its end,
    # however slow a busy machine makes either.
    assert steps.start_ns[first_of_second_epoch] >= validation_ends[0]
    assert steps.batches[first_of_second_epoch] == 1
