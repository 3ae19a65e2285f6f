"""Local run-time helpers shared by the demo, the jobs and the tests. Of the project's packages
they use `transforms` only, and are used by the others (tests/test_package_floors.py).

- `localenv.paths`: the project-owned directory for logs, temp files, checkpoints and jars.
- `localenv.flink`: a PyFlink environment that keeps Flink's files in that directory and runs
  Python workers with this interpreter.
- `localenv.postgres`: a throwaway PostgreSQL server on 127.0.0.1 for tests and the demo, and
  from a shell (`python -m localenv.postgres start|status|stop`).
- `localenv.jars`: the project's jars (the Java module under sinks/java, Flink's Kafka
  connector), built or resolved by Maven on first use.
- `localenv.cluster`: a standalone Flink session cluster on 127.0.0.1 (`python -m
  localenv.cluster start|status|submit|stop-job|stop`, see CLUSTER.md).
"""
