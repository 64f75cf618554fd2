"""What to run, and running it exactly as `python SCRIPT ...` / `python -m MODULE ...` would:
as `__main__`, with `sys.argv`, `sys.path[0]` and an absolute `__file__` as python sets them.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PerfdoctorError

PACKAGE_DIR = str(Path(__file__).resolve().parent.parent) + os.sep


@dataclass
class Target:
    """What to run: a script path or a module name, and the arguments it receives untouched."""

    script: str | None = None
    module: str | None = None
    args: list[str] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        return self.module or Path(self.script or "script").name

    def check(self) -> None:
        if self.script is not None:
            path = Path(self.script)
            if not path.exists():
                raise PerfdoctorError(f"script not found: {self.script}")
            if path.is_dir() and not (path / "__main__.py").exists():
                raise PerfdoctorError(f"{self.script} is a directory without __main__.py")
        elif self.module is not None:
            spec = _find_spec(self.module)
            if spec is None:
                raise PerfdoctorError(f"no module named {self.module!r}")
            if spec.submodule_search_locations is not None and _find_spec(f"{self.module}.__main__") is None:
                # python -m runs a package's __main__ submodule
                raise PerfdoctorError(f"{self.module!r} is a package without __main__ and cannot be run with -m")

    def command_line(self) -> list[str]:
        """How to hand this target on to another `perfdoctor run` (a rank under torchrun)."""
        head = ["-m", self.module] if self.module else [str(self.script)]
        return [*head, *self.args]

    def describe(self) -> dict[str, Any]:
        key = "module" if self.module else "script"
        return {key: self.module or self.script, "argv": list(self.args)}

    def run(self) -> None:
        """Execute as __main__, with sys.argv and sys.path[0] as python itself sets them."""
        saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
        try:
            if self.module is not None:
                sys.argv = [self.module, *self.args]  # runpy puts the module's file path in argv[0]
                _set_path0(os.getcwd())
                runpy.run_module(self.module, run_name="__main__", alter_sys=True)
            else:
                assert self.script is not None
                sys.argv = [self.script, *self.args]
                _set_path0(os.path.dirname(os.path.realpath(self.script)))
                _run_script(self.script)
        finally:
            sys.argv = saved_argv
            if saved_path0 is not None:
                _set_path0(saved_path0)


def _run_script(path: str) -> None:
    """`python SCRIPT` for a source file: as __main__, with `__file__` (and the code's file name)
    absolute as Python 3.9+ sets them while sys.argv[0] stays as given; runpy.run_path would
    leave `__file__` relative. A directory, zip or .pyc goes through runpy."""
    import builtins
    import importlib.machinery
    import types
    import zipfile

    absolute = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)  # as python: not normalised
    if not os.path.isfile(absolute) or absolute.endswith((".pyc", ".pyo")) or zipfile.is_zipfile(absolute):
        runpy.run_path(path, run_name="__main__")
        return
    with open(absolute, "rb") as file:
        source = file.read()
    code = compile(source, absolute, "exec", dont_inherit=True)
    module = types.ModuleType("__main__")
    module.__dict__.update(
        __file__=absolute,
        __cached__=None,
        __loader__=importlib.machinery.SourceFileLoader("__main__", absolute),
        __package__=None,
        __spec__=None,
        __builtins__=builtins,
    )
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        exec(code, module.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _find_spec(name: str) -> Any:
    """The module's spec as `python -m` would find it (the current directory first), or None."""
    import importlib.util

    sys.path.insert(0, os.getcwd())
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    finally:
        sys.path.pop(0)


def _set_path0(entry: str) -> None:
    if sys.path:
        sys.path[0] = entry
    else:
        sys.path.append(entry)


def is_own_frame(filename: str) -> bool:
    """perfdoctor's frames and runpy's (which read "<frozen runpy>" on 3.11+)."""
    return filename.startswith(PACKAGE_DIR) or filename in (runpy.__file__, "<frozen runpy>")


def print_user_traceback(error: BaseException) -> None:
    """The traceback as python would print it, without perfdoctor's frames anywhere in it (the
    wrappers around torch's methods sit between the user's frames), chained exceptions included.
    An error raised in perfdoctor itself, with no frame of the user's, is shown whole."""
    shown = traceback.TracebackException(type(error), error, error.__traceback__)
    if any(not is_own_frame(frame.filename) for frame in shown.stack) or isinstance(error, SyntaxError):
        _strip_own_frames(shown, set())
    for line in shown.format():
        sys.stderr.write(line)
    sys.stderr.flush()


def _strip_own_frames(shown: traceback.TracebackException, seen: set[int]) -> None:
    if id(shown) in seen:
        return
    seen.add(id(shown))
    shown.stack = traceback.StackSummary.from_list([frame for frame in shown.stack if not is_own_frame(frame.filename)])
    for chained in (shown.__cause__, shown.__context__, *(getattr(shown, "exceptions", None) or [])):
        if chained is not None:
            _strip_own_frames(chained, seen)
