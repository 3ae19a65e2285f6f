"""Local run-time helpers shared by the demo, the jobs and the tests.

- `localenv.paths`: the project-owned directory for logs, temp files, checkpoints and jars.
- `localenv.flink`: a PyFlink environment that keeps Flink's files in that directory and runs
  Python workers with this interpreter.
- `localenv.postgres`: a throwaway PostgreSQL server on 127.0.0.1 for tests and the demo.
- `localenv.cluster`: a standalone Flink session cluster on 127.0.0.1 (`python -m
  localenv.cluster start|status|submit|stop-job|stop`, see CLUSTER.md).
"""
