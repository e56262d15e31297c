"""``mobilenas platform add|list|show|remove|doctor``: named platforms (:mod:`latency.platforms`),
a measurer with all its settings and the tables built with it, for ``--platform NAME``."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from latency.platforms import Platform, get_platform, list_platforms, platforms_home, remove_platform, save_platform
from mobilenas.cli_doctor import add_doctor_arguments, doctor
from mobilenas.measurer_args import add_measurer_arguments, settings_from_args


def cmd_add(args: argparse.Namespace) -> int:
    measurer, settings = settings_from_args(args)
    platform = Platform(args.name, measurer, asdict(settings), args.description or "")
    if args.replace:  # the tables measured with the old settings are not this platform's any more
        try:
            old = get_platform(args.name)
        except ValueError:
            old = None
        if old is not None and old.record() == platform.record():
            platform = Platform(platform.name, measurer, platform.settings, platform.description, dict(old.tables))
    path = save_platform(platform, replace=args.replace)
    print(f"platform {platform.name} saved in {path}: {_settings_text(platform)}")
    return 0


def _settings_text(platform: Platform) -> str:
    return f"{platform.measurer} " + " ".join(f"{k}={v}" for k, v in platform.to_dict()["settings"].items())


def cmd_list(args: argparse.Namespace) -> int:
    platforms = list_platforms()
    if args.json:
        print(json.dumps([p.to_dict() for p in platforms.values()]))
        return 0
    for platform in platforms.values():
        kind = "built-in" if platform.builtin else "saved"
        print(f"{platform.name:<16} {platform.measurer:<13} {kind:<8} {len(platform.tables)} table(s)  "
              f"{platform.description}")
    print(f"(saved platforms live in {platforms_home()})")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    platform = get_platform(args.name)
    if args.json:
        print(json.dumps(platform.to_dict()))
        return 0
    print(f"platform {platform.name} ({'built-in' if platform.builtin else 'saved'}): {platform.description}")
    print(f"measurer: {_settings_text(platform)}")
    for key, folder in sorted(platform.tables.items()):
        print(f"table {key}: {folder}")
    if not platform.tables:
        print("tables: none yet (a search, netadapt, run or latency build with --platform files one)")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    path = remove_platform(args.name)
    print(f"removed platform {args.name} ({path}); its tables stay on disk")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    return doctor(args, get_platform(args.name).make_measurer())


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``platform`` and its sub-commands."""
    group = subparsers.add_parser("platform", help="named platforms: a measurer with all its settings, and its tables")
    sub = group.add_subparsers(dest="platform_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("add", help="save a platform under NAME (measurer options as latency build has them)")
    p.add_argument("name", metavar="NAME")
    add_measurer_arguments(p)
    p.add_argument("--description", default=None, help="one line saying what the platform is")
    p.add_argument("--replace", action="store_true", help="overwrite a saved platform of that name")
    p.set_defaults(handler=cmd_add)
    p = sub.add_parser("list", help="every platform, built-in and saved")
    p.add_argument("--json", action="store_true",
                   help="print one JSON list (name, measurer, settings, description, tables, builtin of each)")
    p.set_defaults(handler=cmd_list)
    p = sub.add_parser("show", help="one platform's settings and tables")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_show)
    p = sub.add_parser("remove", help="delete a saved platform (its tables stay on disk)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=cmd_remove)
    p = sub.add_parser("doctor", help="this machine's timing stability through the platform's measurer")
    p.add_argument("name", metavar="NAME")
    add_doctor_arguments(p)
    p.set_defaults(handler=cmd_doctor)
