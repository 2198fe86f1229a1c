//! Checking a pattern and compiling it, with errors in the spirit of EventBridge's: what is wrong, and where.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Number, Value};

use super::matcher::{comparable, ip_address, AnythingBut, Bound, Caseless, Cidr, EventNumber, Matcher, Wildcard};
use super::{Field, SubRule};

/// Why a pattern is not valid. `path` names the place, e.g. `detail.eventName[0].prefix`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PatternError {
    pub(crate) path: String,
    pub(crate) message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "event pattern is not valid: {}", self.message)
        } else {
            write!(f, "event pattern is not valid at `{}`: {}", self.path, self.message)
        }
    }
}

type Result<T> = std::result::Result<T, PatternError>;

fn error<T>(path: &str, message: impl Into<String>) -> Result<T> {
    Err(PatternError {
        path: path.to_owned(),
        message: message.into(),
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A number literal in JSON text that is not zero but reads as zero (below the smallest double), which a parsed
/// value can no longer tell apart from a written `0`.
pub(crate) fn underflowing_number(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if in_string {
            match byte {
                b'\\' => index += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if byte == b'-' || byte.is_ascii_digit() {
            let start = index;
            while index < bytes.len() && matches!(bytes[index], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                index += 1;
            }
            let literal = &text[start..index];
            let mantissa = literal.split(['e', 'E']).next().unwrap_or_default();
            let nonzero = mantissa.bytes().any(|digit| (b'1'..=b'9').contains(&digit));
            if nonzero && literal.parse::<f64>().is_ok_and(|value| value == 0.0) {
                return Some(literal);
            }
            continue;
        }
        index += 1;
    }
    None
}

/// Names a field may not have inside `$or`: event-ruler keeps them for match expressions.
const RESERVED_IN_OR: &[&str] = &[
    "exactly",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    "regex",
    "not-wildcard",
    "not-equals-ignore-case",
    "date-after",
    "date-on-or-after",
    "date-before",
    "date-on-or-before",
    "in-date-range",
    "ip-address-in-range",
    "ip-address-not-in-range",
];

/// A sub-rule being compiled: each field's matchers and whether it may be absent, by flattened path.
type Draft = BTreeMap<String, (Vec<Matcher>, bool)>;

/// Compiles a pattern the way event-ruler's `Machine.addRule` does: with its JSON compiler, which knows `$or`, and if
/// that refuses the pattern, with its older compiler, for which `$or` is an ordinary field name (so
/// `{"$or": ["a"]}` is valid). The first compiler's error is the one reported.
pub(super) fn pattern(value: &Value) -> Result<Vec<SubRule>> {
    let Value::Object(map) = value else {
        return error("", "the pattern must be a JSON object");
    };
    Compiler::CURRENT
        .compile(map)
        .or_else(|error| Compiler::LEGACY.compile(map).map_err(|_| error))
}

struct Compiler {
    /// event-ruler's JSON compiler: `$or` introduces alternatives, and `anything-but` takes `wildcard` and lists of
    /// prefixes or suffixes. Else its older compiler, for which `$or` is a field name.
    current: bool,
}

/// The result of one element of a field's array.
enum Parsed {
    Matcher(Matcher),
    /// `exists: false`.
    Absent,
}

impl Compiler {
    const CURRENT: Self = Self { current: true };
    const LEGACY: Self = Self { current: false };

    fn compile(&self, map: &Map<String, Value>) -> Result<Vec<SubRule>> {
        let mut rules = Vec::new();
        self.object(&mut rules, "", map, "", false)?;
        Ok(rules.into_iter().map(sub_rule).collect())
    }

    /// `prefix` is the flattened path of `map`; `at` its place in the pattern, for errors.
    fn object(
        &self,
        rules: &mut Vec<Draft>,
        prefix: &str,
        map: &Map<String, Value>,
        at: &str,
        inside_or: bool,
    ) -> Result<()> {
        if map.is_empty() {
            return error(at, "empty objects are not allowed");
        }
        for (key, value) in map {
            let here = join(at, key);
            if self.current && key == "$or" {
                self.or(rules, prefix, value, &here)?;
                continue;
            }
            if inside_or && RESERVED_IN_OR.contains(&key.as_str()) {
                return error(
                    &here,
                    format!("{key} is a reserved name that cannot be a field inside $or"),
                );
            }
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Object(inner) => self.object(rules, &path, inner, &here, inside_or)?,
                Value::Array(items) => self.field(rules, path, items, &here)?,
                _ => return error(&here, format!("\"{key}\" must be an object or an array")),
            }
        }
        Ok(())
    }

    /// Each branch of `$or` continues every sub-rule built so far; the fields after it go into all of them.
    fn or(&self, rules: &mut Vec<Draft>, prefix: &str, value: &Value, at: &str) -> Result<()> {
        let Value::Array(branches) = value else {
            return error(at, "$or must be an array of pattern objects");
        };
        if branches.len() < 2 {
            return error(at, "$or needs at least two alternatives");
        }
        let before = std::mem::take(rules);
        for (index, branch) in branches.iter().enumerate() {
            let here = format!("{at}[{index}]");
            let Value::Object(map) = branch else {
                return error(&here, "every $or alternative must be a pattern object");
            };
            let mut forked = before.clone();
            if forked.is_empty() {
                forked.push(Draft::new());
            }
            self.object(&mut forked, prefix, map, &here, true)?;
            rules.append(&mut forked);
        }
        Ok(())
    }

    fn field(&self, rules: &mut Vec<Draft>, path: String, items: &[Value], at: &str) -> Result<()> {
        if items.is_empty() {
            return error(at, "empty arrays are not allowed");
        }
        let mut matchers = Vec::new();
        let mut absent = false;
        for (index, item) in items.iter().enumerate() {
            match self.matcher(item, &format!("{at}[{index}]"))? {
                Parsed::Matcher(matcher) => matchers.push(matcher),
                Parsed::Absent => absent = true,
            }
        }
        if rules.is_empty() {
            rules.push(Draft::new());
        }
        // A field written again replaces the earlier one (event-ruler's rule overriding).
        for rule in rules.iter_mut() {
            rule.insert(path.clone(), (matchers.clone(), absent));
        }
        Ok(())
    }

    fn matcher(&self, value: &Value, path: &str) -> Result<Parsed> {
        let map = match value {
            Value::String(text) => {
                return Ok(Parsed::Matcher(match ip_address(text) {
                    Some(address) => Matcher::Cidr(Cidr::single(address)),
                    None => Matcher::String(text.clone()),
                }))
            }
            Value::Number(n) => return event_number(n, path).map(|n| Parsed::Matcher(Matcher::Number(n))),
            Value::Bool(_) | Value::Null => return Ok(Parsed::Matcher(Matcher::Literal(value.clone()))),
            Value::Array(_) => return error(path, "a match value must be a string, number, boolean, null or object"),
            Value::Object(map) => map,
        };
        let (operator, argument) = single_key(map, path)?;
        let here = join(path, operator);
        Ok(Parsed::Matcher(match operator.as_str() {
            "exactly" => Matcher::String(string(argument, &here, "exact")?.to_owned()),
            "prefix" | "suffix" => {
                let is_prefix = operator == "prefix";
                match argument {
                    Value::String(text) if is_prefix => Matcher::Prefix(text.clone()),
                    Value::String(text) => Matcher::Suffix(text.clone()),
                    Value::Object(inner) => {
                        let (modifier, text) = single_key(inner, &here)?;
                        if modifier != "equals-ignore-case" {
                            return error(&here, format!("unsupported {operator} pattern: {modifier}"));
                        }
                        let text = Caseless::new(string(text, &join(&here, modifier), "equals-ignore-case")?);
                        if is_prefix {
                            Matcher::PrefixIgnoreCase(text)
                        } else {
                            Matcher::SuffixIgnoreCase(text)
                        }
                    }
                    _ => return error(&here, format!("{operator} match pattern must be a string")),
                }
            }
            "equals-ignore-case" => {
                Matcher::EqualsIgnoreCase(Caseless::new(string(argument, &here, "equals-ignore-case")?))
            }
            "wildcard" => Matcher::Wildcard(wildcard(string(argument, &here, "wildcard")?, &here)?),
            "anything-but" => Matcher::AnythingBut(self.anything_but(argument, &here)?),
            "numeric" => numeric(argument, &here)?,
            "exists" => match argument {
                Value::Bool(true) => Matcher::Exists,
                Value::Bool(false) => return Ok(Parsed::Absent),
                _ => return error(&here, "exists match pattern must be either true or false"),
            },
            "cidr" => Matcher::Cidr(cidr(string(argument, &here, "cidr")?, &here)?),
            other => return error(path, format!("unrecognized match type {other}")),
        }))
    }

    fn anything_but(&self, argument: &Value, path: &str) -> Result<AnythingBut> {
        match argument {
            Value::String(text) => Ok(AnythingBut::Strings(vec![text.clone()])),
            Value::Number(n) => Ok(AnythingBut::Numbers(vec![comparable_number(n, path)?])),
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => Ok(AnythingBut::Strings(
                items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            )),
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_number) => items
                .iter()
                .filter_map(Value::as_number)
                .map(|n| comparable_number(n, path))
                .collect::<Result<Vec<_>>>()
                .map(AnythingBut::Numbers),
            Value::Array(_) => error(
                path,
                "inside an anything-but list all values must be strings, or all numbers",
            ),
            Value::Object(map) => {
                let (modifier, value) = single_key(map, path)?;
                let here = join(path, modifier);
                let texts = match value {
                    Value::String(text) => vec![text.clone()],
                    Value::Array(items)
                        if !items.is_empty()
                            && items.iter().all(Value::is_string)
                            && (self.current || modifier == "equals-ignore-case") =>
                    {
                        items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
                    }
                    _ => {
                        return error(
                            &here,
                            format!("anything-but/{modifier} must be a string or a non-empty list of strings"),
                        )
                    }
                };
                match modifier.as_str() {
                    "prefix" | "suffix" => {
                        if texts.iter().any(String::is_empty) {
                            return error(&here, "an empty prefix/suffix is not allowed in anything-but");
                        }
                        Ok(if modifier == "prefix" {
                            AnythingBut::Prefixes(texts)
                        } else {
                            AnythingBut::Suffixes(texts)
                        })
                    }
                    "equals-ignore-case" => Ok(AnythingBut::IgnoreCase(
                        texts.iter().map(|text| Caseless::new(text)).collect(),
                    )),
                    "wildcard" if self.current => texts
                        .iter()
                        .map(|text| wildcard(text, &here))
                        .collect::<Result<Vec<_>>>()
                        .map(AnythingBut::Wildcards),
                    other => error(path, format!("unsupported anything-but pattern: {other}")),
                }
            }
            _ => error(path, "anything-but must be a string, a number, a list, or an object"),
        }
    }
}

/// Fields in event-ruler's order: by name, as Java compares strings (by UTF-16 unit). That order decides what
/// `exists: false` sees; a sub-rule without it matches the same in any order (the search for consistent values is
/// exhaustive), so its fields go cheapest first, where a mismatch ends the search soonest: shallow paths, then
/// those whose matchers compare plainly.
fn sub_rule(draft: Draft) -> SubRule {
    let mut fields: Vec<Field> = draft
        .into_iter()
        .map(|(path, (matchers, absent))| Field::new(path, matchers, absent))
        .collect();
    fields.sort_by(|left, right| left.path.encode_utf16().cmp(right.path.encode_utf16()));
    if !fields.iter().any(|field| field.absent) {
        fields.sort_by_key(|field| {
            let cost = field.matchers.iter().map(Matcher::cost).max().unwrap_or(0);
            (field.dots.len(), cost)
        });
    }
    SubRule { fields }
}

fn event_number(number: &Number, path: &str) -> Result<EventNumber> {
    EventNumber::new(number).map_or_else(
        || {
            error(
                path,
                format!("cannot compare number {number}: it is outside the range of a double"),
            )
        },
        Ok,
    )
}

/// A number to compare by value: one a double holds exactly, as event-ruler requires.
fn comparable_number(number: &Number, path: &str) -> Result<f64> {
    comparable(number).map_or_else(
        || {
            error(
                path,
                format!("cannot compare number {number}: a double cannot hold it exactly"),
            )
        },
        Ok,
    )
}

fn string<'v>(value: &'v Value, path: &str, what: &str) -> Result<&'v str> {
    value
        .as_str()
        .map_or_else(|| error(path, format!("{what} match pattern must be a string")), Ok)
}

