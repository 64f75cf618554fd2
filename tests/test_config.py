import pytest

from perfdoctor.config import find_pyproject, load_config
from perfdoctor.errors import PerfdoctorError


def test_reads_the_nearest_pyproject_table(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.perfdoctor]\ndisable = ["host-overhead-bound"]\n'
        '[tool.perfdoctor.rules.dataloader-bottleneck]\nmin_wait_share = 0.2\n'
        "[tool.perfdoctor.budgets]\nmax_step_time_ms = 120\n"
    )
    nested = tmp_path / "src" / "train"
    nested.mkdir(parents=True)
    assert find_pyproject(nested) == tmp_path / "pyproject.toml"
    config = load_config(start=nested)
    assert config.disable == ["host-overhead-bound"]
    assert config.rules == {"dataloader-bottleneck": {"min_wait_share": 0.2}}
    assert config.budgets == {"max_step_time_ms": 120}


def test_no_pyproject_means_defaults(tmp_path):
    assert find_pyproject(tmp_path) is None
    config = load_config(start=tmp_path)
    assert config.path is None and config.disable == [] and config.rules == {}


def test_a_pyproject_without_our_table_means_defaults(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    config = load_config(start=tmp_path)
    assert config.disable == [] and config.rules == {} and config.budgets == {}


@pytest.mark.parametrize(
    "text, message",
    [
        ("[tool.perfdoctor\n", "cannot read"),
        ('[tool.perfdoctor]\ndisable = "host-overhead-bound"\n', "list of rule ids"),
        ("[tool.perfdoctor]\nrules = 3\n", "one table per rule"),
    ],
)
def test_malformed_tables_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(PerfdoctorError, match=message):
        load_config(start=tmp_path)
