//! Checking a pattern and compiling it, with errors in the spirit of EventBridge's: what is wrong, and where.

use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Number, Value};

use super::matcher::{AnythingBut, Bound, Cidr, Matcher, Wildcard};
use super::{Alternatives, FieldPattern, ObjectPattern};

/// Why a pattern is not valid. `path` names the place, e.g. `detail.eventName[0].prefix`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PatternError {
    pub path: String,
    pub message: String,
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

/// The operators a matcher object may name.
const OPERATORS: &[&str] = &[
    "exactly",
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
];

/// A number literal in JSON text that is not zero but reads as zero (below the smallest double), which a parsed
/// value can no longer tell apart from a written `0`.
pub fn underflowing_number(text: &str) -> Option<&str> {
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

pub fn pattern(value: &Value) -> Result<Alternatives> {
    match value {
        Value::Object(map) => object(map, ""),
        _ => error("", "the pattern must be a JSON object"),
    }
}

fn is_matcher_expression(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.keys().next().is_some_and(|key| OPERATORS.contains(&key.as_str())),
        _ => true,
    }
}

/// Sets `field` in `pattern`, replacing a field of the same name (EventBridge's rule overriding).
fn set_field(pattern: &mut ObjectPattern, name: &str, field: FieldPattern) {
    match pattern.fields.iter_mut().find(|(existing, _)| existing == name) {
        Some((_, existing)) => *existing = field,
        None => pattern.fields.push((name.to_owned(), field)),
    }
}

fn object(map: &Map<String, Value>, path: &str) -> Result<Alternatives> {
    if map.is_empty() {
        return error(path, "empty objects are not allowed");
    }
    let mut pattern = ObjectPattern::default();
    let mut or_groups: Vec<Vec<Alternatives>> = Vec::new();
    for (key, value) in map {
        let here = join(path, key);
        match value {
            // `$or` introduces alternatives only when it holds sub-patterns; `"$or": ["a"]` or
            // `"$or": [{"cidr": ...}]` is an ordinary field named `$or`, as EventBridge keeps it.
            Value::Array(items) if key == "$or" && items.first().is_some_and(|first| !is_matcher_expression(first)) => {
                if items.len() < 2 {
                    return error(&here, "$or needs at least two alternatives");
                }
                let alternatives = items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| match item {
                        Value::Object(map) => object(map, &format!("{here}[{index}]")),
                        _ => error(
                            &format!("{here}[{index}]"),
                            "every $or alternative must be a pattern object",
                        ),
                    })
                    .collect::<Result<Vec<_>>>()?;
                or_groups.push(alternatives);
            }
            Value::Array(items) => {
                if items.is_empty() {
                    return error(&here, "empty arrays are not allowed");
                }
                let matchers = items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| matcher(item, &format!("{here}[{index}]")))
                    .collect::<Result<Vec<_>>>()?;
                set_field(&mut pattern, key, FieldPattern::Matchers(matchers));
            }
            Value::Object(inner) => set_field(&mut pattern, key, FieldPattern::Object(object(inner, &here)?)),
            _ => return error(&here, format!("\"{key}\" must be an object or an array")),
        }
    }
    // Expand each `$or` group: every alternative so far, merged with each branch's alternatives.
    let mut expanded = vec![pattern];
    for group in or_groups {
        let mut next = Vec::new();
        for base in &expanded {
            for branch in group.iter().flatten() {
                let mut merged = base.clone();
                for (name, field) in &branch.fields {
                    set_field(&mut merged, name, field.clone());
                }
                next.push(merged);
            }
        }
        expanded = next;
    }
    Ok(expanded)
}

/// A number usable for comparison: finite, and not a non-zero literal that became zero.
fn number(number: &Number, path: &str) -> Result<f64> {
    match number.as_f64() {
        Some(value) if value.is_finite() => Ok(value),
        _ => error(
            path,
            format!("cannot compare number {number}: it is outside the range of a double"),
        ),
    }
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

fn matcher(value: &Value, path: &str) -> Result<Matcher> {
    let map = match value {
        Value::Number(n) => {
            number(n, path)?;
            return Ok(Matcher::Exact(value.clone()));
        }
        Value::String(_) | Value::Bool(_) | Value::Null => return Ok(Matcher::Exact(value.clone())),
        Value::Array(_) => return error(path, "a match value must be a string, number, boolean, null or object"),
        Value::Object(map) => map,
    };
    let (operator, argument) = single_key(map, path)?;
    let here = join(path, operator);
    Ok(match operator.as_str() {
        "exactly" => Matcher::Exact(Value::String(string(argument, &here, "exact")?.to_owned())),
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
                    let text = string(text, &join(&here, modifier), "equals-ignore-case")?.to_lowercase();
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
            Matcher::EqualsIgnoreCase(string(argument, &here, "equals-ignore-case")?.to_lowercase())
        }
        "wildcard" => Matcher::Wildcard(wildcard(string(argument, &here, "wildcard")?, &here)?),
        "anything-but" => Matcher::AnythingBut(anything_but(argument, &here)?),
        "numeric" => numeric(argument, &here)?,
        "exists" => match argument {
            Value::Bool(exists) => Matcher::Exists(*exists),
            _ => return error(&here, "exists match pattern must be either true or false"),
        },
        "cidr" => Matcher::Cidr(cidr(string(argument, &here, "cidr")?, &here)?),
        other => return error(path, format!("unrecognized match type {other}")),
    })
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

/// A string or an array of strings.
fn strings(value: &Value, path: &str, what: &str) -> Result<Vec<String>> {
    match value {
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| string(item, path, what).map(str::to_owned))
            .collect(),
        _ => error(path, format!("{what} match pattern must be a string")),
    }
}

