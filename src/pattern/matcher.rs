//! One value test inside a pattern field's array.

use std::net::IpAddr;

use serde_json::Value;

/// A numeric bound: the value and whether it is included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    /// A string, number, boolean or null, compared exactly (numbers by value).
    Exact(Value),
    Prefix(String),
    PrefixIgnoreCase(String),
    Suffix(String),
    SuffixIgnoreCase(String),
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric {
        lower: Option<Bound>,
        upper: Option<Bound>,
    },
    Exists(bool),
    Cidr(Cidr),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AnythingBut {
    /// Any string not among `strings` and any number not among `numbers`.
    Values {
        strings: Vec<String>,
        numbers: Vec<f64>,
    },
    Prefix(String),
    Suffix(String),
    IgnoreCase(Vec<String>),
    Wildcard(Vec<Wildcard>),
}

/// A `wildcard` pattern: `*` matches any run of characters; `\*` and `\\` are a literal `*` and `\`.
#[derive(Debug, Clone, PartialEq)]
pub struct Wildcard {
    /// The literal pieces between the stars.
    pieces: Vec<String>,
    starts_with_star: bool,
    ends_with_star: bool,
}

impl Wildcard {
    pub fn new(pieces: Vec<String>, starts_with_star: bool, ends_with_star: bool) -> Self {
        Self {
            pieces,
            starts_with_star,
            ends_with_star,
        }
    }

    pub fn matches(&self, text: &str) -> bool {
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

/// An address range, as address bits with a prefix length.
#[derive(Debug, Clone, PartialEq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn new(network: IpAddr, prefix: u8) -> Self {
        Self { network, prefix }
    }

    fn contains(&self, address: IpAddr) -> bool {
        let mask = |bits: u32, prefix: u8| -> u128 {
            if prefix == 0 {
                0
            } else {
                (u128::MAX >> (128 - bits)) & !((1u128 << (bits - u32::from(prefix))) - 1)
            }
        };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = mask(32, self.prefix);
                u128::from(u32::from(network)) & mask == u128::from(u32::from(address)) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = if self.prefix == 128 {
                    u128::MAX
                } else {
                    mask(128, self.prefix)
                };
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

fn as_number(value: &Value) -> Option<f64> {
    value.as_f64()
}

fn lower(text: &str) -> String {
    text.to_lowercase()
}

impl Matcher {
    /// Whether the matcher accepts a field that is absent (or holds only objects or an empty array).
    pub fn matches_absent(&self) -> bool {
        matches!(self, Self::Exists(false))
    }

    /// Whether the matcher accepts one leaf value of the event.
    pub fn matches(&self, value: &Value) -> bool {
        match self {
            Self::Exact(expected) => match (expected, value) {
                (Value::Number(expected), Value::Number(actual)) => expected.as_f64() == actual.as_f64(),
                (expected, actual) => expected == actual,
            },
            Self::Prefix(prefix) => value.as_str().is_some_and(|text| text.starts_with(prefix.as_str())),
            Self::PrefixIgnoreCase(prefix) => value
                .as_str()
                .is_some_and(|text| lower(text).starts_with(prefix.as_str())),
            Self::Suffix(suffix) => value.as_str().is_some_and(|text| text.ends_with(suffix.as_str())),
            Self::SuffixIgnoreCase(suffix) => value
                .as_str()
                .is_some_and(|text| lower(text).ends_with(suffix.as_str())),
            Self::EqualsIgnoreCase(expected) => value.as_str().is_some_and(|text| lower(text) == *expected),
            Self::Wildcard(wildcard) => value.as_str().is_some_and(|text| wildcard.matches(text)),
            Self::AnythingBut(but) => match but {
                AnythingBut::Values { strings, numbers } => match value {
                    Value::String(text) => !strings.contains(text),
                    Value::Number(number) => {
                        as_number(&Value::Number(number.clone())).is_some_and(|number| !numbers.contains(&number))
                    }
                    _ => false,
                },
                AnythingBut::Prefix(prefix) => value.as_str().is_some_and(|text| !text.starts_with(prefix.as_str())),
                AnythingBut::Suffix(suffix) => value.as_str().is_some_and(|text| !text.ends_with(suffix.as_str())),
                AnythingBut::IgnoreCase(excluded) => {
                    value.as_str().is_some_and(|text| !excluded.contains(&lower(text)))
                }
                AnythingBut::Wildcard(excluded) => value
                    .as_str()
                    .is_some_and(|text| !excluded.iter().any(|wildcard| wildcard.matches(text))),
            },
            Self::Numeric { lower, upper } => as_number(value).is_some_and(|number| {
                let above =
                    lower.is_none_or(|bound| number > bound.value || (bound.inclusive && number == bound.value));
                let below =
                    upper.is_none_or(|bound| number < bound.value || (bound.inclusive && number == bound.value));
                above && below
            }),
            Self::Exists(exists) => *exists,
            Self::Cidr(cidr) => value
                .as_str()
                .and_then(|text| text.parse::<IpAddr>().ok())
                .is_some_and(|address| cidr.contains(address)),
        }
    }
}
