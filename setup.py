"""Install the exactly-once payments template.

    pip install -e '.[test]'      # then: python -m sinks.build (also done lazily on first use)

The Java core of the two-phase-commit sink is a Maven module (sinks/java), built against the
installed apache-flink's version into var/jars/ by `python -m sinks.build`; `sinks.sink_jar()`
builds it on first use when missing or stale.
"""

from setuptools import find_packages, setup

setup(
    name="flink-exactly-once-payments",
    version="0.1.0",
    description="PyFlink + Beam job template with an exactly-once PostgreSQL two-phase-commit sink",
    python_requires=">=3.9,<3.12",
    packages=find_packages(
        include=[
            "jobs",
            "jobs.*",
            "transforms",
            "transforms.*",
            "sinks",
            "sinks.*",
            "localenv",
            "localenv.*",
        ]
    ),
    # The Maven module under sinks/java is built in place (python -m sinks.build), not packaged.
    # jobs/new_templates: the files `python -m jobs.new NAME` writes a new job from.
    package_data={"transforms": ["*.json"], "jobs": ["new_templates/*.tmpl"]},
    install_requires=[
        # apache-flink 2.3.0 pins apache-beam 2.61.0, pandas < 2.3 and pyarrow < 21.
        "apache-flink==2.3.0",
        "psycopg[binary]>=3.1,<4",
        "pyyaml>=5.4",  # reads flink-conf/config.yaml (already required by apache-beam)
    ],
    extras_require={
        # `--source kafka`: `python -m jobs.produce`, and the local broker's readiness check.
        # Pure Python (no librdkafka); 2.1 brought the idempotent producer.
        "kafka": ["kafka-python>=2.2,<4"],
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "kafka-python>=2.2,<4",
            # lint, format and type checks (.ci/run): pinned, a new release brings new findings
            "ruff==0.17.5",
            "mypy==2.4.1",
            "types-PyYAML==6.0.12.20261113",
        ],
        # `python -m bench.suite`: the chart, and py-spy to profile the Python workers
        "bench": ["matplotlib>=3.8", "py-spy>=0.3"],
    },
)
