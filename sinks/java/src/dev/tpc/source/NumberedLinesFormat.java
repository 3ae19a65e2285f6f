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

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;

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
    public Reader<Row> createReader(Configuration config, FileSourceSplit split) throws IOException {
        return new NumberingReader(lines.createReader(config, split), split.path().getPath());
    }

    @Override
    public Reader<Row> restoreReader(Configuration config, FileSourceSplit split) throws IOException {
        return new NumberingReader(lines.restoreReader(config, split), split.path().getPath());
    }

    @Override
    public boolean isSplittable() {
        return false;
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW_NAMED(new String[] {"source", "line_number", "line"},
                Types.STRING, Types.LONG, Types.PRIMITIVE_ARRAY(Types.BYTE));
    }

    /** Lines as raw bytes, terminator included (as Python's file iteration yields them). */
    static final class ByteLines extends SimpleStreamFormat<byte[]> {
        private static final long serialVersionUID = 1L;

        @Override
        public StreamFormat.Reader<byte[]> createReader(Configuration config,
                FSDataInputStream stream) {
            InputStream in = new BufferedInputStream(stream, 1 << 16);
            return new StreamFormat.Reader<byte[]>() {
                private final ByteArrayOutputStream line = new ByteArrayOutputStream(256);

                @Override
                public byte[] read() throws IOException {
                    line.reset();
                    int b;
                    boolean any = false;
                    while ((b = in.read()) != -1) {
                        any = true;
                        if (line.size() < MAX_LINE_BYTES) {
                            line.write(b);
                        }
                        if (b == '\n') {
                            break;
                        }
                    }
                    return any ? line.toByteArray() : null;
                }

                @Override
                public void close() throws IOException {
                    in.close();
                }
            };
        }

        @Override
        public TypeInformation<byte[]> getProducedType() {
            return org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
        }
    }

    private static final class NumberingReader implements Reader<Row> {
        private final Reader<byte[]> delegate;
        private final String source;

        NumberingReader(Reader<byte[]> delegate, String source) {
            this.delegate = delegate;
            this.source = source;
        }

        @Override
        public RecordIterator<Row> readBatch() throws IOException {
            RecordIterator<byte[]> batch = delegate.readBatch();
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
                    return new RecordAndPosition<>(
                            Row.of(source, lineNumber, next.getRecord()),
                            next.getOffset(), next.getRecordSkipCount());
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
