package dev.tpc.stream;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.BasicArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.BasicTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.typeutils.ObjectArrayTypeInfo;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

import java.lang.reflect.Array;
import java.util.Arrays;

/**
 * Generic operators over named rows that run on the JVM, for PyFlink jobs: the Python side
 * decides what the fields mean, these only move, compare and add them. Called through py4j by
 * {@code transforms/jvm_operators.py}; fields are named as in the stream's row type.
 */
public final class RowOperators {
    private RowOperators() {}

    /** The three streams of {@link #deduplicate}; {@code firstSeen()} is the operator itself. */
    public static final class Deduplicated {
        private final SingleOutputStreamOperator<Row> firstSeen;
        private final OutputTag<Row> duplicates;
        private final OutputTag<Row> conflicts;

        Deduplicated(
                SingleOutputStreamOperator<Row> firstSeen,
                OutputTag<Row> duplicates,
                OutputTag<Row> conflicts) {
            this.firstSeen = firstSeen;
            this.duplicates = duplicates;
            this.conflicts = conflicts;
        }

        public SingleOutputStreamOperator<Row> firstSeen() {
            return firstSeen;
        }

        public DataStream<Row> duplicates() {
            return firstSeen.getSideOutput(duplicates);
        }

        public DataStream<Row> conflicts() {
            return firstSeen.getSideOutput(conflicts);
        }
    }

    /**
     * Keys {@code rows} by {@code keyField} (a string) and keeps, per key, the first row; later
     * rows with the same {@code fingerprintField} are duplicates, others conflicts. See
     * {@link FirstSeenByFingerprint}.
     */
    public static Deduplicated deduplicate(
            DataStream<Row> rows, String keyField, String fingerprintField, long ttlMillis) {
        RowTypeInfo type = rowType(rows);
        int key = fieldIndex(type, keyField);
        int fingerprint = fieldIndex(type, fingerprintField);
        OutputTag<Row> duplicates = new OutputTag<>("duplicates", type);
        OutputTag<Row> conflicts = new OutputTag<>("conflicts", type);
        SingleOutputStreamOperator<Row> firstSeen = rows.keyBy(
                        new StringFieldKey(key), Types.STRING)
                .process(
                        new FirstSeenByFingerprint(fingerprint, ttlMillis, duplicates, conflicts),
                        type);
        return new Deduplicated(firstSeen, duplicates, conflicts);
    }

    /**
     * Groups {@code rows} by {@code groupFields} (routed by their hash, so one subtask owns each
     * group) and emits, before every checkpoint barrier and at end of input, one row per group:
     * the group fields, {@code sumAs} (the exact sum of {@code sumField}, a decimal) and
     * {@code countAs} (how many rows). See {@link SumPerCheckpoint}.
     */
    public static SingleOutputStreamOperator<Row> sumPerCheckpoint(
            DataStream<Row> rows,
            String[] groupFields,
            String sumField,
            String sumAs,
            String countAs) {
        RowTypeInfo type = rowType(rows);
        int[] group = new int[groupFields.length];
        String[] names = new String[groupFields.length + 2];
        TypeInformation<?>[] types = new TypeInformation<?>[groupFields.length + 2];
        for (int i = 0; i < group.length; i++) {
            group[i] = fieldIndex(type, groupFields[i]);
            names[i] = groupFields[i];
            types[i] = type.getTypeAt(group[i]);
        }
        names[group.length] = sumAs;
        types[group.length] = Types.BIG_DEC;
        names[group.length + 1] = countAs;
        types[group.length + 1] = Types.LONG;
        RowTypeInfo outType = new RowTypeInfo(types, names);
        return rows.keyBy(new FieldsKey(group), Types.STRING)
                .transform(
                        "sum-per-checkpoint",
                        outType,
                        new SumPerCheckpoint(group, fieldIndex(type, sumField)));
    }

    /**
     * Named rows of {@code targets[i]} = field {@code sources[i]} of each input row: selects,
     * reorders and renames fields, so that one stream can feed sinks of several shapes.
     */
    public static SingleOutputStreamOperator<Row> project(
            DataStream<Row> rows, String[] targets, String[] sources) {
        return project(rows, targets, sources, null);
    }

