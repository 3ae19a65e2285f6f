package dev.tpc.sink;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;

/**
 * Encodes a row's field values for the staging table and back, losslessly and without Java
 * serialization (staged rows must stay readable by a later version of the sink).
 */
final class RowCodec {
    private static final byte NULL = 0,
            STRING = 1,
            LONG = 2,
            INT = 3,
            SHORT = 4,
            BYTE = 5,
            DOUBLE = 6,
            FLOAT = 7,
            BOOLEAN = 8,
            DECIMAL = 9,
            SQL_TIMESTAMP = 10,
            LOCAL_DATE_TIME = 11,
            INSTANT = 12,
            LOCAL_DATE = 13,
            LOCAL_TIME = 14,
            BYTES = 15,
            SQL_DATE = 16,
            SQL_TIME = 17,
            BIG_INTEGER = 18,
            OFFSET_DATE_TIME = 19;

    private RowCodec() {}

    static byte[] encode(Object[] values) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(64);
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            out.writeShort(values.length);
            for (Object value : values) {
                write(out, value);
            }
        }
        return bytes.toByteArray();
    }

    static Object[] decode(byte[] payload) throws IOException {
        try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(payload))) {
            Object[] values = new Object[in.readShort()];
            for (int i = 0; i < values.length; i++) {
                values[i] = read(in);
            }
            return values;
        }
    }

    private static void writeString(DataOutputStream out, String s) throws IOException {
        byte[] utf8 = s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        out.writeInt(utf8.length);
        out.write(utf8);
    }

    private static String readString(DataInputStream in) throws IOException {
        byte[] utf8 = new byte[in.readInt()];
        in.readFully(utf8);
        return new String(utf8, java.nio.charset.StandardCharsets.UTF_8);
    }

    private static void write(DataOutputStream out, Object v) throws IOException {
        if (v == null) {
            out.writeByte(NULL);
        } else if (v instanceof String) {
            out.writeByte(STRING);
            writeString(out, (String) v);
        } else if (v instanceof Long) {
            out.writeByte(LONG);
            out.writeLong((Long) v);
        } else if (v instanceof Integer) {
            out.writeByte(INT);
            out.writeInt((Integer) v);
        } else if (v instanceof Short) {
            out.writeByte(SHORT);
            out.writeShort((Short) v);
        } else if (v instanceof Byte) {
            out.writeByte(BYTE);
            out.writeByte((Byte) v);
        } else if (v instanceof Double) {
            out.writeByte(DOUBLE);
            out.writeDouble((Double) v);
        } else if (v instanceof Float) {
            out.writeByte(FLOAT);
            out.writeFloat((Float) v);
        } else if (v instanceof Boolean) {
            out.writeByte(BOOLEAN);
            out.writeBoolean((Boolean) v);
        } else if (v instanceof BigDecimal) {
            out.writeByte(DECIMAL);
            BigDecimal d = (BigDecimal) v;
            out.writeInt(d.scale());
            byte[] unscaled = d.unscaledValue().toByteArray();
            out.writeInt(unscaled.length);
            out.write(unscaled);
        } else if (v instanceof BigInteger) {
            out.writeByte(BIG_INTEGER);
            byte[] raw = ((BigInteger) v).toByteArray();
            out.writeInt(raw.length);
            out.write(raw);
        } else if (v instanceof java.sql.Timestamp) {
            out.writeByte(SQL_TIMESTAMP);
            writeString(out, ((java.sql.Timestamp) v).toLocalDateTime().toString());
        } else if (v instanceof java.sql.Date) {
            out.writeByte(SQL_DATE);
            writeString(out, ((java.sql.Date) v).toLocalDate().toString());
        } else if (v instanceof java.sql.Time) {
            out.writeByte(SQL_TIME);
            writeString(out, ((java.sql.Time) v).toLocalTime().toString());
        } else if (v instanceof LocalDateTime) {
            out.writeByte(LOCAL_DATE_TIME);
            writeString(out, v.toString());
        } else if (v instanceof Instant) {
            out.writeByte(INSTANT);
            writeString(out, v.toString());
        } else if (v instanceof OffsetDateTime) {
            out.writeByte(OFFSET_DATE_TIME);
            writeString(out, v.toString());
        } else if (v instanceof LocalDate) {
            out.writeByte(LOCAL_DATE);
            writeString(out, v.toString());
        } else if (v instanceof LocalTime) {
            out.writeByte(LOCAL_TIME);
            writeString(out, v.toString());
        } else if (v instanceof byte[]) {
            out.writeByte(BYTES);
            out.writeInt(((byte[]) v).length);
            out.write((byte[]) v);
        } else {
            throw new IOException("staged mode cannot store a value of type "
                    + v.getClass().getName() + "; use a string, number, boolean, decimal, "
                    + "date/time or bytes field");
        }
    }

    private static Object read(DataInputStream in) throws IOException {
        byte tag = in.readByte();
        switch (tag) {
            case NULL:
                return null;
            case STRING:
                return readString(in);
            case LONG:
                return in.readLong();
            case INT:
                return in.readInt();
            case SHORT:
                return in.readShort();
            case BYTE:
                return in.readByte();
            case DOUBLE:
                return in.readDouble();
            case FLOAT:
                return in.readFloat();
            case BOOLEAN:
                return in.readBoolean();
            case DECIMAL: {
                int scale = in.readInt();
                byte[] unscaled = new byte[in.readInt()];
                in.readFully(unscaled);
                return new BigDecimal(new BigInteger(unscaled), scale);
            }
            case BIG_INTEGER: {
                byte[] raw = new byte[in.readInt()];
                in.readFully(raw);
                return new BigInteger(raw);
            }
            case SQL_TIMESTAMP:
                return java.sql.Timestamp.valueOf(LocalDateTime.parse(readString(in)));
            case SQL_DATE:
                return java.sql.Date.valueOf(LocalDate.parse(readString(in)));
            case SQL_TIME:
                return java.sql.Time.valueOf(LocalTime.parse(readString(in)));
            case LOCAL_DATE_TIME:
                return LocalDateTime.parse(readString(in));
            case INSTANT:
                return Instant.parse(readString(in));
            case OFFSET_DATE_TIME:
                return OffsetDateTime.parse(readString(in));
            case LOCAL_DATE:
                return LocalDate.parse(readString(in));
            case LOCAL_TIME:
                return LocalTime.parse(readString(in));
            case BYTES: {
                byte[] raw = new byte[in.readInt()];
                in.readFully(raw);
                return raw;
            }
            default:
                throw new IOException("corrupt staged row: unknown value tag " + tag);
        }
    }
}
