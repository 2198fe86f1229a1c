// The reference for event patterns: AWS's event-ruler, the library behind EventBridge's matching.
//
// Reads one JSON object a line on standard input, {"pattern": TEXT, "event": TEXT}, and answers each on standard
// output, in order, with one line:
//   {"valid": true, "match": BOOL}         the pattern compiles and the event does or does not match
//   {"valid": false, "error": MESSAGE}     Machine.addRule refused the pattern
//   {"valid": true, "event_error": MESSAGE} the event could not be matched (not a JSON object, say)
// with "unstable": true added when event-ruler's answer changed between ROUNDS fresh machines: for a few patterns
// its answer depends on the iteration order of identity-hashed sets, so the same input gives true or false.
// A pattern without an event ({"pattern": TEXT}) is only compiled. Each answer is flushed, so a caller may ask one
// question at a time (tests/pattern_differential.rs shrinks a disagreement that way).
//
// Run by source-file launch: java -cp "$EBCONNECT_EVENT_RULER_LIBS/*" tests/oracle/EventRulerOracle.java
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import software.amazon.event.ruler.Machine;

public class EventRulerOracle {
    private static final int ROUNDS = 8;

    public static void main(String[] args) throws Exception {
        ObjectMapper mapper = new ObjectMapper();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintWriter out = new PrintWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) {
                continue;
            }
            JsonNode request = mapper.readTree(line);
            ObjectNode answer = null;
            for (int round = 0; round < ROUNDS; round++) {
                ObjectNode next = answer(mapper, request);
                if (answer == null) {
                    answer = next;
                } else if (!answer.equals(next)) {
                    answer.put("unstable", true);
                    break;
                }
            }
            out.println(mapper.writeValueAsString(answer));
            out.flush();
        }
    }

    private static ObjectNode answer(ObjectMapper mapper, JsonNode request) {
        ObjectNode answer = mapper.createObjectNode();
        // Machine.builder() gives event-ruler's defaults: rule overriding and structured matching on.
        Machine machine = Machine.builder().build();
        try {
            machine.addRule("rule", request.get("pattern").asText());
            answer.put("valid", true);
        } catch (Exception | StackOverflowError e) {
            answer.put("valid", false);
            answer.put("error", String.valueOf(e.getMessage()));
        }
        JsonNode event = request.get("event");
        if (answer.get("valid").asBoolean() && event != null) {
            try {
                answer.put("match", !machine.rulesForJSONEvent(event.asText()).isEmpty());
            } catch (Exception | StackOverflowError e) {
                answer.put("event_error", String.valueOf(e.getMessage()));
            }
        }
        return answer;
    }
}
