package dev.tpc.sink;

/** A misconfiguration found before any data moves; the message says what to do. */
public class SinkConfigurationException extends RuntimeException {
    public SinkConfigurationException(String message) {
        super(message);
    }

    public SinkConfigurationException(String message, Throwable cause) {
        super(message, cause);
    }
}
