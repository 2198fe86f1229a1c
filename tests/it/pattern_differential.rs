//! The pattern matcher against the reference itself: event-ruler (the library behind EventBridge's matching, run by
//! `tests/oracle/EventRulerOracle.java` on the classpath `scripts/stack up` resolves from Maven Central) answers
//! thousands of generated (pattern, event) cases, and ebconnect must give the same answer, valid or not, match or
//! not, on every one, save the documented exceptions (README, "Event patterns"), which are counted apart.
//!
//! The cases come from the real CloudTrail records in `tests/fixtures/cloudtrail`, wrapped as EventBridge delivers
//! them, and from mutations of their values, with a fixed seed so that a failure reproduces. Each disagreement is
//! shrunk (fields of the pattern and the event taken away while the two still disagree) before it is reported.
//! `EBCONNECT_PATTERN_CASES` and `EBCONNECT_PATTERN_SEED` change how many cases and which, for a longer search.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv6Addr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::random;

use ebconnect::pattern::Pattern;
use random::Random;
use serde_json::{json, Map, Value};

const RECORDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cloudtrail/invictus_aws_dataset.jsonl"
);
const ORACLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/EventRulerOracle.java");
const GENERATED_CASES: usize = 8_000;
const SEED: u64 = 0x5eed_eb01;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Invalid,
    Match(bool),
    /// event-ruler gave different answers to the same case (see the oracle's ROUNDS).
    Unstable,
}

#[derive(Debug, Clone)]
struct Case {
    pattern: String,
    event: String,
}

struct Oracle {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Oracle {
    fn start() -> Self {
        let libs = std::env::var("EBCONNECT_EVENT_RULER_LIBS").unwrap_or_else(|_| {
            panic!("EBCONNECT_EVENT_RULER_LIBS is not set: run `scripts/stack up` and `eval \"$(scripts/stack env)\"`, or `make test`")
        });
        let java = std::env::var("EBCONNECT_ORACLE_JAVA").unwrap_or_else(|_| {
            panic!("EBCONNECT_ORACLE_JAVA is not set: run `eval \"$(scripts/stack env)\"`, or `make test`")
        });
        let mut child = Command::new(java)
            .arg("-cp")
            .arg(format!("{libs}/*"))
            .arg(ORACLE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("java runs the event-ruler oracle");
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Self { child, input, output }
    }

    fn request(case: &Case) -> String {
        json!({"pattern": case.pattern, "event": case.event}).to_string() + "\n"
    }

    fn ask(&mut self, case: &Case) -> Verdict {
        self.input.write_all(Self::request(case).as_bytes()).unwrap();
        self.input.flush().unwrap();
        read_answer(&mut self.output)
    }

    /// Asks all at once: a writer thread keeps the oracle fed while its answers are read.
    fn ask_all(&mut self, cases: &[Case]) -> Vec<Verdict> {
        let Self { input, output, .. } = self;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for case in cases {
                    input.write_all(Self::request(case).as_bytes()).unwrap();
                }
                input.flush().unwrap();
            });
            (0..cases.len()).map(|_| read_answer(output)).collect()
        })
    }
}

