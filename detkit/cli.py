"""The ``detkit`` console command: ``detkit COMMAND key=value ...``, one subcommand per tool.

    detkit train config=ssd_resnet18_shapes engine.epochs=4
    detkit eval checkpoint=outputs/.../best.pt
    detkit predict checkpoint=... input=images/ output=predictions/
    detkit check data=coco data.train.ann_file=...

``python tools/<tool>.py`` runs the same code. Each command module in :mod:`detkit.commands` has
a ``run(argv) -> int`` and its usage as the module docstring; this module dispatches, prints help,
and turns the user's mistakes (bad keys, missing files, invalid values) into one ``error:`` line
and exit code 2 instead of a traceback. Command modules are imported only when chosen, so the
data-side commands never pay for torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from detkit.commands import COMMANDS
from detkit.engine.config import ConfigError, config_dir

USER_ERRORS = (ConfigError, FileNotFoundError, ValueError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``detkit`` (``argv`` without the program name; default ``sys.argv[1:]``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(overview())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"detkit.commands.{COMMANDS[name].module}")
    if any(a in ("-h", "--help") for a in rest):
        print(module.__doc__)
        if COMMANDS[name].lists_configs:
            print(config_choices_text())
        return 0
    try:
        return int(module.run(rest) or 0)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def overview() -> str:
    lines = ["usage: detkit COMMAND [key=value ...]   (detkit COMMAND --help for one command)", "", "Commands:"]
    width = max(len(name) for name in COMMANDS)
    lines += [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
    return "\n".join(lines)


def config_choices() -> dict[str, list[str]]:
    """Every config group (``data``, ``model``, ``model/backbone``, ``config`` …) and its options."""
    root = config_dir()
    groups: dict[str, list[str]] = {}
    for yaml_file in sorted(root.rglob("*.yaml")):
        group = yaml_file.parent.relative_to(root).as_posix()
        if group != ".":
            groups.setdefault(group, []).append(yaml_file.stem)
    return groups


def config_choices_text() -> str:
    choices = config_choices()
    lines = ["Experiments (config=NAME):"]
    lines += [f"  {name}" for name in choices.pop("config", [])]
    lines.append("\nConfig groups (GROUP=OPTION):")
    lines += [f"  {group}: {', '.join(options)}" for group, options in choices.items()]
    lines.append(f"\n(configs read from {config_dir()})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
