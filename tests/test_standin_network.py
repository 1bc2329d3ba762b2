"""The stand-in's network model: round trips, per-connection pacing, one shared link.

Two kinds of tests. The model's arithmetic runs on a simulated clock, so its exact shares and
times are checked with tight bounds (no real time passes). Through real HTTP, with the real
client, only lower bounds on time are checked: a loaded machine can always be slower, never faster.
"""

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from huggingface_hub.utils import get_session

from shardsql.standin.hub import HubStandIn
from shardsql.standin.hub.handler import WRITE_CHUNK
from shardsql.standin.hub.network import MAX_CATCH_UP_S, SLOW_LINK, Connection, Network, NetworkModel

REPO = "org/name"
MB = 1_000_000
FILES = {f"f{i}.bin": random.Random(i).randbytes(MB) for i in range(8)} | {"big.bin": bytes(2 * MB)}


pytestmark = pytest.mark.usefixtures("loopback_only")  # conftest: nothing leaves the machine


@pytest.fixture
def hub(tmp_path: Path):
    (tmp_path / "repo").mkdir()
    for name, data in FILES.items():
        (tmp_path / "repo" / name).write_bytes(data)
    with HubStandIn() as hub:
        hub.add_dataset(REPO, tmp_path / "repo")
        yield hub


def url(hub: HubStandIn, name: str) -> str:
    return f"{hub.url}/datasets/{REPO}/resolve/main/{name}"


# --- the model, on a simulated clock --------------------------------------------------------------


class Simulation:
    """Connections sending bodies through one Network, run in time order on a simulated clock."""

    def __init__(self, model: NetworkModel, overshoot: float = 0.0):
        self.now, self.waited, self.overshoot = 0.0, 0.0, overshoot
        self.network = Network(model, wait=self._wait, clock=lambda: self.now)

    def _wait(self, seconds: float) -> None:
        self.waited = seconds + self.overshoot  # the caller resumes this much later; the others run meanwhile

    def answers(self, connection: Connection, count: int) -> list[float]:
        waits = []
        for _ in range(count):
            self.waited = 0.0
            self.network.answer(connection)
            waits.append(self.waited)
        return waits

    def bodies(self, sizes: list[int], starts: list[float] | None = None) -> list[tuple[float, float]]:
        """Send a body of each size on its own connection, starting at `starts`: (start, end) of each."""
        starts = starts or [0.0] * len(sizes)
        connections = [Connection() for _ in sizes]
        left, at = list(sizes), list(starts)
        begun = [False] * len(sizes)
        while any(left):
            i = min((i for i in range(len(sizes)) if left[i]), key=lambda i: (at[i], i))
            self.now = at[i]
            if not begun[i]:
                self.network.begin_body(connections[i])
                begun[i] = True
            chunk = min(WRITE_CHUNK, left[i])
            self.waited = 0.0
            self.network.pace(connections[i], chunk)
            at[i] += self.waited  # the chunk is written then: through, on the model's terms
            left[i] -= chunk
        return list(zip(starts, at, strict=True))


def test_round_trips_and_handshakes():
    simulation = Simulation(NetworkModel(rtt_s=0.1, connect_rtts=2))
    assert simulation.answers(Connection(), 3) == pytest.approx([0.3, 0.1, 0.1])
    assert simulation.answers(Connection(), 1) == pytest.approx([0.3])  # each new connection pays again
    no_handshake = Simulation(NetworkModel(rtt_s=0.05, connect_rtts=0))
    assert no_handshake.answers(Connection(), 2) == pytest.approx([0.05, 0.05])


def test_one_connection_is_paced_at_its_rate():
    (start, end), *_ = Simulation(NetworkModel(connection_bytes_per_s=4 * MB)).bodies([2 * MB])
    assert end - start == pytest.approx(0.5)
    # Under a faster link the connection's own rate is the limit; under a slower one, the link's.
    assert Simulation(SLOW_LINK).bodies([2 * MB])[0][1] == pytest.approx(0.5)
    assert Simulation(NetworkModel(connection_bytes_per_s=4 * MB, link_bytes_per_s=MB)).bodies([MB])[0][
        1
    ] == pytest.approx(1.0)


def test_oversleeping_does_not_lower_the_rate_and_a_stalled_reader_gets_no_burst():
    # Each wait oversleeps by 2 ms: the connection catches up, so only the last one shows.
    (_, end), *_ = Simulation(NetworkModel(connection_bytes_per_s=4 * MB), overshoot=0.002).bodies([2 * MB])
    assert end == pytest.approx(0.502)
    # A write that blocked for a second (the client stopped reading): the rest is paced from then on,
    # with no more than MAX_CATCH_UP_S of it sent at once.
    simulation, connection = Simulation(NetworkModel(connection_bytes_per_s=4 * MB)), Connection()
    simulation.network.begin_body(connection)
    simulation.network.pace(connection, WRITE_CHUNK)
    simulation.now = 1.0
    for _ in range(16):  # 1 MiB more
        simulation.waited = 0.0
        simulation.network.pace(connection, WRITE_CHUNK)
        simulation.now += simulation.waited
    assert simulation.now == pytest.approx(1.0 + 16 * WRITE_CHUNK / (4 * MB) - MAX_CATCH_UP_S)


