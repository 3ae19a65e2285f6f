"""Controlling a running Flink job from Python where PyFlink 2.3 falls short, so that jobs never
touch the py4j gateway themselves: stopping a job with a savepoint, and the operator id Flink
derives from a uid (to name the operator of a savepoint's unmapped state)."""

import time

from localenv.flink import file_uri


def stop_with_savepoint(job_client, savepoint_dir: str, timeout: float = 600.0) -> str:
    """Stop the job gracefully: a savepoint (canonical format) in ``savepoint_dir``, the sinks
    commit it (its transactions are the last the job writes), then the job finishes. Returns
    the savepoint's path.

    pyflink 2.3's `JobClient.stop_with_savepoint` calls a Java method that no longer exists
    (stopWithSavepoint(boolean, String); Flink 2 added a SavepointFormatType): this calls Java."""
    from pyflink.common.completable_future import CompletableFuture
    from pyflink.java_gateway import get_gateway

    canonical = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    future = CompletableFuture(
        job_client._j_job_client.stopWithSavepoint(False, file_uri(savepoint_dir), canonical), str
    )
    path = future.result() if timeout is None else _result_within(future, timeout)
    return path[len("file:") :] if path.startswith("file:") else path


def _result_within(future, timeout: float):
    # pyflink's CompletableFuture.result() takes no timeout; poll it.
    deadline = time.monotonic() + timeout
    while not future.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no savepoint after {timeout:.0f} s")
        time.sleep(0.2)
    return future.result()


def operator_id(uid: str) -> str:
    """The operator id Flink derives from a uid (murmur3_128 of it, as StreamGraphHasherV2).
    Needs the JVM."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    hashing = jvm.org.apache.flink.shaded.guava33.com.google.common.hash.Hashing
    return bytes(
        hashing.murmur3_128(0)
        .newHasher()
        .putString(uid, jvm.java.nio.charset.StandardCharsets.UTF_8)
        .hash()
        .asBytes()
    ).hex()
