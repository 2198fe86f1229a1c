// A Kafka Connect client built from Kafka's own REST entity classes (org.apache.kafka:connect-runtime, the
// broker's version), reading every answer with a Jackson mapper as strict as Kafka's RestClient's (an unknown
// property fails), and sending requests as Kafka's entities serialize them. It drives one connector through the
// whole REST API and prints one line per check: `PASS <check>` or `FAIL <check>: <why>`, then a summary. It exits
// 1 if any check failed.
//
// Usage: java -cp "<connect-runtime and its jars>/*" ConnectRestOracle.java <base url> <topic>

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JavaType;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.kafka.connect.runtime.isolation.PluginType;
import org.apache.kafka.connect.runtime.rest.entities.ActiveTopicsInfo;
import org.apache.kafka.connect.runtime.rest.entities.ConfigInfos;
import org.apache.kafka.connect.runtime.rest.entities.ConfigKeyInfo;
import org.apache.kafka.connect.runtime.rest.entities.ConnectorInfo;
import org.apache.kafka.connect.runtime.rest.entities.ConnectorOffsets;
import org.apache.kafka.connect.runtime.rest.entities.ConnectorStateInfo;
import org.apache.kafka.connect.runtime.rest.entities.CreateConnectorRequest;
import org.apache.kafka.connect.runtime.rest.entities.ErrorMessage;
import org.apache.kafka.connect.runtime.rest.entities.LoggerLevel;
import org.apache.kafka.connect.runtime.rest.entities.Message;
import org.apache.kafka.connect.runtime.rest.entities.PluginInfo;
import org.apache.kafka.connect.runtime.rest.entities.ServerInfo;
import org.apache.kafka.connect.runtime.rest.entities.TaskInfo;
import org.apache.kafka.connect.runtime.rest.entities.WorkerStatus;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public class ConnectRestOracle {
    // Kafka's RestClient reads answers with a plain ObjectMapper: FAIL_ON_UNKNOWN_PROPERTIES is on.
    static final ObjectMapper MAPPER = new ObjectMapper();
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    static final List<String> FAILURES = new ArrayList<>();
    static int checks = 0;
    static String base;

    record Answer(int status, String body, String contentType) {}

    static Answer call(String method, String path, Object body) throws Exception {
        HttpRequest.BodyPublisher publisher = body == null
            ? HttpRequest.BodyPublishers.noBody()
            : HttpRequest.BodyPublishers.ofString(body instanceof String text ? text : MAPPER.writeValueAsString(body));
        HttpRequest request = HttpRequest.newBuilder(URI.create(base + path))
            .timeout(Duration.ofSeconds(60))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .method(method, publisher)
            .build();
        HttpResponse<String> response = HTTP.send(request, HttpResponse.BodyHandlers.ofString());
        return new Answer(response.statusCode(), response.body(),
            response.headers().firstValue("Content-Type").orElse(""));
    }

    interface Check {
        void run() throws Exception;
    }

    static void check(String name, Check check) {
        checks++;
        try {
            check.run();
            System.out.println("PASS " + name);
        } catch (Throwable failure) {
            String why = String.valueOf(failure.getMessage()).replace('\n', ' ');
            System.out.println("FAIL " + name + ": " + failure.getClass().getSimpleName() + ": " + why);
            FAILURES.add(name);
        }
    }

    static void require(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    static Answer expect(Answer answer, int... statuses) {
        for (int status : statuses) {
            if (answer.status == status) {
                return answer;
            }
        }
        throw new AssertionError("status " + answer.status + ", expected " + java.util.Arrays.toString(statuses)
            + ": " + answer.body);
    }

    /// Reads a body as a Kafka entity, strictly.
    static <T> T read(Answer answer, Class<T> type) throws Exception {
        return MAPPER.readValue(answer.body, type);
    }

    static <T> T read(Answer answer, JavaType type) throws Exception {
        return MAPPER.readValue(answer.body, type);
    }

    static JavaType listOf(Class<?> type) {
        return MAPPER.getTypeFactory().constructCollectionType(List.class, type);
    }

    static JavaType mapOf(Class<?> value) {
        return MAPPER.getTypeFactory().constructMapType(Map.class, String.class, value);
    }

    /// An error answer: Kafka's ErrorMessage, as JSON.
    static void expectError(Answer answer, int status) throws Exception {
        expect(answer, status);
        require(answer.contentType.startsWith("application/json"), "content type " + answer.contentType);
        ErrorMessage error = read(answer, ErrorMessage.class);
        require(error.errorCode() == status, "error_code " + error.errorCode());
        require(error.message() != null && !error.message().isEmpty(), "no message");
    }

    static String state(String name) throws Exception {
        Answer answer = expect(call("GET", "/connectors/" + name + "/status", null), 200);
        return read(answer, ConnectorStateInfo.class).connector().state();
    }

    static void waitFor(String what, Predicate<Void> condition) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (!condition.test(null)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(200);
        }
    }

    static void waitForState(String name, String wanted) throws Exception {
        waitFor(name + " to be " + wanted, ignored -> {
            try {
                return wanted.equals(state(name));
            } catch (Exception e) {
                return false;
            }
        });
    }

    static Map<String, String> withName(Map<String, String> config, String name) {
        Map<String, String> expected = new LinkedHashMap<>(config);
        expected.put("name", name);
        return expected;
    }

    public static void main(String[] args) throws Exception {
        base = args[0];
        String topic = args[1];
        String name = "oracle-" + ProcessHandle.current().pid();
        String sinkClass = "EventBridgeSinkConnector";

        check("GET / is a ServerInfo of Kafka Connect 3.6 or later, with the cluster id", () -> {
            Answer answer = expect(call("GET", "/", null), 200);
            ServerInfo info = read(answer, ServerInfo.class);
            Matcher version = Pattern.compile("^(\\d+)\\.(\\d+)").matcher(info.version());
            require(version.find(), "version " + info.version());
            int major = Integer.parseInt(version.group(1));
            int minor = Integer.parseInt(version.group(2));
            require(major > 3 || (major == 3 && minor >= 6), "version " + info.version());
            require(info.clusterId() != null && !info.clusterId().isEmpty(), "no kafka_cluster_id");
        });

        check("GET /health is a WorkerStatus, healthy", () -> {
            WorkerStatus status = read(expect(call("GET", "/health", null), 200), WorkerStatus.class);
            require("healthy".equals(status.status()), "status " + status.status());
        });

        // Kafka writes PluginInfo's type in lower case and cannot read it back (its enum reads upper case): each entry
        // must be what Kafka's own PluginInfo writes.
        check("GET /connector-plugins lists each plugin as Kafka's PluginInfo writes it, the sink among them", () -> {
            JsonNode plugins = MAPPER.readTree(expect(call("GET", "/connector-plugins", null), 200).body);
            boolean sink = false;
            for (JsonNode plugin : plugins) {
                PluginType type = PluginType.valueOf(plugin.path("type").asText().toUpperCase(java.util.Locale.ROOT));
                JsonNode expected = MAPPER.valueToTree(
                    new PluginInfo(plugin.path("class").asText(), type, plugin.path("version").asText()));
                require(plugin.equals(expected), plugin + " is not " + expected);
                sink |= plugin.path("class").asText().endsWith(sinkClass) && type == PluginType.SINK;
            }
            require(sink, "no sink: " + plugins);
        });

        check("GET /connector-plugins/{class}/config lists ConfigKeyInfo", () -> {
            List<ConfigKeyInfo> keys = read(expect(call("GET", "/connector-plugins/" + sinkClass + "/config", null), 200),
                listOf(ConfigKeyInfo.class));
            require(keys.stream().anyMatch(key -> key.name().equals("event_bus") && key.required()), "no required event_bus");
            require(keys.stream().anyMatch(key -> key.name().equals("batch.max_entries") && "10".equals(key.defaultValue())),
                "no batch.max_entries with default 10");
        });

        Map<String, String> config = new LinkedHashMap<>();
        config.put("connector.class", sinkClass);
        config.put("tasks.max", "1");
        config.put("topics", topic);
        config.put("event_bus", "default");
        config.put("batch.max_entries", "10");
        config.put("consumer.override.session.timeout.ms", "45000");

        check("PUT .../config/validate finds a missing key and names it", () -> {
            Map<String, String> incomplete = new LinkedHashMap<>(config);
            incomplete.remove("event_bus");
            ConfigInfos infos = read(expect(call("PUT", "/connector-plugins/" + sinkClass + "/config/validate", incomplete), 200),
                ConfigInfos.class);
            require(infos.errorCount() == 1, "error_count " + infos.errorCount());
            require(infos.values().stream().anyMatch(info -> info.configValue().name().equals("event_bus")
                && !info.configValue().errors().isEmpty()), "no error on event_bus");
            require(infos.values().stream().allMatch(info -> info.configKey() != null), "a config without its definition");
        });

        check("PUT .../config/validate passes a good config", () -> {
            ConfigInfos infos = read(expect(call("PUT", "/connector-plugins/" + sinkClass + "/config/validate", config), 200),
                ConfigInfos.class);
            require(infos.errorCount() == 0, "error_count " + infos.errorCount() + ": " + MAPPER.writeValueAsString(infos));
        });

        check("POST /connectors with a CreateConnectorRequest answers 201 and a ConnectorInfo of what was sent", () -> {
            Answer answer = expect(call("POST", "/connectors", new CreateConnectorRequest(name, config, null)), 201);
            ConnectorInfo info = read(answer, ConnectorInfo.class);
            require(info.name().equals(name), "name " + info.name());
            require(info.config().equals(withName(config, name)), "config " + info.config());
            require(info.type() != null && info.type().toString().equals("sink"), "type " + info.type());
        });

        check("POST /connectors of an existing name is a 409 ErrorMessage", () ->
            expectError(call("POST", "/connectors", new CreateConnectorRequest(name, config, null)), 409));

        check("GET /connectors and /connectors/ list it", () -> {
            for (String path : List.of("/connectors", "/connectors/")) {
                List<String> names = read(expect(call("GET", path, null), 200), listOf(String.class));
                require(names.contains(name), path + ": " + names);
            }
        });

        check("GET /connectors/{name}/config is the Map<String, String> that was sent", () -> {
            Map<String, String> shown = read(expect(call("GET", "/connectors/" + name + "/config", null), 200), mapOf(String.class));
            require(shown.equals(withName(config, name)), "config " + shown);
        });

        check("the connector runs", () -> waitForState(name, "RUNNING"));

        check("GET /connectors?expand=status&expand=info reads as ConnectorStateInfo and ConnectorInfo", () -> {
            Map<String, Map<String, JsonNode>> all = MAPPER.readValue(
                expect(call("GET", "/connectors?expand=status&expand=info", null), 200).body,
                new TypeReference<Map<String, Map<String, JsonNode>>>() {});
            Map<String, JsonNode> mine = all.get(name);
            require(mine != null, "not listed");
            MAPPER.treeToValue(mine.get("status"), ConnectorStateInfo.class);
            ConnectorInfo info = MAPPER.treeToValue(mine.get("info"), ConnectorInfo.class);
            require(info.config().equals(withName(config, name)), "config " + info.config());
        });

        check("GET /connectors/{name}/tasks lists TaskInfo; task 0's status is a TaskState", () -> {
            List<TaskInfo> tasks = read(expect(call("GET", "/connectors/" + name + "/tasks", null), 200), listOf(TaskInfo.class));
            require(tasks.size() == 1 && tasks.get(0).id().task() == 0, "tasks " + tasks.size());
            ConnectorStateInfo.TaskState task = read(expect(call("GET", "/connectors/" + name + "/tasks/0/status", null), 200),
                ConnectorStateInfo.TaskState.class);
            require(task.id() == 0 && "RUNNING".equals(task.state()), "task " + task.state());
            expectError(call("GET", "/connectors/" + name + "/tasks/1/status", null), 404);
        });

        check("PUT /connectors/{name}/config replaces the config: 200 and the ConnectorInfo", () -> {
            Map<String, String> changed = new LinkedHashMap<>(config);
            changed.put("batch.max_entries", "5");
            ConnectorInfo info = read(expect(call("PUT", "/connectors/" + name + "/config", changed), 200), ConnectorInfo.class);
            require(info.config().equals(withName(changed, name)), "config " + info.config());
        });

        check("PATCH /connectors/{name}/config merges, and a null removes a key", () -> {
            Map<String, String> patch = new LinkedHashMap<>();
            patch.put("batch.max_entries", "3");
            patch.put("tasks.max", null);
            ConnectorInfo info = read(expect(call("PATCH", "/connectors/" + name + "/config", patch), 200), ConnectorInfo.class);
            require("3".equals(info.config().get("batch.max_entries")), "config " + info.config());
            require(!info.config().containsKey("tasks.max"), "tasks.max kept: " + info.config());
        });

        check("a config sent back with [hidden] is a 400 ErrorMessage", () -> {
            Map<String, String> hidden = new LinkedHashMap<>(config);
            hidden.put("consumer.override.sasl.password", "[hidden]");
            expectError(call("PUT", "/connectors/" + name + "/config", hidden), 400);
        });

        check("pause and resume answer 202 and take effect", () -> {
            expect(call("PUT", "/connectors/" + name + "/pause", null), 202);
            waitForState(name, "PAUSED");
            expect(call("PUT", "/connectors/" + name + "/resume", null), 202);
            waitForState(name, "RUNNING");
        });

        check("POST .../restart answers 204; with includeTasks, 202 and a ConnectorStateInfo", () -> {
            Answer plain = expect(call("POST", "/connectors/" + name + "/restart", null), 204);
            require(plain.body.isEmpty(), "a body: " + plain.body);
            waitForState(name, "RUNNING");
            ConnectorStateInfo untouched = read(expect(call("POST",
                "/connectors/" + name + "/restart?includeTasks=true&onlyFailed=true", null), 202), ConnectorStateInfo.class);
            require("RUNNING".equals(untouched.connector().state()), "onlyFailed restarted a running connector");
            ConnectorStateInfo restarting = read(expect(call("POST",
                "/connectors/" + name + "/restart?includeTasks=true", null), 202), ConnectorStateInfo.class);
            require("RESTARTING".equals(restarting.connector().state()), "state " + restarting.connector().state());
            waitForState(name, "RUNNING");
            expect(call("POST", "/connectors/" + name + "/tasks/0/restart", null), 204);
            waitForState(name, "RUNNING");
        });

        // Kafka's ActiveTopicsInfo has no creator Jackson can use, so the answer is compared with what it writes.
        check("GET .../topics is what Kafka's ActiveTopicsInfo writes, naming the topic read; PUT .../topics/reset clears it", () -> {
            String path = "/connectors/" + name + "/topics";
            waitFor("the topic to be active", ignored -> {
                try {
                    return MAPPER.readTree(call("GET", path, null).body).path(name).path("topics").toString().contains(topic);
                } catch (Exception e) {
                    return false;
                }
            });
            JsonNode shown = MAPPER.readTree(expect(call("GET", path, null), 200).body);
            JsonNode expected = MAPPER.valueToTree(Map.of(name, new ActiveTopicsInfo(name, List.of(topic))));
            require(shown.equals(expected), shown + " is not " + expected);
            expect(call("PUT", path + "/reset", null), 202);
            JsonNode reset = MAPPER.readTree(expect(call("GET", path, null), 200).body);
            require(reset.equals(MAPPER.valueToTree(Map.of(name, new ActiveTopicsInfo(name, List.of())))), "after reset " + reset);
        });

        check("offsets change only while stopped: a 400 ErrorMessage while running", () -> expectError(
            call("DELETE", "/connectors/" + name + "/offsets", null), 400));

        check("PUT .../stop answers 204 and stops it", () -> {
            expect(call("PUT", "/connectors/" + name + "/stop", null), 204);
            waitForState(name, "STOPPED");
        });

        String offsetsPath = "/connectors/" + name + "/offsets";
        check("PATCH .../offsets sets a partition's offset: a Message, then ConnectorOffsets show it", () -> {
            String alter = "{\"offsets\": [{\"partition\": {\"kafka_topic\": \"" + topic + "\", \"kafka_partition\": 0},"
                + " \"offset\": {\"kafka_offset\": 1}}]}";
            read(expect(call("PATCH", offsetsPath, alter), 200), Message.class);
            ConnectorOffsets offsets = read(expect(call("GET", offsetsPath, null), 200), ConnectorOffsets.class);
            require(offsets.offsets().size() == 1
                && Long.valueOf(1).equals(((Number) offsets.offsets().get(0).offset().get("kafka_offset")).longValue()),
                "offsets " + MAPPER.writeValueAsString(offsets));
        });

        check("PATCH .../offsets with a null offset resets that partition", () -> {
            String reset = "{\"offsets\": [{\"partition\": {\"kafka_topic\": \"" + topic + "\", \"kafka_partition\": 0},"
                + " \"offset\": null}]}";
            read(expect(call("PATCH", offsetsPath, reset), 200), Message.class);
            ConnectorOffsets offsets = read(expect(call("GET", offsetsPath, null), 200), ConnectorOffsets.class);
            require(offsets.offsets().isEmpty(), "offsets " + MAPPER.writeValueAsString(offsets));
        });

        check("DELETE .../offsets answers a Message", () -> read(expect(call("DELETE", offsetsPath, null), 200), Message.class));

        check("GET /admin/loggers reads as LoggerLevel; PUT changes one and answers the loggers changed", () -> {
            Map<String, LoggerLevel> loggers = read(expect(call("GET", "/admin/loggers", null), 200), mapOf(LoggerLevel.class));
            require(loggers.containsKey("root"), "no root: " + loggers.keySet());
            List<String> changed = read(expect(call("PUT", "/admin/loggers/ebconnect.runtime", "{\"level\": \"DEBUG\"}"), 200),
                listOf(String.class));
            require(!changed.isEmpty(), "nothing changed");
            LoggerLevel level = read(expect(call("GET", "/admin/loggers/ebconnect.runtime", null), 200), LoggerLevel.class);
            require("DEBUG".equals(level.level()), "level " + level.level());
        });

        check("errors are ErrorMessages: unknown connector 404, unknown path 404, wrong method 405", () -> {
            expectError(call("GET", "/connectors/no-such-connector", null), 404);
            expectError(call("GET", "/no/such/path", null), 404);
            expectError(call("DELETE", "/connectors", null), 405);
        });

        check("POST /connectors with initial_state STOPPED creates it stopped", () -> {
            String stopped = name + "-stopped";
            Map<String, String> copy = new LinkedHashMap<>(config);
            expect(call("POST", "/connectors",
                new CreateConnectorRequest(stopped, copy, CreateConnectorRequest.InitialState.STOPPED)), 201);
            require("STOPPED".equals(state(stopped)), "state " + state(stopped));
            expect(call("DELETE", "/connectors/" + stopped, null), 204);
        });

        check("DELETE /connectors/{name} answers 204; then it is a 404", () -> {
            expect(call("DELETE", "/connectors/" + name, null), 204);
            waitFor("the connector to be gone", ignored -> {
                try {
                    return call("GET", "/connectors/" + name, null).status == 404;
                } catch (Exception e) {
                    return false;
                }
            });
        });

        System.out.println((checks - FAILURES.size()) + " of " + checks + " checks passed");
        System.exit(FAILURES.isEmpty() ? 0 : 1);
    }
}
