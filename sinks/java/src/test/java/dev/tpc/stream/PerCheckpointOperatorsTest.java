package dev.tpc.stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeinfo.BasicArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.util.List;

/**
 * The operators that emit what they gathered before every checkpoint barrier and at end of
 * input, and hold nothing across a checkpoint ({@link BatchPerCheckpoint}, {@link
 * SumPerCheckpoint}), driven by Flink's operator test harness.
 */
class PerCheckpointOperatorsTest {
    private static OneInputStreamOperatorTestHarness<Row, Row> harness(
            OneInputStreamOperator<Row, Row> operator, RowTypeInfo outType) throws Exception {
        OneInputStreamOperatorTestHarness<Row, Row> harness =
                new OneInputStreamOperatorTestHarness<>(operator);
        harness.setup(outType.createSerializer(new SerializerConfigImpl()));
        harness.open();
        return harness;
    }

    private static void process(OneInputStreamOperatorTestHarness<Row, Row> harness, Row... rows)
            throws Exception {
        for (Row row : rows) {
            harness.processElement(new StreamRecord<>(row));
        }
    }

    private static List<Row> drain(OneInputStreamOperatorTestHarness<Row, Row> harness) {
        List<Row> out = harness.extractOutputValues();
        harness.getOutput().clear();
        return out;
    }

    private static final RowTypeInfo LINE = new RowTypeInfo(
            new TypeInformation<?>[] {Types.STRING, Types.LONG}, new String[] {"id", "n"});
    private static final RowTypeInfo LINE_COLUMNS = new RowTypeInfo(
            new TypeInformation<?>[] {
                RowOperators.columnType(Types.STRING), RowOperators.columnType(Types.LONG)
            },
            new String[] {"id", "n"});

    @Test
    void batchesAreFullOrCutAtTheBarrierAndAtEndOfInputInOrder() throws Exception {
        try (OneInputStreamOperatorTestHarness<Row, Row> harness = harness(
                new BatchPerCheckpoint(2, new Class<?>[] {String.class, Long.class}),
                LINE_COLUMNS)) {
            process(harness, Row.of("a", 1L), Row.of("b", 2L), Row.of("c", 3L));
            List<Row> full = drain(harness);
            assertEquals(1, full.size(), "a full batch leaves at once");
            assertArrayEquals(new String[] {"a", "b"}, (String[]) full.get(0).getField(0));
            assertArrayEquals(new Long[] {1L, 2L}, (Long[]) full.get(0).getField(1));

            harness.prepareSnapshotPreBarrier(1);
            List<Row> cut = drain(harness);
            assertEquals(1, cut.size(), "the partial batch leaves before the barrier");
            assertArrayEquals(new String[] {"c"}, (String[]) cut.get(0).getField(0));

            harness.prepareSnapshotPreBarrier(2);
            assertTrue(drain(harness).isEmpty(), "an empty batch is never emitted");

            process(harness, Row.of(null, 4L));
            harness.endInput();
            List<Row> tail = drain(harness);
            assertEquals(1, tail.size());
            assertArrayEquals(new String[] {null}, (String[]) tail.get(0).getField(0));
            assertArrayEquals(new Long[] {4L}, (Long[]) tail.get(0).getField(1));
        }
        assertThrows(
                IllegalArgumentException.class,
                () -> new BatchPerCheckpoint(0, new Class<?>[] {String.class}));
    }

    @Test
    void unbatchGivesBackTheRowsOfABatch() {
        RowTypeInfo rows = LINE;
        RowOperators.Unbatch unbatch = new RowOperators.Unbatch(-1, rows);
        List<Row> out = new java.util.ArrayList<>();
        unbatch.flatMap(
                Row.of(new String[] {"a", "b"}, new Long[] {1L, 2L}),
                new org.apache.flink.api.common.functions.util.ListCollector<>(out));
        assertEquals(List.of(Row.of("a", 1L), Row.of("b", 2L)), out);
        assertEquals(rows, unbatch.getProducedType());

        // A batch nested in a field; a missing one yields nothing.
        RowOperators.Unbatch nested = new RowOperators.Unbatch(1, rows);
        out.clear();
        nested.flatMap(
                Row.of("x", Row.of(new String[] {"c"}, new Long[] {3L})),
                new org.apache.flink.api.common.functions.util.ListCollector<>(out));
        nested.flatMap(
                Row.of("y", null),
                new org.apache.flink.api.common.functions.util.ListCollector<>(out));
        assertEquals(List.of(Row.of("c", 3L)), out);

        IllegalStateException uneven = assertThrows(
                IllegalStateException.class,
                () -> unbatch.flatMap(
                        Row.of(new String[] {"a", "b"}, new Long[] {1L}),
                        new org.apache.flink.api.common.functions.util.ListCollector<>(out)));
        assertTrue(uneven.getMessage().contains("column 'n' has 1 values"), uneven.getMessage());
        assertThrows(
                IllegalStateException.class,
                () -> unbatch.flatMap(
                        Row.of((Object) new String[] {"a"}),
                        new org.apache.flink.api.common.functions.util.ListCollector<>(out)));
    }

