"""Command-line helpers shared by the tools: listing what can be chosen."""

from __future__ import annotations

from detkit.engine.build import config_dir


def config_choices() -> dict[str, list[str]]:
    """Every config group (``data``, ``model``, ``model/backbone``, ``config`` …) and its options."""
    root = config_dir()
    groups: dict[str, list[str]] = {}
    for yaml_file in sorted(root.rglob("*.yaml")):
        group = yaml_file.parent.relative_to(root).as_posix()
        if group != ".":
            groups.setdefault(group, []).append(yaml_file.stem)
    return groups


def print_help() -> None:
    choices = config_choices()
    print("Experiments (config=NAME):")
    for name in choices.pop("config", []):
        print(f"  {name}")
    print("\nConfig groups (GROUP=OPTION):")
    for group, options in choices.items():
        print(f"  {group}: {', '.join(options)}")
