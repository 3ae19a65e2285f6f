package dev.tpc.source;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.connector.file.src.impl.StreamFormatAdapter;
import org.apache.flink.connector.file.src.reader.BulkFormat;
import org.apache.flink.connector.file.src.reader.SimpleStreamFormat;
import org.apache.flink.connector.file.src.reader.StreamFormat;
import org.apache.flink.connector.file.src.util.RecordAndPosition;
import org.apache.flink.core.fs.FSDataInputStream;
import org.apache.flink.types.Row;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;

/**
 * Lines of files, byte-exact, with where they came from: rows of (source, line_number, line).
 *
 * <p>Unlike Flink's TextLineInputFormat this keeps the bytes as read (invalid UTF-8 and a lone
 * {@code \r} included) and splits only at {@code \n}, so the Python parser sees exactly what a
 * plain Python file reader sees. Files are read whole; the checkpointed position is the number
 * of lines already emitted, so line numbers (from 1) survive restores. A line longer than
 * {@link #MAX_LINE_BYTES} is cut there (with the {@code \n} dropped), which the parser rejects as
 * too long, instead of exhausting memory.
 */
public final class NumberedLinesFormat implements BulkFormat<Row, FileSourceSplit> {
    private static final long serialVersionUID = 1L;
    static final int MAX_LINE_BYTES = 8 * 1024 * 1024;

    private final StreamFormatAdapter<byte[]> lines = new StreamFormatAdapter<>(new ByteLines());

    @Override
    public Reader<Row> createReader(Configuration config, FileSourceSplit split)
            throws IOException {
        InputFileFault.raiseIfMarked(split);
        try {
            return new NumberingReader(lines.createReader(config, split), split.path());
        } catch (IOException e) {
            throw FileFaults.atOpen(split.path(), e);
        }
    }

    @Override
    public Reader<Row> restoreReader(Configuration config, FileSourceSplit split)
            throws IOException {
        InputFileFault.raiseIfMarked(split);
        try {
            return new NumberingReader(lines.restoreReader(config, split), split.path());
        } catch (IOException e) {
            throw FileFaults.atOpen(split.path(), e);
        }
    }

    @Override
    public boolean isSplittable() {
        return false;
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW_NAMED(
                new String[] {"source", "line_number", "line"},
                Types.STRING,
                Types.LONG,
                Types.PRIMITIVE_ARRAY(Types.BYTE));
    }

    /** Lines as raw bytes, terminator included (as Python's file iteration yields them). */
    static final class ByteLines extends SimpleStreamFormat<byte[]> {
        private static final long serialVersionUID = 1L;

        @Override
        public StreamFormat.Reader<byte[]> createReader(
                Configuration config, FSDataInputStream stream) {
            return new StreamFormat.Reader<byte[]>() {
                // Scans a block at a time for '\n' (a byte-wise read() per byte cost more CPU
                // than everything else the JVM does for a line).
                private final byte[] buffer = new byte[1 << 16];
                private int position;
                private int limit;
                private final ByteArrayOutputStream line = new ByteArrayOutputStream(256);
                private final InputStream in = stream;

                @Override
                public byte[] read() throws IOException {
                    line.reset();
                    boolean any = false;
                    while (true) {
                        if (position == limit) {
                            limit = Math.max(in.read(buffer, 0, buffer.length), 0);
                            position = 0;
                            if (limit == 0) {
                                return any ? line.toByteArray() : null;
                            }
                        }
                        int start = position;
                        int end = start;
                        while (end < limit && buffer[end] != '\n') {
                            end++;
                        }
                        boolean complete = end < limit;
                        if (complete) {
                            end++; // the terminator belongs to the line
                        }
                        position = end;
                        if (complete && !any && end - start <= MAX_LINE_BYTES) {
                            return Arrays.copyOfRange(buffer, start, end); // the usual case
                        }
                        any = true;
                        int room = MAX_LINE_BYTES - line.size();
                        if (room > 0) {
                            line.write(buffer, start, Math.min(room, end - start));
                        }
                        if (complete) {
                            return line.toByteArray();
                        }
                    }
                }

                @Override
                public void close() throws IOException {
                    in.close();
                }
            };
        }

        @Override
        public TypeInformation<byte[]> getProducedType() {
            return org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo
                    .BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
        }
    }

    private static final class NumberingReader implements Reader<Row> {
        private final Reader<byte[]> delegate;
        private final org.apache.flink.core.fs.Path path;
        private final String source;
        private long linesRead;

        NumberingReader(Reader<byte[]> delegate, org.apache.flink.core.fs.Path path) {
            this.delegate = delegate;
            this.path = path;
            this.source = path.getPath();
        }

        @Override
        public RecordIterator<Row> readBatch() throws IOException {
            RecordIterator<byte[]> batch;
            try {
                batch = delegate.readBatch();
            } catch (IOException e) {
                throw FileFaults.whileReading(path, e, linesRead);
            }
            if (batch == null) {
                return null;
            }
            return new RecordIterator<Row>() {
                @Override
                public RecordAndPosition<Row> next() {
                    RecordAndPosition<byte[]> next = batch.next();
                    if (next == null) {
                        return null;
                    }
                    // The position after a line counts the lines read so far: its number.
                    long lineNumber = next.getRecordSkipCount();
                    linesRead = lineNumber;
                    return new RecordAndPosition<>(
                            Row.of(source, lineNumber, next.getRecord()),
                            next.getOffset(),
                            next.getRecordSkipCount());
                }

                @Override
                public void releaseBatch() {
                    batch.releaseBatch();
                }
            };
        }

        @Override
        public void close() throws IOException {
            delegate.close();
        }
    }
}