    /**
     * As {@link #project(DataStream, String[], String[])}, where a {@code null} source makes
     * the target field NULL, typed as the field of that name in {@code targetType}: a nullable
     * column added to a table is written as NULL until something fills it.
     */
    public static SingleOutputStreamOperator<Row> project(
            DataStream<Row> rows, String[] targets, String[] sources, RowTypeInfo targetType) {
        if (targets.length != sources.length) {
            throw new IllegalArgumentException("project: as many target names as source fields");
        }
        RowTypeInfo type = rowType(rows);
        int[] indexes = new int[sources.length];
        TypeInformation<?>[] types = new TypeInformation<?>[sources.length];
        for (int i = 0; i < sources.length; i++) {
            if (sources[i] == null) {
                if (targetType == null || targetType.getFieldIndex(targets[i]) < 0) {
                    throw new IllegalArgumentException("project: target field '" + targets[i]
                            + "' has no source, and no target type names its type");
                }
                indexes[i] = Projection.NULL;
                types[i] = targetType.getTypeAt(targets[i]);
            } else {
                indexes[i] = fieldIndex(type, sources[i]);
                types[i] = type.getTypeAt(indexes[i]);
            }
        }
        return rows.map(new Projection(indexes, new RowTypeInfo(types, targets.clone())));
    }

    /**
     * The rows unchanged, counted in the Flink metric {@code metric} per value of their field
     * {@code field}, which labels the count (see {@link CountedBy}).
     */
    public static SingleOutputStreamOperator<Row> countBy(
            DataStream<Row> rows, String metric, String field) {
        RowTypeInfo type = rowType(rows);
        return rows.map(new CountedBy(metric, field, fieldIndex(type, field), type));
    }

    /**
     * Columnar batches of up to {@code maxRows} consecutive input rows, in order: rows with the
     * input's field names, each field the array of that field's values ({@link #columnType}).
     * Emitted when full, before every checkpoint barrier and at end of input. See
     * {@link BatchPerCheckpoint}; {@link #unbatch} is the inverse.
     */
    public static SingleOutputStreamOperator<Row> batch(DataStream<Row> rows, int maxRows) {
        RowTypeInfo type = rowType(rows);
        TypeInformation<?>[] columns = new TypeInformation<?>[type.getArity()];
        Class<?>[] fieldClasses = new Class<?>[type.getArity()];
        for (int i = 0; i < columns.length; i++) {
            columns[i] = columnType(type.getTypeAt(i));
            fieldClasses[i] = type.getTypeAt(i).getTypeClass();
        }
        return rows.transform(
                "batch",
                new RowTypeInfo(columns, type.getFieldNames()),
                new BatchPerCheckpoint(maxRows, fieldClasses));
    }

    /**
     * The type of a column of {@code field} values: a basic array ({@code String[]},
     * {@code Long[]}, ...; PyFlink's {@code Types.BASIC_ARRAY}) for basic types, else an object
     * array ({@code Types.OBJECT_ARRAY}), e.g. {@code byte[][]} for bytes.
     */
    @SuppressWarnings({"unchecked", "rawtypes"})
    static TypeInformation<?> columnType(TypeInformation<?> field) {
        Class<?> arrayClass = Array.newInstance(field.getTypeClass(), 0).getClass();
        if (field instanceof BasicTypeInfo) {
            BasicArrayTypeInfo<?, ?> basic = BasicArrayTypeInfo.getInfoFor(arrayClass);
            if (basic != null) {
                return basic;
            }
        }
        return ObjectArrayTypeInfo.getInfoFor((Class) arrayClass, field);
    }

    /**
     * The rows of columnar batches (see {@link #batch}), one by one: each record, or its field
     * {@code field} when not null, is a row of equally long arrays, one per field of the rows.
     */
    public static SingleOutputStreamOperator<Row> unbatch(DataStream<Row> batches, String field) {
        RowTypeInfo type = rowType(batches);
        int index = field == null ? -1 : fieldIndex(type, field);
        TypeInformation<?> columnsType = index < 0 ? type : type.getTypeAt(index);
        if (!(columnsType instanceof RowTypeInfo)) {
            throw new IllegalArgumentException("field '" + field + "' is not a row of columns "
                    + "(Types.ROW_NAMED(names, [Types.BASIC_ARRAY(...), ...])): " + columnsType);
        }
        RowTypeInfo columns = (RowTypeInfo) columnsType;
        TypeInformation<?>[] fields = new TypeInformation<?>[columns.getArity()];
        for (int i = 0; i < fields.length; i++) {
            TypeInformation<?> column = columns.getTypeAt(i);
            if (column instanceof BasicArrayTypeInfo) {
                fields[i] = ((BasicArrayTypeInfo<?, ?>) column).getComponentInfo();
            } else if (column instanceof ObjectArrayTypeInfo) {
                fields[i] = ((ObjectArrayTypeInfo<?, ?>) column).getComponentInfo();
            } else {
                throw new IllegalArgumentException("column '" + columns.getFieldNames()[i]
                        + "' is not an array (Types.BASIC_ARRAY or Types.OBJECT_ARRAY): "
                        + column);
            }
        }
        return batches.flatMap(
                new Unbatch(index, new RowTypeInfo(fields, columns.getFieldNames())));
    }

