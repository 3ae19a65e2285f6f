"""The soak (`bench.soak`): the payments job on a real standalone cluster, a steady Kafka stream,
a checkpoint every second, and memory, checkpoint size, dedupe state and commit log that stay
flat once warm, with nothing applied twice or lost at the end.

Two lengths, the same checks: the full 30 minutes, by hand with `-m soak`, and in CI a 3-minute
version with a shorter TTL and retention and looser bounds. Three minutes is as short as it
gets: the sinks trim their commit log at most once a minute, so a shorter run could not show
its rows on a plateau. Neither asserts how long anything took: only sizes, and the books'
exactness."""

import pytest

from bench.soak import JUDGED, flatness, run_soak
from localenv.kafka import LocalKafka

pytestmark = [pytest.mark.cluster]

# Why these bounds. `ratio` is the maximum of a series over the run's last third over its
# maximum over the second third (`bench.soak.flatness`): 1 when flat, and a leak that grows a
# series by g of its size over the whole run shows as about 1 + g/3.
#
# 30 minutes (samples every minute, warm-up 5 minutes): the second third starts at minute 10,
# five times the commit log's retention (2 min): the commit log is on its plateau in both
# thirds, and its sawtooth (a trim every 2 minutes) peaks several times in each. The dedupe's
# heap state takes longer: its incremental TTL cleanup removes an expired entry only when its
# sweep comes round, so it climbs to about 3 times the TTL's keys, by minute 20 with a 3-minute
# TTL (bench/results/2026-12-06-soak: 8.6 MB at its peak, 7.7-8.5 MB after). Then only noise
# remains (the rate, where the sweep stands at a checkpoint): 1.15 leaves room for that and
# still catches a leak of 45 % over the run. The JVMs' and workers' RSS grow only while heaps
# and arenas expand to their working size: 1.10 (measured: 1.009, 1.025, 1.0).
SOAK_BOUNDS = {key: 1.15 for key in JUDGED} | {
    "jobmanager_rss_mb": 1.10,
    "taskmanager_rss_mb": 1.10,
    "python_rss_mb": 1.10,
}
# 3 minutes (samples every 10 s): the second third starts at minute 1. The retention is 1 min,
# trimmed every minute: the commit log's rows peak once per third. One minute is a short time
# for a JVM to reach its working size on a loaded 2-core machine, and a sawtooth's peak depends
# on where its trim falls in the sample grid: 1.35 (measured at most 1.20). Left to the 30
# minutes: the commit log's bytes (the space a trim frees is reused only after autovacuum, once
# a minute at most, has passed: measured 1.42 to 1.60 while its rows were flat, 1.03 to 1.07),
# and the dedupe's state and the checkpoints it makes up, which are still climbing towards
# their plateau at minute 3 (above: it takes many TTLs; measured 1.33, 1.45 with a TTL of 10 s,
# 1.39 with 30 s). For them the short soak checks that the dedupe forgets (`forgets`).
CI_BOUNDS = {
    key: 1.35
    for key in JUDGED
    if key not in ("commit_log_bytes", "dedupe_state_bytes", "checkpoint_bytes")
}


def test_flatness_tells_a_plateau_from_a_leak():
    minutes = range(30)
    flat = [{"t": m * 60.0, "x": 100 + (m % 3) * 10} for m in minutes]  # a sawtooth
    leak = [{"t": m * 60.0, "x": 100 + 10 * m} for m in minutes]
    assert flatness(flat, "x", 300)["ratio"] == 1.0
    assert flatness(flat, "x", 300)["slope_per_minute"] == pytest.approx(0, abs=0.5)
    leaking = flatness(leak, "x", 300)
    assert leaking["ratio"] == pytest.approx(390 / 290, abs=0.001)
    assert leaking["slope_per_minute"] == pytest.approx(10)


@pytest.fixture(scope="module")
def kafka():
    with LocalKafka() as broker:
        yield broker


def soak_checks(result: dict, bounds: dict) -> None:
    exact = result["exactness"]
    assert exact["applied_twice"] == 0 and exact["lost"] == 0, exact
    assert exact["ledger"]["found"] == exact["ledger"]["expected"] > 0
    samples = result["samples"]
    assert samples[-1]["checkpoints_completed"] > samples[0]["checkpoints_completed"]
    # Every series was measured: a missing one would pass any flatness check.
    for key in JUDGED:
        assert all(s[key] > 0 for s in samples), key
    for key in JUDGED:
        print(f"{key}: ratio {result['verdict'][key]['ratio']} (bound {bounds.get(key)})")
    too_steep = {
        key: result["verdict"][key]
        for key, bound in bounds.items()
        if result["verdict"][key]["ratio"] is None or result["verdict"][key]["ratio"] > bound
    }
    assert too_steep == {}


def forgets(result: dict) -> float:
    """The dedupe's state per event produced at the end, as a share of the same at the first
    sample (within the TTL: nothing had expired). A dedupe that never forgot holds every event
    it saw: about 1. One that forgets falls as the run outlives its TTL."""
    first, last = result["samples"][0], result["samples"][-1]
    per_event = [s["dedupe_state_bytes"] / s["applied"] for s in (first, last)]
    print(f"dedupe bytes per line applied: {per_event[0]:.1f} first, {per_event[1]:.1f} last")
    return per_event[1] / per_event[0]


def test_a_three_minute_soak_stays_flat(cluster, postgres_server, kafka, tmp_path):
    # 300 lines/s: a rate this job keeps up with on a loaded CI machine (the 30-minute soak
    # held 500/s with a lag under 1,000 lines); the checks are on sizes, never on time.
    result = run_soak(
        cluster,
        postgres_server,
        kafka,
        tmp_path,
        minutes=3,
        rate=300,
        sample_seconds=10,
        dedupe_ttl="10 s",
        commit_log_retention="1 min",
        warm_up_minutes=1,
    )
    soak_checks(result, CI_BOUNDS)
    # 18 TTLs: a dedupe that forgets holds a few TTLs' worth of keys (measured 0.22), well
    # under half of what it saw; one that never forgot would hold all of it (about 1).
    assert forgets(result) < 0.5


@pytest.mark.soak
def test_a_thirty_minute_soak_stays_flat(cluster, postgres_server, kafka, tmp_path):
    result = run_soak(
        cluster,
        postgres_server,
        kafka,
        tmp_path,
        minutes=30,
        rate=500,
        sample_seconds=60,
        dedupe_ttl="3 min",
        commit_log_retention="2 min",
        warm_up_minutes=5,
    )
    soak_checks(result, SOAK_BOUNDS)
