"""Every command's --help ends with its examples: an "Examples:" heading and one or two
lines starting `queuectl `, each naming a command that exists with options it has."""

from __future__ import annotations

import shlex
import subprocess

import click
import pytest

from conftest import QUEUECTL, Queue
from queuectl.cli import cli

pytestmark = pytest.mark.store_independent

# Where an example's command line ends and the shell takes over.
SHELL_TOKENS = {">", ">>", "|", "&&", ";"}


def command_paths() -> list[tuple[str, ...]]:
    """Every visible command and subcommand, walked through the lazy group. (`service run`
    is hidden: the Windows service manager starts it, nobody types it.)"""
    paths: list[tuple[str, ...]] = [()]

    def walk(group: click.Group, ctx: click.Context, path: tuple[str, ...]) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            if command.hidden:
                continue
            paths.append((*path, name))
            if isinstance(command, click.Group):
                walk(command, click.Context(command, parent=ctx, info_name=name), (*path, name))

    walk(cli, click.Context(cli, info_name="queuectl"), ())
    return paths


def resolve(example: str) -> tuple[str, ...]:
    """The path of the command an example line runs; fails when it names a command or an
    option that does not exist."""
    words = shlex.split(example)
    assert words[0] == "queuectl", example
    end = next((i for i, w in enumerate(words) if w in SHELL_TOKENS), len(words))
    words = words[1:end]
    command: click.Command = cli
    ctx = click.Context(cli, info_name="queuectl")
    path: tuple[str, ...] = ()
    rest = words
    while rest:
        word = rest[0]
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            option = next((p for p in command.params if name in p.opts), None)
            assert option is not None, f"{example}: {command.name} has no option {name}"
            takes_value = isinstance(option, click.Option) and not option.is_flag
            rest = rest[2:] if takes_value and "=" not in word else rest[1:]
            continue
        if isinstance(command, click.Group):
            sub = command.get_command(ctx, word)
            assert sub is not None, f"{example}: no command {word!r}"
            ctx = click.Context(sub, parent=ctx, info_name=word)
            command = sub
            path += (word,)
        rest = rest[1:]
    assert path and not isinstance(command, click.Group), f"{example} runs no command"
    return path


def test_every_command_is_walked() -> None:
    paths = command_paths()
    for expected in [
        (),
        ("enqueue",),
        ("worker", "start"),
        ("dlq", "retry"),
        ("config", "set"),
        ("queue", "limit"),
        ("schedule", "remove"),
        ("service", "restart"),
        ("completion",),
    ]:
        assert expected in paths
    assert ("service", "run") not in paths
    assert len(paths) > 50


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "queuectl")
def test_help_ends_with_examples(q: Queue, path: tuple[str, ...]) -> None:
    r = subprocess.run(
        [QUEUECTL, *path, "--help"], capture_output=True, text=True, env=q.env, timeout=60
    )
    assert r.returncode == 0, r.stderr
    lines = [line.strip() for line in r.stdout.splitlines() if line.strip()]
    heading = len(lines) - 1 - lines[::-1].index("Examples:")
    examples = lines[heading + 1 :]
    assert 1 <= len(examples) <= 2, lines[heading:]
    for example in examples:
        assert example.startswith("queuectl "), example
        # A command's examples run it; a group's run its subcommands.
        assert resolve(example)[: len(path)] == path, (path, example)
