package dev.tpc.stream;

import org.apache.flink.api.common.functions.FilterFunction;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * How far a job has read each of its sources, as rows that a sink commits together with the rows
 * derived from those lines: per source (a file's path, or {@code kafka:<topic>:<partition>}),
 * the last position read (a file's line number, a record's offset), how many lines and bytes,
 * and a digest of the lines that detects a rewritten file.
 *
 * <p>Input: the source's rows of (source, line_number, line bytes). Each subtask sums what it
 * read per source and hands the sums, just before every checkpoint barrier and at end of input,
 * to a tracker keyed by source, which adds them to what that source had (keyed state, seeded from
 * the database for a start that restores no checkpoint) and emits the new totals. So the
 * positions of a checkpoint reach the sink before its barrier, as the lines' own rows do.
 *
 * <p>The digest is the sum, modulo 2^64, of {@code splitmix64((crc32(line) << 32) | (n &
 * 0xffffffff))} over the lines, {@code n} the line number and {@code line} its bytes as read
 * (terminator included): additive, so sums of parts add up, and, the mix being non-linear,
 * changed by lines swapped or replaced.
 * {@code sinks/positions.py} computes the same to check a file before continuing it.
 */
public final class SourcePositions {
    static final long MIX = 0x9E3779B97F4A7C15L;
    static final String[] FIELDS = {"source", "last_position", "lines", "bytes", "digest"};
    static final RowTypeInfo TYPE = new RowTypeInfo(
            new TypeInformation<?>[] {Types.STRING, Types.LONG, Types.LONG, Types.LONG, Types.LONG},
            FIELDS);

    private SourcePositions() {}

    /** One line's share of a digest: splitmix64 of the line's CRC-32 and number. */
    static long digest(long lineNumber, byte[] line) {
        return digest(new CRC32(), lineNumber, line);
    }

    /** {@link #digest(long, byte[])} with a CRC-32 reused from line to line (reset here). */
    static long digest(CRC32 crc, long lineNumber, byte[] line) {
        crc.reset();
        crc.update(line, 0, line.length);
        long z = ((crc.getValue() << 32) | (lineNumber & 0xFFFFFFFFL)) + MIX;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /**
     * The positions of {@code lines} (rows of source, line_number, line). For a start that
     * restores no checkpoint, {@code seedSources} and {@code seedTotals} hold each source's
     * totals so far: four numbers per source (last position, lines, bytes, digest), in order.
     */
    public static SingleOutputStreamOperator<Row> track(
            DataStream<Row> lines, List<String> seedSources, List<? extends Number> seedTotals) {
        HashMap<String, long[]> seed = new HashMap<>();
        for (int i = 0; i < seedSources.size(); i++) {
            long[] total = new long[4];
            for (int f = 0; f < 4; f++) {
                total[f] = seedTotals.get(4 * i + f).longValue();
            }
            seed.put(seedSources.get(i), total);
        }
        return lines.transform("source-positions-per-subtask", TYPE, new PerSubtask())
                .keyBy(new RowOperators.StringFieldKey(0), Types.STRING)
                .process(new Tracker(seed), TYPE);
    }

    /**
     * Drops the lines of each of {@code sources} up to its position in {@code applied} (same
     * order): a start that continues where the database says the earlier runs stopped.
     */
    public static SingleOutputStreamOperator<Row> skipApplied(
            DataStream<Row> lines, List<String> sources, List<? extends Number> applied) {
        HashMap<String, Long> upTo = new HashMap<>();
        for (int i = 0; i < sources.size(); i++) {
            upTo.put(sources.get(i), applied.get(i).longValue());
        }
        return lines.filter(new SkipApplied(upTo)).name("skip-applied-lines");
    }

    static final class SkipApplied implements FilterFunction<Row> {
        private static final long serialVersionUID = 1L;
        private final HashMap<String, Long> applied;

        SkipApplied(HashMap<String, Long> applied) {
            this.applied = applied;
        }

        @Override
        public boolean filter(Row row) {
            Long upTo = applied.get((String) row.getField(0));
            return upTo == null || (Long) row.getField(1) > upTo;
        }
    }

    /** Sums per source since the last barrier; nothing held across checkpoints. */
    static final class PerSubtask extends AbstractStreamOperator<Row>
            implements OneInputStreamOperator<Row, Row>, BoundedOneInput {
        private static final long serialVersionUID = 1L;
        private transient Map<String, long[]> sums;
        private transient StreamRecord<Row> reuse;
        private transient CRC32 crc; // one per subtask, not one per line

        @Override
        public void open() throws Exception {
            super.open();
            sums = new LinkedHashMap<>();
            reuse = new StreamRecord<>(null);
            crc = new CRC32();
        }

        @Override
        public void processElement(StreamRecord<Row> element) {
            Row row = element.getValue();
            long lineNumber = (Long) row.getField(1);
            byte[] line = (byte[]) row.getField(2);
            long[] sum = sums.computeIfAbsent((String) row.getField(0), k -> new long[4]);
            sum[0] = Math.max(sum[0], lineNumber);
            sum[1]++;
            sum[2] += line.length;
            sum[3] += digest(crc, lineNumber, line);
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
            for (Map.Entry<String, long[]> entry : sums.entrySet()) {
                long[] sum = entry.getValue();
                output.collect(
                        reuse.replace(Row.of(entry.getKey(), sum[0], sum[1], sum[2], sum[3])));
            }
            sums.clear();
        }
    }

    /** Per source: the totals so far (keyed state), plus each part; emits the new totals. */
    static final class Tracker extends KeyedProcessFunction<String, Row, Row> {
        private static final long serialVersionUID = 1L;
        private final HashMap<String, long[]> seed;
        private transient ValueState<long[]> totals;

        Tracker(HashMap<String, long[]> seed) {
            this.seed = seed;
        }

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext context) {
            totals = getRuntimeContext()
                    .getState(new ValueStateDescriptor<long[]>(
                            "source-position",
                            PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO));
        }

        @Override
        public void processElement(Row part, Context context, Collector<Row> out) throws Exception {
            String source = context.getCurrentKey();
            long[] total = totals.value();
            if (total == null) {
                long[] seeded = seed.get(source);
                total = seeded == null ? new long[4] : seeded.clone();
            }
            total[0] = Math.max(total[0], (Long) part.getField(1));
            total[1] += (Long) part.getField(2);
            total[2] += (Long) part.getField(3);
            total[3] += (Long) part.getField(4);
            totals.update(total);
            out.collect(Row.of(source, total[0], total[1], total[2], total[3]));
        }
    }
}
