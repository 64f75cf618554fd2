"""Nothing perfdoctor attaches changes what the script can do with its model: save, copy, pickle
for multiprocessing, state_dict, torch.compile, torch.jit, its own hooks. And finding the model
always ends."""

import copy
import io
import pickle
import time

import pytest
import torch
from torch import nn

from perfdoctor.collect.invisible import InvisibleHook
from perfdoctor.collect.stepclock import StepClock
from perfdoctor.collect.toplevel import DISCOVERY_STEPS


class Sleepy(nn.Module):
    def __init__(self, seconds=0.0):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        if self.seconds:
            time.sleep(self.seconds)
        return x


def make_model():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2), Sleepy())


@pytest.fixture
def clock():
    clock = StepClock()
    clock.install()
    yield clock
    clock.uninstall()


def train(model, optimizer, steps, before_step=None):
    x, y = torch.randn(4, 8), torch.randint(0, 2, (4,))
    for i in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if before_step:
            before_step(i)


def ours(module):
    return [h for m in module.modules() for d in (m._forward_pre_hooks, m._forward_hooks) for h in d.values() if isinstance(h, InvisibleHook)]


def hooked_model(clock):
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train(model, optimizer, 3)
    assert ours(model), "the model was not hooked"
    return model, optimizer


def test_torch_save_of_the_whole_model_works_and_carries_nothing_of_ours(clock, tmp_path):
    model, _ = hooked_model(clock)
    path = tmp_path / "model.pt"
    torch.save(model, path)  # word_language_model checkpoints this way
    assert b"perfdoctor" not in path.read_bytes()
    loaded = torch.load(path, weights_only=False)
    assert not ours(loaded)
    assert ours(model)  # the model itself keeps its hooks
    x = torch.randn(3, 8)
    assert torch.equal(loaded(x), model(x))


def test_deepcopy_is_clean_and_a_copy_is_not_timed_as_the_model(clock):
    model, optimizer = hooked_model(clock)
    ema = copy.deepcopy(model)  # an EMA or teacher model
    assert not ours(ema)
    assert not ours(copy.copy(model)[0])
    ema[3].seconds = 0.03
    x = torch.randn(4, 8)

    def ema_forward(i):
        with torch.no_grad():
            ema(x)

    before = clock.step_count
    train(model, optimizer, 3, before_step=ema_forward)
    forward = list(clock.steps.forward_ns)[before + 1:]
    assert forward and all(ns < 20_000_000 for ns in forward), forward  # the copy's 30 ms are not forward


def test_pickling_for_multiprocessing_works(clock):
    from multiprocessing.reduction import ForkingPickler

    model, _ = hooked_model(clock)
    model.share_memory()
    data = bytes(ForkingPickler.dumps(model))
    assert b"perfdoctor" not in data
    assert not ours(pickle.loads(data))
    buffer = io.BytesIO()
    pickle.dump(model, buffer)
    assert b"perfdoctor" not in buffer.getvalue()


def test_state_dict_is_unchanged(clock):
    model, _ = hooked_model(clock)
    fresh = make_model()
    state = model.state_dict()
    assert list(state) == list(fresh.state_dict())
    fresh.load_state_dict(state)


def test_a_subclass_with_its_own_getstate_is_covered(clock):
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = make_model()

        def forward(self, x):
            return self.net(x)

        def __getstate__(self):
            return self.__dict__  # not a copy: stripping must not change the module

    model = Custom()
    train(model, torch.optim.SGD(model.parameters(), lr=0.1), 3)
    assert ours(model)
    clone = copy.deepcopy(model)
    assert not ours(clone) and ours(model)


def test_the_scripts_own_hooks_run_and_come_off(clock):
    model = make_model()
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append("pre"))
    handle = model.register_forward_hook(lambda m, a, out: out * 2)  # replaces the output
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train(model, optimizer, 3)
    assert ours(model)
    x = torch.randn(2, 8)
    with torch.no_grad():
        doubled = model(x)
        handle.remove()
        plain = model(x)
    assert torch.allclose(doubled, plain * 2)
    assert calls and len(model._forward_hooks) == 1  # ours left, the script's gone


def test_torch_jit_script_and_trace_of_a_hooked_model(clock):
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))  # scriptable
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train(model, optimizer, 3)
    assert ours(model)
    scripted = torch.jit.script(model)
    x = torch.randn(2, 8)
    assert torch.allclose(scripted(x), model(x))
    assert ours(model)  # back in place after scripting
    traced = torch.jit.trace(model, x)
    assert torch.allclose(traced(x), model(x))
    before = clock.step_count
    train(model, optimizer, 2)
    assert clock.step_count == before + 2 and clock.steps.forward_ns[-1] > 0


def test_torch_compile_neither_breaks_nor_recompiles(clock):
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = make_model()
    compiled = torch.compile(model, backend="eager")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train(compiled, optimizer, DISCOVERY_STEPS + 4)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])
    assert "OptimizedModule" in clock.modules.names  # timed from outside the compiled region
    assert all(ns > 0 for ns in list(clock.steps.forward_ns)[1:])
    torch._dynamo.reset()


def test_compiling_a_model_after_it_was_hooked_adds_no_graph_break(clock):
    import torch._dynamo
    from torch._dynamo.utils import counters

    model, optimizer = hooked_model(clock)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(model, backend="eager")
    train(compiled, optimizer, 3)
    assert counters["stats"]["unique_graphs"] == 1 and sum(counters["graph_break"].values()) == 0
    torch._dynamo.reset()


def test_no_global_module_hooks_ever(clock):
    from torch.nn.modules import module as nn_module

    model, optimizer = hooked_model(clock)
    train(model, optimizer, 3)
    assert not nn_module._global_forward_pre_hooks and not nn_module._global_forward_hooks
    assert not ours(model[0])  # the model, not its layers


def test_finding_the_model_ends_even_when_no_step_ever_ends(clock):
    model = make_model()
    x = torch.randn(4, 8)
    for _ in range(20):  # forward and backward, never an optimizer, no DataLoader: each backward is a step
        model(x).sum().backward()
    assert clock.modules.done
    assert clock.step_count >= 19


def test_nothing_is_attached_when_the_script_never_trains(clock):
    model = make_model()
    with torch.no_grad():
        for _ in range(50):
            model(torch.randn(2, 8))
    assert not ours(model) and clock.step_count == 0 and not clock.modules.started


def test_uninstall_takes_every_hook_and_patch_off():
    clock = StepClock()
    original = (nn.Module.__getstate__, torch.jit.script)
    clock.install()
    model = make_model()
    train(model, torch.optim.SGD(model.parameters(), lr=0.1), 3)
    assert ours(model)
    clock.uninstall()
    assert not ours(model)
    assert (nn.Module.__getstate__, torch.jit.script) == original
