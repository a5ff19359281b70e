"""What a rule file is checked against, without importing a channel or the renderer.

Loading rules needs only *names*: the channels the notifiers know and the templates they can
render.  The channel classes pull in their SDKs (SMTP, HTTP clients) and the renderer Jinja and
Babel; a backtest or ``vigil rules check`` uses none of them, so the names live here.
:mod:`notifiers.registry` and :mod:`notifiers.render` use these same definitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

ENTRY_POINT_GROUP = "vigil.channels"
BUILTIN_CHANNELS = ("console", "email", "push", "sms", "webhook")  # the keys of registry.CHANNELS
TEMPLATE_DIR = Path(__file__).parent / "templates"


def channel_names() -> tuple[str, ...]:
    """The built-in channels plus third-party ones from the ``vigil.channels`` entry points."""
    from importlib.metadata import entry_points

    return tuple(dict.fromkeys([*BUILTIN_CHANNELS, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))]))


def available_templates(template_dirs: Sequence[str] = ()) -> set[str]:
    """Template names: directories that hold a template for every channel."""
    names: set[str] = set()
    for d in [*template_dirs, str(TEMPLATE_DIR)]:
        root = Path(d)
        if not root.is_dir():
            continue
        for sub in root.iterdir():
            if sub.is_dir() and not sub.name.startswith("_") and (sub / "sms.txt.j2").is_file():
                names.add(sub.name)
    return names