fn single_key<'m>(map: &'m Map<String, Value>, path: &str) -> Result<(&'m String, &'m Value)> {
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some(entry), None) => Ok(entry),
        (None, _) => error(path, "empty objects are not allowed"),
        (Some(_), Some(_)) => error(path, "only one key allowed in match expression"),
    }
}

fn push(pieces: &mut [String], c: char) {
    if let Some(piece) = pieces.last_mut() {
        piece.push(c);
    }
}

fn wildcard(text: &str, path: &str) -> Result<Wildcard> {
    let mut pieces = vec![String::new()];
    let mut chars = text.chars().enumerate().peekable();
    let mut previous_was_star = false;
    while let Some((position, c)) = chars.next() {
        match c {
            '*' => {
                if previous_was_star {
                    return error(path, format!("consecutive wildcard characters at pos {position}"));
                }
                previous_was_star = true;
                pieces.push(String::new());
                continue;
            }
            '\\' => match chars.next() {
                Some((_, escaped @ ('*' | '\\'))) => push(&mut pieces, escaped),
                _ => return error(path, format!("invalid escape character at pos {position}")),
            },
            other => push(&mut pieces, other),
        }
        previous_was_star = false;
    }
    let starts_with_star = pieces.len() > 1 && pieces.first().is_some_and(String::is_empty);
    let ends_with_star = pieces.len() > 1 && pieces.last().is_some_and(String::is_empty);
    if starts_with_star {
        pieces.remove(0);
    }
    if ends_with_star {
        pieces.pop();
    }
    Ok(Wildcard::new(pieces, starts_with_star, ends_with_star))
}