def test_busy_connections_share_the_link_fairly():
    # 8 connections of 4 MB/s each under an 8 MB/s link: 1 MB/s each, all done at about 1 s.
    spans = Simulation(NetworkModel(connection_bytes_per_s=4 * MB, link_bytes_per_s=8 * MB)).bodies([MB] * 8)
    assert [end for _, end in spans] == pytest.approx([1.0] * 8, abs=8 * WRITE_CHUNK / (8 * MB))
    # Under SLOW_LINK (25 MB/s), 4 connections are each limited by their own 4 MB/s ...
    spans = Simulation(SLOW_LINK).bodies([MB] * 4)
    assert [end for _, end in spans] == pytest.approx([0.25] * 4, rel=0.01)
    # ... and 10 by the link: 2.5 MB/s each.
    spans = Simulation(SLOW_LINK).bodies([MB] * 10)
    assert [end for _, end in spans] == pytest.approx([0.4] * 10, abs=10 * WRITE_CHUNK / (25 * MB))


def test_a_late_connection_gets_its_share_from_when_it_starts():
    # One connection alone gets the whole link (4 MB/s); from 0.5 s a second one halves it.
    spans = Simulation(NetworkModel(link_bytes_per_s=4 * MB)).bodies([4 * MB, MB], starts=[0.0, 0.5])
    (_, first_end), (_, second_end) = spans
    assert second_end == pytest.approx(1.0, abs=0.05)  # 1 MB at 2 MB/s from 0.5 s
    assert first_end == pytest.approx(1.25, abs=0.05)  # 4 MB + 1 MB through a 4 MB/s link


def test_describe():
    assert SLOW_LINK.describe() == (
        "100 ms round trip (2 more for a new connection), 4 MB/s a connection, 25 MB/s for the whole link"
    )
    assert NetworkModel().describe() == "an unlimited link"


# --- through real HTTP: lower bounds on time only ------------------------------------------------


def test_each_answer_waits_its_round_trips(hub):
    hub.model_network(rtt_s=0.15, connect_rtts=2)
    with httpx2.Client() as client:
        for _ in range(2):
            assert client.get(f"{hub.url}/api/datasets/{REPO}").status_code == 200
    first, second = hub.transfers
    assert first.answered - first.received >= 0.45  # one round trip and the handshakes
    assert second.answered - second.received >= 0.15
    assert hub.network.model == NetworkModel(rtt_s=0.15)


def test_a_connection_is_paced(hub):
    hub.model_network(connection_bytes_per_s=4 * MB)
    started = time.monotonic()
    assert get_session().get(url(hub, "big.bin")).content == FILES["big.bin"]
    assert time.monotonic() - started >= 0.5  # 2 MB at 4 MB/s
    hub.settle()  # the body's last bytes are recorded as sent a moment after the client has them
    (transfer,) = hub.transfers
    assert transfer.finished - transfer.answered >= 0.5
    hub.model_network()  # all unlimited: no model
    assert hub.network is None


def test_connections_on_both_servers_share_the_link(hub):
    names = sorted(n for n in FILES if n.startswith("f"))
    hub.redirect_files = True  # signed storage URLs for half the files, valid for an hour
    locations = {n: get_session().get(url(hub, n), follow_redirects=False).headers["Location"] for n in names[4:]}
    hub.redirect_files = False  # the other half from the Hub itself
    hub.model_network(connection_bytes_per_s=4 * MB, link_bytes_per_s=8 * MB)
    hub.reset_counters()

    def read(name: str) -> bytes:
        with httpx2.Client() as client:  # its own connection
            return client.get(locations.get(name) or url(hub, name)).content

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(read, names))
    elapsed = time.monotonic() - started
    assert got == [FILES[n] for n in names]
    hub.settle()
    assert sorted(t.server for t in hub.transfers) == ["hub"] * 4 + ["storage"] * 4
    assert elapsed >= 8 * MB / (8 * MB)  # the link, not 8 x 4 MB/s, is the limit
    first, last = min(t.answered for t in hub.transfers), max(t.finished for t in hub.transfers)
    assert 8 * MB / (last - first) <= 8 * MB * 1.01  # never more than the link
    assert all(t.finished - t.answered >= MB / (4 * MB) for t in hub.transfers)  # nor than a connection's rate


def test_stop_never_waits_for_a_slow_body(hub):
    hub.model_network(rtt_s=0.05, connection_bytes_per_s=1000)  # 2 MB would take over half an hour
    failed = []

    def read() -> None:
        try:
            get_session().get(url(hub, "big.bin"), timeout=60)
        except httpx2.TransportError as err:
            failed.append(err)

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 30
    while not hub.transfers and time.monotonic() < deadline:
        time.sleep(0.01)  # until the body has started
    hub.stop()
    reader.join(timeout=30)  # not a timing bound: without the stop event this would take 2000 s
    assert not reader.is_alive() and failed  # the body was cut off, not sent unpaced
    assert hub.requests[0][4] < len(FILES["big.bin"])
