"""`queuectl ui` (the web dashboard) and `queuectl metrics` (Prometheus text, once)."""

from __future__ import annotations

import os

import click

from queuectl import InputError
from queuectl.cli.app import App

DEFAULT_PORT = 8700


def parse_bind(text: str) -> tuple[str, int]:
    """HOST:PORT, HOST or :PORT ([::1]:PORT for IPv6) as (host, port)."""
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise InputError(f"--bind {text!r}: an IPv6 address goes in brackets, [::1]:8700")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InputError(f"--bind {text!r} is not HOST:PORT")
        port_text = rest[1:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    host = host or "127.0.0.1"
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InputError(f"--bind {text!r}: the port must be 1 to 65535")
    return host, int(port_text)


@click.command(
    epilog="\b\nExamples:\n  queuectl ui --open\n  queuectl ui --bind 0.0.0.0:8080 --token T"
)
@click.option(
    "--bind",
    default=f"127.0.0.1:{DEFAULT_PORT}",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen; any address but loopback needs a token.",
)
@click.option(
    "--token",
    metavar="TOKEN",
    help="The token a browser must give once (default $QUEUECTL_UI_TOKEN; generated and "
    "printed for a non-loopback bind).",
)
@click.option(
    "--open",
    "open_browser",
    is_flag=True,
    help="Open it in an app window of Chrome, Chromium, Edge or Brave, else in the default "
    "browser.",
)
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@click.pass_obj
def ui(app: App, bind: str, token: str | None, open_browser: bool, read_only: bool) -> None:
    """Serve the web dashboard (overview, jobs, DLQ, queues, schedules, workers, config,
    /api/ and /metrics) until interrupted."""
    import secrets

    from queuectl.ui.server import Settings, is_loopback, serve

    host, port = parse_bind(bind)
    token = token or os.environ.get("QUEUECTL_UI_TOKEN") or None
    if token is not None and len(token) < 16:
        raise InputError("a dashboard token must be at least 16 characters")
    generated = False
    if token is None and not is_loopback(host):
        token, generated = secrets.token_urlsafe(24), True
    app.queue.counts()  # opens (and migrates) the store now: a bad --db fails here
    settings = Settings(app.home, host, port, token, read_only)

    def announce(url: str) -> None:
        mode = " (read-only)" if read_only else ""
        click.echo(f"queuectl dashboard{mode} on {url}", err=True)
        if generated:
            click.echo(f"token (generated for this run): {token}", err=True)
        click.echo("press Ctrl-C to stop", err=True)
        if open_browser:
            from queuectl.ui.browser import open_dashboard

            failed = open_dashboard(url)
            if failed:
                click.echo(failed, err=True)

    try:
        serve(settings, announce)
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


@click.command(epilog="\b\nExamples:\n  queuectl metrics\n  queuectl metrics > queuectl.prom")
@click.pass_obj
def metrics(app: App) -> None:
    """Print the queue's Prometheus metrics once (what the dashboard serves at /metrics)."""
    from queuectl import metrics as text

    click.echo(text.render(app.queue), nl=False)
