package dev.tpc.sink;

import java.io.IOException;
import java.sql.SQLException;

/** A row the database refused, under the {@link RowErrorPolicy#FAIL} policy. */
public final class RefusedRowException extends IOException {
    private static final long serialVersionUID = 1L;

    RefusedRowException(String message, SQLException cause) {
        super(message, cause);
    }
}
