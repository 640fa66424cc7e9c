"""The `eyespyd` command line: one sub-command per job, each a thin shell over the pipeline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from eyespyd import __version__, config
from eyespyd.errors import ConfigError, EyespydError

EXIT_OK = 0
EXIT_PROBLEM = 1  # the job ran but something failed (e.g. files that could not be read)
EXIT_CONFIG = 2  # the configuration or the command line is wrong


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    try:
        result: int = args.command(args)
        return result
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except EyespydError as exc:
        print(f"eyespyd: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eyespyd",
        description="Sort photos where someone blinked out of a photo session.",
    )
    parser.add_argument("--version", action="version", version=f"eyespyd {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    check = sub.add_parser(
        "check-config",
        help="validate a configuration file and print the effective settings",
        description="Validate a configuration and print the effective settings. Without FILE,"
        " checks the one eyespyd would use: $EYESPYD_CONFIG, else the platform's config file,"
        " else the embedded default.",
    )
    check.add_argument("file", nargs="?", type=Path, metavar="FILE")
    check.add_argument("--watch", type=Path, metavar="DIR", help="inbox override, as for run")
    check.set_defaults(command=cmd_check_config)

    example = sub.add_parser(
        "example-config", help="print a commented configuration with every key and its default"
    )
    example.set_defaults(command=cmd_example_config)
    return parser


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = config.load(args.file, args.watch)
    print(f"# effective settings from {settings.source}")
    print(yaml.safe_dump(config.to_mapping(settings), sort_keys=False), end="")
    return EXIT_OK


def cmd_example_config(args: argparse.Namespace) -> int:
    from eyespyd.schema import example_yaml

    print(example_yaml(), end="")
    return EXIT_OK
