"""The ``workload-eval`` command: thin. Each subcommand lives in ``commands/<name>.py``.

Subcommands are imported lazily so ``--help`` and light commands never pay for heavy
imports (matplotlib, vLLM). User mistakes (:class:`UserError`) print one line, exit 2.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings

import click

from workload_eval import __version__, interrupts
from workload_eval.errors import UserError
from workload_eval.limits import MAX_REQUESTS
from workload_eval.redaction import scrub_text, scrubbed_console

# name -> (module under workload_eval.commands, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "workloads": ("workloads", "List, describe and plot the workloads."),
    "run": ("run", "Run one workload and schedule on an engine."),
    "models": ("models", "Model utilities (tiny random-weight models for smoke tests)."),
    "profile": ("profile", "Measure a real engine's step times for the simulator."),
    "sweep": ("sweep", "Run every point of an experiment spec; resumes."),
    "capacity": ("capacity", "Find the highest request rate that meets SLOs."),
    "report": ("report", "Render figures and the HTML report from stored results."),
    "compare": ("compare", "Compare systems workload by workload: ranks, ratios, reversals."),
    "reproduce": ("reproduce", "Reproduce the paper's whole study on the simulator."),
    "validate": ("validate", "Score the simulator against measured real-GPU experiments."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in SUBCOMMANDS if self._available(name)]

    @staticmethod
    def _available(name: str) -> bool:
        module, _ = SUBCOMMANDS[name]
        return importlib.util.find_spec(f"workload_eval.commands.{module}") is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS or not self._available(name):
            return None
        module, _ = SUBCOMMANDS[name]
        cmd = importlib.import_module(f"workload_eval.commands.{module}").command
        cmd.name = name
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, SUBCOMMANDS[n][1]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="workload-eval")
def cli() -> None:
    """Evaluate LLM inference systems under realistic use-case workloads."""


def _warning_line(message: Warning | str, *_: object, **__: object) -> None:
    """A warning is one 'warning: ...' line on stderr, never Python's source excerpt
    (``loader.py:354: UserWarning: ...`` followed by the code line that raised it)."""
    click.echo(f"warning: {one_line(scrub_text(str(message)))}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    restore = interrupts.install()
    limit_env = os.environ.get(MAX_REQUESTS.env)  # --max-requests sets it for this command
    shown = warnings.showwarning
    warnings.showwarning = _warning_line
    try:
        with scrubbed_console():  # no credential reaches the console, whoever prints it
            return _main(argv)
    finally:
        warnings.showwarning = shown
        restore()
        if limit_env is None:
            os.environ.pop(MAX_REQUESTS.env, None)
        else:
            os.environ[MAX_REQUESTS.env] = limit_env


def _main(argv: list[str] | None) -> int:
    try:
        with interrupts.unwrapped():  # a Ctrl-C or SIGTERM a library wrapped is one again
            rv = cli.main(args=argv, standalone_mode=False)
    except KeyboardInterrupt:  # what finished is stored (commands keep their own results)
        return _interrupted()
    except UserError as e:
        _error(str(e))
        return UserError.exit_code
    except click.exceptions.Abort:
        click.echo("terminated" if interrupts.terminated() else "aborted", err=True)
        return interrupts.exit_code()
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as click shows it
            e.show()
            return e.exit_code
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        _error(e.format_message() + hint)
        return e.exit_code
    except click.ClickException as e:
        _error(e.format_message())
        return e.exit_code
    except OSError as e:  # the machine said no (permissions, a full disk): not a bug
        where = f"{e.filename}: " if e.filename else ""
        _error(f"{where}{e.strerror or e}")
        return UserError.exit_code
    # Non-standalone click returns a command's exit code (ctx.exit(n)) as an int.
    return rv if isinstance(rv, int) else 0


# Every character str.splitlines() breaks on: an error stays one line whatever it quotes.
_LINE_BREAKS = re.compile(r"\s*[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]+\s*")


def one_line(message: str) -> str:
    """``message`` on one printable line (undecodable argv bytes shown escaped)."""
    text = _LINE_BREAKS.sub(" ", message.strip())
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _interrupted() -> int:
    click.echo("terminated" if interrupts.terminated() else "interrupted", err=True)
    return interrupts.exit_code()


def _error(message: str) -> None:
    click.echo(f"error: {one_line(scrub_text(message))}", err=True)


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
