"""Wire everything from settings: nothing is built at import time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.store.db import make_engine, session_factory, upgrade
from rules.loader import RuleLoadError, RuleSet, load_rules
from vigil.errors import ConfigError, RuleSetError

if TYPE_CHECKING:  # imported where used: a backtest needs the rule loader, not the settings
    from rules.reload import RuleSetManager
    from vigil.settings import Settings
    from vigil.sources import FileSource, SqlSource

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    source: SqlSource | FileSource
    rule_manager: RuleSetManager
    clock: Callable[[], datetime] = utcnow
    _channels: dict[str, Any] | None = field(default=None, repr=False)
    _geo: Any = field(default=None, repr=False)

    @property
    def geo(self) -> Any:
        """The IP resolver for login enrichment (None when disabled); built once, on first use."""
        if self._geo is None and self.settings.geo.enabled:
            self._geo = geo_resolver(self.settings.geo.mmdb_city, self.settings.geo.mmdb_asn)
        return self._geo

    @property
    def rules(self) -> RuleSet:
        """The rule set running now (the last good one if a reload was refused)."""
        return self.rule_manager.current

    @property
    def channels(self) -> dict[str, Any]:
        if self._channels is None:
            from delivery.channels import build_channels

            self._channels = build_channels(self.settings)
        return self._channels

    def close(self) -> None:
        for ch in (self._channels or {}).values():
            try:
                ch.close()
            except Exception:  # closing must never mask the real shutdown reason
                log.exception("closing channel %s", getattr(ch, "name", ch))
        self.engine.dispose()


def rule_inputs() -> dict[str, Any]:
    """What rule files are checked against besides detectors: the templates the notifiers can
    render and the channels they know (built in and from the ``vigil.channels`` entry points)."""
    from notifiers.names import available_templates, channel_names  # names only: no SDK, no Jinja

    return {"templates": available_templates(), "channels": channel_names()}


def load_rule_set(path: str | None) -> RuleSet:
    try:
        return load_rules(path, **rule_inputs())
    except RuleLoadError as e:
        raise _rule_set_error(e) from None


def rule_manager(path: str | None, rules: RuleSet | None = None, models: Any = None) -> RuleSetManager:
    """The manager of the running rule set; ``models`` (:class:`vigil.models.Models`) are attached to
    every set it loads, the first and each hot reload."""
    from rules.reload import RuleSetManager

    try:
        return RuleSetManager(path, loader=_first_then_load(rules, models))
    except RuleLoadError as e:
        raise _rule_set_error(e) from None


def _load(path: Any) -> RuleSet:
    return load_rules(path, **rule_inputs())


def _first_then_load(first: RuleSet | None, models: Any = None) -> Callable[[Any], RuleSet]:
    given = [first] if first is not None else []

    def load(p: Any) -> RuleSet:
        rs = given.pop() if given else _load(p)
        if models is not None:
            from vigil.models import bind_models

            bind_models(rs, models)
        return rs

    return load


def _rule_set_error(e: RuleLoadError) -> RuleSetError:
    lines = [str(x) for x in e.errors]
    return RuleSetError(f"the rule set has {len(lines)} error(s):\n" + "\n".join(lines), lines)


def geo_resolver(mmdb_city: str | None = None, mmdb_asn: str | None = None) -> Any:
    from detectors.geoip import default_resolver

    try:
        return default_resolver(mmdb_city, mmdb_asn)
    except (OSError, ValueError) as e:
        raise ConfigError(f"geo: cannot open the IP database: {e}") from None


def ticket_session_info(settings: Settings) -> dict[str, Any]:
    from tickets.core import session_info
    from tickets.routing import PolicyError

    try:
        return session_info(settings.tickets.policy_path, settings.tickets.model_path)
    except PolicyError as e:
        raise ConfigError(str(e)) from None


def make_source(settings: Settings, engine: Engine) -> SqlSource | FileSource:
    from vigil.sources import FileSource, SqlSource

    s = settings.source
    if s.kind == "engine":
        return SqlSource(engine, s, own=True)
    if s.kind == "sql":
        if not s.url:
            raise ConfigError("source.url is required when source.kind is 'sql'")
        return SqlSource(make_engine(s.url), s, own=False)
    if not s.path:
        raise ConfigError("source.path is required when source.kind is 'files'")
    return FileSource(s.path, s.tables)


def bootstrap(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    migrate: bool = True,
    rules: RuleSet | None = None,
    source: SqlSource | FileSource | None = None,
) -> App:
    from vigil.models import load_models

    if migrate:
        upgrade(settings.database_url)
    models = load_models(settings)
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    sessions.configure(info={**ticket_session_info(settings), "answers": settings.answers.model_dump(),
                             "allowlist_step_up": settings.suppressions.allowlist_step_up,
                             "surveys": settings.surveys})
    return App(
        settings=settings,
        engine=engine,
        sessions=sessions,
        source=source or make_source(settings, engine),
        rule_manager=rule_manager(settings.rules_path, rules, models),
        clock=clock,
    )
