"""Test harnesses that run inside Flink: `faults` (fault injection: `FailOnce`), `sink_check`
(the sink's acceptance job, `python -m tests.harness.sink_check`) and `streams` (a stream of
Python objects from a collection: `source_lines_stream`).

They are modules, not test files, because Flink runs them: the Python workers unpickle their
functions by module name, so they must be importable there. Locally the workers have the project
root on their path (`localenv.flink.python_worker_settings`); `localenv.cluster submit` ships
this package along with the project's packages when the job module lives here.
"""