fn anything_but(argument: &Value, path: &str) -> Result<AnythingBut> {
    match argument {
        Value::String(text) => Ok(AnythingBut::Values {
            strings: vec![text.clone()],
            numbers: Vec::new(),
        }),
        Value::Number(n) => Ok(AnythingBut::Values {
            strings: Vec::new(),
            numbers: vec![number(n, path)?],
        }),
        Value::Array(items) if !items.is_empty() => {
            if items.iter().all(Value::is_string) {
                Ok(AnythingBut::Values {
                    strings: items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect(),
                    numbers: Vec::new(),
                })
            } else if items.iter().all(Value::is_number) {
                let numbers = items
                    .iter()
                    .filter_map(Value::as_number)
                    .map(|n| number(n, path))
                    .collect::<Result<Vec<_>>>()?;
                Ok(AnythingBut::Values {
                    strings: Vec::new(),
                    numbers,
                })
            } else {
                error(
                    path,
                    "inside an anything-but list all values must be strings, or all numbers",
                )
            }
        }
        Value::Object(map) => {
            let (modifier, value) = single_key(map, path)?;
            let here = join(path, modifier);
            match modifier.as_str() {
                "prefix" | "suffix" => {
                    let texts = strings(value, &here, "prefix/suffix")?;
                    if texts.iter().any(String::is_empty) {
                        return error(&here, "an empty prefix/suffix is not allowed in anything-but");
                    }
                    // Several prefixes exclude a value that has any of them.
                    Ok(if texts.len() == 1 {
                        let text = texts.into_iter().next().unwrap_or_default();
                        if modifier == "prefix" {
                            AnythingBut::Prefix(text)
                        } else {
                            AnythingBut::Suffix(text)
                        }
                    } else {
                        let as_wildcards = texts
                            .iter()
                            .map(|text| {
                                let escaped = text.replace('\\', "\\\\").replace('*', "\\*");
                                let pattern = if modifier == "prefix" {
                                    format!("{escaped}*")
                                } else {
                                    format!("*{escaped}")
                                };
                                wildcard(&pattern, &here)
                            })
                            .collect::<Result<Vec<_>>>()?;
                        AnythingBut::Wildcard(as_wildcards)
                    })
                }
                "equals-ignore-case" => match value {
                    Value::String(_) | Value::Array(_) => {
                        let texts =
                            strings(value, &here, "anything-but/equals-ignore-case").map_err(|_| PatternError {
                                path: here.clone(),
                                message: "inside anything-but/equals-ignore-case only strings are allowed".into(),
                            })?;
                        Ok(AnythingBut::IgnoreCase(
                            texts.iter().map(|text| text.to_lowercase()).collect(),
                        ))
                    }
                    _ => error(
                        &here,
                        "anything-but/equals-ignore-case match pattern must be a string or a list of strings",
                    ),
                },
                "wildcard" => {
                    let texts = strings(value, &here, "wildcard")?;
                    Ok(AnythingBut::Wildcard(
                        texts
                            .iter()
                            .map(|text| wildcard(text, &here))
                            .collect::<Result<Vec<_>>>()?,
                    ))
                }
                other => error(path, format!("unsupported anything-but pattern: {other}")),
            }
        }
        _ => error(path, "anything-but must be a string, a number, a list, or an object"),
    }
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
            Some(Value::Number(n)) => number(n, path),
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

fn cidr(text: &str, path: &str) -> Result<Cidr> {
    let Some((address, prefix)) = text.split_once('/') else {
        return error(path, "malformed CIDR, one '/' required");
    };
    let address: IpAddr = address.parse().map_or_else(
        |_| error(path, format!("malformed CIDR, `{address}` is not an IP address")),
        Ok,
    )?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(prefix) if prefix <= max => Ok(Cidr::new(address, prefix)),
        _ => error(path, format!("malformed CIDR, the prefix length must be 0 to {max}")),
    }
}
