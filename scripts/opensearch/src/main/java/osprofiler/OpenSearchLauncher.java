package osprofiler;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.appender.ConsoleAppender;
import org.apache.logging.log4j.core.config.Configurator;
import org.apache.logging.log4j.core.config.builder.api.AppenderComponentBuilder;
import org.apache.logging.log4j.core.config.builder.api.ConfigurationBuilder;
import org.apache.logging.log4j.core.config.builder.api.ConfigurationBuilderFactory;
import org.apache.logging.log4j.core.config.builder.impl.BuiltConfiguration;
import org.opensearch.common.logging.DeprecationLogger;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single-node OpenSearch server for the tests: OpenSearch core with its transport-netty4
 * module (HTTP on 127.0.0.1:9200) and its reindex module (_delete_by_query), all from Maven
 * Central, in a fresh temporary home and data directory that is deleted when the node stops.
 *
 * <p>Usage: {@code java -Xms512m -Xmx1g -jar opensearch-launcher.jar [http-port]}; the port is
 * the first argument, else $OSP_OPENSEARCH_PORT, else 9200. Runs until killed; SIGTERM (or
 * Ctrl-C) closes the node cleanly.
 */
public final class OpenSearchLauncher {

    /** Node's constructor that takes plugins from the classpath is protected. */
    private static final class ClasspathPluginsNode extends Node {
        ClasspathPluginsNode(Environment environment, List<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        // What the distribution's jvm.options sets; before Netty and Log4j are loaded.
        System.setProperty("log4j.shutdownHookEnabled", "false");
        System.setProperty("log4j2.disable.jmx", "true");
        System.setProperty("io.netty.noUnsafe", "true");
        System.setProperty("io.netty.noKeySetOptimization", "true");
        System.setProperty("io.netty.recycler.maxCapacityPerThread", "0");
        System.setProperty("io.netty.allocator.numDirectArenas", "0");
        System.setProperty("java.awt.headless", "true");
        configureLogging();

        String port = args.length > 0 ? args[0] : System.getenv("OSP_OPENSEARCH_PORT");
        if (port == null || port.isBlank()) {
            port = "9200";
        }

        Path home = Files.createTempDirectory("osprofiler-opensearch-");
        Files.createDirectories(home.resolve("config"));
        Files.createDirectories(home.resolve("plugins"));
        Files.createDirectories(home.resolve("logs"));

        Settings settings = Settings.builder()
            .put("cluster.name", "osprofiler-test")
            .put("node.name", "node-1")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", "9300-9400")
            .put("http.type", Netty4Plugin.NETTY_HTTP_TRANSPORT_NAME)
            .put("transport.type", Netty4Plugin.NETTY_TRANSPORT_NAME)
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            // A nearly full disk must not make the indices read-only.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            // A small heap: no parent circuit breaker on the JVM's real heap use.
            .put("indices.breaker.total.use_real_memory", false)
            .build();

        Environment environment =
            InternalSettingsPreparer.prepareEnvironment(settings, Collections.emptyMap(), null, () -> "node-1");
        Node node = new ClasspathPluginsNode(environment, List.of(Netty4Plugin.class, ReindexPlugin.class));

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                System.err.println("closing the OpenSearch node: " + e);
            } finally {
                deleteTree(home);
                LogManager.shutdown();
                stopped.countDown();
            }
        }, "opensearch-shutdown"));

        try {
            node.start();
            // One node: no replicas, so new indices are green rather than yellow. OpenSearch
            // reads this default from the cluster state, not from the node's settings.
            node.client().admin().cluster().prepareUpdateSettings()
                .setPersistentSettings(Settings.builder().put("cluster.default_number_of_replicas", 0))
                .get();
        } catch (Throwable t) {
            System.err.println("FAILED: OpenSearch did not start: " + t);
            t.printStackTrace();
            System.exit(1); // the shutdown hook closes the node and deletes its directory
        }
        System.out.println("OpenSearch " + org.opensearch.Version.CURRENT + " started: http://127.0.0.1:" + port
            + "/ (home " + home + ")");
        System.out.flush();
        stopped.await();
    }

    /**
     * WARN and above to stdout, plus the node's start-up lines; deprecations go, as in the
     * distribution's log4j2.properties, to the HeaderWarningAppender that turns them into HTTP
     * Warning headers (and are not logged).
     */
    private static void configureLogging() {
        ConfigurationBuilder<BuiltConfiguration> b = ConfigurationBuilderFactory.newConfigurationBuilder();
        b.setStatusLevel(Level.ERROR);
        b.setConfigurationName("osprofiler-opensearch");
        AppenderComponentBuilder console = b.newAppender("console", "Console")
            .addAttribute("target", ConsoleAppender.Target.SYSTEM_OUT)
            .add(b.newLayout("PatternLayout").addAttribute("pattern", "[%d{ISO8601}][%-5p][%-25c{1.}] %m%n"));
        b.add(console);
        b.add(b.newAppender("header_warning", "HeaderWarningAppender"));
        b.add(b.newRootLogger(Level.WARN).add(b.newAppenderRef("console")));
        b.add(b.newLogger("org.opensearch.node.Node", Level.INFO));
        b.add(b.newLogger("org.opensearch.http.AbstractHttpServerTransport", Level.INFO));
        // "gateway.auto_import_dangling_indices is disabled" at every start.
        b.add(b.newLogger("org.opensearch.gateway.DanglingIndicesState", Level.ERROR));
        b.add(b.newLogger("org.opensearch.deprecation", DeprecationLogger.DEPRECATION)
            .add(b.newAppenderRef("header_warning"))
            .addAttribute("additivity", false));
        Configurator.initialize(b.build());
    }

    private static void deleteTree(Path root) {
        try (Stream<Path> paths = Files.walk(root)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort
                }
            });
        } catch (IOException ignored) {
            // best effort
        }
    }
}
