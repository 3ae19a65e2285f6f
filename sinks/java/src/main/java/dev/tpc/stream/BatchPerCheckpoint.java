package dev.tpc.stream;

import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

import java.util.ArrayList;
import java.util.List;

/**
 * Packs up to {@code maxRows} consecutive rows into one row holding them as an array, so that a
 * Python function downstream pays the cost of crossing the Python boundary once per batch
 * instead of once per row. A partial batch is emitted before every checkpoint barrier and at end
 * of input: nothing is held across a checkpoint, so there is no state to snapshot, and order is
 * kept.
 */
final class BatchPerCheckpoint extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, BoundedOneInput {
    private static final long serialVersionUID = 1L;

    private final int maxRows;
    private transient List<Row> pending;
    private transient StreamRecord<Row> reuse;

    BatchPerCheckpoint(int maxRows) {
        if (maxRows < 1) {
            throw new IllegalArgumentException("a batch holds at least one row: " + maxRows);
        }
        this.maxRows = maxRows;
    }

    @Override
    public void open() throws Exception {
        super.open();
        pending = new ArrayList<>(maxRows);
        reuse = new StreamRecord<>(null);
    }

    @Override
    public void processElement(StreamRecord<Row> element) {
        pending.add(element.getValue());
        if (pending.size() >= maxRows) {
            emit();
        }
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        emit();
    }

    @Override
    public void endInput() {
        emit();
    }

    private void emit() {
        if (pending.isEmpty()) {
            return;
        }
        Row batch = new Row(1);
        batch.setField(0, pending.toArray(new Row[0]));
        pending.clear();
        output.collect(reuse.replace(batch));
    }
}
