package dev.tpc.sink;

import org.apache.flink.streaming.api.connector.sink2.CommittableMessage;
import org.apache.flink.streaming.api.connector.sink2.CommittableSummary;
import org.apache.flink.streaming.api.connector.sink2.CommittableWithLineage;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;

import java.util.ArrayList;
import java.util.List;

/**
 * Checkpoint scope's pre-commit topology (Sink V2 {@code SupportsPreCommitTopology}), run with
 * parallelism 1: gathers the staged batches every writer subtask pre-committed and hands the
 * committer one committable per checkpoint, which it applies in one transaction.
 *
 * <p>Writers emit a checkpoint's committables before they forward its barrier, and the barriers
 * are aligned (the sink refuses anything but EXACTLY_ONCE checkpoints; Flink's sinks never use
 * unaligned ones), so when this operator's {@link #prepareSnapshotPreBarrier} runs for checkpoint
 * N it holds exactly the batches of N and of nothing later. It emits them there, before the
 * barrier, so it has no state: nothing is held across a checkpoint. A writer that reached the end
 * of its input early labels its tail with its last checkpoint + 1; that tail joins the next
 * checkpoint this operator sees, or the one after the end of all input ({@link #endInput}).
 *
 * <p>Bookkeeping that Flink's {@code CommitterOperator} checks: one summary per checkpoint, as
 * subtask 0 of 1, announcing the one committable that follows, both with the same checkpoint id;
 * never two summaries for one checkpoint id. The output goes {@code global()} to committer
 * subtask 0.
 */
final class CheckpointCommittables extends AbstractStreamOperator<CommittableMessage<PgCommittable>>
        implements OneInputStreamOperator<
                        CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>,
                BoundedOneInput {
    private static final long serialVersionUID = 1L;

    private final String sinkId;
    private final List<PgCommittable> batches = new ArrayList<>();
    private long highestLabel; // the highest checkpoint id among the batches held
    private long lastEmitted;

    CheckpointCommittables(String sinkId) {
        this.sinkId = sinkId;
    }

    @Override
    public void processElement(StreamRecord<CommittableMessage<PgCommittable>> element) {
        CommittableMessage<PgCommittable> message = element.getValue();
        if (message instanceof CommittableWithLineage) {
            CommittableWithLineage<PgCommittable> committable =
                    (CommittableWithLineage<PgCommittable>) message;
            if (committable.getCommittable().isCheckpoint()) {
                throw new IllegalStateException("a whole checkpoint reached the aggregation of "
                        + "sink '" + sinkId + "': " + committable.getCommittable());
            }
            batches.add(committable.getCommittable());
            highestLabel = Math.max(highestLabel, committable.getCheckpointId());
        }
        // The writers' summaries only count their own committables: the one this operator
        // emits replaces them.
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        emit(Math.max(checkpointId, highestLabel));
    }

    @Override
    public void endInput() {
        emit(highestLabel); // every writer has ended: their tails are all here
    }

    private void emit(long checkpointId) {
        if (batches.isEmpty()) {
            return; // an empty checkpoint: no committable, so no transaction
        }
        if (checkpointId <= lastEmitted) {
            // Never two summaries for one checkpoint id (the committer would refuse them).
            checkpointId = lastEmitted + 1;
        }
        PgCommittable checkpoint = PgCommittable.ofCheckpoint(sinkId, checkpointId, batches);
        output.collect(new StreamRecord<>(new CommittableSummary<>(0, 1, checkpointId, 1, 0)));
        output.collect(
                new StreamRecord<>(new CommittableWithLineage<>(checkpoint, checkpointId, 0)));
        lastEmitted = checkpointId;
        batches.clear();
        highestLabel = 0;
    }
}
