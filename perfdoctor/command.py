"""The shape of a subcommand: it adds its arguments to a parser and runs, returning an exit status."""

from __future__ import annotations

import argparse


class Command:
    name: str
    help: str

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError
