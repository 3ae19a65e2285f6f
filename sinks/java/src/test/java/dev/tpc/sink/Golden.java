package dev.tpc.sink;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/**
 * Bytes that an earlier version of the sink wrote into checkpoints or staging tables, kept under
 * {@code src/test/resources/golden/}. A later version must still read them, so a test that reads
 * a golden file fails when a format change forgets the old version. To add a file for a new
 * format version, run the tests once with {@code -Dtpc.golden.write=true} and commit the new
 * file; never regenerate an existing one.
 */
final class Golden {
    private Golden() {}

    static byte[] read(String name, byte[] current) {
        if (Boolean.getBoolean("tpc.golden.write")) {
            Path file = Paths.get(
                    System.getProperty("basedir", "."), "src", "test", "resources", "golden", name);
            try {
                if (!Files.exists(file)) {
                    Files.createDirectories(file.getParent());
                    Files.write(file, current);
                }
                return Files.readAllBytes(file);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        try (InputStream in = Golden.class.getResourceAsStream("/golden/" + name)) {
            if (in == null) {
                throw new IllegalStateException("golden file " + name + " is missing: run the "
                        + "tests once with -Dtpc.golden.write=true and commit it");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
