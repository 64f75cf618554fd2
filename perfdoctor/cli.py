"""The command line: one small command class per subcommand.

    perfdoctor run [OPTIONS] SCRIPT [ARGS...]    perfdoctor run [OPTIONS] -m MODULE [ARGS...]
    perfdoctor report PATH... [--out DIR]
    perfdoctor view PATH [--port N] [--no-browser]

An error in perfdoctor's own input is one line on stderr and exit status 2 (traceback with -v).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from . import __version__
from .command import Command, positive_int, positive_number
from .errors import EXIT_USAGE, PerfdoctorError
from .terminal import printable

if TYPE_CHECKING:
    from .config import Config
    from .run.supervisor import SignalInbox


def _step_range(text: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    try:
        first = int(start)
        last = int(end) if sep else first
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START-END (0-based steps, e.g. 6-10), got {text!r}")
    if first < 0 or last < first:
        raise argparse.ArgumentTypeError(f"expected 0 <= START <= END, got {text!r}")
    return first, last


class RunCommand(Command):
    name = "run"
    help = "run a training script under instrumentation and write a report"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.usage = "perfdoctor run [OPTIONS] (SCRIPT | -m MODULE) [ARGS...]"
        parser.add_argument("--out", type=Path, help="run directory (default: perfdoctor-runs/<name>-<time>)")
        parser.add_argument("--max-steps", type=positive_int, help="end the job cleanly after N training steps")
        parser.add_argument(
            "--profile-steps",
            type=_step_range,
            metavar="START-END",
            help="steps to trace with torch.profiler, 0-based and inclusive (default: 6-10, fitted to --max-steps)",
        )
        parser.add_argument("--no-profile", action="store_true", help="do not run torch.profiler")
        parser.add_argument("--profile-stack", action="store_true", help="record Python stacks in the trace (slower)")
        parser.add_argument(
            "--profile-memory", action="store_true",
            help="record allocations in the profiled steps: memory-growth then names the ops whose memory is never freed",
        )
        parser.add_argument("--host-interval", type=positive_number, default=0.5, metavar="SECONDS", help="host sampling interval (default 0.5)")
        parser.add_argument("--config", type=Path, help="pyproject.toml with [tool.perfdoctor] (default: nearest one)")
        parser.add_argument("-q", "--quiet", action="store_true", help="no console summary")
        distributed = parser.add_argument_group(
            "distributed (through torch.distributed.run; each rank is instrumented)",
        )
        distributed.add_argument("--nproc-per-node", metavar="N", help="processes per node: launch the job with torchrun")
        distributed.add_argument("--nnodes", metavar="N[:M]", help="as torchrun's --nnodes")
        distributed.add_argument("--node-rank", metavar="R", help="as torchrun's --node-rank")
        distributed.add_argument("--rdzv-backend", metavar="NAME", help="as torchrun's --rdzv-backend")
        distributed.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="as torchrun's --rdzv-endpoint")
        distributed.add_argument("--rdzv-id", metavar="ID", help="as torchrun's --rdzv-id")
        distributed.add_argument("--master-addr", metavar="HOST", help="as torchrun's --master-addr")
        distributed.add_argument("--master-port", metavar="PORT", help="as torchrun's --master-port")
        distributed.add_argument("--max-restarts", metavar="N", help="as torchrun's --max-restarts")
        parser.add_argument("-m", dest="module", metavar="MODULE", help="run a library module as a script, like python -m")
        parser.add_argument("script", nargs="?", help="the training script; what follows it goes to the script untouched")

    def run(self, args: argparse.Namespace) -> int:
        from .run.supervisor import SignalInbox

        inbox = getattr(args, "signal_inbox", None) or SignalInbox().install()  # from now on a signal ends in a report
        try:
            return self._run(args, inbox)
        finally:
            inbox.restore()

    def _run(self, args: argparse.Namespace, inbox: "SignalInbox") -> int:
        from .collect.collectors.base import RunOptions
        from .collect.session import DistributedIdentity
        from .run.job import JobOptions, run_launcher, run_rank, run_single
        from .run.launch import TORCHRUN_OPTIONS, distributed_run_dir, launched_by_perfdoctor
        from .run.target import Target
        from .stream.rundir import default_run_dir, tb_run_name

        target = Target(script=args.script, module=args.module, args=list(args.script_args))
        target.check()
        config = _load_config(args.config, Path(args.script).parent if args.script else Path.cwd())
        start, steps = (None, None) if args.profile_steps is None else (args.profile_steps[0], args.profile_steps[1] - args.profile_steps[0] + 1)
        options = RunOptions(
            max_steps=args.max_steps,
            profile=not args.no_profile,
            profile_start=start,
            profile_steps=steps,
            profile_stack=args.profile_stack,
            profile_memory=args.profile_memory,
            host_interval_s=args.host_interval,
            run_name=tb_run_name(args.module or Path(target.display_name).stem or "run"),  # where traces and scalars go
        )
        job = JobOptions(out=args.out, options=options, quiet=args.quiet, config=config, inbox=inbox)
        if args.nproc_per_node is not None:
            out = args.out or default_run_dir(target.display_name)
            torchrun_args = [f"{flag}={getattr(args, dest)}" for flag, dest in TORCHRUN_OPTIONS if getattr(args, dest) is not None]
            if args.nnodes in (None, "1", "1:1") and not (args.rdzv_endpoint or args.master_addr or args.master_port):
                torchrun_args.insert(0, "--standalone")  # one machine: torchrun picks a free port
            return run_launcher(target, job, out, torchrun_args, [*_rank_options(args, out), *target.command_line()])
        identity = DistributedIdentity.from_env()
        if identity.rank is None:
            return run_single(target, job, args.out or default_run_dir(target.display_name))
        out = args.out or distributed_run_dir(Path(target.display_name).stem) or default_run_dir(target.display_name)
        return run_rank(target, job, out, identity, launched_by_perfdoctor())


class ReportCommand(Command):
    name = "report"
    help = "analyse a run directory or torch.profiler traces again and write report.json and report.html"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a run directory, a trace file, or a directory of traces")
        parser.add_argument("--out", type=Path, help="where to write the reports (default: beside the input)")
        parser.add_argument("--config", type=Path, help="pyproject.toml with [tool.perfdoctor] (default: nearest one)")
        parser.add_argument("-q", "--quiet", action="store_true", help="no console summary")

    def run(self, args: argparse.Namespace) -> int:
        from .pipeline import report_paths

        config = _load_config(args.config, Path.cwd())
        try:
            report_paths(args.paths, args.out, config, quiet=args.quiet)
        except PerfdoctorError:
            raise
        except OSError as error:  # while writing: the disk filled up, a permission changed meanwhile
            raise PerfdoctorError(f"cannot write the reports: {error.strerror or error}") from error
        except Exception as error:  # a bug of ours, met on this input: still one line (-v: the traceback)
            raise PerfdoctorError(
                f"internal error while reporting ({type(error).__name__}: {error}); `perfdoctor -v report ...` shows the traceback"
            ) from error
        return 0


class ViewCommand(Command):
    name = "view"
    help = "serve a run's report and trace view (or every run below a folder) on localhost"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", type=Path, metavar="PATH", help="a run directory, a folder of runs, or a folder of traces")
        parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
        parser.add_argument("--no-browser", action="store_true", help="print the address without opening a browser")

    def run(self, args: argparse.Namespace) -> int:
        from .viewer.server import serve

        return serve(args.path, port=args.port, open_browser=not args.no_browser)


def _rank_options(args: argparse.Namespace, out: Path) -> list[str]:
    """The `run` options each rank of a launched job gets: ours, minus the launch itself."""
    options = ["--out", str(out), "-q", "--host-interval", str(args.host_interval)]
    if args.max_steps is not None:
        options += ["--max-steps", str(args.max_steps)]
    if args.profile_steps is not None:
        options += ["--profile-steps", f"{args.profile_steps[0]}-{args.profile_steps[1]}"]
    if args.no_profile:
        options.append("--no-profile")
    if args.profile_stack:
        options.append("--profile-stack")
    if args.profile_memory:
        options.append("--profile-memory")
    if args.config is not None:
        options += ["--config", str(args.config)]
    return options


def _load_config(path: Path | None, start: Path) -> "Config":
    from .config import load_config

    if path is not None and not path.is_file():
        raise PerfdoctorError(f"config file not found: {path}")
    return load_config(start=start, path=path)


def _gate_commands() -> tuple[Command, ...]:
    from .gate.commands import CheckCommand, DiffCommand

    return CheckCommand(), DiffCommand()


COMMANDS: tuple[Command, ...] = (RunCommand(), ReportCommand(), *_gate_commands(), ViewCommand())


def split_run_argv(argv: list[str], parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """perfdoctor's own options, and everything from SCRIPT (or -m MODULE) on, untouched.

    argparse would eat a `--` or an option meant for the script; so cut the command line at the
    first word that is not one of our options, before argparse sees it.
    """
    takes_value = {
        option
        for action in parser._actions
        if action.option_strings and action.nargs != 0
        for option in action.option_strings
    }
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "-m":
            return argv[: i + 2], argv[i + 2 :]
        if word.startswith("-m") and not word.startswith("--"):  # -mpkg.train
            return [*argv[:i], "-m", word[2:]], argv[i + 1 :]
        if word == "--" or not word.startswith("-") or word == "-":
            if word == "--":
                i += 1
            return argv[: i + 1], argv[i + 1 :]
        if word in takes_value:
            i += 2
        else:
            i += 1
    return argv, []


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="perfdoctor",
        description="Find out why PyTorch training is slow, and what to change.",
    )
    parser.add_argument("--version", action="version", version=f"perfdoctor {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of perfdoctor's own errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    by_name = {}
    for command in COMMANDS:
        # No abbreviated options: split_run_argv must know every option of ours exactly.
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help, allow_abbrev=False)
        command.prepare_parser(sub)
        sub.set_defaults(command_object=command)
        by_name[command.name] = sub
    return parser, by_name


def parse(argv: list[str]) -> argparse.Namespace:
    parser, subparsers = build_parser()
    # Global options come before the subcommand; the run subcommand splits its own line.
    index = next((i for i, word in enumerate(argv) if word in subparsers), None)
    if index is None or argv[index] != "run":
        return parser.parse_args(argv)
    head, rest = argv[: index + 1], argv[index + 1 :]
    own, script_argv = split_run_argv(rest, subparsers["run"])
    args = parser.parse_args(head + own)
    args.script_args = script_argv
    if not args.module and not args.script:
        subparsers["run"].error("a SCRIPT or -m MODULE is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv[:1] or "--verbose" in argv[:1]
    inbox = None
    if "run" in argv[:3]:  # before anything else: a signal from here on ends in a report
        from .run.supervisor import SignalInbox

        inbox = SignalInbox().install()
    try:
        args = parse(argv)
        args.signal_inbox = inbox
        return args.command_object.run(args)
    except PerfdoctorError as error:
        if verbose:
            raise
        print(f"perfdoctor: error: {printable(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("perfdoctor: interrupted", file=sys.stderr)
        return 130
    except SystemExit as stop:  # argparse's own usage errors exit 2, as documented
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    finally:
        if inbox is not None:
            inbox.restore()


if __name__ == "__main__":
    sys.exit(main())
