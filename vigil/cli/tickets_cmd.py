"""``vigil tickets``: list, show, assign, resolve -- and the policy, SLA and classifier tools.

Lists are paginated and filter by queue, status, priority, SLA state (repeat an option to allow
several values).  Staff actions are recorded on the ticket's timeline under ``--as`` (default:
``staff:$USER``).  ``--json`` prints what the staff JSON API returns, for scripts.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from vigil.errors import ConfigError, VigilError


@contextmanager
def _app(ctx: click.Context) -> Iterator[Any]:
    from vigil.cli.core import _app as make

    app = make(ctx)  # bootstrap wires the ticket policy and classifier model into the sessions
    try:
        yield app
    finally:
        app.close()


@contextmanager
def _errors() -> Iterator[None]:
    """Ticket, filter and policy problems become one-line CLI errors, never tracebacks."""
    from tickets.classify import ClassifierError
    from tickets.core import TicketError
    from tickets.lifecycle import TicketStateError
    from tickets.queries import FilterError
    from tickets.routing import PolicyError

    try:
        yield
    except (TicketError, TicketStateError, FilterError, ClassifierError) as e:
        raise VigilError(str(e)) from None
    except PolicyError as e:
        raise ConfigError(str(e)) from None


def _actor(name: str | None) -> str:
    if name:
        return name if ":" in name else f"staff:{name}"
    try:
        return f"staff:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "staff"


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.group("tickets")
def tickets_group() -> None:
    """Support tickets: list, show, assign, resolve; SLA, policy and classifier tools."""


_multi: Callable[..., Any] = lambda name, help_: click.option(name, multiple=True, help=help_)  # noqa: E731


@tickets_group.command("list")
@_multi("--queue", "Queue name (repeatable).")
@_multi("--status", "new, open, pending_user, resolved, closed (repeatable).")
@_multi("--priority", "P1..P4 (repeatable).")
@_multi("--sla", "SLA state: ok, warning, breached, paused, met (repeatable).")
@_multi("--category", "Category (repeatable).")
@click.option("--account", default=None)
@click.option("--assignee", default=None, help="A name, or 'none' for unassigned.")
@click.option("--active", is_flag=True, help="Only tickets still open (new, open, pending_user).")
@click.option("--page", default=1, show_default=True, type=int)
@click.option("--per-page", default=50, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cmd(ctx: click.Context, queue: tuple[str, ...], status: tuple[str, ...], priority: tuple[str, ...],
             sla: tuple[str, ...], category: tuple[str, ...], account: str | None, assignee: str | None,
             active: bool, page: int, per_page: int, as_json: bool) -> None:
    """List tickets, most urgent first."""
    from tickets.queries import TicketFilter, list_tickets

    f = TicketFilter(queue=queue, status=status, priority=priority, sla=sla, category=category,
                     account=account, assignee=assignee, active=active)
    with _errors(), _app(ctx) as app, app.sessions() as s:
        res = list_tickets(s, f, page=page, per_page=per_page)
    if as_json:
        _echo_json(res.as_dict())
        return
    for t in res.items:
        due = (t["resolve_due"] or "")[:16].replace("T", " ")
        click.echo(f"{t['id']}  {t['priority']}  {t['status']:<12} {t['sla_state']:<8} {t['queue']:<15} "
                   f"{t['account_id']:<12} {t['assignee'] or '-':<12} due {due}  {t['subject']}")
    click.echo(f"page {res.page}/{res.pages}, {res.total} ticket(s)")


@tickets_group.command("show")
@click.argument("ticket_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show_cmd(ctx: click.Context, ticket_id: str, as_json: bool) -> None:
    """A ticket with its alerts and timeline."""
    from tickets.queries import show_ticket

    with _app(ctx) as app, app.sessions() as s:
        data = show_ticket(s, ticket_id)
    if data is None:
        raise VigilError(f"no ticket {ticket_id!r}")
    if as_json:
        _echo_json(data)
        return
    click.echo(f"{data['id']}  {data['subject']}")
    for k in ("account_id", "category", "priority", "queue", "status", "assignee", "sla_state",
              "first_response_due", "first_response_at", "resolve_due", "resolved_at", "resolution_code",
              "classifier_confidence", "external_id"):
        if data.get(k) is not None:
            click.echo(f"  {k:<22} {data[k]}")
    click.echo("alerts:")
    for a in data["alerts"]:
        click.echo(f"  {a['id']}  {a['rule_id']}  {a['severity']}  {a['status']}  "
                   f"answer={a['answer'] or '-'}")
    click.echo("timeline:")
    for e in data["timeline"]:
        detail = json.dumps(e["detail"], ensure_ascii=False, default=str)
        click.echo(f"  {(e['at'] or '')[:19].replace('T', ' ')}  {e['kind']:<16} {e['actor']:<16} "
                   f"{e['ref_id'] or '':<28} {detail[:120]}")


@tickets_group.command("assign")
@click.argument("ticket_id")
@click.argument("assignee")
@click.option("--queue", default=None, help="Also move the ticket to this queue.")
@click.option("--as", "actor", default=None, help="Who is acting (default: staff:$USER).")
@click.pass_context
def assign_cmd(ctx: click.Context, ticket_id: str, assignee: str, queue: str | None, actor: str | None
               ) -> None:
    """Assign a ticket ('none' unassigns)."""
    from tickets.core import assign

    with _errors(), _app(ctx) as app, app.sessions.begin() as s:
        who = None if assignee == "none" else assignee
        t = assign(s, ticket_id, who, now=app.clock(), actor=_actor(actor), queue=queue)
        click.echo(f"{t.id}: assigned to {t.assignee or 'nobody'} in queue {t.queue} ({t.status})")


@tickets_group.command("resolve")
@click.argument("ticket_id")
@click.option("--code", required=True, type=click.Choice(["false_positive", "valuable", "risk_confirmed"]),
              help="What the alerts on this ticket turned out to be.")
@click.option("--note", default="")
@click.option("--as", "actor", default=None)
@click.pass_context
def resolve_cmd(ctx: click.Context, ticket_id: str, code: str, note: str, actor: str | None) -> None:
    """Resolve a ticket with a resolution code (feeds per-rule precision in 'vigil report')."""
    from tickets.core import resolve

    with _errors(), _app(ctx) as app, app.sessions.begin() as s:
        t = resolve(s, ticket_id, code, now=app.clock(), actor=_actor(actor), note=note)
        click.echo(f"{t.id}: resolved as {code}")


@tickets_group.command("move")
@click.argument("ticket_id")
@click.argument("event", type=click.Choice(["ack", "ask_user", "user_reply", "close", "reopen"]))
@click.option("--note", default="")
@click.option("--as", "actor", default=None)
@click.pass_context
def move_cmd(ctx: click.Context, ticket_id: str, event: str, note: str, actor: str | None) -> None:
    """Other status moves: acknowledge, wait for the user, close, reopen."""
    from tickets.core import transition

    with _errors(), _app(ctx) as app, app.sessions.begin() as s:
        t = transition(s, ticket_id, event, now=app.clock(), actor=_actor(actor), note=note)
        click.echo(f"{t.id}: {t.status}")


@tickets_group.command("sla")
@click.option("--once", is_flag=True, required=True, help="Check every active ticket once and exit.")
@click.pass_context
def sla_cmd(ctx: click.Context, once: bool) -> None:
    """Warn before SLA breaches and escalate breached tickets (the daemon does this every minute)."""
    from tickets.escalation import sla_tick

    with _errors(), _app(ctx) as app, app.sessions.begin() as s:
        rep = sla_tick(s, app.clock())
    click.echo(json.dumps(rep.as_dict()))


@tickets_group.command("check-policy")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def check_policy_cmd(path: str | None) -> None:
    """Validate a ticket policy file (default: the shipped one) and print its routes."""
    from tickets.routing import DEFAULT_POLICY, load_policy

    with _errors():
        p = load_policy(path)
    click.echo(f"{path or DEFAULT_POLICY}: ok -- {len(p.queues)} queue(s), {len(p.routes)} route(s), "
               f"default queue {p.default_queue}, "
               f"triage below {p.triage.min_confidence:.2f} -> {p.triage.queue}")
    for i, r in enumerate(p.routes):
        cond = {k: v for k, v in r.match.model_dump().items() if v is not None}
        click.echo(f"  {r.name or f'routes[{i}]'}: {cond or 'anything'} -> {r.queue}")


@tickets_group.command("train")
@click.option("--samples", default=None, type=click.Path(dir_okay=False),
              help="Labelled CSV (locale,category,text).")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Save the model here.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20))
def train_cmd(samples: str | None, out: str | None, folds: int) -> None:
    """Cross-validate the ticket classifier on the labelled sample and optionally save it."""
    from tickets.classify import SAMPLES, TextClassifier, cross_validate, read_samples
    from tickets.routing import default_policy

    with _errors():
        data = read_samples(samples or SAMPLES)
        cv = cross_validate(data, folds=folds, min_confidence=default_policy().triage.min_confidence)
        click.echo(f"{len(data)} samples, {folds}-fold: accuracy {cv['accuracy_model']:.3f} (model), "
                   f"{cv['accuracy_model_keywords']:.3f} (model + keywords); "
                   f"{cv['auto_share']:.1%} confident enough to skip triage, "
                   f"{cv['auto_accuracy']:.3f} of those correct")
        if out:
            TextClassifier().fit(data).save(out)
            click.echo(f"saved to {out} (set tickets.model_path to use it)")


@tickets_group.command("sentiment")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20))
def sentiment_cmd(folds: int) -> None:
    """Cross-validate the sentiment model on the shipped sample: accuracy per locale, and the share of
    negative messages flagged strongly negative (model + escalation keywords)."""
    from tickets.sentiment import cross_validate, read_sentiment_samples

    with _errors():
        cv = cross_validate(read_sentiment_samples(), folds=folds)
    click.echo(f"{'locale':<8}{'samples':>8}{'accuracy':>10}{'negative flagged':>18}")
    for loc in sorted(cv, key=lambda k: (k == "all", k)):
        row = cv[loc]
        click.echo(f"{loc:<8}{int(row['samples']):>8}{row['accuracy']:>10.3f}{row['negative_flagged']:>18.3f}")


@tickets_group.command("classify")
@click.argument("text")
@click.option("--locale", default=None)
def classify_cmd(text: str, locale: str | None) -> None:
    """Show how a user's message would be categorised."""
    from tickets.classify import default_classifier
    from tickets.routing import default_policy

    with _errors():
        c = default_classifier().classify(text, locale)
    triage = c.confidence < default_policy().triage.min_confidence
    _echo_json({**c.as_dict(), "triage": triage})


@tickets_group.command("sync")
@click.pass_context
def sync_cmd(ctx: click.Context) -> None:
    """Push changed tickets to the configured helpdesk and pull their status back."""
    from tickets.helpdesk import build_helpdesk, sync_helpdesk

    with _errors(), _app(ctx) as app:
        cfg = getattr(getattr(app.settings, "tickets", None), "helpdesk", None)
        if cfg is None:
            raise ConfigError("no helpdesk configured "
                              "(settings: tickets.helpdesk with kind zendesk or webhook)")
        desk = build_helpdesk(cfg)
        try:
            rep = sync_helpdesk(app.sessions, desk, app.clock())
        finally:
            desk.close()
    click.echo(json.dumps(rep.__dict__, default=str))
    if rep.errors:
        raise VigilError(f"{len(rep.errors)} ticket(s) failed to sync; they are retried next time")


COMMANDS = [tickets_group]
