package dev.tpc.stream;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.Arrays;

/**
 * Keyed deduplication by content fingerprint, entirely on the JVM: per key, the first row passes
 * (main output); a later row with the same fingerprint goes to the duplicates tag, one with
 * another fingerprint to the conflicts tag. Only the first row's fingerprint is kept, in keyed
 * state, optionally expiring after a time to live (a row arriving after that passes again).
 *
 * <p>What a fingerprint is, and what a conflict means, is the business rules' decision (they
 * compute the field in Python); this operator only compares them (by digest). Keeping the state here
 * instead of in a Python function saves a synchronous state round trip per record.
 */
final class FirstSeenByFingerprint extends KeyedProcessFunction<String, Row, Row> {
    private static final long serialVersionUID = 1L;

    private final int fingerprintField;
    private final long ttlMillis;
    private final OutputTag<Row> duplicates;
    private final OutputTag<Row> conflicts;
    private transient ValueState<byte[]> firstFingerprint;
    private transient ValueState<String> legacyFingerprint;
    private transient MessageDigest sha256;

    FirstSeenByFingerprint(
            int fingerprintField,
            long ttlMillis,
            OutputTag<Row> duplicates,
            OutputTag<Row> conflicts) {
        this.fingerprintField = fingerprintField;
        this.ttlMillis = ttlMillis;
        this.duplicates = duplicates;
        this.conflicts = conflicts;
    }

    @Override
    public void open(OpenContext context) {
        // The first 128 bits of the fingerprint's SHA-256, not the fingerprint itself: the
        // heap backend writes its whole state at every checkpoint, and serializing a 64-char
        // string per key took a third of a core at a million keys. 16 bytes keep a
        // collision (a conflict taken for a duplicate) out of reach, even for a crafted one.
        firstFingerprint = getRuntimeContext()
                .getState(withTtl(
                        new ValueStateDescriptor<>(
                                "first-seen-fingerprint-sha256-128",
                                PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO),
                        true));
        // Checkpoints of the version before kept the whole fingerprint under this name: read
        // it for keys not seen since, so a restore from one still knows every event it saw.
        // It only shrinks (read, migrated, cleared), so it gets no incremental cleanup: on an
        // empty state every access started a new cleanup pass over all key groups, a third of
        // the dedupe task's samples (JFR, 1M lines). Expired entries still read as absent.
        legacyFingerprint = getRuntimeContext()
                .getState(withTtl(
                        new ValueStateDescriptor<>("first-seen-fingerprint", Types.STRING), false));
        try {
            sha256 = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime has SHA-256", e);
        }
    }

    private <T> ValueStateDescriptor<T> withTtl(
            ValueStateDescriptor<T> descriptor, boolean cleanUpIncrementally) {
        if (ttlMillis > 0 && !cleanUpIncrementally) {
            descriptor.enableTimeToLive(StateTtlConfig.newBuilder(Duration.ofMillis(ttlMillis))
                    .disableCleanupInBackground()
                    .build());
        } else if (ttlMillis > 0) {
            // Each access examines one more entry for expiry (the default, five, cost a tenth
            // of the job's JVM time in profiles); that keeps pace with one new entry per
            // record, so expired entries do not pile up. No cleanupFullSnapshot(): on the heap
            // backend it copies and filters every entry at every checkpoint, 15% of the JVM's
            // samples (JFR) at a million keys, for entries incremental cleanup removes anyway.
            descriptor.enableTimeToLive(StateTtlConfig.newBuilder(Duration.ofMillis(ttlMillis))
                    .cleanupIncrementally(1, false)
                    .build());
        }
        return descriptor;
    }

    private byte[] firstDigest() throws Exception {
        byte[] first = firstFingerprint.value();
        if (first == null) {
            String legacy = legacyFingerprint.value();
            if (legacy != null) {
                first = digest(legacy);
                firstFingerprint.update(first);
                legacyFingerprint.clear();
            }
        }
        return first;
    }

    private byte[] digest(String fingerprint) {
        return Arrays.copyOf(sha256.digest(fingerprint.getBytes(StandardCharsets.UTF_8)), 16);
    }

    @Override
    public void processElement(Row row, Context context, Collector<Row> out) throws Exception {
        String fingerprint = (String) row.getField(fingerprintField);
        if (fingerprint == null) {
            throw new IllegalArgumentException("row without a fingerprint: " + row);
        }
        byte[] first = firstDigest();
        byte[] digest = digest(fingerprint);
        if (first == null) {
            firstFingerprint.update(digest);
            out.collect(row);
        } else if (Arrays.equals(first, digest)) {
            context.output(duplicates, row);
        } else {
            context.output(conflicts, row);
        }
    }
}
