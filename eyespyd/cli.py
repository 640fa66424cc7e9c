"""The `eyespyd` command line: one sub-command per job, each a thin shell over the pipeline."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from eyespyd import __version__, config
from eyespyd.decode import is_photo_name
from eyespyd.errors import ConfigError, EyespydError

if TYPE_CHECKING:
    from eyespyd.pipeline import Pipeline, Result

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

    run = sub.add_parser(
        "run",
        help="watch the inboxes and route every frame as it lands (the service)",
        description="Watch the configured inboxes and route each complete frame to keep/, blink/"
        " or review/ with its RAW/JPEG twin and sidecars. SIGHUP reloads the configuration;"
        " SIGTERM and SIGINT finish the frame in hand and exit.",
    )
    _add_config_options(run)
    run.add_argument(
        "--watch",
        type=Path,
        metavar="DIR",
        help="watch DIR instead (keep/, blink/, review/ beside it)",
    )
    run.add_argument(
        "--once", action="store_true", help="route what is in the inboxes now, then exit"
    )
    run.set_defaults(command=cmd_run)

    report = sub.add_parser(
        "report",
        help="a session's counts by verdict and the frames sent to blink/ and review/",
    )
    report.add_argument("--session", type=int, metavar="N", help="session (default: the latest)")
    report.add_argument(
        "--ledger", type=Path, metavar="FILE", help="default: ledger.sqlite3 in the state folder"
    )
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.add_argument(
        "--html",
        type=Path,
        metavar="OUT",
        help="write a contact sheet of the frames sent to blink/ and review/ to OUT",
    )
    report.set_defaults(command=cmd_report)

    service = sub.add_parser(
        "service",
        help="install or remove the systemd service or launchd agent",
        description="Write (or remove) a systemd unit on Linux or a launchd agent on macOS that"
        " runs `eyespyd run` with the current configuration, and print how to enable it.",
    )
    service_sub = service.add_subparsers(metavar="ACTION", required=True)
    install = service_sub.add_parser("install", help="write the service for this configuration")
    uninstall = service_sub.add_parser("uninstall", help="remove the service file")
    for parser_ in (install, uninstall):
        scope = parser_.add_mutually_exclusive_group()
        scope.add_argument(
            "--user", dest="scope", action="store_const", const="user", help="(default)"
        )
        scope.add_argument("--system", dest="scope", action="store_const", const="system")
    _add_config_options(install)
    install.add_argument("--watch", type=Path, metavar="DIR", help="inbox override, as for run")
    install.add_argument(
        "--as-user",
        metavar="NAME",
        default=os.environ.get("SUDO_USER"),
        help="the account a --system service runs as (default: $SUDO_USER)",
    )
    install.set_defaults(command=cmd_service_install)
    uninstall.set_defaults(command=cmd_service_uninstall)

    calibrate = sub.add_parser(
        "calibrate",
        help="propose the threshold your corrections support, and write it when asked",
        description="Propose the verdict threshold that the corrections you made (frames moved"
        " between keep/, blink/ and review/) support, show what would have changed, and with"
        " --write put it in the configuration file.",
    )
    _add_config_options(calibrate)
    calibrate.add_argument(
        "--ledger", type=Path, metavar="FILE", help="default: ledger.sqlite3 in the state folder"
    )
    calibrate.add_argument(
        "--write", action="store_true", help="write the proposed threshold into the configuration"
    )
    calibrate.set_defaults(command=cmd_calibrate)

    classify = sub.add_parser(
        "classify",
        help="print the verdict for photos without moving anything",
        description="Classify files or folders and print each verdict; nothing is moved.",
    )
    classify.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="files or folders (default: the configured inboxes)",
    )
    classify.add_argument("--json", action="store_true", help="one JSON object per line")
    classify.add_argument("--recursive", "-r", action="store_true", help="descend into folders")
    _add_config_options(classify)
    classify.set_defaults(command=cmd_classify)

    evaluate = sub.add_parser(
        "eval",
        help="measure accuracy on folders of known blinks and keepers",
        description="Classify every photo in a folder of blinks and a folder of keepers and print"
        " accuracy, precision, recall, F1, the confusion table, the review rate, ms per photo and"
        " the misclassified files.",
    )
    evaluate.add_argument("--blink", type=Path, required=True, metavar="DIR")
    evaluate.add_argument("--keep", type=Path, required=True, metavar="DIR")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--recursive", "-r", action="store_true", help="descend into folders")
    _add_config_options(evaluate)
    evaluate.set_defaults(command=cmd_eval)

    explain = sub.add_parser(
        "explain",
        help="draw faces, eye crops and probabilities on a photo",
        description="Write a picture of what eyespyd saw: each face box, each eye crop with its"
        " closed probability, and the verdict with its reasons.",
    )
    explain.add_argument("image", type=Path, metavar="IMAGE")
    explain.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.png")
    _add_config_options(explain)
    explain.set_defaults(command=cmd_explain)

    from eyespyd.train.__main__ import arguments as train_arguments

    train = sub.add_parser(
        "train",
        parents=[train_arguments()],
        help="train the eye-state model on your own kept and blink photos (needs eyespyd[train])",
        description="With --keep DIR --blink DIR: train the eye-state model on your own photos,"
        " labelled by the folder they are in, and write it with its model card (metrics of it and"
        " of the shipped model on photos held back) to the data folder; print the configuration"
        " that selects it. Uses no research data unless --data is given. With --data DIR alone:"
        " train the shipped model on a labelled data folder (faces/open, faces/closed). Needs"
        " TensorFlow: pip install 'eyespyd[train]'.",
    )
    train.set_defaults(command=cmd_train)

    example = sub.add_parser(
        "example-config", help="print a commented configuration with every key and its default"
    )
    example.set_defaults(command=cmd_example_config)
    return parser


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="configuration file")


def _pipeline(args: argparse.Namespace) -> Pipeline:
    # Imported here so that check-config and --version do not pay for loading LiteRT.
    from eyespyd.pipeline import Pipeline

    settings = config.load(args.config)
    return Pipeline(settings.decode, settings.verdict, model=settings.model)


def cmd_run(args: argparse.Namespace) -> int:
    from eyespyd import daemon, journal

    settings = config.load(args.config, args.watch)
    journal.setup_logging(settings.log_level)
    return daemon.run(args.config, args.watch, once=args.once)


def cmd_report(args: argparse.Namespace) -> int:
    from eyespyd import record

    with record.Ledger.open(args.ledger, create=False) as ledger:
        if args.html is not None:
            from eyespyd import contact

            print(contact.write_contact_sheet(ledger, args.html, args.session))
        elif args.json:
            print(json.dumps(record.report_json(ledger, args.session), indent=2))
        else:
            print(record.report(ledger, args.session), end="")
    return EXIT_OK


def cmd_service_install(args: argparse.Namespace) -> int:
    from eyespyd import service

    scope: service.Scope = "system" if args.scope == "system" else "user"
    settings = config.load(args.config, args.watch)
    for warning in service.warnings(settings, scope):
        print(f"warning: {warning}", file=sys.stderr)
    for path in service.install(settings, scope, user=args.as_user):
        print(f"wrote {path}")
    print(service.instructions(scope))
    return EXIT_OK


def cmd_service_uninstall(args: argparse.Namespace) -> int:
    from eyespyd import service

    scope: service.Scope = "system" if args.scope == "system" else "user"
    print("stop the service first if it runs:")
    print(service.uninstall_instructions(scope))
    removed = service.uninstall(scope)
    for path in removed:
        print(f"removed {path}")
    if not removed:
        print("no service file was installed")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from eyespyd import calibrate, corrections, record

    settings = config.load(args.config)
    with record.Ledger.open(args.ledger, create=False) as ledger:
        corrections.scan_for_corrections(ledger, settings.folders)  # moves made while stopped
        proposal = calibrate.propose(ledger, settings.verdict)
    print(calibrate.format_proposal(proposal), end="")
    if args.write:
        if proposal.to_write is None:
            print("nothing written")
        else:
            file = config.find_config_file(args.config)
            if file is None:
                raise ConfigError(
                    config.EMBEDDED,
                    [
                        "there is no configuration file to write to; create one with"
                        " `eyespyd example-config > FILE` and pass --config FILE"
                    ],
                )
            calibrate.apply(file, proposal.to_write)
            print(
                f"wrote verdict.threshold {proposal.to_write} to {file};"
                " reload a running service (systemctl --user reload eyespyd)"
            )
    return EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    paths = args.paths or _inboxes(args)
    files = collect(paths, recursive=args.recursive)
    failed = 0
    with Progress(len(files)) as progress:
        for path in files:
            result = pipeline.classify(path)
            failed += result.error is not None
            line = json.dumps(result_json(result)) if args.json else result_line(result)
            progress.clear()
            print(line, flush=True)
            progress.step()
    return EXIT_PROBLEM if failed else EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from eyespyd import evaluate

    pipeline = _pipeline(args)
    labelled = [(p, "blink") for p in collect([args.blink], recursive=args.recursive)]
    labelled += [(p, "keep") for p in collect([args.keep], recursive=args.recursive)]
    results = []
    with Progress(len(labelled)) as progress:
        for path, truth in labelled:
            results.append((pipeline.classify(path), truth))
            progress.step()
    report = evaluate.summarise(results)
    print(json.dumps(report, indent=2) if args.json else evaluate.as_text(report))
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from eyespyd import explain

    pipeline = _pipeline(args)
    explain.draw(pipeline, args.image).save(args.output)
    print(args.output)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from eyespyd.train.__main__ import run

    return run(args)


def _inboxes(args: argparse.Namespace) -> list[Path]:
    """The configured inboxes, made when missing so a first run shows where photos go."""
    inboxes = [folder.inbox for folder in config.load(args.config).folders]
    for inbox in inboxes:
        if not inbox.is_dir():
            inbox.mkdir(parents=True, exist_ok=True)
            print(f"eyespyd: created the inbox {inbox}: put photos there", file=sys.stderr)
    return inboxes


def collect(paths: Sequence[Path], *, recursive: bool) -> list[Path]:
    """Files named on the command line as they are; folders give their photos, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            files += sorted(p for p in found if p.is_file() and is_photo_name(p))
        else:
            files.append(path)  # decode reports a missing or unsupported file as its error
    return files


