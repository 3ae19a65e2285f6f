package dev.tpc.sink;

import java.sql.Connection;
import java.sql.Driver;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * Opens JDBC connections, every one with the sink's timeouts and keepalives (see {@link
 * SinkConfig#jdbcProperties}) and durable commits, and turns the usual first-contact failures
 * into advice. Public for tests and tools; jobs never call it.
 */
public final class Connections {
    static final String DRIVER_CLASS = "org.postgresql.Driver";

    private Connections() {}

    static Driver driver() {
        // Flink loads job jars in a child class loader that DriverManager does not search,
        // so the driver is instantiated directly.
        ClassLoader[] loaders = {
            Thread.currentThread().getContextClassLoader(), Connections.class.getClassLoader()
        };
        for (ClassLoader loader : loaders) {
            if (loader == null) {
                continue;
            }
            try {
                return (Driver) Class.forName(DRIVER_CLASS, true, loader)
                        .getDeclaredConstructor()
                        .newInstance();
            } catch (ClassNotFoundException e) {
                // try the next loader
            } catch (ReflectiveOperationException e) {
                throw new SinkConfigurationException("cannot instantiate " + DRIVER_CLASS, e);
            }
        }
        throw new SinkConfigurationException("PostgreSQL JDBC driver (" + DRIVER_CLASS
                + ") is not on the classpath. The sink's jar holds it (tpc-connectors.jar, "
                + "built by python -m sinks.build): add that jar to the job "
                + "(sinks.add_sink_jars(env), or flink run -j / pipeline.jars).");
    }

    public static Connection open(SinkConfig config, String applicationName) throws SQLException {
        Connection connection;
        try {
            connection = driver().connect(
                            config.connectionUrl(), config.jdbcProperties(applicationName));
        } catch (SQLException e) {
            throw explain(config, e);
        }
        if (connection == null) {
            throw new SinkConfigurationException("the PostgreSQL driver does not accept the URL "
                    + SinkConfig.redactUrl(config.jdbcUrl()));
        }
        try {
            requireDurableCommits(connection);
        } catch (SQLException | RuntimeException e) {
            connection.close();
            throw e;
        }
        return connection;
    }

    /**
     * With synchronous_commit = off, PostgreSQL acknowledges a commit before its WAL reaches the
     * kernel, and a crash loses the last few hundred milliseconds of acknowledged commits: a
     * pre-commit or commit the sink was told had happened. Exactly-once across a database crash
     * needs them durable, so the sink's own sessions raise 'off' to 'local' (flushed locally;
     * stronger settings, such as synchronous replication, are left alone).
     */
    private static void requireDurableCommits(Connection connection) throws SQLException {
        try (Statement st = connection.createStatement()) {
            String setting;
            try (ResultSet rs = st.executeQuery("SHOW synchronous_commit")) {
                rs.next();
                setting = rs.getString(1);
            }
            if ("off".equalsIgnoreCase(setting)) {
                st.execute("SET synchronous_commit = local");
            }
        }
    }

    private static SQLException explain(SinkConfig config, SQLException e) {
        String state = e.getSQLState() == null ? "" : e.getSQLState();
        String where = SinkConfig.redactUrl(config.jdbcUrl());
        // First: pgjdbc reports a failed TLS check as 08006 and a hostssl-only refusal as 28000,
        // which the advice below would read as a server down or a wrong password.
        String tls = tlsCheckFailed(config, e);
        if (tls != null) {
            return new SQLException(
                    "cannot connect to " + where.split("\\?", 2)[0] + ": " + tls + " ["
                            + e.getMessage() + "]",
                    state,
                    e);
        }
        String advice;
        if (state.startsWith("08")) {
            advice = "database unreachable at " + where + ": is PostgreSQL running and listening "
                    + "on that host and port (listen_addresses, firewall)?";
        } else if (state.equals("28P01") || state.equals("28000")) {
            advice = "authentication failed for " + where + ": check the user and the password "
                    + "(given through the environment variable or config, never in code)";
        } else if (state.equals("3D000")) {
            advice = "database in " + where + " does not exist: create it first";
        } else {
            return e;
        }
        return new SQLException(advice + " [" + e.getMessage() + "]", state, e);
    }

    /**
     * Which TLS check refused the connection, in the words the Python side uses
     * (sinks/database.py, explain_connect_failure), or null. Told apart because each needs another
     * fix: another CA file, another host name, TLS in the URL. The sink may connect from another
     * machine than the job's client (a TaskManager), where the same sslrootcert path must hold the
     * same CA.
     */
    static String tlsCheckFailed(SinkConfig config, SQLException e) {
        StringBuilder chain = new StringBuilder();
        for (Throwable t = e; t != null && chain.length() < 20_000; t = t.getCause()) {
            chain.append(t.getClass().getName())
                    .append(": ")
                    .append(t.getMessage())
                    .append('\n');
            if (t.getCause() == t) {
                break;
            }
        }
        String text = chain.toString();
        String rootCert = SinkConfig.urlParameters(config.jdbcUrl())
                .getOrDefault("sslrootcert", "~/.postgresql/root.crt");
        if (text.contains("could not be verified by hostnameverifier")) {
            return "TLS host name mismatch: the server's certificate does not hold the host name "
                    + "or address the URL connects to. Connect through a host name or address the "
                    + "certificate holds (its subjectAltName), or have a certificate issued for "
                    + "this one";
        }
        if (text.contains("PKIX path")
                || text.contains("CertPathBuilderException")
                || text.contains("CertPathValidatorException")) {
            return "TLS certificate verification failed: the server's certificate does not verify "
                    + "against the CA in sslrootcert=" + rootCert + ". Give sslrootcert the CA "
                    + "file that signed the server's certificate";
        }
        if (text.contains("Could not open SSL root certificate file")) {
            return "TLS certificate verification cannot start: sslrootcert=" + rootCert
                    + " cannot be read on this machine (every TaskManager reads the same path). "
                    + "Give sslrootcert the path of the CA file (PEM) that signed the server's "
                    + "certificate";
        }
        if (text.contains("no encryption") && text.contains("pg_hba.conf")) {
            return "the server requires TLS: it refuses a connection without encryption. Add "
                    + "sslmode=verify-full&sslrootcert=/path/to/the-servers-ca.pem to the URL";
        }
        if (text.contains("The server does not support SSL")) {
            return "the server does not offer TLS, and the URL requires it (sslmode): turn on ssl "
                    + "in the server's postgresql.conf, or connect to a server that has it";
        }
        return null;
    }
}