fn read_answer(output: &mut BufReader<ChildStdout>) -> Verdict {
    let mut line = String::new();
    output.read_line(&mut line).unwrap();
    let answer: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("the oracle answered {line:?}"));
    assert!(
        answer.get("event_error").is_none(),
        "the oracle could not read an event: {answer}"
    );
    if answer["unstable"] == true {
        return Verdict::Unstable;
    }
    match answer["valid"].as_bool() {
        Some(true) => Verdict::Match(answer["match"].as_bool().unwrap()),
        _ => Verdict::Invalid,
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ebconnect(case: &Case) -> Verdict {
    match Pattern::parse(&case.pattern) {
        Ok(pattern) => Verdict::Match(pattern.matches(&serde_json::from_str(&case.event).unwrap())),
        Err(_) => Verdict::Invalid,
    }
}

fn records() -> Vec<Value> {
    std::fs::read_to_string(RECORDS)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

const SPECIAL_STRINGS: &[&str] = &[
    "",
    "ǅ",
    "ǆ",
    "Ǆ",
    "ß",
    "SS",
    "ss",
    "ẞ",
    "\u{212a}",
    "k",
    "K",
    "İ",
    "i",
    "ς",
    "σ",
    "Σ",
    "ﬁ",
    "FI",
    "😀",
    "Straße",
    "ΣΑΣ",
    "Ünïcödé",
    "253.252.51.07",
    "10.0.0.1",
    "10.0.0.010",
    "10.0.0.256",
    "192.168.10.20",
    "::1",
    "::ffff:a00:1",
    "::ffff:10.0.0.1",
    "2001:db8::1",
    "2001:0db8:0000:0000:0000:0000:0000:0001",
    "a.b",
    "*",
    "a*b",
    "\\",
    "null",
    "true",
    "5",
    "GetBucketAcl",
    "getbucketacl",
    "GETBUCKETACL",
    "s3.amazonaws.com",
];

fn special_value(random: &mut Random) -> Value {
    match random.below(4) {
        0 | 1 => Value::String((*random.pick(SPECIAL_STRINGS)).to_owned()),
        2 => random
            .pick(&[
                json!(0),
                json!(-0.0),
                json!(5),
                json!(5.0),
                json!(-5),
                json!(1.5),
                json!(1e21),
                json!(1.0e-7),
                json!(0.1),
                json!(300.5),
                json!(9007199254740992u64),
                json!(9007199254740993u64),
                json!(12345678901234567890u64),
                json!(1152921504606846976u64),
                json!(18446744073709551615u64),
                json!(i64::MIN),
                json!(12345678),
            ])
            .clone(),
        _ => random
            .pick(&[
                json!(null),
                json!(true),
                json!(false),
                json!([]),
                json!({}),
                json!(["x", 5]),
                json!([[1, 2], [3]]),
                json!(["GetBucketAcl", "PutBucketAcl"]),
            ])
            .clone(),
    }
}

/// A leaf of the event: its keys from the root (through arrays, whose elements share their array's path).
#[derive(Clone)]
struct Leaf {
    keys: Vec<String>,
    value: Value,
    /// Reached through no array, so it can be replaced in place.
    direct: bool,
}

fn leaves(value: &Value, keys: &mut Vec<String>, direct: bool, into: &mut Vec<Leaf>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                keys.push(key.clone());
                leaves(child, keys, direct, into);
                keys.pop();
            }
        }
        Value::Array(items) => {
            for item in items {
                leaves(item, keys, false, into);
            }
        }
        leaf if !keys.is_empty() => into.push(Leaf {
            keys: keys.clone(),
            value: leaf.clone(),
            direct,
        }),
        _ => {}
    }
}

fn set(value: &mut Value, keys: &[String], new: Value) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut at = value;
    for key in parents {
        match at.get_mut(key) {
            Some(child) => at = child,
            None => return,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.insert(last.clone(), new);
    }
}

fn flip_case(random: &mut Random, text: &str) -> String {
    text.chars()
        .map(|c| match random.below(3) {
            0 => c.to_uppercase().collect::<String>(),
            1 => c.to_lowercase().collect(),
            _ => c.to_string(),
        })
        .collect()
}

/// A cut of `text` at a character boundary: its first (or last) few characters.
fn cut(random: &mut Random, text: &str, from_end: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let length = random.below(chars.len() + 1);
    if from_end {
        chars[chars.len() - length..].iter().collect()
    } else {
        chars[..length].iter().collect()
    }
}

