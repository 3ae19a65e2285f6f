package dev.tpc.stream;

import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.List;

/**
 * Packs up to {@code maxRows} consecutive rows into one columnar row: field {@code i} of the
 * batch is the array of field {@code i} of its rows. A Python function downstream then pays the
 * cost of crossing the Python boundary once per batch instead of once per row, and decodes a
 * few arrays instead of a Row object per row (3.5 us a line for rows against 0.2 us for columns,
 * measured with PyFlink's coders). A partial batch is emitted before every checkpoint barrier
 * and at end of input: nothing is held across a checkpoint, so there is no state to snapshot,
 * and order is kept.
 */
final class BatchPerCheckpoint extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, BoundedOneInput {
    private static final long serialVersionUID = 1L;

    private final int maxRows;
    private final Class<?>[] fieldClasses;
    private transient List<Row> pending;
    private transient StreamRecord<Row> reuse;

    /** {@code fieldClasses}: the class of each field, the component class of its column. */
    BatchPerCheckpoint(int maxRows, Class<?>[] fieldClasses) {
        if (maxRows < 1) {
            throw new IllegalArgumentException("a batch holds at least one row: " + maxRows);
        }
        this.maxRows = maxRows;
        this.fieldClasses = fieldClasses.clone();
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
        int size = pending.size();
        Row batch = new Row(fieldClasses.length);
        for (int field = 0; field < fieldClasses.length; field++) {
            Object[] column = (Object[]) Array.newInstance(fieldClasses[field], size);
            for (int row = 0; row < size; row++) {
                column[row] = pending.get(row).getField(field);
            }
            batch.setField(field, column);
        }
        pending.clear();
        output.collect(reuse.replace(batch));
    }
}
