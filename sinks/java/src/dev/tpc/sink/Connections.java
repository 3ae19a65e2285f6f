package dev.tpc.sink;

import java.sql.Connection;
import java.sql.Driver;
import java.sql.SQLException;

/** Opens JDBC connections and turns the usual first-contact failures into advice. */
final class Connections {
    static final String DRIVER_CLASS = "org.postgresql.Driver";

    private Connections() {}

    static Driver driver() {
        // Flink loads job jars in a child class loader that DriverManager does not search,
        // so the driver is instantiated directly.
        ClassLoader[] loaders = {Thread.currentThread().getContextClassLoader(),
                Connections.class.getClassLoader()};
        for (ClassLoader loader : loaders) {
            if (loader == null) {
                continue;
            }
            try {
                return (Driver) Class.forName(DRIVER_CLASS, true, loader)
                        .getDeclaredConstructor().newInstance();
            } catch (ClassNotFoundException e) {
                // try the next loader
            } catch (ReflectiveOperationException e) {
                throw new SinkConfigurationException("cannot instantiate " + DRIVER_CLASS, e);
            }
        }
        throw new SinkConfigurationException("PostgreSQL JDBC driver (" + DRIVER_CLASS
                + ") is not on the classpath. Install it (Debian: apt-get install "
                + "libpostgresql-jdbc-java, giving /usr/share/java/postgresql.jar) and add the jar "
                + "to the job (sinks.add_sink_jars(env) or flink run -j / pipeline.jars), or set "
                + "TPC_JDBC_DRIVER_JAR to its path.");
    }

    static Connection open(SinkConfig config, String applicationName) throws SQLException {
        Connection connection;
        try {
            connection = driver().connect(config.jdbcUrl(), config.jdbcProperties(applicationName));
        } catch (SQLException e) {
            throw explain(config, e);
        }
        if (connection == null) {
            throw new SinkConfigurationException("the PostgreSQL driver does not accept the URL "
                    + SinkConfig.redactUrl(config.jdbcUrl()));
        }
        return connection;
    }

    private static SQLException explain(SinkConfig config, SQLException e) {
        String state = e.getSQLState() == null ? "" : e.getSQLState();
        String where = SinkConfig.redactUrl(config.jdbcUrl());
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
}
