"""The pure parts of the slow-client guard: the body clock and the per-address slots."""

import asyncio

from kopers.api import guard
from kopers.api.guard import AddressSlots, BodyClock, ConnectionGuard, client_key


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


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("not an address") == "not an address"


class FakeTransport(asyncio.Transport):
    def __init__(self, peer: str) -> None:
        super().__init__()
        self.peer = peer
        self.written = b""
        self.aborted = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 40000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def can_write_eof(self) -> bool:
        return False

    def abort(self) -> None:
        self.aborted = True


class NullProtocol(asyncio.Protocol):
    pass


async def test_refusals_past_the_lingering_budget_are_aborted_at_once() -> None:
    conn_guard = ConnectionGuard(1)
    wrap = conn_guard.wrap(NullProtocol)
    wrap().connection_made(FakeTransport("192.0.2.7"))  # takes the address's one slot
    refused = FakeTransport("192.0.2.7")
    first = wrap()
    first.connection_made(refused)
    assert b"503" in refused.written and not refused.aborted  # answered, then drained
    assert conn_guard.lingering == 1
    conn_guard.lingering = guard.MAX_LINGERING
    flood = FakeTransport("192.0.2.7")
    wrap().connection_made(flood)
    assert flood.aborted and flood.written == b""
    first.connection_lost(None)
    assert conn_guard.lingering == guard.MAX_LINGERING - 1
