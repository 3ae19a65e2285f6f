"""Beam tier: pipelines on the DirectRunner (no JVM, no downloads)."""

import sys

import pytest

PYFLINK_WORKER = "pyflink.fn_execution.beam.beam_operations"


def require_clean_beam_worker():
    """Fail clearly if a PyFlink job already ran in this process.

    PyFlink's local (loopback) execution imports its Python worker into the test process,
    which re-registers Beam's ParDo operation factory process-wide; every later Beam
    DirectRunner pipeline then dies with a protobuf DecodeError. Run Beam tests before
    mini-cluster tests, or in another pytest process.
    """
    if PYFLINK_WORKER in sys.modules:
        pytest.fail(
            "a PyFlink job ran earlier in this process and replaced Beam's ParDo "
            "factory; run tests/beam in a separate pytest process",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _clean_beam_worker():
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
