from consumer.acks import AckTracker, int_to_lsn, lsn_to_int


def test_lsn_round_trip():
    assert lsn_to_int("0/19713D0") == 0x19713D0
    assert lsn_to_int("1/0") == 1 << 32
    assert int_to_lsn(lsn_to_int("A/FF")) == "A/FF"


def test_confirms_only_when_a_closed_transaction_is_fully_acked():
    t = AckTracker()
    u = t.begin()
    a, b = t.add(u), t.add(u)
    assert t.confirmable() is None  # open
    t.close(u, 100)
    a(None)
    assert t.confirmable() is None  # one still in flight
    b(None)
    assert t.confirmable() == 100
    assert t.confirmable() is None  # already reported


def test_a_later_transaction_acked_first_waits_for_the_earlier():
    t = AckTracker()
    u1 = t.begin(); d1 = t.add(u1); t.close(u1, 100)
    u2 = t.begin(); d2 = t.add(u2); t.close(u2, 200)
    d2(None)
    assert t.confirmable() is None
    d1(None)
    assert t.confirmable() == 200


def test_empty_transactions_and_standalone_messages():
    t = AckTracker()
    u = t.begin(); t.close(u, 50)  # a transaction with no events (e.g. only untracked rows)
    s = t.begin(); d = t.add(s); t.close(s, None)  # a non-transactional message
    assert t.confirmable() == 50
    d(None)
    assert t.confirmable() is None  # standalone messages never move the position themselves
    assert t.pending == 0


def test_a_failed_delivery_blocks_every_later_confirmation():
    t = AckTracker()
    u = t.begin(); d = t.add(u); t.close(u, 100)
    d(RuntimeError("broker said no"))
    assert t.failure is not None
    assert t.confirmable() is None
