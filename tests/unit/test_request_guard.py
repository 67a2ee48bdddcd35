"""The pure parts of the slow-client guard: the body clock and the per-address slots."""

from kopers.api.guard import AddressSlots, BodyClock


def test_a_body_is_judged_only_once_the_grace_is_over() -> None:
    clock = BodyClock(grace_s=10, min_bytes_per_s=1000, started=100.0)
    assert not clock.too_slow(105.0, received=0, reading=True)  # nothing yet, still in grace
    assert not clock.too_slow(109.0, received=0, reading=True)
    assert clock.too_slow(110.0, received=5000, reading=True)  # 500 B/s over 10 s


def test_a_body_that_keeps_up_on_average_passes() -> None:
    clock = BodyClock(grace_s=10, min_bytes_per_s=1000, started=0.0)
    assert not clock.too_slow(10.0, received=20_000, reading=True)
    # A pause is fine while the average holds: 20 000 bytes cover 20 s.
    assert not clock.too_slow(20.0, received=20_000, reading=True)
    assert clock.too_slow(21.0, received=20_000, reading=True)


def test_time_the_server_was_not_reading_is_not_the_clients() -> None:
    clock = BodyClock(grace_s=10, min_bytes_per_s=1000, started=0.0)
    assert not clock.too_slow(2.0, received=2000, reading=True)
    # The server stopped reading (its buffer is full): the client cannot send.
    for now in range(3, 60):
        assert not clock.too_slow(float(now), received=2000, reading=False)
    assert clock.elapsed == 2.0
    assert not clock.too_slow(60.0, received=2000, reading=True)  # 3 s of the client's time
    assert clock.too_slow(70.0, received=2000, reading=True)  # 13 s for 2000 bytes


def test_no_floor_never_judges() -> None:
    clock = BodyClock(grace_s=1, min_bytes_per_s=0, started=0.0)
    assert not clock.too_slow(1000.0, received=0, reading=True)


def test_slots_are_counted_per_address() -> None:
    slots = AddressSlots(2)
    assert slots.take("192.0.2.1") and slots.take("192.0.2.1")
    assert not slots.take("192.0.2.1")
    assert slots.take("192.0.2.2")
    assert slots.count("192.0.2.1") == 2  # the refused one took nothing
    slots.give("192.0.2.1")
    assert slots.take("192.0.2.1")


def test_released_addresses_are_forgotten() -> None:
    slots = AddressSlots(5)
    for n in range(100):
        assert slots.take(f"198.51.100.{n}")
        slots.give(f"198.51.100.{n}")
    assert len(slots) == 0


def test_a_cap_of_zero_is_no_cap() -> None:
    slots = AddressSlots(0)
    assert all(slots.take("192.0.2.1") for _ in range(1000))
