"""Steps and phases for every kind of training loop: manual updates without an optimizer, closures
(LBFGS; Lightning's `optimizer.step(closure)`), gradient accumulation, GANs, GradScaler, optimizers
stepped from backward hooks. Time goes to the phase that ran, whatever call it ran inside."""

import time

import pytest
import torch
from torch import nn

from perfdoctor.collect.stepclock import MODE_BACKWARD, MODE_OPTIMIZER, StepClock, StopRun


class Sleepy(nn.Module):
    """A layer whose forward takes at least `seconds` (a planted, known forward cost)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.linear = nn.Linear(8, 8)

    def forward(self, x):
        time.sleep(self.seconds)
        return self.linear(x)


class SlowBackward(torch.autograd.Function):
    """Identity whose backward takes at least `seconds`."""

    @staticmethod
    def forward(ctx, x, seconds):
        ctx.seconds = seconds
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        time.sleep(ctx.seconds)
        return grad, None


def model(forward_s=0.0, backward_s=0.0, out=2):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = Sleepy(forward_s)
            self.head = nn.Linear(8, out)

        def forward(self, x):
            x = self.body(x)
            if backward_s:
                x = SlowBackward.apply(x, backward_s)
            return self.head(x)

    return Net()


@pytest.fixture
def clock():
    clock = StepClock()
    clock.install()
    yield clock
    clock.uninstall()


def data():
    return torch.randn(4, 8), torch.randint(0, 2, (4,))


def loss_of(net, x, y):
    return nn.functional.cross_entropy(net(x), y)


def steps_ms(clock, column):
    return [ns / 1e6 for ns in getattr(clock.steps, column)]


def test_manual_sgd_without_an_optimizer_gives_one_step_per_backward(clock):
    net = model()
    x, y = data()
    for _ in range(10):  # word_language_model's loop: no optimizer, no DataLoader
        net.zero_grad()
        loss_of(net, x, y).backward()
        for p in net.parameters():
            p.data.add_(p.grad, alpha=-0.1)
    clock.finish()
    assert clock.mode == MODE_BACKWARD
    assert clock.step_count == 10
    assert all(ns > 0 for ns in clock.steps.backward_ns)
    assert all(ns > 0 for ns in list(clock.steps.forward_ns)[1:])


def test_evaluation_between_manual_epochs_is_not_a_step(clock):
    net = model()
    x, y = data()
    for epoch in range(2):
        for _ in range(4):
            net.zero_grad()
            loss_of(net, x, y).backward()
            for p in net.parameters():
                p.data.add_(p.grad, alpha=-0.1)
        with torch.no_grad():  # evaluation: 200 ms that belong to no step
            for _ in range(4):
                net(x)
                time.sleep(0.05)
    clock.finish()
    assert clock.step_count == 8
    durations = [(e - s) / 1e6 for s, e in zip(clock.steps.start_ns, clock.steps.end_ns)]
    assert max(durations[1:]) < 200, durations


def test_max_steps_stops_a_manual_loop(clock):
    clock.max_steps = 3
    net = model()
    x, y = data()
    with pytest.raises(StopRun):
        for _ in range(10):
            net.zero_grad()
            loss_of(net, x, y).backward()
    assert clock.step_count == 3


def test_lbfgs_closure_is_one_step_with_its_forward_and_backward_inside(clock):
    forward_s = 0.005
    net = model(forward_s=forward_s)
    x, y = data()
    optimizer = torch.optim.LBFGS(net.parameters(), lr=0.1, max_iter=4)
    calls, closure_s, zero_grad_s = [], [0.0], [0.0]

    def closure():
        calls.append(1)
        started = time.perf_counter()
        optimizer.zero_grad()
        zero_grad_s[0] += time.perf_counter() - started
        loss = loss_of(net, x, y)
        loss.backward()
        closure_s[0] += time.perf_counter() - started
        return loss

    # LBFGS's own work per step, as the script sees it: step() less its closures, plus zero_grad.
    own_ms, calls_per_step = [], []
    for _ in range(5):
        closure_s[0] = zero_grad_s[0] = 0.0
        before, started = len(calls), time.perf_counter()
        optimizer.step(closure)
        own_ms.append((time.perf_counter() - started - closure_s[0] + zero_grad_s[0]) * 1e3)
        calls_per_step.append(len(calls) - before)
    assert clock.mode == MODE_OPTIMIZER and clock.step_count == 5
    assert len(calls) > 5  # several forward/backward per step
    forward, optimizer_ms = steps_ms(clock, "forward_ns"), steps_ms(clock, "optimizer_ns")
    for i in range(1, 5):
        sleeps_ms = calls_per_step[i] * forward_s * 1e3
        assert forward[i] >= sleeps_ms * 0.9  # every sleeping forward of the step, charged to forward
        # Charged to the optimizer, the forwards' sleeps would add their whole length to its own
        # work; half of it is the margin for our hooks (LBFGS's own work grows on a busy machine,
        # the sleeps do not, so no fixed bound would do).
        assert optimizer_ms[i] < own_ms[i] + sleeps_ms / 2, (optimizer_ms, own_ms, calls_per_step)
    assert all(ns > 0 for ns in list(clock.steps.loss_ns)[1:])  # the loss in the closure: the loop's own


def test_forward_and_backward_inside_optimizer_step_are_not_optimizer_time(clock):
    """Lightning's automatic optimization: training_step and backward run in step(closure)."""
    net = model(forward_s=0.03, backward_s=0.03)
    x, y = data()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    closure_s = [0.0]

    def closure():
        started = time.perf_counter()
        loss = loss_of(net, x, y)
        closure_s[0] += time.perf_counter() - started  # zero_grad is the optimizer's
        optimizer.zero_grad()
        started = time.perf_counter()
        loss.backward()
        closure_s[0] += time.perf_counter() - started
        return loss

    own_ms = []  # what is left of step(): SGD's update and zero_grad, as the script times it
    for _ in range(6):
        closure_s[0], started = 0.0, time.perf_counter()
        optimizer.step(closure)
        own_ms.append((time.perf_counter() - started - closure_s[0]) * 1e3)
    forward, backward = steps_ms(clock, "forward_ns"), steps_ms(clock, "backward_ns")
    optimizer_ms = steps_ms(clock, "optimizer_ns")
    for i in range(1, 6):
        assert forward[i] >= 30 * 0.9 and backward[i] >= 30 * 0.9
        # either planted sleep charged to the optimizer would add 30 ms to what step() did itself
        assert optimizer_ms[i] < own_ms[i] + 15, (optimizer_ms, own_ms)


