"""Support tickets: lifecycle, routing policy, SLA clocks, classification, helpdesk sync, queries."""

# register the survey and sentiment hooks of tickets.core whenever the package is used
from tickets import sentiment as _sentiment  # noqa: F401
from tickets import surveys as _surveys  # noqa: F401