fn wildcard_of(random: &mut Random, text: &str) -> String {
    let mut out = String::new();
    let mut previous_star = false;
    for c in text.chars() {
        if random.chance(15) && !previous_star {
            out.push('*');
            previous_star = true;
        } else {
            match c {
                '*' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
            previous_star = false;
        }
    }
    if random.chance(30) && !previous_star {
        out.push('*');
    }
    out
}

const CIDRS: &[&str] = &[
    "10.0.0.0/8",
    "253.0.0.0/8",
    "192.168.0.0/16",
    "192.168.10.20/31",
    "0.0.0.0/0",
    "10.0.0.0/31",
    "10.0.0.1/32",
    "::/0",
    "2001:db8::/32",
    "::1/127",
    "::1/128",
    "::ffff:a00:0/104",
    "10.0.0.0/33",
    "10.0.0.0/-1",
    "10.0.0.0/8/",
    "300.0.0.0/8",
    "10.0.0.0",
    "10.0.0.0/x",
];

/// One to three matchers for a field whose event value is `value`.
fn matchers(random: &mut Random, value: &Value) -> Vec<Value> {
    let count = 1 + usize::from(random.chance(25)) + usize::from(random.chance(10));
    (0..count).map(|_| matcher(random, value)).collect()
}

fn matcher(random: &mut Random, value: &Value) -> Value {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let other = special_value(random);
    let other = if other.is_array() || other.is_object() {
        json!("x")
    } else {
        other
    };
    let some_text = if random.chance(70) {
        text.clone()
    } else {
        flip_case(random, &text)
    };
    match random.below(22) {
        0 => value.clone(),
        1 => other,
        2 => json!({"prefix": cut(random, &text, false)}),
        3 => json!({"suffix": cut(random, &text, true)}),
        4 => {
            let start = cut(random, &text, false);
            json!({"prefix": {"equals-ignore-case": flip_case(random, &start)}})
        }
        5 => {
            let end = cut(random, &text, true);
            json!({"suffix": {"equals-ignore-case": flip_case(random, &end)}})
        }
        6 => json!({"equals-ignore-case": flip_case(random, &text)}),
        7 => json!({"wildcard": wildcard_of(random, &some_text)}),
        8 => json!({"anything-but": if value.is_number() { value.clone() } else { json!(some_text) }}),
        9 => json!({"anything-but": [some_text, "x"]}),
        10 => json!({"anything-but": {"prefix": cut(random, &text, false)}}),
        11 => json!({"anything-but": {"suffix": [cut(random, &text, true), "zz"]}}),
        12 => json!({"anything-but": {"equals-ignore-case": [flip_case(random, &text)]}}),
        13 => json!({"anything-but": {"wildcard": wildcard_of(random, &some_text)}}),
        14 => json!({"exists": random.chance(50)}),
        15 => {
            let base = value.as_f64().unwrap_or(5.0);
            let low = base - random.below(3) as f64;
            let high = base + random.below(3) as f64;
            match random.below(5) {
                0 => json!({"numeric": ["=", value.as_f64().map_or(json!(base), |_| value.clone())]}),
                1 => json!({"numeric": [">", low]}),
                2 => json!({"numeric": ["<=", high]}),
                3 => json!({"numeric": [">=", low, "<", high]}),
                _ => json!({"numeric": [">", low, "<=", high]}),
            }
        }
        16 => {
            let cidr = match value.as_str().filter(|text| text.split('.').count() == 4) {
                Some(ip) if random.chance(60) => format!("{ip}/{}", random.pick(&[8, 16, 24, 31, 32])),
                _ => (*random.pick(CIDRS)).to_owned(),
            };
            json!({"cidr": cidr})
        }
        17 => json!({"exactly": text}),
        18 => json!({"anything-but": value.as_f64().map_or(json!([1, 2]), |number| json!([number, 7]))}),
        19 => json!({"equals-ignore-case": (*random.pick(SPECIAL_STRINGS)).to_owned()}),
        20 => json!({"prefix": {"equals-ignore-case": (*random.pick(SPECIAL_STRINGS)).to_owned()}}),
        _ => value.as_f64().map_or_else(|| json!(text), |number| json!(number)),
    }
}

/// Puts `matchers` at `keys` in `pattern`, as nested objects or, now and then, as one dotted key.
fn place(random: &mut Random, pattern: &mut Map<String, Value>, keys: &[String], matchers: Vec<Value>) {
    let keys: Vec<String> = if keys.len() > 1 && random.chance(15) {
        let split = 1 + random.below(keys.len() - 1);
        let mut joined = keys[..split].to_vec();
        joined.push(keys[split..].join("."));
        joined
    } else {
        keys.to_vec()
    };
    let (last, parents) = keys.split_last().unwrap();
    let mut at = pattern;
    for key in parents {
        let entry = at.entry(key.clone()).or_insert_with(|| json!({}));
        if !entry.is_object() {
            *entry = json!({});
        }
        at = entry.as_object_mut().unwrap();
    }
    at.insert(last.clone(), Value::Array(matchers));
}

fn condition(random: &mut Random, leaves: &[Leaf]) -> (Vec<String>, Vec<Value>) {
    if random.chance(8) {
        let keys = vec![
            "detail".to_owned(),
            (*random.pick(&["nothere", "a.b", "eventName"])).to_owned(),
        ];
        return (keys, matchers(random, &json!("x")));
    }
    let leaf = random.pick(leaves).clone();
    (leaf.keys.clone(), matchers(random, &leaf.value))
}

fn generate(random: &mut Random, records: &[Value]) -> Case {
    let record = random.pick(records);
    let mut event = if random.chance(75) {
        crate::support::cloudtrail_envelope(record)
    } else {
        record.clone()
    };
    let mut found = Vec::new();
    leaves(&event, &mut Vec::new(), true, &mut found);
    // Mutations: special values, an array of objects, dotted keys.
    for _ in 0..random.below(3) {
        let leaf = random.pick(&found).clone();
        if leaf.direct {
            set(&mut event, &leaf.keys, special_value(random));
        }
    }
    if random.chance(15) {
        let items: Vec<Value> = (0..2 + random.below(2))
            .map(|_| json!({"name": special_value(random), "size": special_value(random), "tag": random.pick(&["a", "b"])}))
            .collect();
        let keys: Vec<String> = if event.get("detail").is_some() {
            vec!["detail".into(), "items".into()]
        } else {
            vec!["items".into()]
        };
        set(&mut event, &keys, Value::Array(items));
    }
    if random.chance(8) {
        let value = special_value(random);
        if let Some(detail) = event.get_mut("detail").and_then(Value::as_object_mut) {
            detail.insert("a.b".into(), value);
        } else if let Some(map) = event.as_object_mut() {
            map.insert("detail.a".into(), value);
        }
    }
    let mut found = Vec::new();
    leaves(&event, &mut Vec::new(), true, &mut found);

    let mut pattern = Map::new();
    for _ in 0..1 + random.below(3) {
        let (keys, matchers) = condition(random, &found);
        place(random, &mut pattern, &keys, matchers);
    }
    // Several fields of one array's objects, from one element or from different ones (array consistency).
    let in_arrays: Vec<Leaf> = found.iter().filter(|leaf| !leaf.direct).cloned().collect();
    if !in_arrays.is_empty() && random.chance(40) {
        for _ in 0..2 + random.below(2) {
            let leaf = random.pick(&in_arrays).clone();
            let matchers = if random.chance(20) {
                vec![json!({"exists": random.chance(40)})]
            } else {
                vec![leaf.value.clone()]
            };
            place(random, &mut pattern, &leaf.keys, matchers);
        }
    }
    if random.chance(35) {
        // `$or` at the top or inside `detail`, its branches sharing keys with the fields around it.
        let branches: Vec<Value> = (0..2 + random.below(2))
            .map(|_| {
                let mut branch = Map::new();
                for _ in 0..1 + random.below(2) {
                    let (keys, matchers) = condition(random, &found);
                    place(random, &mut branch, &keys, matchers);
                }
                if random.chance(15) {
                    let inner: Vec<Value> = (0..2)
                        .map(|_| {
                            let mut inner = Map::new();
                            let (keys, matchers) = condition(random, &found);
                            place(random, &mut inner, &keys, matchers);
                            Value::Object(inner)
                        })
                        .collect();
                    branch.insert("$or".into(), Value::Array(inner));
                }
                Value::Object(branch)
            })
            .collect();
        let nested = random.chance(30)
            && branches.iter().all(|branch| {
                branch
                    .as_object()
                    .is_some_and(|map| map.len() == 1 && map.contains_key("detail"))
            });
        if nested {
            let inner: Vec<Value> = branches.into_iter().map(|branch| branch["detail"].clone()).collect();
            let detail = pattern.entry("detail").or_insert_with(|| json!({}));
            if !detail.is_object() {
                *detail = json!({});
            }
            detail
                .as_object_mut()
                .unwrap()
                .insert("$or".into(), Value::Array(inner));
        } else {
            pattern.insert("$or".into(), Value::Array(branches));
        }
    }
    let mut pattern = Value::Object(pattern);
    if random.chance(8) {
        corrupt(random, &mut pattern);
    }
    Case {
        pattern: pattern.to_string(),
        event: event.to_string(),
    }
}

/// Makes a pattern that is likely invalid, in one of the ways users get wrong.
fn corrupt(random: &mut Random, pattern: &mut Value) {
    let map = pattern.as_object_mut().unwrap();
    let bad = random
        .pick(&[
            json!([]),
            json!({}),
            json!("text"),
            json!([[1]]),
            json!([{"prefix": 3}]),
            json!([{"unknown": 1}]),
            json!([{"prefix": "a", "suffix": "b"}]),
            json!([{"numeric": [">", 5, ">", 6]}]),
            json!([{"numeric": ["<", 5, "<", 6]}]),
            json!([{"numeric": [">", 6, "<", 5]}]),
            json!([{"numeric": ["=", 9007199254740993u64]}]),
            json!([{"numeric": []}]),
            json!([{"exists": "yes"}]),
            json!([{"anything-but": [1, "a"]}]),
            json!([{"anything-but": []}]),
            json!([{"anything-but": {"prefix": ""}}]),
            json!([{"anything-but": {"prefix": []}}]),
            json!([{"anything-but": {"exists": true}}]),
            json!([{"anything-but": null}]),
            json!([{"wildcard": "a**b"}]),
            json!([{"wildcard": "a\\b"}]),
            json!([{"cidr": "10.0.0.1/32"}]),
            json!([{"equals-ignore-case": 5}]),
            json!([{"prefix": {"equals-ignore-case": "a", "x": 1}}]),
        ])
        .clone();
    match random.below(4) {
        0 => {
            map.insert("$or".into(), json!([{"source": ["a"]}]));
        }
        1 => {
            map.insert("$or".into(), json!([{"prefix": ["a"]}, {"source": ["b"]}]));
        }
        2 => {
            map.insert("$or".into(), json!(["a", "b"]));
        }
        _ => {
            map.insert("broken".into(), bad);
        }
    }
}

/// Java's reading of an IP address, enough to tell the family: decimal IPv4 parts, IPv4-mapped hex IPv6 as IPv4.
fn ip_family(text: &str) -> Option<bool> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    {
        return parts
            .iter()
            .all(|part| part.trim_start_matches('0').parse::<u8>().is_ok() || part.trim_start_matches('0').is_empty())
            .then_some(true);
    }
    if text.contains(':') && text.bytes().all(|b| b == b':' || b.is_ascii_hexdigit()) {
        let address: Ipv6Addr = text.parse().ok()?;
        return Some(address.to_ipv4_mapped().is_some());
    }
    None
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Each element of each field's array in a pattern, by the field's flattened path (`$or` adds nothing to a path).
fn pattern_fields<'v>(value: &'v Value, prefix: &str, into: &mut Vec<(String, &'v Value)>) {
    let Value::Object(map) = value else {
        return;
    };
    for (key, child) in map {
        match child {
            Value::Array(branches) if key == "$or" => {
                for branch in branches {
                    pattern_fields(branch, prefix, into);
                }
            }
            Value::Array(items) => into.extend(items.iter().map(|item| (join(prefix, key), item))),
            Value::Object(_) => pattern_fields(child, &join(prefix, key), into),
            _ => {}
        }
    }
}

/// Each leaf of an event, by its flattened path.
fn event_leaves<'v>(value: &'v Value, prefix: &str, into: &mut Vec<(String, &'v Value)>) {
    match value {
        Value::Object(map) => map
            .iter()
            .for_each(|(key, child)| event_leaves(child, &join(prefix, key), into)),
        Value::Array(items) => items.iter().for_each(|item| event_leaves(item, prefix, into)),
        leaf => into.push((prefix.to_owned(), leaf)),
    }
}

/// The texts a matcher compares without regard to case.
fn caseless_texts<'v>(value: &'v Value, inside: bool, into: &mut Vec<&'v str>) {
    match value {
        Value::String(text) if inside => into.push(text),
        Value::Array(items) => items.iter().for_each(|item| caseless_texts(item, inside, into)),
        Value::Object(map) => map
            .iter()
            .for_each(|(key, child)| caseless_texts(child, inside || key == "equals-ignore-case", into)),
        _ => {}
    }
}

