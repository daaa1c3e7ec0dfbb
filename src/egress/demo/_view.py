"""How the demo shows itself: a live progress line while it runs, then the report."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar
from rich.table import Table
from rich.text import Text

from egress.demo._scenario import DemoReport, Progress

__all__ = ["live_progress", "render_report"]


def _counters(progress: Progress) -> Text:
    o = progress.outcomes
    state = progress.breaker_state
    colour = {"closed": "green", "open": "red", "half_open": "yellow"}.get(state, "white")
    text = Text()
    text.append(f"succeeded {o['succeeded']}", "green")
    text.append(f"  declined {o['declined']}", "yellow")
    text.append(f"  unknown {o['outcome unknown']}", "magenta")
    text.append(f"  retries {progress.retries}")
    text.append("  breaker ")
    text.append(state, colour)
    return text


@contextmanager
def live_progress(console: Console, progress: Progress) -> Iterator[None]:
    """Refresh a bar and the counters ten times a second while the demo runs."""
    bar = Bar(TextColumn("payments"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
              console=console)
    task = bar.add_task("payments", total=progress.total)
    stop = threading.Event()
    with Live(Group(bar, _counters(progress)), console=console, refresh_per_second=10,
              transient=True) as live:

        def refresh() -> None:
            while not stop.wait(0.1):
                bar.update(task, completed=progress.done)
                live.update(Group(bar, _counters(progress)))

        thread = threading.Thread(target=refresh, name="egress-demo-view", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def render_report(console: Console, report: DemoReport) -> None:
    data = report.as_dict()
    title = (f"egress demo ({report.mode}): {report.options.payments} payments, "
             f"chaos={report.options.chaos}, seed={report.options.seed}")
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, count in sorted(report.outcomes.items(), key=lambda kv: -kv[1]):
        table.add_row(f"payments {name}", str(count))
    for name, count in sorted(report.reconciled.items()):
        table.add_row(f"  reconciled: {name}", str(count))
    if report.redriven:
        table.add_row("completed after the outage (refused, sent again)",
                      str(report.completed_after_outage))
        for name, count in sorted(report.redriven.items(), key=lambda kv: -kv[1]):
            table.add_row(f"  sent again: {name}", str(count))
    table.add_row("wire requests (seen by the provider)", str(report.wire_requests))
    table.add_row("retries", str(report.retries))
    table.add_row("idempotent replays (same key, no new charge)", str(report.idempotent_replays))
    table.add_row("breaker openings", str(report.breaker_openings))
    faults = ", ".join(f"{k} {v}" for k, v in report.faults_injected.items()) or "none"
    table.add_row("faults injected", faults)
    table.add_row("latency p50 / p99", f"{report.latency_ms['p50']:.1f} ms / "
                                       f"{report.latency_ms['p99']:.1f} ms")
    table.add_row("elapsed", f"{report.elapsed_s:.1f} s")
    if report.fleet is not None:  # --workers
        fleet = report.fleet
        table.add_row("workers (processes sharing state on Redis)", str(fleet["workers"]))
        table.add_row("provider requests/s: mean / peak 2 s",
                      f"{fleet['aggregate_rate_mean']:.0f} / {fleet['aggregate_rate_peak_2s']:.0f}"
                      f" (shared limit {fleet['shared_rate_limit']:.0f}/s)")
        table.add_row("payments submitted by two workers", str(fleet["submitted_twice"]))
        table.add_row("Redis failures (fell back to local state)", str(fleet["redis_failures"]))
    ledger = data["ledger"]
    table.add_row("provider ledger: live charges", str(ledger["live_charges"]))
    table.add_row("double-charged references", str(ledger["double_charged_references"]))
    table.add_row("paid but not charged (lost)", str(ledger["paid_but_not_charged"]))
    table.add_row("charged but not reported paid", str(ledger["charged_but_not_reported_paid"]))
    console.print(table)
    style = "bold green" if report.invariant_ok else "bold red"
    mark = "OK" if report.invariant_ok else "VIOLATED"
    console.print(Text(f"charges equal succeeded payments: {mark}", style=style))
    console.print(Text(report.verdict))
