"""``vigil rules``: check a rule set (exit 0/1, JSON for CI), write the default pack, explain a rule."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vigil.errors import RuleSetError, VigilError

if TYPE_CHECKING:
    from rules.errors import RuleError
    from rules.loader import RuleSet


@click.group("rules")
def rules_group() -> None:
    """Check, explain and initialise YAML rule sets."""


def _configured_path(ctx: click.Context) -> Path:
    """The settings' ``rules_path`` when a settings file is in use, else the shipped pack."""
    config = (ctx.find_root().obj or {}).get("config_path") or os.environ.get("VIGIL_CONFIG")
    if config:
        from vigil.settings import load_settings

        rp = load_settings(config).rules_path
        if rp:
            return Path(rp)
    from rules.loader import DEFAULT_PACK

    return DEFAULT_PACK


@rules_group.command("check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object on stdout, for CI.",
)
@click.pass_context
def check_cmd(ctx: click.Context, path: Path | None, fmt: str) -> None:
    """Validate every rule file under PATH and report every error at once (exit 1 if any)."""
    from rules.loader import RuleLoadError, load_rules, rule_files
    from vigil.bootstrap import rule_inputs

    target = path or _configured_path(ctx)
    try:
        rs = load_rules(target, **rule_inputs())
    except RuleLoadError as e:
        files = [str(f) for f in rule_files(target)] if target.exists() else []
        if fmt == "json":
            click.echo(
                json.dumps(
                    {
                        "ok": False,
                        "path": str(target),
                        "files": files,
                        "errors": [x.as_dict() for x in e.errors],
                        "warnings": [],
                    },
                    indent=2,
                )
            )
        else:
            for x in e.errors:
                click.echo(str(x))
            click.echo(check_summary(e.errors), err=True)
        ctx.exit(1)
        return
    if fmt == "json":
        click.echo(json.dumps(_summary(target, rs), indent=2))
        return
    for w in rs.warnings:
        click.echo(f"warning: {w}")
    live = sum(1 for r in rs.rules if r.rule.enabled and not r.rule.shadow)
    shadow = sum(1 for r in rs.rules if r.rule.enabled and r.rule.shadow)
    off = sum(1 for r in rs.rules if not r.rule.enabled)
    click.echo(
        f"OK: {len(rs.rules)} rules in {len(rs.paths)} file(s) ({live} live, {shadow} shadow, "
        f"{off} disabled); content hash {rs.content_hash[:12]}"
    )


def check_summary(errors: Sequence[RuleError]) -> str:
    """The last line of a failed check: how many mistakes, and what happens to the running rules."""
    n, files = len(errors), len({x.path for x in errors})
    return (f"{n} {'mistake' if n == 1 else 'mistakes'} in {files} {'file' if files == 1 else 'files'}. "
            "Fix them and run the check again; a running Vigil keeps its current rules until the set "
            "checks clean.")


def _summary(target: Path, rs: RuleSet) -> dict[str, Any]:
    return {
        "ok": True,
        "path": str(target),
        "files": rs.paths,
        "content_hash": rs.content_hash,
        "rules": rs.summary(),
        "errors": [],
        "warnings": [w.as_dict() for w in rs.warnings],
    }


@rules_group.command("explain")
@click.argument("rule_id")
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(path_type=Path),
    envvar="VIGIL_RULES_PATH",
    help="Rule file or directory (default: settings rules_path, else the shipped pack).",
)
@click.pass_context
def explain_cmd(ctx: click.Context, rule_id: str, rules_path: Path | None) -> None:
    """Say what RULE_ID matches, with which detector parameters, and what it does then."""
    from rules.errors import suggest
    from rules.explain import explain
    from rules.loader import RuleLoadError, load_rules
    from vigil.bootstrap import rule_inputs

    target = rules_path or _configured_path(ctx)
    try:
        rs = load_rules(target, **rule_inputs())
    except RuleLoadError as e:
        raise RuleSetError(
            f"{target}: the rule set does not load ({len(e.errors)} error(s)); "
            f"run: vigil rules check {target}",
            [str(x) for x in e.errors],
        ) from None
    if rs.get(rule_id) is None:
        ids = [r.id for r in rs.rules]
        raise VigilError(f"no rule '{rule_id}' in {target}{suggest(rule_id, ids)}")
    click.echo(explain(rs, rule_id))


