package dev.tpc.stream;

import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Sums a numeric field and counts rows per group, and emits one row per group (the group's
 * fields, the exact sum as a decimal, the count) just before each checkpoint barrier and at end
 * of input. Nothing is kept across checkpoints, so there is no state to snapshot: what was summed
 * since the last checkpoint is emitted into the same checkpoint, and after a failure the source
 * replays exactly those rows.
 *
 * <p>This turns a changelog of many small deltas (one per event) into one delta per group and
 * checkpoint, which is what a database sink applying upserts wants.
 */
final class SumPerCheckpoint extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, BoundedOneInput {
    private static final long serialVersionUID = 1L;

    private final int[] groupFields;
    private final int sumField;
    private transient Map<List<Object>, Sum> sums;
    private transient StreamRecord<Row> reuse;

    SumPerCheckpoint(int[] groupFields, int sumField) {
        this.groupFields = groupFields;
        this.sumField = sumField;
    }

    private static final class Sum {
        long small;
        BigInteger overflow = BigInteger.ZERO; // exact beyond 64 bits
        long count;

        void add(long value) {
            long result = small + value;
            if (((small ^ result) & (value ^ result)) < 0) { // overflowed: move it aside
                overflow = overflow.add(BigInteger.valueOf(small));
                result = value;
            }
            small = result;
            count++;
        }

        BigDecimal total() {
            return new BigDecimal(overflow.add(BigInteger.valueOf(small)));
        }
    }

    @Override
    public void open() throws Exception {
        super.open();
        sums = new LinkedHashMap<>();
        reuse = new StreamRecord<>(null);
    }

    @Override
    public void processElement(StreamRecord<Row> element) {
        Row row = element.getValue();
        Object[] group = new Object[groupFields.length];
        for (int i = 0; i < group.length; i++) {
            group[i] = row.getField(groupFields[i]);
        }
        Object value = row.getField(sumField);
        if (!(value instanceof Number)) {
            throw new IllegalArgumentException("cannot sum " + value + " in row " + row);
        }
        sums.computeIfAbsent(Arrays.asList(group), k -> new Sum())
                .add(((Number) value).longValue());
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        emitAll();
    }

    @Override
    public void endInput() {
        emitAll();
    }

    private void emitAll() {
        for (Map.Entry<List<Object>, Sum> entry : sums.entrySet()) {
            List<Object> group = entry.getKey();
            Row out = new Row(group.size() + 2);
            for (int i = 0; i < group.size(); i++) {
                out.setField(i, group.get(i));
            }
            out.setField(group.size(), entry.getValue().total());
            out.setField(group.size() + 1, entry.getValue().count);
            output.collect(reuse.replace(out));
        }
        sums.clear();
    }
}
