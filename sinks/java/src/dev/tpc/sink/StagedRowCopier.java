package dev.tpc.sink;

import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.SQLException;

/** Streams staged rows into the staging table with COPY, a buffer of rows at a time. */
final class StagedRowCopier {
    private static final byte[] HEX = "0123456789abcdef".getBytes(StandardCharsets.US_ASCII);

    private final CopyManager copy;
    private final String copySql;
    private final int batchSize;
    private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(1 << 16);
    private int pending;

    StagedRowCopier(Connection connection, String stagedRowsTable, int batchSize)
            throws SQLException {
        this.copy = connection.unwrap(PGConnection.class).getCopyAPI();
        this.copySql = "COPY " + stagedRowsTable + " (gid, seq, payload) FROM STDIN";
        this.batchSize = batchSize;
    }

    void add(String gid, long seq, byte[] payload) throws SQLException {
        // COPY text format; the gid charset needs no escaping, bytea goes as \\x<hex>.
        byte[] prefix = (gid + "\t" + seq + "\t\\\\x").getBytes(StandardCharsets.US_ASCII);
        buffer.write(prefix, 0, prefix.length);
        for (byte b : payload) {
            buffer.write(HEX[(b >> 4) & 0xF]);
            buffer.write(HEX[b & 0xF]);
        }
        buffer.write('\n');
        if (++pending >= batchSize) {
            flush();
        }
    }

    void flush() throws SQLException {
        if (pending == 0) {
            return;
        }
        try {
            copy.copyIn(copySql, new ByteArrayInputStream(buffer.toByteArray()));
        } catch (IOException e) {
            throw new SQLException("COPY into the staging table failed: " + e.getMessage(), e);
        } finally {
            buffer.reset();
            pending = 0;
        }
    }
}