fn numeric(argument: &Value, path: &str) -> Result<Matcher> {
    let Value::Array(terms) = argument else {
        return error(
            path,
            "numeric match pattern must be an array such as [\">\", 0, \"<=\", 5]",
        );
    };
    let operand = |index: usize, operator: &str| -> Result<f64> {
        match terms.get(index) {
            Some(Value::Number(n)) => comparable_number(n, path),
            _ => error(path, format!("value of {operator} must be numeric")),
        }
    };
    let operator = |index: usize| -> Result<&str> {
        match terms.get(index) {
            Some(Value::String(op)) if matches!(op.as_str(), "=" | "<" | "<=" | ">" | ">=") => Ok(op.as_str()),
            Some(Value::String(op)) => error(path, format!("unrecognized numeric range operator: {op}")),
            _ => error(path, "numeric range operator must be a string"),
        }
    };
    let first = operator(0)?;
    let first_value = operand(1, if first == "=" { "equals" } else { first })?;
    let bound = |value: f64, op: &str| Bound {
        value,
        inclusive: op.ends_with('='),
    };
    let (mut lower, mut upper) = (None, None);
    match first {
        "=" => {
            if terms.len() > 2 {
                return error(path, "too many elements in numeric expression");
            }
            let exact = Bound {
                value: first_value,
                inclusive: true,
            };
            return Ok(Matcher::Numeric {
                lower: Some(exact),
                upper: Some(exact),
            });
        }
        ">" | ">=" => lower = Some(bound(first_value, first)),
        _ => upper = Some(bound(first_value, first)),
    }
    if terms.len() == 2 {
        return Ok(Matcher::Numeric { lower, upper });
    }
    if upper.is_some() {
        return error(path, "too many elements in numeric expression");
    }
    let second = operator(2)?;
    if !matches!(second, "<" | "<=") {
        return error(
            path,
            "a range needs its lower bound (> or >=) first and its upper bound (< or <=) second",
        );
    }
    let second_value = operand(3, second)?;
    if terms.len() > 4 {
        return error(path, "too many terms in numeric range expression");
    }
    if lower.is_some_and(|lower| lower.value >= second_value) {
        return error(path, "bottom must be less than top");
    }
    upper = Some(bound(second_value, second));
    Ok(Matcher::Numeric { lower, upper })
}

/// Java's `String.split("/")`: trailing empty parts are dropped.
fn cidr(text: &str, path: &str) -> Result<Cidr> {
    let mut parts: Vec<&str> = text.split('/').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    let [address, prefix] = parts[..] else {
        return error(path, "malformed CIDR, one '/' required");
    };
    let Ok(prefix) = prefix.parse::<i32>() else {
        return error(path, "malformed CIDR, mask bits must be an integer");
    };
    let Some(address) = ip_address(address) else {
        return error(path, format!("malformed CIDR, `{address}` is not an IP address"));
    };
    // event-ruler refuses a whole-address mask (/32, /128): a plain string pattern names one address.
    let max = if address.is_ipv4() { 31 } else { 127 };
    match u8::try_from(prefix) {
        Ok(prefix) if i32::from(prefix) <= max => Ok(Cidr::new(address, prefix)),
        _ => error(path, format!("malformed CIDR, the prefix length must be 0 to {max}")),
    }
}
