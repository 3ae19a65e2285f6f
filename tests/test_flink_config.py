"""flink-conf/config.yaml is read in one way everywhere: nested YAML flattened to Flink's dotted
keys, values as Flink writes them (`localenv.flink.read_config`). No JVM."""

from jobs.flink_config import job_defaults
from localenv.cluster import configured_ports
from localenv.flink import flatten_config, read_config


def test_nested_yaml_becomes_dotted_keys_with_flinks_booleans():
    tree = {
        "execution": {"checkpointing": {"interval": "2 s", "snapshot-compression": True}},
        "pipeline": {"object-reuse": False},
        "rest": {"port": 8081},
        "taskmanager.numberOfTaskSlots": 2,
    }
    assert flatten_config(tree) == {
        "execution.checkpointing.interval": "2 s",
        "execution.checkpointing.snapshot-compression": "true",
        "pipeline.object-reuse": "false",
        "rest.port": "8081",
        "taskmanager.numberOfTaskSlots": "2",
    }


def test_the_cluster_and_the_jobs_read_the_same_file_the_same_way(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "rest:\n  port: 18081\njobmanager:\n  rpc:\n    port: 16123\n"
        "execution:\n  checkpointing:\n    snapshot-compression: true\n"
    )
    assert read_config(tmp_path)["execution.checkpointing.snapshot-compression"] == "true"
    assert configured_ports(tmp_path) == (18081, 16123)
    assert job_defaults(tmp_path)["execution.checkpointing.snapshot-compression"] == "true"
    # the project's own file: a boolean there reaches the job lower-case
    assert job_defaults()["execution.checkpointing.snapshot-compression"] == "true"


def test_no_file_is_no_settings(tmp_path):
    assert read_config(tmp_path) == {}
