"""Strings of the confirmation page: the ``page.*`` keys of the one message catalogue.

Web pages and messages share :mod:`notifiers.catalogue` (gettext ``.po`` files per locale), so a
page and the SMS that linked to it speak the same language, picked the same way.
"""

from __future__ import annotations

from notifiers.catalogue import N_, catalogue_locale, lookup

# the page's keys, marked for extraction (the template reads them as ``s.<name>``)
PAGE_KEYS = (
    N_("page.title"), N_("page.intro"), N_("page.when"), N_("page.where"), N_("page.device"), N_("page.ip"),
    N_("page.amount"), N_("page.address"), N_("page.symbol"), N_("page.leverage"), N_("page.margin_ratio"),
    N_("page.what"), N_("page.yes"), N_("page.no"), N_("page.anti_phishing"), N_("page.guidance"),
    N_("page.done_yes"), N_("page.done_no"), N_("page.gone"), N_("page.bad"),
    # answers that do not close the alert (the answer policy): an unverified or late "it was me"
    N_("page.noted"), N_("page.late"), N_("page.changed_mind"),
)


def pick(locale: str | None) -> tuple[str, dict[str, str]]:
    """The page's language for an account's locale tag, and its strings by short name (``title``)."""
    loc = catalogue_locale(locale)
    return loc, {key.removeprefix("page."): lookup(loc, key) for key in PAGE_KEYS}