def test_gradient_accumulation_without_a_dataloader(clock):
    net = model()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = data()
    for i in range(12):
        (loss_of(net, x, y) / 4).backward()
        if (i + 1) % 4 == 0:
            optimizer.step()
            optimizer.zero_grad()
    assert clock.mode == MODE_OPTIMIZER and clock.step_count == 3


def test_gan_loop_counts_iterations(clock):
    generator, critic = model(out=8), model()
    g_opt = torch.optim.Adam(generator.parameters())
    d_opt = torch.optim.Adam(critic.parameters())
    x, y = data()
    for _ in range(5):  # dcgan: two backwards for D, one for G, two optimizers
        critic.zero_grad()
        loss_of(critic, x, y).backward()
        loss_of(critic, generator(x).detach(), y).backward()
        d_opt.step()
        generator.zero_grad()
        loss_of(critic, generator(x), y).backward()
        g_opt.step()
    assert clock.step_count == 5
    assert [type(m).__name__ for m in clock.hooks.attached()] == ["Net", "Net"]  # both models timed


def test_grad_scaler_counts_a_skipped_step(clock):
    net = model()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    x, y = data()
    for i in range(6):
        optimizer.zero_grad()
        loss = loss_of(net, x, y)
        if i == 2:
            loss = loss * float("inf")  # inf gradients: GradScaler skips optimizer.step()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    assert clock.step_count == 6


def test_optimizer_stepped_from_backward_hooks_leaves_backward_the_step(clock):
    net = model()
    optimizers = {p: torch.optim.SGD([p], lr=0.1) for p in net.parameters()}
    def step_in_backward(p):
        optimizers[p].step()
        optimizers[p].zero_grad()

    for p in net.parameters():
        p.register_post_accumulate_grad_hook(step_in_backward)
    x, y = data()
    for _ in range(5):
        loss_of(net, x, y).backward()
    clock.finish()
    assert clock.mode == MODE_BACKWARD and clock.step_count == 5
    assert all(ns > 0 for ns in clock.steps.optimizer_ns)


def test_phases_never_exceed_the_step(clock):
    net = model(forward_s=0.002)
    optimizer = torch.optim.LBFGS(net.parameters(), max_iter=3)
    x, y = data()

    def closure():
        optimizer.zero_grad()
        loss = loss_of(net, x, y)
        loss.backward()
        return loss

    for _ in range(4):
        optimizer.step(closure)
    s = clock.steps
    for i in range(len(s)):
        phases = s.dataloader_ns[i] + s.forward_ns[i] + s.backward_ns[i] + s.optimizer_ns[i]
        assert phases <= s.end_ns[i] - s.start_ns[i]