/// The documented exceptions (README, "Event patterns"), where event-ruler is plainly wrong and ebconnect does what
/// EventBridge documents instead. A case that disagrees and falls in one is counted apart. Each looks at one field:
/// the pattern's matchers at a path and the event's values at the same path.
fn exception(case: &Case) -> Option<&'static str> {
    let pattern: Value = serde_json::from_str(&case.pattern).ok()?;
    let event: Value = serde_json::from_str(&case.event).ok()?;
    let mut fields = Vec::new();
    pattern_fields(&pattern, "", &mut fields);
    let mut leaves = Vec::new();
    event_leaves(&event, "", &mut leaves);

    // event-ruler compares addresses as hexadecimal digits by prefix, whatever their family: `10.1.2.3` is in
    // `::/0`, `a00::1` in `10.0.0.0/8`, and the JSON number 12345678 in `18.52.86.0/24`.
    for (path, matcher) in &fields {
        let address = match matcher {
            Value::String(text) => Some(text.as_str()),
            Value::Object(map) => map.get("cidr").and_then(Value::as_str),
            _ => None,
        };
        let Some(v4) = address.and_then(|text| ip_family(text.split('/').next().unwrap_or_default())) else {
            continue;
        };
        let crosses = leaves
            .iter()
            .filter(|(leaf, _)| leaf == path)
            .any(|(_, value)| match value {
                Value::String(text) => ip_family(text).is_some_and(|other| other != v4),
                Value::Number(_) => true,
                _ => false,
            });
        if crosses {
            return Some("an address compared across IPv4 and IPv6, or a number read as an address");
        }
    }

    for (path, _) in &fields {
        let matchers: Vec<&Value> = fields
            .iter()
            .filter(|(other, _)| other == path)
            .map(|(_, m)| *m)
            .collect();
        let mut caseless = Vec::new();
        matchers
            .iter()
            .for_each(|matcher| caseless_texts(matcher, false, &mut caseless));
        // A wildcard (or anything-but wildcard) beside a case-insensitive pattern: the two share event-ruler's byte
        // machine, and the wildcard then matches text it does not (`*x` matches `aX` once
        // `{"equals-ignore-case": "q"}` is in the same field, though neither matches it alone).
        let wildcard = matchers
            .iter()
            .any(|matcher| matcher.to_string().contains("\"wildcard\""));
        if wildcard && !caseless.is_empty() {
            return Some("a wildcard beside a case-insensitive pattern in the same field");
        }
        // event-ruler matches each character of a case-insensitive pattern by its lower or upper case only, so a
        // character that is neither (titlecase `ǅ`) never matches itself, and one outside the BMP becomes `??`.
        let odd = caseless.iter().any(|text| {
            text.chars().any(|c| {
                u32::from(c) > 0xFFFF
                    || (c.to_lowercase().collect::<String>() != c.to_string()
                        && c.to_uppercase().collect::<String>() != c.to_string())
            })
        });
        if odd {
            return Some("a case-insensitive pattern holding a character that is neither its lower nor its upper case, or one outside the BMP");
        }
    }
    None
}

