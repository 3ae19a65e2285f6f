package dev.tpc.stream;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.types.Row;

import java.util.HashMap;
import java.util.Map;

/**
 * Passes rows through unchanged and counts them in a Flink metric, per value of one field (a
 * metric group {@code <label>=<value>}, a label in Prometheus), e.g. rejected lines by reason.
 * The first {@link #MAX_VALUES} distinct values get a counter each; any later one counts as
 * {@code other}, so that a field with unbounded values cannot flood the metric registry.
 */
final class CountedBy extends RichMapFunction<Row, Row> implements ResultTypeQueryable<Row> {
    private static final long serialVersionUID = 1L;
    static final int MAX_VALUES = 64;
    static final String OTHER = "other";

    private final String metric;
    private final String label;
    private final int field;
    private final RowTypeInfo type;
    private transient MetricGroup group;
    private transient Map<String, Counter> counters;

    CountedBy(String metric, String label, int field, RowTypeInfo type) {
        this.metric = metric;
        this.label = label;
        this.field = field;
        this.type = type;
    }

    @Override
    public void open(OpenContext context) {
        group = getRuntimeContext().getMetricGroup();
        counters = new HashMap<>();
    }

    @Override
    public Row map(Row row) {
        Object value = row.getField(field);
        String key = value == null ? "null" : value.toString();
        Counter counter = counters.get(key);
        if (counter == null) {
            if (counters.size() >= MAX_VALUES) {
                key = OTHER;
                counter = counters.get(key);
            }
            if (counter == null) {
                counter = group.addGroup(label, key).counter(metric);
                counters.put(key, counter);
            }
        }
        counter.inc();
        return row;
    }

    @Override
    public RowTypeInfo getProducedType() {
        return type;
    }
}
