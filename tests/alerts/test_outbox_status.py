"""The outbox status table: every status has its row, moves are only the ones drawn, errors are named."""

from __future__ import annotations

import pytest

from alerts.outbox import DEAD_LETTERS, READY, TRANSITIONS, OutboxStateError, OutboxStatus, apply, can


def test_every_status_is_in_the_table_and_every_target_is_a_status() -> None:
    assert set(TRANSITIONS) == set(OutboxStatus)
    assert {t for moves in TRANSITIONS.values() for t in moves.values()} <= set(OutboxStatus)


def test_ready_rows_are_claimed_and_dead_letters_never_move() -> None:
    assert all(apply(s, "claim") == "sending" for s in READY)
    for s in DEAD_LETTERS:
        assert TRANSITIONS[s] == {}
    assert type(apply("pending", "claim")) is str  # stored as plain text on every database


def test_illegal_moves_raise_a_named_error() -> None:
    assert not can("delivered", "retry")
    with pytest.raises(OutboxStateError, match="status 'delivered' cannot take event 'retry'"):
        apply("delivered", "retry")
    with pytest.raises(OutboxStateError):
        apply("pending", "sent")  # nothing is sent without a lease


def test_a_late_receipt_can_still_say_delivered() -> None:
    assert apply("undelivered", "deliver") == "delivered"
    assert apply("unconfirmed", "deliver") == "delivered"
    assert apply("sent", "unconfirm") == "unconfirmed"