/// Every value with one object member or array element taken away, anywhere in it.
fn reductions(value: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for key in map.keys() {
                let mut smaller = map.clone();
                smaller.shift_remove(key);
                out.push(Value::Object(smaller));
            }
            for (key, child) in map {
                for reduced in reductions(child) {
                    let mut smaller = map.clone();
                    smaller.insert(key.clone(), reduced);
                    out.push(Value::Object(smaller));
                }
            }
        }
        Value::Array(items) => {
            for index in 0..items.len() {
                let mut smaller = items.clone();
                smaller.remove(index);
                out.push(Value::Array(smaller));
            }
            for (index, child) in items.iter().enumerate() {
                for reduced in reductions(child) {
                    let mut smaller = items.clone();
                    smaller[index] = reduced;
                    out.push(Value::Array(smaller));
                }
            }
        }
        _ => {}
    }
    out
}

/// Takes fields away from the pattern and the event while ebconnect and the oracle still disagree.
fn shrink(oracle: &mut Oracle, case: &Case) -> (Case, Verdict, Verdict) {
    let disagree = |oracle: &mut Oracle, case: &Case| {
        let reference = oracle.ask(case);
        let ours = ebconnect(case);
        (reference != ours && reference != Verdict::Unstable).then_some((reference, ours))
    };
    let mut current = case.clone();
    let mut verdicts = disagree(oracle, &current).unwrap();
    let mut budget = 3_000;
    'outer: loop {
        let pattern: Value = serde_json::from_str(&current.pattern).unwrap();
        let event: Value = serde_json::from_str(&current.event).unwrap();
        let candidates = reductions(&event)
            .into_iter()
            .filter(Value::is_object)
            .map(|event| Case {
                pattern: current.pattern.clone(),
                event: event.to_string(),
            })
            .chain(reductions(&pattern).into_iter().map(|pattern| Case {
                pattern: pattern.to_string(),
                event: current.event.clone(),
            }));
        for candidate in candidates {
            if budget == 0 {
                break 'outer;
            }
            budget -= 1;
            if let Some(found) = disagree(oracle, &candidate) {
                current = candidate;
                verdicts = found;
                continue 'outer;
            }
        }
        break;
    }
    (current, verdicts.0, verdicts.1)
}

