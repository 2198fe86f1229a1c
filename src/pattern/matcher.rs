//! One value test inside a pattern field's array, with event-ruler's semantics.
//!
//! event-ruler compares an event's leaf values as text: a string as itself between double quotes, any other value as
//! its JSON literal. So `prefix` and `suffix` apply to strings only, and `anything-but` (of strings, prefixes,
//! suffixes, wildcards or case-insensitive strings) matches every value that is not an excluded string: `null`,
//! `true` and numbers included. Numbers are also compared by value, but only those a double holds exactly (see
//! [`EventNumber`]); the others match only an identical literal.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

/// A numeric bound: the value and whether it is included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bound {
    pub(crate) value: f64,
    pub(crate) inclusive: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Matcher {
    String(String),
    Number(EventNumber),
    /// `null`, `true` or `false`.
    Literal(Value),
    Prefix(String),
    Suffix(String),
    PrefixIgnoreCase(Caseless),
    SuffixIgnoreCase(Caseless),
    EqualsIgnoreCase(Caseless),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric {
        lower: Option<Bound>,
        upper: Option<Bound>,
    },
    /// `exists: true`; `exists: false` is the field's `absent` flag, since it tests no value.
    Exists,
    Cidr(Cidr),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnythingBut {
    Strings(Vec<String>),
    /// Numbers a double holds exactly, zero without its sign.
    Numbers(Vec<f64>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    IgnoreCase(Vec<Caseless>),
    Wildcards(Vec<Wildcard>),
}

/// A JSON number as event-ruler sees it: its literal, and its value if a double holds the literal exactly.
///
/// event-ruler reads a number as a decimal and compares it by value only if the double nearest to it prints back as
/// the same decimal (so `9007199254740993` and `1152921504606846976` are compared only as text). serde_json keeps
/// integers of up to 64 bits exactly and other numbers as doubles, whose literal is their shortest form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EventNumber {
    literal: Literal,
    comparable: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Literal {
    Integer(i128),
    /// The bits of a double, so that `0.0` and `-0.0`, whose literals differ, differ here too.
    Double(u64),
}

impl EventNumber {
    pub(crate) fn new(number: &serde_json::Number) -> Option<Self> {
        let integer = number
            .as_u64()
            .map(i128::from)
            .or_else(|| number.as_i64().map(i128::from));
        match integer {
            Some(integer) => {
                let double = integer as f64;
                Some(Self {
                    literal: Literal::Integer(integer),
                    comparable: prints_as(double, integer).then_some(double),
                })
            }
            None => {
                let double = number.as_f64().filter(|double| double.is_finite())?;
                Some(Self {
                    literal: Literal::Double(double.to_bits()),
                    // A decimal has no negative zero: event-ruler reads `-0.0` as 0.
                    comparable: Some(if double == 0.0 { 0.0 } else { double }),
                })
            }
        }
    }

    fn equals(&self, other: &Self) -> bool {
        self.literal == other.literal
            || matches!((self.comparable, other.comparable), (Some(left), Some(right)) if left == right)
    }
}

/// Whether the shortest decimal that reads back as `double` is exactly `integer`.
fn prints_as(double: f64, integer: i128) -> bool {
    let text = format!("{double:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let (Ok(exponent), Ok(significand)) = (exponent.parse::<i32>(), digits.parse::<i128>()) else {
        return false;
    };
    let scale = exponent - (digits.len() as i32 - 1);
    let Ok(scale) = u32::try_from(scale) else {
        return false;
    };
    let value = 10i128
        .checked_pow(scale)
        .and_then(|power| significand.checked_mul(power));
    value.is_some_and(|value| if negative { -value } else { value } == integer)
}

/// A number from a pattern: `Some` if a double holds it exactly, the value event-ruler compares.
pub(crate) fn comparable(number: &serde_json::Number) -> Option<f64> {
    EventNumber::new(number).and_then(|number| number.comparable)
}

/// Text to match without regard to case, the way event-ruler does: each UTF-16 unit of the pattern matches its
/// lower case or its upper case (`Locale.ROOT`, whole-string mappings, so `ß` matches `ß` or `SS`, not `ss`). The
/// event's text is not folded. Two departures, both where event-ruler never matches identical text: a character is
/// always allowed as itself (event-ruler refuses `ǅ` for `ǅ`), and a character outside the BMP is one unit with its
/// own cases (event-ruler turns its surrogates into `??`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Caseless {
    /// For each character of the pattern, the texts it may match.
    units: Vec<Vec<String>>,
}

impl Caseless {
    pub(crate) fn new(text: &str) -> Self {
        let units = text
            .chars()
            .map(|c| {
                let mut forms = vec![c.to_string()];
                for form in [c.to_lowercase().collect::<String>(), c.to_uppercase().collect()] {
                    if !forms.contains(&form) {
                        forms.push(form);
                    }
                }
                forms
            })
            .collect();
        Self { units }
    }

    fn matches(&self, text: &str) -> bool {
        starts(&self.units, text, true)
    }

    fn is_prefix_of(&self, text: &str) -> bool {
        starts(&self.units, text, false)
    }

    fn is_suffix_of(&self, text: &str) -> bool {
        fn from(units: &[Vec<String>], text: &str) -> bool {
            let Some((unit, rest)) = units.split_last() else {
                return true;
            };
            unit.iter().any(|form| {
                text.strip_suffix(form.as_str())
                    .is_some_and(|before| from(rest, before))
            })
        }
        from(&self.units, text)
    }
}

/// Whether `text` starts with one of each unit's forms in turn, and (if `whole`) holds nothing more.
fn starts(units: &[Vec<String>], text: &str, whole: bool) -> bool {
    let Some((unit, rest)) = units.split_first() else {
        return !whole || text.is_empty();
    };
    unit.iter().any(|form| {
        text.strip_prefix(form.as_str())
            .is_some_and(|after| starts(rest, after, whole))
    })
}

/// A `wildcard` pattern: `*` matches any run of characters; `\*` and `\\` are a literal `*` and `\`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wildcard {
    /// The literal pieces between the stars.
    pieces: Vec<String>,
    starts_with_star: bool,
    ends_with_star: bool,
}