    static final class Unbatch implements FlatMapFunction<Row, Row>, ResultTypeQueryable<Row> {
        private static final long serialVersionUID = 1L;
        private final int field;
        private final RowTypeInfo type;

        Unbatch(int field, RowTypeInfo type) {
            this.field = field;
            this.type = type;
        }

        @Override
        public void flatMap(Row batch, Collector<Row> out) {
            Row columns = field < 0 ? batch : (Row) batch.getField(field);
            if (columns == null) {
                return;
            }
            int arity = type.getArity();
            if (columns.getArity() != arity) {
                throw new IllegalStateException("a batch of " + columns.getArity()
                        + " columns for rows of " + arity + " fields");
            }
            Object[][] arrays = new Object[arity][];
            int size = -1;
            for (int i = 0; i < arity; i++) {
                arrays[i] = (Object[]) columns.getField(i);
                int length = arrays[i] == null ? 0 : arrays[i].length;
                if (size >= 0 && length != size) {
                    // Rows would be mixed up; never guess which values belong together.
                    throw new IllegalStateException("the columns of a batch differ in length: "
                            + "column '" + type.getFieldNames()[i] + "' has " + length
                            + " values, the previous ones " + size);
                }
                size = length;
            }
            for (int index = 0; index < size; index++) {
                Row row = new Row(arity);
                for (int i = 0; i < arity; i++) {
                    row.setField(i, arrays[i][index]);
                }
                out.collect(row);
            }
        }

        @Override
        public TypeInformation<Row> getProducedType() {
            return type;
        }
    }

    private static RowTypeInfo rowType(DataStream<Row> rows) {
        TypeInformation<Row> type = rows.getType();
        if (!(type instanceof RowTypeInfo)) {
            throw new IllegalArgumentException("expected a stream of named rows "
                    + "(output_type=Types.ROW_NAMED(...)), got " + type);
        }
        return (RowTypeInfo) type;
    }

    private static int fieldIndex(RowTypeInfo type, String name) {
        int index = type.getFieldIndex(name);
        if (index < 0) {
            throw new IllegalArgumentException(
                    "no field '" + name + "' in " + Arrays.toString(type.getFieldNames()));
        }
        return index;
    }

    static final class StringFieldKey implements KeySelector<Row, String> {
        private static final long serialVersionUID = 1L;
        private final int field;

        StringFieldKey(int field) {
            this.field = field;
        }

        @Override
        public String getKey(Row row) {
            return (String) row.getField(field);
        }
    }

    /**
     * The group fields as one string, each as length:value, so no two groups collide. (A Row
     * key would hash its RowKind enum by identity, which differs between JVMs.)
     */
    static final class FieldsKey implements KeySelector<Row, String> {
        private static final long serialVersionUID = 1L;
        private final int[] fields;

        FieldsKey(int[] fields) {
            this.fields = fields;
        }

        @Override
        public String getKey(Row row) {
            StringBuilder key = new StringBuilder();
            for (int field : fields) {
                Object value = row.getField(field);
                if (value == null) {
                    key.append('-');
                } else {
                    String text = value.toString();
                    key.append(text.length()).append(':').append(text);
                }
            }
            return key.toString();
        }
    }

    static final class Projection implements MapFunction<Row, Row>, ResultTypeQueryable<Row> {
        private static final long serialVersionUID = 1L;
        /** The field index of a target without a source: always NULL. */
        static final int NULL = -1;

        private final int[] fields;
        private final RowTypeInfo type;

        Projection(int[] fields, RowTypeInfo type) {
            this.fields = fields;
            this.type = type;
        }

        @Override
        public Row map(Row row) {
            Row out = new Row(fields.length);
            for (int i = 0; i < fields.length; i++) {
                out.setField(i, fields[i] == NULL ? null : row.getField(fields[i]));
            }
            return out;
        }

        @Override
        public TypeInformation<Row> getProducedType() {
            return type;
        }
    }
}
