package dev.tpc.stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

/**
 * The JVM dedupe, keyed as {@link RowOperators#deduplicate} keys it, in Flink's keyed operator
 * harness: the first row of a key passes, the same fingerprint again is a duplicate, another
 * one a conflict; state survives a restore, expires after the time to live, and a checkpoint of
 * the version that kept the whole fingerprint is still understood.
 */
class FirstSeenByFingerprintTest {
    private static final RowTypeInfo TYPE = new RowTypeInfo(
            new TypeInformation<?>[] {Types.STRING, Types.STRING, Types.LONG},
            new String[] {"event_id", "fingerprint", "line"});
    private static final OutputTag<Row> DUPLICATES = new OutputTag<>("duplicates", TYPE);
    private static final OutputTag<Row> CONFLICTS = new OutputTag<>("conflicts", TYPE);

    private static KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness(
            KeyedProcessFunction<String, Row, Row> function, OperatorSubtaskState restored)
            throws Exception {
        KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness =
                new KeyedOneInputStreamOperatorTestHarness<>(
                        new KeyedProcessOperator<>(function),
                        new RowOperators.StringFieldKey(0),
                        Types.STRING);
        harness.setup(TYPE.createSerializer(new SerializerConfigImpl()));
        if (restored != null) {
            harness.initializeState(restored);
        }
        harness.open();
        return harness;
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, Row, Row> dedupe(
            long ttlMillis, OperatorSubtaskState restored) throws Exception {
        return harness(new FirstSeenByFingerprint(1, ttlMillis, DUPLICATES, CONFLICTS), restored);
    }

    private static List<Long> lines(List<Row> rows) {
        List<Long> lines = new ArrayList<>();
        for (Row row : rows) {
            lines.add((Long) row.getField(2));
        }
        return lines;
    }

    private static List<Long> side(
            KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness, OutputTag<Row> tag) {
        List<Row> rows = new ArrayList<>();
        if (harness.getSideOutput(tag) != null) {
            for (StreamRecord<Row> record : harness.getSideOutput(tag)) {
                rows.add(record.getValue());
            }
        }
        return lines(rows);
    }

    @Test
    void firstPassesSameFingerprintIsADuplicateAnotherAConflictAlsoAfterARestore()
            throws Exception {
        OperatorSubtaskState snapshot;
        try (KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness = dedupe(0, null)) {
            harness.processElement(new StreamRecord<>(Row.of("e1", "f1", 1L)));
            harness.processElement(new StreamRecord<>(Row.of("e2", "f1", 2L))); // other key
            harness.processElement(new StreamRecord<>(Row.of("e1", "f1", 3L)));
            harness.processElement(new StreamRecord<>(Row.of("e1", "f2", 4L)));
            assertEquals(List.of(1L, 2L), lines(harness.extractOutputValues()));
            assertEquals(List.of(3L), side(harness, DUPLICATES));
            assertEquals(List.of(4L), side(harness, CONFLICTS));
            snapshot = harness.snapshot(1, 1);
        }
        try (KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness =
                dedupe(0, snapshot)) {
            harness.processElement(new StreamRecord<>(Row.of("e1", "f1", 5L)));
            harness.processElement(new StreamRecord<>(Row.of("e2", "f3", 6L)));
            harness.processElement(new StreamRecord<>(Row.of("e3", "f1", 7L)));
            assertEquals(List.of(7L), lines(harness.extractOutputValues()));
            assertEquals(List.of(5L), side(harness, DUPLICATES));
            assertEquals(List.of(6L), side(harness, CONFLICTS));
            assertEquals(3, harness.numKeyedStateEntries(), "one 16-byte digest per key");
        }
    }

    @Test
    void aKeyPassesAgainAfterItsTimeToLive() throws Exception {
        try (KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness =
                dedupe(1000, null)) {
            harness.setStateTtlProcessingTime(0);
            harness.processElement(new StreamRecord<>(Row.of("e1", "f1", 1L)));
            harness.setStateTtlProcessingTime(999);
            harness.processElement(new StreamRecord<>(Row.of("e1", "f1", 2L)));
            harness.setStateTtlProcessingTime(5000);
            harness.processElement(new StreamRecord<>(Row.of("e1", "f2", 3L)));
            assertEquals(List.of(1L, 3L), lines(harness.extractOutputValues()));
            assertEquals(List.of(2L), side(harness, DUPLICATES));
            assertEquals(List.of(), side(harness, CONFLICTS));
        }
    }

    @Test
    void aRowWithoutAFingerprintIsRefused() throws Exception {
        try (KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness = dedupe(0, null)) {
            IllegalArgumentException error = assertThrows(
                    IllegalArgumentException.class,
                    () -> harness.processElement(new StreamRecord<>(Row.of("e1", null, 1L))));
            assertTrue(error.getMessage().startsWith("row without a fingerprint"));
        }
    }

    /** What the version before kept: the whole fingerprint, as a string, under its old name. */
    static final class LegacyFirstSeen extends KeyedProcessFunction<String, Row, Row> {
        private static final long serialVersionUID = 1L;
        private transient ValueState<String> fingerprint;

        @Override
        public void open(OpenContext context) {
            fingerprint = getRuntimeContext()
                    .getState(new ValueStateDescriptor<>("first-seen-fingerprint", Types.STRING));
        }

        @Override
        public void processElement(Row row, Context context, Collector<Row> out) throws Exception {
            fingerprint.update((String) row.getField(1));
        }
    }

    @Test
    void aCheckpointOfTheWholeFingerprintVersionIsStillUnderstood() throws Exception {
        OperatorSubtaskState legacy;
        try (KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness =
                harness(new LegacyFirstSeen(), null)) {
            harness.processElement(new StreamRecord<>(Row.of("e1", "f1", 1L)));
            harness.processElement(new StreamRecord<>(Row.of("e2", "f2", 2L)));
            legacy = harness.snapshot(1, 1);
        }
        try (KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness = dedupe(0, legacy)) {
            harness.processElement(new StreamRecord<>(Row.of("e1", "f1", 3L)));
            harness.processElement(new StreamRecord<>(Row.of("e2", "other", 4L)));
            harness.processElement(new StreamRecord<>(Row.of("e1", "f1", 5L))); // migrated
            harness.processElement(new StreamRecord<>(Row.of("e3", "f3", 6L)));
            assertEquals(List.of(6L), lines(harness.extractOutputValues()));
            assertEquals(List.of(3L, 5L), side(harness, DUPLICATES));
            assertEquals(List.of(4L), side(harness, CONFLICTS));
        }
    }
}
