package dev.tpc.bench;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.types.Row;

/**
 * Ledger-shaped rows made on the JVM, for benchmarking the sink alone (no Python in the path):
 * row n is (e-n, acc-(n mod 1000), charge, n, USD, a fixed instant). Same rows as
 * {@code bench/suite.py} copies with a raw COPY for comparison.
 */
public final class LedgerRowGenerator implements GeneratorFunction<Long, Row> {
    private static final long serialVersionUID = 1L;

    public static final TypeInformation<Row> TYPE = Types.ROW_NAMED(
            new String[] {
                "event_id", "account_id", "type", "amount_minor", "currency", "occurred_at"
            },
            Types.STRING,
            Types.STRING,
            Types.STRING,
            Types.LONG,
            Types.STRING,
            Types.STRING);

    @Override
    public Row map(Long n) {
        return Row.of(
                "e-" + n,
                "acc-" + (n % 1000),
                "charge",
                n,
                "USD",
                "2024-01-01T00:00:00.000000+00:00");
    }

    /** A bounded source of {@code count} such rows. */
    public static DataGeneratorSource<Row> source(long count) {
        return new DataGeneratorSource<>(
                new LedgerRowGenerator(), count, RateLimiterStrategy.noOp(), TYPE);
    }
}