impl Wildcard {
    pub(crate) fn new(pieces: Vec<String>, starts_with_star: bool, ends_with_star: bool) -> Self {
        Self {
            pieces,
            starts_with_star,
            ends_with_star,
        }
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        let pieces = &self.pieces;
        if pieces.len() == 1 && !self.starts_with_star && !self.ends_with_star {
            return text == pieces[0];
        }
        let mut rest = text;
        let mut pieces_left = &pieces[..];
        if !self.starts_with_star {
            let Some((first, others)) = pieces_left.split_first() else {
                return text.is_empty();
            };
            match rest.strip_prefix(first.as_str()) {
                Some(after) => rest = after,
                None => return false,
            }
            pieces_left = others;
        }
        let last = if self.ends_with_star {
            None
        } else {
            match pieces_left.split_last() {
                Some((last, others)) => {
                    pieces_left = others;
                    Some(last)
                }
                None => return rest.is_empty() || self.starts_with_star,
            }
        };
        for piece in pieces_left {
            match rest.find(piece.as_str()) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        match last {
            Some(last) => rest.len() >= last.len() && rest.ends_with(last.as_str()),
            None => true,
        }
    }
}

/// An address range, as address bits with a prefix length. A plain string pattern that is an IP address is the
/// range of that one address, as in event-ruler (so `"10.0.0.1"` also matches `"10.0.0.01"`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn new(network: IpAddr, prefix: u8) -> Self {
        Self { network, prefix }
    }

    pub(crate) fn single(address: IpAddr) -> Self {
        let prefix = if address.is_ipv4() { 32 } else { 128 };
        Self::new(address, prefix)
    }

    fn contains(&self, address: IpAddr) -> bool {
        let keep = |bits: u32, value: u128| -> u128 {
            match u32::from(self.prefix) {
                0 => 0,
                prefix if prefix >= bits => value,
                prefix => value >> (bits - prefix),
            }
        };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                keep(32, u32::from(network).into()) == keep(32, u32::from(address).into())
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => keep(128, network.into()) == keep(128, address.into()),
            _ => false,
        }
    }
}

