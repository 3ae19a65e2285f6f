"""Controlling a running Flink job from Python where PyFlink 2.3 falls short, so that jobs never
touch the py4j gateway themselves: stopping a job with a savepoint, the operator id Flink
derives from a uid (to name the operator of a savepoint's unmapped state), and the REST address
of the cluster that runs a job (for `jobs.progress`)."""

import time
from typing import Optional

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


def runs_detached(env) -> bool:
    """Whether `env` (a StreamExecutionEnvironment) submits detached (`flink run -d`): its
    `execute` returns once the job is submitted, and nothing should wait for the job's end."""
    try:
        settings = env._j_stream_execution_environment.getConfiguration().toMap()
        return str(settings.get("execution.attached")).lower() == "false"
    except Exception:
        return False


def rest_url(job_client) -> Optional[str]:
    """The address of the REST API (and web UI) of the cluster that runs `job_client`'s job, as
    ``http://host:port``; None where it cannot be told (a job client of another kind, a cluster
    not up yet). PyFlink's JobClient does not say it, so this asks the Java object behind it:

    - run locally, a `MiniClusterJobClient`: its (private) mini cluster's REST address;
    - under `flink run`, a `ClusterClientJobClientAdapter`: its cluster client's web interface
      URL (the client is made for this question and closed, as the adapter does per request).

    Never raises: a monitor that cannot find the cluster shows less, the job runs as before."""
    try:
        j_client = job_client._j_job_client
        j_class = j_client.getClass()
        kind = j_class.getSimpleName()
        if kind == "MiniClusterJobClient":
            field = j_class.getDeclaredField("miniCluster")
            field.setAccessible(True)
            address = field.get(j_client).getRestAddress()  # CompletableFuture<URI>
            if not address.isDone() or address.isCompletedExceptionally():
                return None
            return str(address.get().toString()).rstrip("/")
        if kind == "ClusterClientJobClientAdapter":
            field = j_class.getDeclaredField("clusterClientProvider")
            field.setAccessible(True)
            cluster_client = field.get(j_client).getClusterClient()
            try:
                return str(cluster_client.getWebInterfaceURL()).rstrip("/")
            finally:
                cluster_client.close()
    except Exception:  # py4j errors, reflection refused: no address
        return None
    return None
