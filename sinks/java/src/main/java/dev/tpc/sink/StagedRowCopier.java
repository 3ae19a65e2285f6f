package dev.tpc.sink;

import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.SQLException;

/**
 * Streams staged rows into the staging table with COPY in PostgreSQL's binary format (the payload
 * goes as raw bytes, not as hex text), a buffer of rows at a time.
 */
final class StagedRowCopier {
    private static final byte[] SIGNATURE =
            "PGCOPY\n\377\r\n\0".getBytes(StandardCharsets.ISO_8859_1);

    private final CopyManager copy;
    private final String copySql;
    private final int batchSize;
    private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(1 << 16);
    private final DataOutputStream out = new DataOutputStream(buffer);
    private String gid;
    private byte[] gidBytes;
    private int pending;

    StagedRowCopier(Connection connection, String stagedRowsTable, int batchSize)
            throws SQLException {
        this.copy = connection.unwrap(PGConnection.class).getCopyAPI();
        this.copySql =
                "COPY " + stagedRowsTable + " (gid, seq, payload) FROM STDIN (FORMAT binary)";
        this.batchSize = batchSize;
    }

    void add(String gid, long seq, byte[] payload) throws SQLException {
        try {
            if (pending == 0) {
                out.write(SIGNATURE);
                out.writeInt(0); // flags
                out.writeInt(0); // header extension length
            }
            if (!gid.equals(this.gid)) {
                this.gid = gid;
                this.gidBytes = gid.getBytes(StandardCharsets.UTF_8);
            }
            out.writeShort(3);
            out.writeInt(gidBytes.length);
            out.write(gidBytes);
            out.writeInt(8);
            out.writeLong(seq);
            out.writeInt(payload.length);
            out.write(payload);
        } catch (IOException e) {
            throw new IllegalStateException("writing to a byte buffer failed", e);
        }
        if (++pending >= batchSize) {
            flush();
        }
    }

    void flush() throws SQLException {
        if (pending == 0) {
            return;
        }
        try {
            out.writeShort(-1); // trailer
            copy.copyIn(copySql, new ByteArrayInputStream(buffer.toByteArray()));
        } catch (IOException e) {
            throw new SQLException("COPY into the staging table failed: " + e.getMessage(), e);
        } finally {
            buffer.reset();
            pending = 0;
        }
    }
}
