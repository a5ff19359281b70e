"""Support tickets: lifecycle, routing policy, SLA clocks, classification, helpdesk sync, queries."""