_HEADER = """\
# {name} -- from Vigil's default rule pack, written by `vigil rules init`.
#
# Edit freely, then check before the daemon uses it:   vigil rules check {dir}
# See what one rule does, with every parameter:        vigil rules explain <rule-id> --rules {dir}
# Reference of every key: docs/rules.md.  In short, a rule has
#   id, description, owner, enabled, mode (live | shadow), detector, when (a CEL condition over
#   finding.*, account.*, profile.*), severity (low | medium | high | critical),
#   notify {{channels, template, confirm, confirm_channels, expires, strategy}},
#   on_match / on_denied / on_confirmed / on_expired: freeze, {{ticket: {{category, priority}}}},
#   {{webhook: {{name}}}}, {{escalate: {{to}}}};  throttle {{key, per, max}}, group {{window}},
#   inhibit {{window, scope}}, segments {{tiers, exclude_tiers, locales, min/max_account_age_days}},
#   schedule {{timezone, active: [{{days, start, end}}]}}, suppressible (true | false | step_up).
# Durations carry a unit: 90s, 30m, 1h, 2d, 1w.  Unknown keys are errors, never ignored.
"""


@rules_group.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite rule files that already exist in DIRECTORY.")
def init_cmd(directory: Path, force: bool) -> None:
    """Write the default rule pack into DIRECTORY, commented for staff."""
    from rules.loader import DEFAULT_PACK, RuleLoadError, load_rules, rule_files
    from vigil.bootstrap import rule_inputs

    sources = rule_files(DEFAULT_PACK)
    targets = [directory / f.relative_to(DEFAULT_PACK) for f in sources]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise VigilError(
            f"{existing[0]} already exists; use --force to overwrite "
            f"({len(existing)} file(s) would be replaced)"
        )
    for src, dst in zip(sources, targets, strict=True):
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(annotate(src.read_text(encoding="utf-8"), src.name, directory), encoding="utf-8")
    try:
        rs = load_rules(directory, **rule_inputs())
    except RuleLoadError as e:  # the shipped pack itself is broken: say so rather than hand it out
        raise RuleSetError(
            f"the default pack does not validate ({len(e.errors)} error(s))", [str(x) for x in e.errors]
        ) from None
    click.echo(f"wrote {len(targets)} file(s) with {len(rs.rules)} rules to {directory}")
    click.echo(f"next: edit them, then run  vigil rules check {directory}")


def annotate(text: str, name: str, directory: Path) -> str:
    """The pack file with a header, and each detector parameter's documentation as comments.

    The text is edited line by line (positions from ruamel), so the pack's own layout and
    comments stay exactly as written.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    from detectors import DETECTORS

    lines = text.split("\n")
    doc = YAML(typ="rt").load(text)
    inserts: list[tuple[int, list[str]]] = []
    if isinstance(doc, CommentedMap) and isinstance(doc.get("detectors"), CommentedMap):
        section = doc["detectors"]
        for det, params in section.items():
            cls = DETECTORS.get(str(det))
            if cls is None or not isinstance(params, CommentedMap):
                continue
            for key in params:
                ln = params.lc.key(key)[0]
                if key in cls.params and "#" not in lines[ln] and not isinstance(params[key], CommentedMap):
                    lines[ln] = f"{lines[ln]}  # {cls.params[str(key)].doc}"
            unset = [k for k in cls.params if k not in params]
            if unset:
                indent = " " * (section.lc.key(det)[1] + 2)
                block = [f"{indent}# other parameters, with their defaults:"] + [
                    f"{indent}#   {k}: {_yaml_value(cls.params[k].default)}  -- {cls.params[k].doc}"
                    for k in unset
                ]
                inserts.append((section.lc.key(det)[0] + 1, block))
    for at, block in sorted(inserts, reverse=True):
        lines[at:at] = block
    return _HEADER.format(name=name, dir=directory) + "\n" + "\n".join(lines)


def _yaml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1:
        return str(int(v))
    return str(v)


COMMANDS = [rules_group]
