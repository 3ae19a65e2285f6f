"""`python -m localenv.cluster start --set KEY=VALUE`: a drill's Flink settings reach every
daemon of its cluster as dynamic properties (no cluster is started here; the zombie drill,
`tests/sinks/test_zombie_writer.py`, starts one with a shorter `heartbeat.timeout`)."""

import pytest

from localenv.cluster import Cluster, parse_args


def test_settings_follow_the_rpc_port_as_dynamic_properties():
    cluster = Cluster("settings-test", 18081, 16123, settings={"heartbeat.timeout": "20s"})
    assert cluster._dynamic_properties() == [
        "-D",
        "jobmanager.rpc.port=16123",
        "-D",
        "heartbeat.timeout=20s",
    ]


def test_start_takes_repeatable_settings():
    args = parse_args(["start", "--set", "heartbeat.timeout=20s", "--set", "a.b = c d"])
    assert args.set == [("heartbeat.timeout", "20s"), ("a.b", "c d")]


@pytest.mark.parametrize("bad", ["heartbeat.timeout", "=20s", "heartbeat.timeout="])
def test_a_setting_without_key_or_value_is_refused(bad, capsys):
    with pytest.raises(SystemExit):
        parse_args(["start", "--set", bad])
    assert "write KEY=VALUE" in capsys.readouterr().err