/// Reads an IP address as event-ruler does (its two regular expressions, then Java's `InetAddress`): IPv4 parts
/// are decimal even with leading zeros (`10.0.0.010` is 10.0.0.10), an IPv4-mapped IPv6 address in hexadecimal
/// (`::ffff:a00:1`) is its IPv4 address, and a mapped address in dotted form (`::ffff:10.0.0.1`) is no address.
pub(crate) fn ip_address(text: &str) -> Option<IpAddr> {
    if text.bytes().all(|b| b == b'.' || b.is_ascii_digit()) {
        let mut octets = [0u8; 4];
        let mut parts = text.split('.');
        for octet in &mut octets {
            let part = parts.next().filter(|part| !part.is_empty())?;
            let digits = part.trim_start_matches('0');
            *octet = if digits.is_empty() { 0 } else { digits.parse().ok()? };
        }
        return parts.next().is_none().then_some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    if text.contains(':') && text.bytes().all(|b| b == b':' || b.is_ascii_hexdigit()) {
        let address: Ipv6Addr = text.parse().ok()?;
        return Some(match address.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(address),
        });
    }
    None
}

fn string_starts_with(text: &str, prefix: &str) -> bool {
    // event-ruler's prefix is matched against the quoted value, so it may run into the closing quote.
    text.starts_with(prefix) || (prefix.len() == text.len() + 1 && prefix.strip_suffix('"') == Some(text))
}

fn string_ends_with(text: &str, suffix: &str) -> bool {
    text.ends_with(suffix) || (suffix.len() == text.len() + 1 && suffix.strip_prefix('"') == Some(text))
}

impl Matcher {
    /// A rough rank of the work one test takes: plain comparisons 0, text scans 1, the rest 2.
    pub(crate) fn cost(&self) -> u8 {
        match self {
            Self::String(_) | Self::Number(_) | Self::Literal(_) | Self::Exists => 0,
            Self::Prefix(_) | Self::Suffix(_) | Self::Numeric { .. } => 1,
            Self::PrefixIgnoreCase(_)
            | Self::SuffixIgnoreCase(_)
            | Self::EqualsIgnoreCase(_)
            | Self::Wildcard(_)
            | Self::AnythingBut(_)
            | Self::Cidr(_) => 2,
        }
    }

    /// Whether the matcher accepts one leaf value of the event (a string, number, boolean or null).
    pub(crate) fn matches(&self, value: &Value) -> bool {
        let text = value.as_str();
        match self {
            Self::String(expected) => text == Some(expected.as_str()),
            Self::Number(expected) => match value {
                Value::Number(number) => EventNumber::new(number).is_some_and(|number| number.equals(expected)),
                _ => false,
            },
            Self::Literal(expected) => value == expected,
            Self::Prefix(prefix) => text.is_some_and(|text| string_starts_with(text, prefix)),
            Self::Suffix(suffix) => text.is_some_and(|text| string_ends_with(text, suffix)),
            Self::PrefixIgnoreCase(prefix) => text.is_some_and(|text| prefix.is_prefix_of(text)),
            Self::SuffixIgnoreCase(suffix) => text.is_some_and(|text| suffix.is_suffix_of(text)),
            Self::EqualsIgnoreCase(expected) => text.is_some_and(|text| expected.matches(text)),
            Self::Wildcard(wildcard) => text.is_some_and(|text| wildcard.matches(text)),
            Self::AnythingBut(but) => !but.excludes(value),
            Self::Numeric { lower, upper } => comparable_value(value).is_some_and(|number| {
                let above =
                    lower.is_none_or(|bound| number > bound.value || (bound.inclusive && number == bound.value));
                let below =
                    upper.is_none_or(|bound| number < bound.value || (bound.inclusive && number == bound.value));
                above && below
            }),
            Self::Exists => true,
            Self::Cidr(cidr) => text.and_then(ip_address).is_some_and(|address| cidr.contains(address)),
        }
    }
}

fn comparable_value(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => EventNumber::new(number)?.comparable,
        _ => None,
    }
}

impl AnythingBut {
    fn excludes(&self, value: &Value) -> bool {
        if let Self::Numbers(numbers) = self {
            return comparable_value(value).is_some_and(|number| numbers.contains(&number));
        }
        let Some(text) = value.as_str() else {
            return false;
        };
        match self {
            Self::Strings(strings) => strings.iter().any(|excluded| excluded == text),
            Self::Prefixes(prefixes) => prefixes.iter().any(|prefix| string_starts_with(text, prefix)),
            Self::Suffixes(suffixes) => suffixes.iter().any(|suffix| string_ends_with(text, suffix)),
            Self::IgnoreCase(texts) => texts.iter().any(|excluded| excluded.matches(text)),
            Self::Wildcards(wildcards) => wildcards.iter().any(|wildcard| wildcard.matches(text)),
            Self::Numbers(_) => false,
        }
    }
}
