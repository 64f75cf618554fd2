"""The type checker, as CI runs it: mypy (the version pinned in the test extra) over the package
with the project's configuration ([tool.mypy] in pyproject.toml). A type error anywhere in the
package fails this test with mypy's own messages.

Why mypy rather than pyright: it is the checker typeshed, numpy and msgspec are checked against
and ship plugins and stubs for, it runs from Python (this test calls its API, so `.ci/run`
needs no second command and no Node.js runtime), and it is configured in pyproject.toml next to
the rest of the project's settings.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import mypy.api
import mypy.version

from conftest import REPO

PYPROJECT = REPO / "pyproject.toml"
PINNED = "2.4.1"


def mypy_config() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["mypy"]


def test_mypy_is_the_pinned_version():
    assert mypy.version.__version__ == PINNED, f"the test extra pins mypy=={PINNED}; this is {mypy.version.__version__}"


def test_the_package_type_checks():
    limit = sys.getrecursionlimit()
    try:
        out, err, status = mypy.api.run(
            ["--config-file", str(PYPROJECT), "--cache-dir", str(REPO / ".mypy_cache"), str(REPO / "perfdoctor")]
        )
    finally:  # mypy raises it for itself; the tests that run after this one expect Python's own
        sys.setrecursionlimit(limit)
    assert status == 0, f"mypy found type errors:\n{out}{err}"
    assert "Success: no issues found" in out


def test_no_module_has_its_errors_ignored():
    ignored = [override["module"] for override in mypy_config().get("overrides", []) if override.get("ignore_errors")]
    assert not ignored
    assert not mypy_config().get("ignore_errors") and not mypy_config().get("exclude")