def result_json(result: Result) -> dict[str, object]:
    from eyespyd.record import faces_json

    return {
        "path": str(result.path),
        "verdict": result.verdict,
        "score": result.score,
        "faces": faces_json(result),
        "reasons": list(result.reasons),
        "source": result.source,
        "ms": result.ms,
        "error": result.error,
    }


def result_line(result: Result) -> str:
    why = "; ".join(result.reasons)
    return f"{result.verdict:6} {result.score:4.2f} {result.ms:6.0f} ms  {result.path}  ({why})"


class Progress:
    """A one-line progress bar on stderr, only on a terminal and for more than a few files, so
    stdout stays clean for JSON and pipes."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.shown = total > 3 and sys.stderr.isatty()

    def __enter__(self) -> Progress:
        self.draw()
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()

    def step(self) -> None:
        self.done += 1
        self.draw()

    def draw(self) -> None:
        if self.shown:
            filled = 30 * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\r[{bar}] {self.done}/{self.total}")
            sys.stderr.flush()

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 50 + "\r")
            sys.stderr.flush()


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = config.load(args.file, args.watch)
    print(f"# effective settings from {settings.source}")
    print(yaml.safe_dump(config.to_mapping(settings), sort_keys=False), end="")
    return EXIT_OK


def cmd_example_config(args: argparse.Namespace) -> int:
    from eyespyd.schema import example_yaml

    print(example_yaml(), end="")
    return EXIT_OK
