"""The guarded fetcher: no spelling of an internal address is fetched, redirects are checked again,
every failure reads the same, and an operator can allow what it needs. Real sockets on loopback; the
listener that stands for the inside of the deployment must see no request."""

from __future__ import annotations

import ipaddress

import pytest

from openveo.service.outbound import NEUTRAL, Allowlist, Outbound, OutboundFailed, public
from openveo.service.webhooks import Dispatcher
from tests.helpers import required
from tests.listener import Listener, ipv6_loopback

# Spellings of this machine's loopback that the system resolver (and so a naive fetcher) accepts.
LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "localhost",
    "LocalHost.",
    "127.1",
    "2130706433",  # 127.0.0.1 as one decimal number
    "0x7f.0.0.1",
    "0177.0.0.1",  # octal
    "127.0.0.1.",
    "0.0.0.0",  # the unspecified address reaches the local host on Linux
    "[::ffff:127.0.0.1]",
]


@pytest.fixture()
def inside():
    with Listener() as listener:
        yield listener


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_no_spelling_of_loopback_is_fetched(inside, host):
    with pytest.raises(OutboundFailed) as refused:
        Outbound().get(inside.url(host), max_bytes=1000)
    assert str(refused.value) == NEUTRAL
    assert inside.requests == []


def test_ipv6_loopback_is_not_fetched():
    if not ipv6_loopback():
        required("this machine has no IPv6 loopback to listen on")
    with Listener("::1") as inside:
        for host in ("[::1]", "[0:0:0:0:0:0:0:1]"):
            with pytest.raises(OutboundFailed):
                Outbound().get(inside.url(host), max_bytes=1000)
        assert inside.requests == []


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "127.0.0.1", "0.0.0.0",
        "224.0.0.1", "255.255.255.255", "240.0.0.1", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1",
        "ff02::1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "2002:7f00:1::",
        "2002:a9fe:a9fe::",
    ],
)  # fmt: skip
def test_internal_addresses_are_not_public(address):
    assert not public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are(address):
    assert public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://[::ffff:192.168.0.1]/",
        "https://0/",
    ],
)
def test_private_and_metadata_urls_are_refused_before_any_connection(url):
    """Judged without connecting (a test sends nothing outside loopback)."""
    assert Outbound().refusal(url) is not None


def test_a_redirect_to_the_inside_is_checked_again(inside):
    """An allowed host that redirects inward gets nowhere: every hop is checked."""
    with Listener("127.0.0.2", status=302, location=inside.url()) as redirector:
        outbound = Outbound(Allowlist.parse(["127.0.0.2/32"]))
        with pytest.raises(OutboundFailed) as refused:
            outbound.get(redirector.url(), max_bytes=1000)
        assert str(refused.value) == NEUTRAL
        assert len(redirector.requests) == 1 and inside.requests == []


def test_refused_closed_and_failing_all_read_the_same(inside):
    """The error never tells an open port from a closed one or a refusal: no port scanning."""
    closed = Listener()
    closed_url = closed.url()
    closed.close()
    allowed = Outbound(Allowlist.parse(["127.0.0.1"]))
    messages = set()
    for outbound, url in [
        (Outbound(), inside.url()),
        (allowed, closed_url),
        (allowed, "http://no-such-host.invalid/"),
    ]:
        with pytest.raises(OutboundFailed) as failed:
            outbound.get(url, max_bytes=1000)
        messages.add(str(failed.value))
    assert messages == {NEUTRAL}


def test_the_operator_can_allow_internal_destinations(inside):
    for entry in ("127.0.0.0/8", "localhost"):
        outbound = Outbound(Allowlist.parse([entry]))
        host = "localhost" if entry == "localhost" else "127.0.0.1"
        answer = outbound.get(inside.url(host), max_bytes=1000)
        assert (answer.status, answer.body) == (200, b"ok")
    method, path, headers = inside.requests[-1]
    assert (method, path) == ("GET", "/image.png") and headers["host"] == f"localhost:{inside.port}"


def test_answers_are_capped_in_size():
    with Listener(body=b"x" * 5000) as big:
        outbound = Outbound(Allowlist.parse(["127.0.0.1"]))
        with pytest.raises(OutboundFailed):
            outbound.get(big.url(), max_bytes=4096)
        assert outbound.get(big.url(), max_bytes=5000).body == b"x" * 5000


def test_webhooks_are_not_delivered_inside(database, inside):
    """A webhook URL that points inward is refused at delivery too (DNS can change after submit)."""
    from openveo.store.schema import webhook_deliveries

    with database.write() as conn:
        conn.execute(
            webhook_deliveries.insert().values(
                message_id="msg_1", job_id="j" * 32, url=inside.url(path="/hook"), event="job.succeeded",
                payload="{}", status="pending", attempts=0, next_attempt_at=0.0, created_at=0.0,
            )
        )  # fmt: skip
    dispatcher = Dispatcher(database, render=lambda _: {}, secret_for=lambda _: "whsec_" + "A" * 44)
    assert dispatcher.run_due() == 1
    with database.read() as conn:
        delivery = conn.execute(webhook_deliveries.select()).one()
    assert (
        delivery.attempts == 1
        and delivery.status == "pending"
        and "not a public address" in delivery.last_error
    )
    assert inside.requests == []
