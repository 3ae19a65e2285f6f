"""Fixtures of the tests of `transforms/`: pure Python (no marker), Beam pipelines on the
DirectRunner (`beam`: no JVM, no downloads), and the adapters on the mini cluster
(`minicluster`).

The project root (for `transforms` and `tests.corpus`) is importable through pytest.ini's
`pythonpath = .`, whether pytest runs as `pytest` or as `python -m pytest`.
"""

import sys

import pytest

PYFLINK_WORKER = "pyflink.fn_execution.beam.beam_operations"


def require_clean_beam_worker():
    """Fail clearly if a PyFlink job already ran in this process.

    PyFlink's local (loopback) execution imports its Python worker into the test process,
    which re-registers Beam's ParDo operation factory process-wide; every later Beam
    DirectRunner pipeline then dies with a protobuf DecodeError. tests/conftest.py runs the
    `beam` tests first; run them in a pytest process of their own otherwise (`-m beam`).
    """
    if PYFLINK_WORKER in sys.modules:
        pytest.fail(
            "a PyFlink job ran earlier in this process and replaced Beam's ParDo "
            "factory; run the beam tests (-m beam) in a separate pytest process",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _clean_beam_worker(request):
    if request.node.get_closest_marker("beam"):
        require_clean_beam_worker()


def direct_test_pipeline():
    """A TestPipeline forced onto the DirectRunner (Prism/Flink runners need downloads)."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_pipeline import TestPipeline

    return TestPipeline(
        runner="DirectRunner", options=PipelineOptions(["--runner=DirectRunner"]), blocking=True
    )


@pytest.fixture
def pipeline():
    return direct_test_pipeline()
