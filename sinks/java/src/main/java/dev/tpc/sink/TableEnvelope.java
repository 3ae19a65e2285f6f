package dev.tpc.sink;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamSink;
import org.apache.flink.types.Row;

import java.util.ArrayList;
import java.util.List;

/**
 * How the rows of a sink's several tables ({@link SinkConfigBuilder#addTable}) travel through one
 * Flink sink: each input stream is mapped, on the JVM, to envelopes of (table index, the row's
 * values encoded by {@link RowCodec}), and the envelopes of all inputs are united into the sink.
 * A staged writer stores the encoded row as it is. Job code never sees envelopes: it hands the
 * sink its streams by table name ({@code TwoPhaseCommitSink.attach} in Python, {@link #sinkTo}).
 */
public final class TableEnvelope implements MapFunction<Row, Row> {
    private static final long serialVersionUID = 1L;

    /** The envelope's type: (table INT, payload BYTES). */
    public static final TypeInformation<Row> TYPE = Types.ROW_NAMED(
            new String[] {"table", "payload"},
            Types.INT,
            PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO);

    private final String sinkId;
    private final String table;
    private final int index;
    private final int arity;

    private TableEnvelope(String sinkId, String table, int index, int arity) {
        this.sinkId = sinkId;
        this.table = table;
        this.index = index;
        this.arity = arity;
    }

    @Override
    public Row map(Row row) throws Exception {
        if (row.getArity() != arity) {
            throw new IllegalArgumentException("sink '" + sinkId + "' table '" + table
                    + "' expects rows of " + arity + " fields but got " + row);
        }
        Object[] values = new Object[arity];
        for (int i = 0; i < arity; i++) {
            values[i] = row.getField(i);
        }
        return Row.of(index, RowCodec.encode(values));
    }

    /**
     * Attaches one stream per table to the sink, each given by the name it was added with; every
     * table of the sink must get a stream. Returns the sink, for {@code uid} and {@code name}.
     */
    public static DataStreamSink<Row> sinkTo(
            PostgresTwoPhaseCommitSink sink, String[] names, List<DataStream<Row>> streams) {
        SinkConfig config = sink.config();
        if (!config.isMultiTable()) {
            throw new SinkConfigurationException("sink '" + config.sinkId() + "' has no named "
                    + "tables (add them with add_table); attach a single stream with sink_to");
        }
        if (names.length != streams.size() || names.length == 0) {
            throw new SinkConfigurationException("give one stream per table name");
        }
        List<String> missing = new ArrayList<>();
        for (TableSpec table : config.tables()) {
            if (!List.of(names).contains(table.name())) {
                missing.add(table.name());
            }
        }
        if (!missing.isEmpty()) {
            throw new SinkConfigurationException(
                    "sink '" + config.sinkId() + "': no stream for " + "table(s) " + missing);
        }
        DataStream<Row> envelopes = null;
        for (int i = 0; i < names.length; i++) {
            int index = config.tableIndex(names[i]);
            if (List.of(names).subList(0, i).contains(names[i])) {
                throw new SinkConfigurationException("table '" + names[i] + "' is given twice");
            }
            TableSpec table = config.tables().get(index);
            DataStream<Row> enveloped = streams.get(i)
                    .map(
                            new TableEnvelope(
                                    config.sinkId(),
                                    names[i],
                                    index,
                                    table.fieldNames().size()),
                            TYPE)
                    .setParallelism(streams.get(i).getParallelism()) // chains to its input
                    .name(config.sinkId() + "/" + names[i] + " envelope");
            envelopes = envelopes == null ? enveloped : envelopes.union(enveloped);
        }
        return envelopes.sinkTo(sink);
    }
}