    @Test
    void columnTypesAreBasicArraysOrObjectArrays() {
        assertEquals(
                BasicArrayTypeInfo.STRING_ARRAY_TYPE_INFO, RowOperators.columnType(Types.STRING));
        assertEquals(BasicArrayTypeInfo.LONG_ARRAY_TYPE_INFO, RowOperators.columnType(Types.LONG));
        assertEquals(Types.OBJECT_ARRAY(Types.BIG_DEC), RowOperators.columnType(Types.BIG_DEC));
        TypeInformation<?> bytes = Types.PRIMITIVE_ARRAY(Types.BYTE);
        assertEquals(Types.OBJECT_ARRAY(bytes), RowOperators.columnType(bytes));
        assertEquals(byte[][].class, RowOperators.columnType(bytes).getTypeClass());
    }

    private static final RowTypeInfo SUMS = new RowTypeInfo(
            new TypeInformation<?>[] {Types.STRING, Types.STRING, Types.BIG_DEC, Types.LONG},
            new String[] {"account", "currency", "total", "count"});

    @Test
    void sumsPerGroupLeaveBeforeTheBarrierExactBeyond64Bits() throws Exception {
        try (OneInputStreamOperatorTestHarness<Row, Row> harness =
                harness(new SumPerCheckpoint(new int[] {0, 2}, 1), SUMS)) {
            process(
                    harness,
                    Row.of("a", 5L, "USD"),
                    Row.of("b", -2, "USD"),
                    Row.of("a", -7L, "USD"),
                    Row.of("a", 1L, "EUR"));
            assertTrue(drain(harness).isEmpty(), "nothing before the barrier");
            harness.prepareSnapshotPreBarrier(1);
            assertEquals(
                    List.of(
                            Row.of("a", "USD", new BigDecimal(-2), 2L),
                            Row.of("b", "USD", new BigDecimal(-2), 1L),
                            Row.of("a", "EUR", new BigDecimal(1), 1L)),
                    drain(harness));

            harness.prepareSnapshotPreBarrier(2);
            assertTrue(drain(harness).isEmpty(), "nothing is held across a checkpoint");

            process(
                    harness,
                    Row.of("a", Long.MAX_VALUE, "USD"),
                    Row.of("a", Long.MAX_VALUE, "USD"),
                    Row.of("a", Long.MAX_VALUE, "USD"),
                    Row.of("a", Long.MIN_VALUE, "USD"),
                    Row.of(null, 1L, "USD"));
            harness.endInput();
            assertEquals(
                    List.of(
                            Row.of(
                                    "a",
                                    "USD",
                                    BigDecimal.valueOf(Long.MAX_VALUE)
                                            .multiply(BigDecimal.valueOf(3))
                                            .add(BigDecimal.valueOf(Long.MIN_VALUE)),
                                    4L),
                            Row.of(null, "USD", BigDecimal.ONE, 1L)),
                    drain(harness));

            IllegalArgumentException notANumber = assertThrows(
                    IllegalArgumentException.class,
                    () -> process(harness, Row.of("a", "12", "USD")));
            assertTrue(notANumber.getMessage().startsWith("cannot sum 12"));
        }
    }

    @Test
    void groupKeysNeverCollide() {
        RowOperators.FieldsKey key = new RowOperators.FieldsKey(new int[] {0, 1});
        assertEquals("1:a2:bc", key.getKey(Row.of("a", "bc")));
        assertTrue(!key.getKey(Row.of("a", "bc")).equals(key.getKey(Row.of("ab", "c"))));
        assertTrue(!key.getKey(Row.of(null, "x")).equals(key.getKey(Row.of("-", "x"))));
        assertEquals("-1:1", key.getKey(Row.of(null, 1L)));
    }

    @Test
    void aProjectionSelectsReordersAndFillsNulls() {
        RowTypeInfo out = new RowTypeInfo(
                new TypeInformation<?>[] {Types.LONG, Types.STRING, Types.STRING},
                new String[] {"n", "id", "note"});
        RowOperators.Projection projection =
                new RowOperators.Projection(new int[] {1, 0, RowOperators.Projection.NULL}, out);
        assertEquals(Row.of(2L, "a", null), projection.map(Row.of("a", 2L, "dropped")));
        assertEquals(out, projection.getProducedType());
    }
}
