import importlib
import sys
import textwrap

import msgspec
import pytest

from conftest import make_loader, make_run
from perfdoctor.config import Config
from perfdoctor.errors import PerfdoctorError
from perfdoctor.model.environment import ThreadProbe
from perfdoctor.rules.base import Rule, severity_for
from perfdoctor.rules.registry import all_rules, builtin_rule_classes, builtin_rules, evaluate, rule_modules

WAITING = {"dataloader": 0.60, "forward": 0.15, "backward": 0.20, "optimizer": 0.03, "other": 0.02}
CPU_IDS = {
    "dataloader-bottleneck", "dataloader-persistent-workers", "dataloader-cpu-saturated",
    "cpu-thread-oversubscription", "main-loop-preprocessing", "host-overhead-bound", "cpu-contention",
}


def waiting_run():
    return make_run(WAITING, step_ms=64.0, loaders=[make_loader(wait_total_ms=3840, cores_busy=0.1)])


def all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


def test_every_rule_class_in_the_package_is_registered_without_a_list():
    """Rules register themselves by being defined in a module of perfdoctor.rules: a Rule
    subclass with an id that the engine would not run fails here."""
    for name in rule_modules():
        importlib.import_module(name)
    defined = {
        cls for cls in all_subclasses(Rule)
        if cls.__module__.startswith("perfdoctor.") and cls.__module__ in sys.modules and "id" in vars(cls)
    }
    registered = set(builtin_rule_classes())
    assert defined == registered, defined ^ registered
    assert len(registered) == 27
    assert not any(hasattr(importlib.import_module(name), "RULES") for name in rule_modules())  # no lists to forget


def test_a_rule_added_in_a_new_module_runs_without_touching_the_engine(tmp_path, monkeypatch):
    import perfdoctor.rules as package

    (tmp_path / "extra_for_test.py").write_text(textwrap.dedent('''
        from perfdoctor.rules.base import Rule

        class StepsCounted(Rule):
            id = "test-steps-counted"
            area = "custom"

            def check(self, data, limits):
                return self.finding(title="counted", evidence={"steps": data.steps.count}, saving=0.01, advice="a", fix="b")
    '''))
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path)])
    try:
        assert "test-steps-counted" in {rule.id for rule in builtin_rules()}
        assert "test-steps-counted" in {finding.id for finding in evaluate(make_run(), Config())}
    finally:
        sys.modules.pop("perfdoctor.rules.extra_for_test", None)


def test_builtin_rules_cover_the_cpu_catalogue_with_unique_kebab_ids():
    ids = [rule.id for rule in builtin_rules()]
    assert len(ids) == len(set(ids))
    assert CPU_IDS <= set(ids)
    assert all(rule_id == rule_id.lower() and " " not in rule_id for rule_id in ids)


def test_findings_are_sorted_by_saving_and_carry_the_contract_fields():
    data = waiting_run()
    data.environment.threads.intra_op = 16
    data.environment.thread_probe = ThreadProbe(threads=16, cores=2, ms_at_threads=12.0, ms_at_cores=10.0)
    findings = evaluate(data, Config())
    assert [f.id for f in findings] == ["dataloader-bottleneck", "cpu-thread-oversubscription"]
    savings = [f.estimated_saving for f in findings]
    assert savings == sorted(savings, reverse=True)
    for finding in findings:
        fields = msgspec.to_builtins(finding)
        assert set(fields) >= {"id", "severity", "title", "evidence", "estimated_saving", "advice", "fix", "docs"}
        assert finding.docs.startswith("https://pytorch.org/")


def test_disable_and_threshold_overrides_from_config():
    assert [f.id for f in evaluate(waiting_run(), Config(disable=["dataloader-bottleneck"]))] == []
    config = Config(rules={"dataloader-bottleneck": {"min_wait_share": 0.9}})
    assert evaluate(waiting_run(), config) == []


@pytest.mark.parametrize(
    "config, message",
    [
        (Config(disable=["no-such-rule"]), "unknown rule id"),
        (Config(rules={"dataloader-bottleneck": {"no_such_threshold": 1}}), "unknown threshold"),
        (Config(rules={"dataloader-bottleneck": {"min_wait_share": "high"}}), "must be a float"),
        (Config(rules={"dataloader-persistent-workers": {"min_epochs": 2.5}}), "must be a int"),
    ],
)
def test_bad_configuration_is_a_clear_error(config, message):
    with pytest.raises(PerfdoctorError, match=message):
        evaluate(waiting_run(), config)


def test_a_failing_rule_is_skipped_with_a_note():
    class Broken(builtin_rules()[0].__class__):
        id = "broken-rule"

        def check(self, data, limits):
            raise RuntimeError("boom")

    data = waiting_run()
    assert evaluate(data, Config(), rules=[Broken()]) == []
    assert any("broken-rule" in note and "boom" in note for note in data.notes)


def test_severity_bands():
    assert [severity_for(s) for s in (0.5, 0.3, 0.2, 0.1, 0.05)] == ["critical", "critical", "warning", "warning", "info"]


def test_third_party_rules_plug_in_through_an_entry_point(tmp_path, monkeypatch):
    package = tmp_path / "extra_rules.py"
    package.write_text(textwrap.dedent('''
        from perfdoctor.rules.base import Rule

        class AlwaysSlow(Rule):
            id = "team-always-slow"
            area = "custom"

            def check(self, data, limits):
                return self.finding(title="slow", evidence={"step_ms": data.steps.mean_ms}, saving=0.05, advice="a", fix="b")
    '''))
    dist = tmp_path / "extra_rules-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-rules\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[perfdoctor.rules]\nslow = extra_rules:AlwaysSlow\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "team-always-slow" in [rule.id for rule in all_rules()]
    findings = evaluate(make_run(), Config())
    assert [(f.id, f.evidence["step_ms"], f.severity) for f in findings] == [("team-always-slow", 20.0, "info")]
    sys.modules.pop("extra_rules", None)