/// Compares every case; lists each disagreement that is not a documented exception, shrunk, and counts the rest.
fn compare(oracle: &mut Oracle, cases: &[Case]) -> (usize, Vec<(&'static str, Case)>) {
    let reference = oracle.ask_all(cases);
    let mut failures = Vec::new();
    let mut exceptions = Vec::new();
    for (case, reference) in cases.iter().zip(reference) {
        let ours = ebconnect(case);
        if ours == reference {
            continue;
        }
        let class = if reference == Verdict::Unstable {
            Some("event-ruler's answer changes from one machine to the next")
        } else {
            exception(case)
        };
        match class {
            Some(class) => exceptions.push((class, case.clone())),
            None => failures.push((case.clone(), reference, ours)),
        }
    }
    let total = failures.len();
    let shown: Vec<String> = failures
        .iter()
        .take(12)
        .map(|(case, _, _)| {
            let (small, reference, ours) = shrink(oracle, case);
            format!(
                "  pattern {}\n  event   {}\n  event-ruler {reference:?}, ebconnect {ours:?}",
                small.pattern, small.event
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{total} of {} cases disagree with event-ruler (the first {}, shrunk):\n{}",
        cases.len(),
        shown.len(),
        shown.join("\n\n")
    );
    (cases.len(), exceptions)
}

#[test]
fn generated_patterns_agree_with_event_ruler() {
    let records = records();
    let setting = |name: &str, default: u64| std::env::var(name).map_or(default, |value| value.parse().unwrap());
    let mut random = Random(setting("EBCONNECT_PATTERN_SEED", SEED));
    let count = setting("EBCONNECT_PATTERN_CASES", GENERATED_CASES as u64) as usize;
    let cases: Vec<Case> = (0..count).map(|_| generate(&mut random, &records)).collect();
    let mut oracle = Oracle::start();
    let (checked, exceptions) = compare(&mut oracle, &cases);

    let valid = cases.iter().filter(|case| ebconnect(case) != Verdict::Invalid).count();
    let matched = cases
        .iter()
        .filter(|case| ebconnect(case) == Verdict::Match(true))
        .count();
    println!(
        "{checked} generated cases: {valid} valid patterns, {matched} matches; {} documented exceptions",
        exceptions.len()
    );
    for (class, case) in exceptions.iter().take(5) {
        println!("  exception ({class}): {} / {}", case.pattern, case.event);
    }
    // The generator must exercise both answers of both questions, or agreement would prove little.
    assert!(
        valid > checked / 2 && valid < checked,
        "{valid} of {checked} patterns valid"
    );
    assert!(
        matched > checked / 10 && matched < valid,
        "{matched} of {valid} valid patterns matched"
    );
    assert!(exceptions.len() < checked / 100, "{} exceptions", exceptions.len());
}

/// The reference setup's rule (`connectors/cloudtrail-from-bus.yaml`) against every invictus record as the bus
/// delivers it.
#[test]
fn the_reference_rule_agrees_on_every_record() {
    let pattern = json!({
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "userIdentity": {"type": [{"anything-but": "AWSService"}]},
            "eventSource": [{"anything-but": ["sts.amazonaws.com", "ssm.amazonaws.com"]}],
        },
    })
    .to_string();
    let cases: Vec<Case> = records()
        .iter()
        .map(|record| Case {
            pattern: pattern.clone(),
            event: crate::support::cloudtrail_envelope(record).to_string(),
        })
        .collect();
    let mut oracle = Oracle::start();
    let (checked, exceptions) = compare(&mut oracle, &cases);
    assert_eq!((checked, exceptions.len()), (2_900, 0));
    let matched = cases
        .iter()
        .filter(|case| ebconnect(case) == Verdict::Match(true))
        .count();
    assert!(matched > 1_000 && matched < 2_900, "{matched} of 2,900 matched");
}

/// Matches the oracle's protocol with a known answer, so that a broken oracle cannot make every case agree.
#[test]
fn the_oracle_answers_as_event_ruler() {
    let mut oracle = Oracle::start();
    let ask = |oracle: &mut Oracle, pattern: &str, event: &str| {
        oracle.ask(&Case {
            pattern: pattern.into(),
            event: event.into(),
        })
    };
    assert_eq!(ask(&mut oracle, r#"{"a":["x"]}"#, r#"{"a":"x"}"#), Verdict::Match(true));
    assert_eq!(
        ask(&mut oracle, r#"{"a":["x"]}"#, r#"{"a":"y"}"#),
        Verdict::Match(false)
    );
    assert_eq!(ask(&mut oracle, r#"{"a":[]}"#, r#"{"a":"x"}"#), Verdict::Invalid);
    let verdicts = oracle.ask_all(&[
        Case {
            pattern: r#"{"a":[{"cidr":"10.0.0.0/8"}]}"#.into(),
            event: r#"{"a":"10.1.2.3"}"#.into(),
        },
        Case {
            pattern: r#"{"a":[{"cidr":"10.0.0.1/32"}]}"#.into(),
            event: r#"{"a":"10.0.0.1"}"#.into(),
        },
    ]);
    assert_eq!(verdicts, [Verdict::Match(true), Verdict::Invalid]);
}
