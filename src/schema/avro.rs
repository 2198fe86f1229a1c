//! Avro's binary encoding to readable JSON, in one pass over the bytes, walking the writer schema (a decimal's
//! scale lives only in the schema). Decoding straight to JSON, rather than to apache_avro's value tree and then
//! converting that, saves a second tree per record: its copied field names, a box per union and the moves, which
//! with their allocations were about a fifth of the sink's CPU time. The mapping:
//!
//! - unions are unwrapped to the branch's value; with `union_type_tags`, a non-null branch is wrapped as
//!   `{"<branch type>": value}`, as Avro's JSON encoding writes it;
//! - `bytes` and `fixed` become base64 strings; enums their symbol;
//! - decimals become exact decimal strings (`"12.30"` for unscaled 1230 with scale 2);
//! - `date` becomes `YYYY-MM-DD`, `time-*` `HH:MM:SS.fff`, `timestamp-*` RFC 3339 UTC (`...Z`) and
//!   `local-timestamp-*` the same without an offset, each with the logical type's precision;
//! - `uuid` a string; `duration` `{months, days, milliseconds}`;
//! - float and double NaN and infinities, which JSON cannot hold, become the strings `NaN`, `Infinity`, `-Infinity`;
//! - map keys are sorted; record fields keep the schema's order.
//!
//! Bytes that end before the value does, a union branch or enum symbol that does not exist, invalid UTF-8 or an
//! overlong varint are errors (apache_avro's reader takes a string that ends early for a null). Bytes left after
//! the value are ignored, as Confluent's deserializers ignore them.

use apache_avro::schema::{InnerDecimalSchema, Name, RecordSchema, Schema, UnionSchema, UuidSchema};
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat};
use serde_json::{Map, Number, Value as Json};

use crate::json_path::JsonPath;
use crate::json_text::{write_quoted, QuotedJson, QuotedWriter};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AvroJsonError {
    #[error("the bytes do not fit the schema at {path}: {detail}")]
    Malformed { path: String, detail: String },
    #[error("{what} out of range at {path}")]
    OutOfRange { what: &'static str, path: String },
    #[error("named type `{0}` is not defined in the schema")]
    UnknownName(String),
}

#[derive(Debug, Clone, Copy, Default)]
pub struct AvroJsonOptions {
    pub(crate) union_type_tags: bool,
}

/// Items of arrays and maps take at least a byte each, but for those that take none (nulls): this many of those
/// are allowed in a value beyond its length in bytes, which bounds what a few bytes can make the decoder build.
const MAX_ITEMS_BEYOND_INPUT: usize = 65_536;

/// Records, arrays and maps nested deeper than this are an error, as serde_json refuses JSON nested deeper: a
/// recursive schema would otherwise let a record nest deep enough to overflow the stack.
const MAX_DEPTH: usize = 128;

/// Decodes one value, written with `schema` in Avro's binary encoding, to JSON.
pub fn decode_to_json(bytes: &[u8], schema: &Schema, options: AvroJsonOptions) -> Result<Json, AvroJsonError> {
    let mut input = Input::new(bytes);
    AvroToJson { root: schema, options }
        .value(&mut input, schema)
        .map_err(|error| error.within("$"))
}

impl AvroJsonError {
    fn malformed(detail: impl Into<String>) -> Self {
        Self::Malformed {
            path: String::new(),
            detail: detail.into(),
        }
    }

    fn out_of_range(what: &'static str) -> Self {
        Self::OutOfRange {
            what,
            path: String::new(),
        }
    }

    /// The error as seen from the enclosing value: paths are written from the inside out, so that the path of the
    /// failing value is formatted only when something fails.
    fn within(mut self, segment: &str) -> Self {
        match &mut self {
            Self::Malformed { path, .. } | Self::OutOfRange { path, .. } => path.insert_str(0, segment),
            Self::UnknownName(_) => {}
        }
        self
    }
}

/// The bytes not yet decoded, and how much more they may make the decoder build.
struct Input<'b> {
    bytes: &'b [u8],
    /// Array and map items the rest of the value may still hold.
    items_left: usize,
    /// Records, arrays and maps around the value being decoded.
    depth: usize,
}

impl<'b> Input<'b> {
    /// All of `bytes`, at the top of the value.
    fn new(bytes: &'b [u8]) -> Self {
        Self {
            bytes,
            items_left: bytes.len() + MAX_ITEMS_BEYOND_INPUT,
            depth: 0,
        }
    }

    fn take(&mut self, count: usize) -> Result<&'b [u8], AvroJsonError> {
        if count > self.bytes.len() {
            return Err(AvroJsonError::malformed(format!(
                "{count} bytes needed, {} left",
                self.bytes.len()
            )));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], AvroJsonError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    /// A zigzag varint, as Avro writes `int` and `long`.
    fn long(&mut self) -> Result<i64, AvroJsonError> {
        let mut raw = 0u64;
        for (index, &byte) in self.bytes.iter().enumerate().take(10) {
            raw |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[index + 1..];
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(AvroJsonError::malformed(if self.bytes.len() < 10 {
            "the bytes end inside a varint"
        } else {
            "a varint longer than 10 bytes"
        }))
    }

    fn int(&mut self) -> Result<i32, AvroJsonError> {
        let long = self.long()?;
        i32::try_from(long).map_err(|_| AvroJsonError::malformed(format!("{long} does not fit an int")))
    }

    /// A `bytes` or `string` body.
    fn bytes(&mut self) -> Result<&'b [u8], AvroJsonError> {
        let length = self.long()?;
        let length =
            usize::try_from(length).map_err(|_| AvroJsonError::malformed(format!("negative length {length}")))?;
        self.take(length)
    }

    fn string(&mut self) -> Result<&'b str, AvroJsonError> {
        std::str::from_utf8(self.bytes()?).map_err(not_utf8)
    }

    /// The item count of the next array or map block; 0 ends the value.
    fn block_count(&mut self) -> Result<usize, AvroJsonError> {
        let count = self.long()?;
        if count < 0 {
            // A negative count is followed by the block's size in bytes, which only a reader that skips needs.
            self.long()?;
        }
        let count = usize::try_from(count.unsigned_abs())
            .ok()
            .filter(|count| *count <= self.items_left)
            .ok_or_else(|| {
                AvroJsonError::malformed(format!(
                    "a block of {count} items, more than the rest of the value ({} bytes) can hold",
                    self.bytes.len()
                ))
            })?;
        self.items_left -= count;
        Ok(count)
    }

    /// Goes one record, array or map deeper.
    fn enter(&mut self) -> Result<(), AvroJsonError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(AvroJsonError::malformed(format!(
                "records, arrays and maps nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }
}

struct AvroToJson<'s> {
    root: &'s Schema,
    options: AvroJsonOptions,
}

fn not_utf8(error: std::str::Utf8Error) -> AvroJsonError {
    AvroJsonError::malformed(format!("a string that is not UTF-8: {error}"))
}

fn base64(bytes: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn float(value: f64) -> Json {
    Number::from_f64(value).map(Json::Number).unwrap_or_else(|| {
        Json::String(
            if value.is_nan() {
                "NaN"
            } else if value > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            }
            .to_owned(),
        )
    })
}

/// A two's-complement big-endian unscaled integer as decimal digits with the point placed `scale` digits from
/// the right.
fn decimal(unscaled: &[u8], scale: usize) -> String {
    let unscaled = num_bigint::BigInt::from_signed_bytes_be(unscaled).to_string();
    place_decimal_point(&unscaled, scale)
}

/// An unscaled integer's decimal digits with the point placed `scale` digits from the right.
fn place_decimal_point(unscaled: &str, scale: usize) -> String {
    let (sign, digits) = match unscaled.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", unscaled),
    };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// The name a union branch has in Avro's JSON encoding.
pub(super) fn branch_name(schema: &Schema) -> String {
    match schema {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int | Schema::Date | Schema::TimeMillis => "int".into(),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes | Schema::BigDecimal => "bytes".into(),
        Schema::String => "string".into(),
        Schema::Uuid(_) => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        Schema::Record(record) => record.name.fullname(None),
        Schema::Enum(schema) => schema.name.fullname(None),
        Schema::Fixed(schema) | Schema::Duration(schema) => schema.name.fullname(None),
        Schema::Decimal(_) => "bytes".into(),
        Schema::Ref { name } => name.fullname(None),
    }
}

/// Finds the named type `name` in `schema`.
fn find_named<'s>(schema: &'s Schema, name: &Name) -> Option<&'s Schema> {
    let matches = |candidate: &Name| candidate.fullname(None) == name.fullname(None);
    match schema {
        Schema::Record(record) if matches(&record.name) => Some(schema),
        Schema::Enum(enumeration) if matches(&enumeration.name) => Some(schema),
        Schema::Fixed(fixed) | Schema::Duration(fixed) if matches(&fixed.name) => Some(schema),
        Schema::Record(record) => record.fields.iter().find_map(|field| find_named(&field.schema, name)),
        Schema::Array(array) => find_named(&array.items, name),
        Schema::Map(map) => find_named(&map.types, name),
        Schema::Union(union) => union.variants().iter().find_map(|variant| find_named(variant, name)),
        _ => None,
    }
}

fn uuid(bytes: &[u8]) -> Result<Json, AvroJsonError> {
    uuid::Uuid::from_slice(bytes)
        .map(|uuid| Json::String(uuid.to_string()))
        .map_err(|_| AvroJsonError::malformed(format!("a uuid of {} bytes, not 16", bytes.len())))
}

impl<'s> AvroToJson<'s> {
    fn resolve(&self, schema: &'s Schema) -> Result<&'s Schema, AvroJsonError> {
        match schema {
            Schema::Ref { name } => {
                find_named(self.root, name).ok_or_else(|| AvroJsonError::UnknownName(name.fullname(None)))
            }
            other => Ok(other),
        }
    }

    /// Unions, records, arrays and maps, which nest, each in a function of its own, and the rest in `scalar`: so
    /// that the frames a nested value stacks up hold only what nesting needs (a debug build's frame holds every
    /// arm's locals).
    fn value(&self, input: &mut Input<'_>, schema: &'s Schema) -> Result<Json, AvroJsonError> {
        match self.resolve(schema)? {
            Schema::Union(union) => self.union(input, union),
            Schema::Record(record) => self.record(input, record),
            Schema::Array(array) => self.array(input, &array.items),
            Schema::Map(map) => self.map(input, &map.types),
            scalar => Self::scalar(input, scalar),
        }
    }

    /// A value that holds no other value.
    fn scalar(input: &mut Input<'_>, schema: &Schema) -> Result<Json, AvroJsonError> {
        Ok(match schema {
            Schema::Null => Json::Null,
            Schema::Boolean => match input.take_array::<1>()? {
                [0] => Json::Bool(false),
                [1] => Json::Bool(true),
                [other] => return Err(AvroJsonError::malformed(format!("{other:#04x} is not a boolean"))),
            },
            Schema::Int => Json::from(input.int()?),
            Schema::Long => Json::from(input.long()?),
            Schema::Float => float(f64::from(f32::from_le_bytes(input.take_array()?))),
            Schema::Double => float(f64::from_le_bytes(input.take_array()?)),
            Schema::Bytes => base64(input.bytes()?),
            Schema::String => Json::String(input.string()?.to_owned()),
            Schema::Fixed(fixed) => base64(input.take(fixed.size)?),
            Schema::Enum(enumeration) => {
                let index = input.int()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|index| enumeration.symbols.get(index))
                    .ok_or_else(|| {
                        AvroJsonError::malformed(format!(
                            "enum symbol {index} of {} does not exist",
                            enumeration.symbols.len()
                        ))
                    })?;
                Json::String(symbol.clone())
            }
            Schema::Decimal(decimal_schema) => {
                let unscaled = match &decimal_schema.inner {
                    InnerDecimalSchema::Bytes => input.bytes()?,
                    InnerDecimalSchema::Fixed(fixed) => input.take(fixed.size)?,
                };
                Json::String(decimal(unscaled, decimal_schema.scale))
            }
            Schema::BigDecimal => {
                // Rare enough to leave to apache_avro: the bytes hold a length-prefixed unscaled integer and a
                // scale of their own.
                let start = input.bytes;
                input.bytes()?;
                let mut encoded = &start[..start.len() - input.bytes.len()];
                let reader = apache_avro::reader::datum::GenericDatumReader::builder(&Schema::BigDecimal)
                    .build()
                    .map_err(|error| AvroJsonError::malformed(error.to_string()))?;
                match reader.read_value(&mut encoded) {
                    Ok(apache_avro::types::Value::BigDecimal(decimal)) => Json::String(decimal.to_plain_string()),
                    Ok(other) => return Err(AvroJsonError::malformed(format!("{other:?} is not a big-decimal"))),
                    Err(error) => return Err(AvroJsonError::malformed(error.to_string())),
                }
            }
            Schema::Uuid(UuidSchema::String) => {
                let text = input.string()?;
                let parsed = uuid::Uuid::parse_str(text)
                    .map_err(|error| AvroJsonError::malformed(format!("`{text}` is not a uuid: {error}")))?;
                Json::String(parsed.to_string())
            }
            Schema::Uuid(UuidSchema::Bytes) => uuid(input.bytes()?)?,
            Schema::Uuid(UuidSchema::Fixed(fixed)) => uuid(input.take(fixed.size)?)?,
            Schema::Date => {
                let date =
                    NaiveDate::from_epoch_days(input.int()?).ok_or_else(|| AvroJsonError::out_of_range("date"))?;
                Json::String(date.format("%Y-%m-%d").to_string())
            }
            Schema::TimeMillis => Json::String(time(i64::from(input.int()?) * 1_000_000, 3)?),
            Schema::TimeMicros => {
                let micros = input.long()?;
                let nanos = micros
                    .checked_mul(1_000)
                    .ok_or_else(|| AvroJsonError::out_of_range("time of day"))?;
                Json::String(time(nanos, 6)?)
            }
            Schema::TimestampMillis => Json::String(timestamp(
                i128::from(input.long()?) * 1_000_000,
                SecondsFormat::Millis,
                true,
            )?),
            Schema::TimestampMicros => Json::String(timestamp(
                i128::from(input.long()?) * 1_000,
                SecondsFormat::Micros,
                true,
            )?),
            Schema::TimestampNanos => Json::String(timestamp(i128::from(input.long()?), SecondsFormat::Nanos, true)?),
            Schema::LocalTimestampMillis => Json::String(timestamp(
                i128::from(input.long()?) * 1_000_000,
                SecondsFormat::Millis,
                false,
            )?),
            Schema::LocalTimestampMicros => Json::String(timestamp(
                i128::from(input.long()?) * 1_000,
                SecondsFormat::Micros,
                false,
            )?),
            Schema::LocalTimestampNanos => {
                Json::String(timestamp(i128::from(input.long()?), SecondsFormat::Nanos, false)?)
            }
            Schema::Duration(fixed) => {
                if fixed.size != 12 {
                    return Err(AvroJsonError::malformed(format!(
                        "a duration must be a fixed of 12 bytes, not {}",
                        fixed.size
                    )));
                }
                let part = |bytes: &[u8]| bytes.try_into().map(u32::from_le_bytes).unwrap_or_default();
                let bytes = input.take(12)?;
                serde_json::json!({
                    "months": part(&bytes[0..4]),
                    "days": part(&bytes[4..8]),
                    "milliseconds": part(&bytes[8..12]),
                })
            }
            // `value` decodes these itself; were one to get here, it is an error of the record, not a panic.
            container @ (Schema::Union(_)
            | Schema::Array(_)
            | Schema::Map(_)
            | Schema::Record(_)
            | Schema::Ref { .. }) => {
                return Err(AvroJsonError::malformed(format!(
                    "{} decoded as a value without parts",
                    branch_name(container)
                )))
            }
        })
    }

    /// The union branch the value was written with, resolved (once here for the tag; `value` then finds it
    /// already resolved).
    fn branch(&self, input: &mut Input<'_>, union: &'s UnionSchema) -> Result<&'s Schema, AvroJsonError> {
        let index = input.long()?;
        let branch = usize::try_from(index)
            .ok()
            .and_then(|index| union.variants().get(index))
            .ok_or_else(|| {
                AvroJsonError::malformed(format!(
                    "union branch {index} of {} does not exist",
                    union.variants().len()
                ))
            })?;
        self.resolve(branch)
    }

    /// True when a union's value is written inside `{"<branch type>": ...}`.
    fn tags(&self, branch: &Schema) -> bool {
        self.options.union_type_tags && !matches!(branch, Schema::Null)
    }

    fn union(&self, input: &mut Input<'_>, union: &'s UnionSchema) -> Result<Json, AvroJsonError> {
        let branch = self.branch(input, union)?;
        let value = self.value(input, branch)?;
        Ok(if self.tags(branch) {
            let mut tagged = Map::new();
            tagged.insert(branch_name(branch), value);
            Json::Object(tagged)
        } else {
            value
        })
    }

    fn record(&self, input: &mut Input<'_>, record: &'s RecordSchema) -> Result<Json, AvroJsonError> {
        input.enter()?;
        let mut object = Map::with_capacity(record.fields.len());
        for field in &record.fields {
            let value = self
                .value(input, &field.schema)
                .map_err(|error| error.within(&format!(".{}", field.name)))?;
            object.insert(field.name.clone(), value);
        }
        input.leave();
        Ok(Json::Object(object))
    }

    fn array(&self, input: &mut Input<'_>, item_schema: &'s Schema) -> Result<Json, AvroJsonError> {
        input.enter()?;
        let mut items = Vec::new();
        loop {
            let count = input.block_count()?;
            if count == 0 {
                break;
            }
            items.reserve(count.min(input.bytes.len()));
            for _ in 0..count {
                let item = self
                    .value(input, item_schema)
                    .map_err(|error| error.within(&format!("[{}]", items.len())))?;
                items.push(item);
            }
        }
        input.leave();
        Ok(Json::Array(items))
    }

    fn map(&self, input: &mut Input<'_>, value_schema: &'s Schema) -> Result<Json, AvroJsonError> {
        input.enter()?;
        let mut entries: Vec<(String, Json)> = Vec::new();
        loop {
            let count = input.block_count()?;
            if count == 0 {
                break;
            }
            entries.reserve(count.min(input.bytes.len()));
            for _ in 0..count {
                let key = input.string()?.to_owned();
                let value = self
                    .value(input, value_schema)
                    .map_err(|error| error.within(&format!("['{key}']")))?;
                entries.push((key, value));
            }
        }
        input.leave();
        // Stable, so that of a key written twice the last one stays, as a map insert keeps it.
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut object = Map::with_capacity(entries.len());
        object.extend(entries);
        Ok(Json::Object(object))
    }
}

/// Fields to keep as JSON values while a record is written as text: a field is kept whole, or only some of its
/// own fields are (when it is a record). Each field named has a slot of its own in `Captured`, so that keeping a
/// value builds no map: the sink keeps each record's detail-type and time, and a map of copied names, hashed, was
/// a thirtieth of its CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capture {
    fields: Vec<CapturedField>,
    slots: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CapturedField {
    name: String,
    slot: usize,
    kept: Kept,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kept {
    Whole,
    /// Only these fields of a record; a value that is not a record is kept whole.
    Fields(Vec<CapturedField>),
}

impl Capture {
    /// The fields at the ends of `paths`, each a chain of field names from the top; an empty path keeps nothing.
    pub(crate) fn fields<'p>(paths: impl IntoIterator<Item = Vec<&'p str>>) -> Self {
        let mut fields = Vec::new();
        for path in paths {
            add(&mut fields, &path);
        }
        let mut slots = 0;
        number(&mut fields, &mut slots);
        Self { fields, slots }
    }

    /// The first value `path` selects in the record `captured` was kept from, as `JsonPath::select_one` does on
    /// the whole value, for a path that starts with the fields of one of the paths this capture was made from.
    pub(crate) fn select_one<'c>(&self, captured: &'c Captured, path: &JsonPath) -> Option<&'c Json> {
        let (value, depth) = self.kept_along(captured, path)?;
        path.select_one_below(depth, value)
    }

    /// Every value `path` selects in the record `captured` was kept from, as `JsonPath::select` does.
    pub(crate) fn select<'c>(&self, captured: &'c Captured, path: &JsonPath) -> Vec<&'c Json> {
        match self.kept_along(captured, path) {
            Some((value, depth)) => path.select_below(depth, value),
            None => Vec::new(),
        }
    }

    /// The value kept at the first field along `path` that has one, and how many steps of the path lead to it.
    fn kept_along<'c>(&self, captured: &'c Captured, path: &JsonPath) -> Option<(&'c Json, usize)> {
        let mut fields = &self.fields;
        let mut depth = 0;
        loop {
            let name = path.field_at(depth)?;
            let field = fields.iter().find(|field| field.name == name)?;
            depth += 1;
            if let Some(value) = captured.values.get(field.slot).and_then(Option::as_ref) {
                return Some((value, depth));
            }
            match &field.kept {
                Kept::Fields(below) => fields = below,
                Kept::Whole => return None,
            }
        }
    }

    /// Empty slots for one record's values.
    fn slots(&self) -> Captured {
        Captured {
            values: vec![None; self.slots],
        }
    }

    /// What decoding a record whose value is `value` keeps, for tests of what reads the kept values.
    #[cfg(test)]
    pub(crate) fn kept_from(&self, value: &Json) -> Captured {
        fn keep(fields: &[CapturedField], value: &Json, captured: &mut Captured) {
            for field in fields {
                let Some(member) = value.get(&field.name) else {
                    continue;
                };
                match (&field.kept, member) {
                    (Kept::Fields(below), Json::Object(_)) => keep(below, member, captured),
                    _ => captured.values[field.slot] = Some(member.clone()),
                }
            }
        }
        let mut captured = self.slots();
        keep(&self.fields, value, &mut captured);
        captured
    }
}

fn add(fields: &mut Vec<CapturedField>, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let at = match fields.iter().position(|field| field.name == *first) {
        Some(at) => at,
        None => {
            fields.push(CapturedField {
                name: (*first).to_owned(),
                slot: 0,
                kept: Kept::Fields(Vec::new()),
            });
            fields.len() - 1
        }
    };
    if rest.is_empty() {
        fields[at].kept = Kept::Whole;
    } else if let Kept::Fields(below) = &mut fields[at].kept {
        add(below, rest);
    }
    // A field kept whole already keeps everything below it.
}

/// Gives each field its slot, once the fields are all known.
fn number(fields: &mut [CapturedField], next: &mut usize) {
    for field in fields {
        field.slot = *next;
        *next += 1;
        if let Kept::Fields(below) = &mut field.kept {
            number(below, next);
        }
    }
}

/// The values a record written as text kept, each in its field's slot. A record field whose own fields were kept
/// has no value of its own.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Captured {
    values: Vec<Option<Json>>,
}

impl Captured {
    /// No slots: for a record of which nothing is kept.
    fn none() -> Self {
        Self { values: Vec::new() }
    }
}

/// A record as its JSON text, written straight as the JSON string that holds it, with the values of the fields
/// `capture` names.
pub(crate) struct QuotedRecord {
    pub(crate) text: QuotedJson,
    pub(crate) captured: Captured,
}

/// Decodes one value, written with `schema` in Avro's binary encoding, to the JSON text that `decode_to_json`'s
/// value has, without building that value: the sink's detail, which is most of each record, never exists as a
/// tree. `None` when the schema is not a record. Errors are those of `decode_to_json`.
pub(crate) fn decode_to_quoted_json(
    bytes: &[u8],
    schema: &Schema,
    options: AvroJsonOptions,
    capture: &Capture,
) -> Result<Option<QuotedRecord>, AvroJsonError> {
    let decoder = AvroToJson { root: schema, options };
    let Schema::Record(record) = decoder.resolve(schema)? else {
        return Ok(None);
    };
    let mut input = Input::new(bytes);
    let mut captured = capture.slots();
    let text = write_quoted(|out| decoder.record_text(&mut input, record, out, &capture.fields, &mut captured))
        .map_err(|error| error.within("$"))?;
    Ok(Some(QuotedRecord { text, captured }))
}

/// The same walk as above, writing text instead of building values. Scalars other than strings are built first
/// and then written: they are short.
impl<'s> AvroToJson<'s> {
    fn value_text(
        &self,
        input: &mut Input<'_>,
        schema: &'s Schema,
        out: &mut QuotedWriter<'_>,
    ) -> Result<(), AvroJsonError> {
        match self.resolve(schema)? {
            Schema::Union(union) => {
                let branch = self.branch(input, union)?;
                if self.tags(branch) {
                    out.punctuation(b"{");
                    out.string(&branch_name(branch));
                    out.punctuation(b":");
                    self.value_text(input, branch, out)?;
                    out.punctuation(b"}");
                    Ok(())
                } else {
                    self.value_text(input, branch, out)
                }
            }
            Schema::Record(record) => self.record_text(input, record, out, &[], &mut Captured::none()),
            Schema::Array(array) => self.array_text(input, &array.items, out),
            Schema::Map(map) => self.map_text(input, &map.types, out),
            Schema::String => out.utf8_string(input.bytes()?).map_err(not_utf8),
            scalar => {
                out.value(&Self::scalar(input, scalar)?);
                Ok(())
            }
        }
    }

    /// Writes a record, and puts the values of the fields `wanted` names into their slots in `captured`.
    fn record_text(
        &self,
        input: &mut Input<'_>,
        record: &'s RecordSchema,
        out: &mut QuotedWriter<'_>,
        wanted: &[CapturedField],
        captured: &mut Captured,
    ) -> Result<(), AvroJsonError> {
        input.enter()?;
        out.punctuation(b"{");
        for (index, field) in record.fields.iter().enumerate() {
            if index > 0 {
                out.punctuation(b",");
            }
            out.string(&field.name);
            out.punctuation(b":");
            let kept = wanted.iter().find(|wanted| wanted.name == field.name);
            self.field_text(input, &field.schema, out, kept, captured)
                .map_err(|error| error.within(&format!(".{}", field.name)))?;
        }
        out.punctuation(b"}");
        input.leave();
        Ok(())
    }

    /// Writes a field's value, and keeps what `kept` names of it.
    fn field_text(
        &self,
        input: &mut Input<'_>,
        schema: &'s Schema,
        out: &mut QuotedWriter<'_>,
        kept: Option<&CapturedField>,
        captured: &mut Captured,
    ) -> Result<(), AvroJsonError> {
        let Some(kept) = kept else {
            return self.value_text(input, schema, out);
        };
        match (&kept.kept, self.resolve(schema)?) {
            (Kept::Fields(fields), Schema::Record(record)) => self.record_text(input, record, out, fields, captured),
            // Kept whole, or a path that goes on inside something other than a record: the whole value.
            _ => {
                let value = self.value(input, schema)?;
                out.value(&value);
                captured.values[kept.slot] = Some(value);
                Ok(())
            }
        }
    }

    /// Writes a map as `map` builds it: keys sorted, and of a key written twice the last value kept. Its members
    /// are written as they come; only when they came out of order are they taken back and written again sorted.
    fn map_text(
        &self,
        input: &mut Input<'_>,
        value_schema: &'s Schema,
        out: &mut QuotedWriter<'_>,
    ) -> Result<(), AvroJsonError> {
        input.enter()?;
        out.punctuation(b"{");
        let start = out.mark();
        let mut members = Vec::new();
        let mut sorted = true;
        loop {
            let count = input.block_count()?;
            if count == 0 {
                break;
            }
            members.reserve(count.min(input.bytes.len()));
            for _ in 0..count {
                let key = input.string()?;
                if !members.is_empty() {
                    out.punctuation(b",");
                }
                let member = out.mark();
                out.string(key);
                out.punctuation(b":");
                self.value_text(input, value_schema, out)
                    .map_err(|error| error.within(&format!("['{key}']")))?;
                sorted &= members.last().is_none_or(|(last, _)| *last < key);
                members.push((key, out.piece_since(member)));
            }
        }
        input.leave();
        if !sorted {
            // Stable, so that of a key written twice the last one is the last of its run.
            members.sort_by_key(|(key, _)| *key);
            let taken = out.take_since(start);
            let mut kept = members
                .iter()
                .enumerate()
                .filter(|(index, (key, _))| members.get(index + 1).is_none_or(|(next, _)| next != key));
            if let Some((_, (_, first))) = kept.next() {
                out.put_back(&taken, *first);
            }
            for (_, (_, piece)) in kept {
                out.punctuation(b",");
                out.put_back(&taken, *piece);
            }
        }
        out.punctuation(b"}");
        Ok(())
    }

    fn array_text(
        &self,
        input: &mut Input<'_>,
        item_schema: &'s Schema,
        out: &mut QuotedWriter<'_>,
    ) -> Result<(), AvroJsonError> {
        input.enter()?;
        out.punctuation(b"[");
        let mut written = 0usize;
        loop {
            let count = input.block_count()?;
            if count == 0 {
                break;
            }
            for _ in 0..count {
                if written > 0 {
                    out.punctuation(b",");
                }
                self.value_text(input, item_schema, out)
                    .map_err(|error| error.within(&format!("[{written}]")))?;
                written += 1;
            }
        }
        out.punctuation(b"]");
        input.leave();
        Ok(())
    }
}

fn time(nanos_of_day: i64, digits: usize) -> Result<String, AvroJsonError> {
    let out_of_range = || AvroJsonError::out_of_range("time of day");
    let seconds = u32::try_from(nanos_of_day.div_euclid(1_000_000_000)).map_err(|_| out_of_range())?;
    let nanos = u32::try_from(nanos_of_day.rem_euclid(1_000_000_000)).map_err(|_| out_of_range())?;
    let time = NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos).ok_or_else(out_of_range)?;
    let text = time.format("%H:%M:%S%.9f").to_string();
    // %.9f always gives nine fraction digits; keep the logical type's precision.
    Ok(text[..text.len() - (9 - digits)].to_owned())
}

fn timestamp(nanos: i128, format: SecondsFormat, utc: bool) -> Result<String, AvroJsonError> {
    let out_of_range = || AvroJsonError::out_of_range("timestamp");
    let seconds = i64::try_from(nanos.div_euclid(1_000_000_000)).map_err(|_| out_of_range())?;
    let subsec = u32::try_from(nanos.rem_euclid(1_000_000_000)).map_err(|_| out_of_range())?;
    let time = DateTime::from_timestamp(seconds, subsec).ok_or_else(out_of_range)?;
    let text = time.to_rfc3339_opts(format, true);
    Ok(if utc {
        text
    } else {
        text.trim_end_matches('Z').to_owned()
    })
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value as Avro;
    use serde_json::json;

    use super::*;

    fn encode(schema: &Schema, value: Avro) -> Vec<u8> {
        apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap()
    }

    /// `value` encoded by apache_avro's writer, then decoded here.
    fn convert(schema: &str, value: Avro, tags: bool) -> Json {
        let schema = Schema::parse_str(schema).unwrap();
        let bytes = encode(&schema, value);
        decode_to_json(&bytes, &schema, AvroJsonOptions { union_type_tags: tags }).unwrap()
    }

    fn decode(schema: &str, bytes: &[u8]) -> Result<Json, AvroJsonError> {
        decode_to_json(bytes, &Schema::parse_str(schema).unwrap(), AvroJsonOptions::default())
    }

    #[test]
    fn places_the_decimal_point_exactly() {
        assert_eq!(place_decimal_point("1230", 2), "12.30");
        assert_eq!(place_decimal_point("-5", 3), "-0.005");
        assert_eq!(place_decimal_point("0", 2), "0.00");
        assert_eq!(
            place_decimal_point("123456789012345678901234567890", 0),
            "123456789012345678901234567890"
        );
    }

    #[test]
    fn logical_types_become_readable_strings() {
        let schema = r#"{"type":"record","name":"L","fields":[
            {"name":"d","type":{"type":"int","logicalType":"date"}},
            {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
            {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"lts","type":{"type":"long","logicalType":"local-timestamp-millis"}},
            {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
            {"name":"decf","type":{"type":"fixed","name":"Money","size":8,"logicalType":"decimal","precision":18,"scale":4}},
            {"name":"id","type":{"type":"string","logicalType":"uuid"}},
            {"name":"span","type":{"type":"fixed","name":"Span","size":12,"logicalType":"duration"}},
            {"name":"big","type":{"type":"bytes","logicalType":"big-decimal"}}]}"#;
        let value = Avro::Record(vec![
            ("d".into(), Avro::Date(19_783)),
            ("tm".into(), Avro::TimeMillis(45_296_789)),
            ("tu".into(), Avro::TimeMicros(45_296_789_012)),
            ("ts".into(), Avro::TimestampMillis(1_709_294_400_123)),
            ("tsu".into(), Avro::TimestampMicros(1_709_294_400_123_456)),
            ("lts".into(), Avro::LocalTimestampMillis(1_709_294_400_123)),
            (
                "dec".into(),
                Avro::Decimal(apache_avro::Decimal::from(vec![0xfb, 0x2e])),
            ), // -1234
            (
                "decf".into(),
                Avro::Decimal(apache_avro::Decimal::from(vec![0, 0, 0, 0, 0, 0, 0x30, 0x39])),
            ), // 12345
            (
                "id".into(),
                Avro::Uuid("6F1F3D4E-9D0C-4C59-9A0E-3F3B5F0A6C11".parse().unwrap()),
            ),
            (
                "span".into(),
                Avro::Duration(apache_avro::Duration::new(
                    apache_avro::Months::new(14),
                    apache_avro::Days::new(3),
                    apache_avro::Millis::new(86_400_001),
                )),
            ),
            ("big".into(), Avro::BigDecimal("-12345.678".parse().unwrap())),
        ]);
        assert_eq!(
            convert(schema, value, false),
            json!({
                "d": "2024-03-01",
                "tm": "12:34:56.789",
                "tu": "12:34:56.789012",
                "ts": "2024-03-01T12:00:00.123Z",
                "tsu": "2024-03-01T12:00:00.123456Z",
                "lts": "2024-03-01T12:00:00.123",
                "dec": "-12.34",
                "decf": "1.2345",
                "id": "6f1f3d4e-9d0c-4c59-9a0e-3f3b5f0a6c11",
                "span": {"months": 14, "days": 3, "milliseconds": 86_400_001},
                "big": "-12345.678",
            })
        );
    }

    #[test]
    fn unions_unwrap_or_keep_their_tag() {
        let schema = r#"{"type":"record","name":"U","namespace":"acme","fields":[
            {"name":"a","type":["null","string"]},
            {"name":"b","type":["null","string"]},
            {"name":"c","type":["null",{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"}]}]}]}"#;
        let value = Avro::Record(vec![
            ("a".into(), Avro::Union(0, Box::new(Avro::Null))),
            ("b".into(), Avro::Union(1, Box::new(Avro::String("hi".into())))),
            (
                "c".into(),
                Avro::Union(1, Box::new(Avro::Record(vec![("x".into(), Avro::Int(7))]))),
            ),
        ]);
        assert_eq!(
            convert(schema, value.clone(), false),
            json!({"a": null, "b": "hi", "c": {"x": 7}})
        );
        assert_eq!(
            convert(schema, value, true),
            json!({"a": null, "b": {"string": "hi"}, "c": {"acme.Inner": {"x": 7}}})
        );
    }

    #[test]
    fn primitives_enums_fixed_arrays_and_sorted_maps() {
        let schema = r#"{"type":"record","name":"P","fields":[
            {"name":"flag","type":"boolean"},
            {"name":"small","type":"int"},
            {"name":"big","type":"long"},
            {"name":"ratio","type":"float"},
            {"name":"precise","type":"double"},
            {"name":"raw","type":"bytes"},
            {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
            {"name":"suit","type":{"type":"enum","name":"Suit","symbols":["SPADES","HEARTS"]}},
            {"name":"list","type":{"type":"array","items":"long"}},
            {"name":"scores","type":{"type":"map","values":"double"}}]}"#;
        let value = Avro::Record(vec![
            ("flag".into(), Avro::Boolean(true)),
            ("small".into(), Avro::Int(i32::MIN)),
            ("big".into(), Avro::Long(i64::MAX)),
            ("ratio".into(), Avro::Float(0.5)),
            ("precise".into(), Avro::Double(f64::INFINITY)),
            ("raw".into(), Avro::Bytes(vec![0, 1, 254, 255])),
            ("hash".into(), Avro::Fixed(4, b"abcd".to_vec())),
            ("suit".into(), Avro::Enum(1, "HEARTS".into())),
            ("list".into(), Avro::Array(vec![Avro::Long(-1), Avro::Long(300)])),
            (
                "scores".into(),
                Avro::Map(
                    [
                        ("zeta".to_owned(), Avro::Double(1.0)),
                        ("alpha".to_owned(), Avro::Double(f64::NAN)),
                    ]
                    .into(),
                ),
            ),
        ]);
        let json = convert(schema, value, false);
        assert_eq!(
            json,
            json!({
                "flag": true, "small": i32::MIN, "big": i64::MAX, "ratio": 0.5, "precise": "Infinity",
                "raw": "AAH+/w==", "hash": "YWJjZA==", "suit": "HEARTS", "list": [-1, 300],
                "scores": {"alpha": "NaN", "zeta": 1.0},
            })
        );
        let keys: Vec<&String> = json["scores"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["alpha", "zeta"]);
    }

    #[test]
    fn blocks_with_a_negative_count_carry_their_size() {
        // Two blocks of longs, the first written as count -2 followed by its size in bytes (2), then the end.
        let bytes = [0x03, 0x04, 0x02, 0x04, 0x02, 0x06, 0x00];
        assert_eq!(
            decode(r#"{"type":"array","items":"long"}"#, &bytes),
            Ok(json!([1, 2, 3]))
        );
    }

    #[test]
    fn recursive_named_types_resolve() {
        let schema = r#"{"type":"record","name":"Node","namespace":"tree","fields":[
            {"name":"label","type":"string"},
            {"name":"children","type":{"type":"array","items":"tree.Node"}}]}"#;
        let leaf = |label: &str| {
            Avro::Record(vec![
                ("label".into(), Avro::String(label.into())),
                ("children".into(), Avro::Array(vec![])),
            ])
        };
        let root = Avro::Record(vec![
            ("label".into(), Avro::String("root".into())),
            ("children".into(), Avro::Array(vec![leaf("a"), leaf("b")])),
        ]);
        assert_eq!(
            convert(schema, root, false),
            json!({"label": "root", "children": [{"label": "a", "children": []}, {"label": "b", "children": []}]})
        );
    }

    #[test]
    fn bytes_that_do_not_fit_are_errors_with_their_path() {
        let record = r#"{"type":"record","name":"R","fields":[
            {"name":"id","type":"string"},
            {"name":"tags","type":{"type":"array","items":["null","string"]}}]}"#;
        // A 36-byte string that stops after one byte: apache_avro's reader would have read a null.
        let error = decode(record, &[0x48, b'6']).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the bytes do not fit the schema at $.id: 36 bytes needed, 1 left"
        );
        // Union branch 2 of a two-branch union, in the second array item.
        let error = decode(record, &[0x02, b'x', 0x04, 0x00, 0x04]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the bytes do not fit the schema at $.tags[1]: union branch 2 of 2 does not exist"
        );
        let error = decode(record, &[0x02, 0xff]).unwrap_err();
        assert!(
            error.to_string().contains("$.id: a string that is not UTF-8"),
            "{error}"
        );
        assert!(
            matches!(decode(record, &[0x01]), Err(AvroJsonError::Malformed { detail, .. }) if detail == "negative length -1")
        );
        assert!(
            matches!(decode(r#""long""#, &[0xff; 11]), Err(AvroJsonError::Malformed { detail, .. }) if detail.contains("longer than 10 bytes"))
        );
        assert!(
            matches!(decode(r#""long""#, &[0xff]), Err(AvroJsonError::Malformed { detail, .. }) if detail.contains("end inside a varint"))
        );
        assert!(decode(r#""boolean""#, &[2]).is_err());
        assert!(decode(r#"{"type":"enum","name":"E","symbols":["A"]}"#, &[0x02]).is_err());
        // Blocks of 65,536 nulls each: the first fits the value's allowance, the second is refused, as would be the
        // next thousands in a large record.
        let error = decode(
            r#"{"type":"array","items":"null"}"#,
            &[0x80, 0x80, 0x08, 0x80, 0x80, 0x08, 0x00],
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("a block of 65536 items, more than the rest of the value (1 bytes) can hold"),
            "{error}"
        );
        // Ten billion nulls announced in a few bytes are refused rather than allocated.
        let error = decode(
            r#"{"type":"array","items":"null"}"#,
            &[0x80, 0x90, 0xdf, 0xc0, 0x4a, 0x00],
        )
        .unwrap_err();
        assert!(error.to_string().contains("a block of 10000000000 items"), "{error}");
        assert!(matches!(
            decode(
                r#"{"type":"int","logicalType":"date"}"#,
                &[0xfe, 0xff, 0xff, 0xff, 0x0f]
            ),
            Err(AvroJsonError::OutOfRange { what: "date", .. })
        ));
    }

    #[test]
    fn nesting_is_bounded_so_a_recursive_schema_cannot_overflow_the_stack() {
        let list = r#"{"type":"record","name":"Link","fields":[{"name":"next","type":["null","Link"]}]}"#;
        // Each link is union branch 1 (another link); the last is branch 0 (null).
        let links = |count: usize| [vec![0x02; count], vec![0x00]].concat();
        let mut value = decode(list, &links(MAX_DEPTH - 1)).unwrap();
        let mut depth = 1;
        while let Some(next) = value.get_mut("next").map(Json::take).filter(|next| !next.is_null()) {
            value = next;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
        let error = decode(list, &links(1_000_000)).unwrap_err();
        assert!(error.to_string().contains("nested deeper than 128 levels"), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("the bytes do not fit the schema at $.next.next."),
            "{error}"
        );
    }

    #[test]
    fn special_floats_become_strings() {
        assert_eq!(float(f64::NAN), json!("NaN"));
        assert_eq!(float(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(float(1.5), json!(1.5));
    }

    /// Random schemas (nested records, unions, arrays, maps, enums, fixed, logical types) and values for them,
    /// written by apache_avro's writer.
    mod generated {
        use super::*;

        use apache_avro::types::Value as Avro;
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        use serde_json::{json, Value as Json};

        use crate::json_text::tests::AWKWARD;

        pub(super) struct Generator {
            rng: StdRng,
            names: usize,
        }

        impl Generator {
            pub(super) fn new(seed: u64) -> Self {
                Self {
                    rng: StdRng::seed_from_u64(seed),
                    names: 0,
                }
            }

            fn name(&mut self, prefix: &str) -> String {
                self.names += 1;
                format!("{prefix}{}", self.names)
            }

            /// A record schema, as JSON.
            pub(super) fn record(&mut self, depth: usize) -> Json {
                let count = self.rng.random_range(0..6);
                let fields: Vec<Json> = (0..count)
                    .map(|index| json!({"name": format!("f{index}"), "type": self.schema(depth + 1)}))
                    .collect();
                json!({"type": "record", "name": self.name("R"), "fields": fields})
            }

            fn schema(&mut self, depth: usize) -> Json {
                let nested = if depth < 4 { 12 } else { 8 };
                match self.rng.random_range(0..nested + 4) {
                    0 => json!("null"),
                    1 => json!("boolean"),
                    2 => json!("int"),
                    3 => json!("long"),
                    4 => json!("float"),
                    5 => json!("double"),
                    6 => json!("bytes"),
                    7 => json!({"type": "enum", "name": self.name("E"), "symbols": ["A", "B", "C"]}),
                    8 => self.record(depth),
                    9 => json!({"type": "array", "items": self.schema(depth + 1)}),
                    10 => json!({"type": "map", "values": self.schema(depth + 1)}),
                    11 => {
                        let branch = loop {
                            let branch = self.schema(depth + 1);
                            // A union holds no union, and null once.
                            if !branch.is_array() && branch != json!("null") {
                                break branch;
                            }
                        };
                        json!(["null", branch])
                    }
                    12 => json!({"type": "fixed", "name": self.name("F"), "size": 3}),
                    13 => json!({"type": "long", "logicalType": "timestamp-millis"}),
                    14 => json!({"type": "int", "logicalType": "date"}),
                    _ => match self.rng.random_range(0..8) {
                        0 => json!({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}),
                        1 => json!({"type": "fixed", "name": self.name("D"), "size": 8, "logicalType": "decimal",
                            "precision": 18, "scale": 4}),
                        2 => json!({"type": "string", "logicalType": "uuid"}),
                        3 => json!({"type": "fixed", "name": self.name("U"), "size": 16, "logicalType": "uuid"}),
                        4 => json!({"type": "fixed", "name": self.name("P"), "size": 12, "logicalType": "duration"}),
                        _ => json!("string"),
                    },
                }
            }

            fn text(&mut self) -> String {
                let mut text = String::new();
                for _ in 0..self.rng.random_range(0..3) {
                    text.push_str(AWKWARD[self.rng.random_range(0..AWKWARD.len())]);
                }
                text
            }

            pub(super) fn value(&mut self, schema: &Schema) -> Avro {
                match schema {
                    Schema::Null => Avro::Null,
                    Schema::Boolean => Avro::Boolean(self.rng.random()),
                    Schema::Int => Avro::Int(self.rng.random()),
                    Schema::Long => Avro::Long(self.rng.random()),
                    Schema::Float => Avro::Float(self.rng.random::<f32>() * 1e6 - 5e5),
                    Schema::Double => Avro::Double(match self.rng.random_range(0..6) {
                        0 => f64::NAN,
                        1 => f64::NEG_INFINITY,
                        _ => self.rng.random::<f64>() * 1e12 - 5e11,
                    }),
                    Schema::Bytes => Avro::Bytes(self.text().into_bytes()),
                    Schema::String => Avro::String(self.text()),
                    Schema::Enum(enumeration) => {
                        let index = self.rng.random_range(0..enumeration.symbols.len());
                        Avro::Enum(index as u32, enumeration.symbols[index].clone())
                    }
                    Schema::Fixed(fixed) => {
                        Avro::Fixed(fixed.size, (0..fixed.size).map(|_| self.rng.random()).collect())
                    }
                    Schema::TimestampMillis => {
                        Avro::TimestampMillis(self.rng.random_range(-1_000_000_000_000..4_000_000_000_000))
                    }
                    Schema::Date => Avro::Date(self.rng.random_range(-100_000..100_000)),
                    Schema::Decimal(decimal) => {
                        let bound = 10i64.pow(u32::try_from(decimal.precision).unwrap());
                        let unscaled = num_bigint::BigInt::from(self.rng.random_range(-bound + 1..bound));
                        Avro::Decimal(unscaled.to_signed_bytes_be().into())
                    }
                    Schema::Uuid(_) => Avro::Uuid(uuid::Uuid::from_bytes(self.rng.random())),
                    Schema::Duration(_) => Avro::Duration(apache_avro::Duration::new(
                        apache_avro::Months::new(self.rng.random()),
                        apache_avro::Days::new(self.rng.random()),
                        apache_avro::Millis::new(self.rng.random()),
                    )),
                    Schema::Array(array) => Avro::Array(
                        (0..self.rng.random_range(0..4))
                            .map(|_| self.value(&array.items))
                            .collect(),
                    ),
                    Schema::Map(map) => Avro::Map(
                        (0..self.rng.random_range(0..4))
                            .map(|_| (self.text(), self.value(&map.types)))
                            .collect(),
                    ),
                    Schema::Union(union) => {
                        let index = self.rng.random_range(0..union.variants().len());
                        Avro::Union(index as u32, Box::new(self.value(&union.variants()[index])))
                    }
                    Schema::Record(record) => Avro::Record(
                        record
                            .fields
                            .iter()
                            .map(|field| (field.name.clone(), self.value(&field.schema)))
                            .collect(),
                    ),
                    other => unreachable!("not generated: {other:?}"),
                }
            }

            /// Paths of fields to capture, from `value`'s own fields down, and some that are not there.
            pub(super) fn paths(&mut self, value: &Json) -> Vec<Vec<String>> {
                let mut paths = Vec::new();
                for _ in 0..self.rng.random_range(1..4) {
                    let mut path = Vec::new();
                    let mut at = value;
                    while let Some(object) = at.as_object().filter(|object| !object.is_empty()) {
                        let Some((name, inner)) = object.iter().nth(self.rng.random_range(0..object.len())) else {
                            break;
                        };
                        // A map's keys are any text, which a path written with dots cannot hold.
                        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                            break;
                        }
                        path.push(name.clone());
                        at = inner;
                        if self.rng.random_range(0..3) == 0 {
                            break;
                        }
                    }
                    if self.rng.random_range(0..4) == 0 {
                        path.push("absent".to_owned());
                    }
                    if !path.is_empty() {
                        paths.push(path);
                    }
                }
                paths
            }

            pub(super) fn truncate_at(&mut self, len: usize) -> usize {
                self.rng.random_range(0..len.max(1))
            }
        }
    }

    /// What the decoder writes is written back as the same Avro (by `encode::avro_value`, as a topic-processor
    /// writes Avro in and out): decoded again, it is the same JSON, for generated schemas and values of every type
    /// the decoder shows as text (bytes and fixed as base64, decimals, UUIDs, durations, timestamps, dates), with
    /// unions unwrapped and with their type tags.
    #[test]
    fn what_the_decoder_writes_encodes_back_to_the_same_avro() {
        let mut generator = generated::Generator::new(29);
        for case in 0..2000 {
            let schema = Schema::parse(&generator.record(0)).unwrap();
            let bytes = encode(&schema, generator.value(&schema));
            for union_type_tags in [false, true] {
                let options = AvroJsonOptions { union_type_tags };
                let tree = decode_to_json(&bytes, &schema, options).unwrap();
                let again =
                    crate::schema::encode::avro_value(&tree, &schema, crate::schema::encode::BinaryText::Base64)
                        .and_then(|value| value.resolve(&schema))
                        .unwrap_or_else(|error| panic!("case {case}, tags {union_type_tags}: {error}\n{tree}"));
                let read_again = decode_to_json(&encode(&schema, again), &schema, options).unwrap();
                assert_eq!(read_again, tree, "case {case}, tags {union_type_tags}");
            }
        }
    }

    /// The text written straight from the bytes is serde_json's text of the value `decode_to_json` builds, as
    /// a JSON string, and what it captures is what the same paths select in that value; a value cut short fails
    /// with the same error.
    #[test]
    fn text_written_straight_is_serde_jsons_text_of_the_value() {
        let mut generator = generated::Generator::new(17);
        let mut captured_values = 0;
        for case in 0..3000 {
            let schema = Schema::parse(&generator.record(0)).unwrap();
            let bytes = encode(&schema, generator.value(&schema));
            for union_type_tags in [false, true] {
                let options = AvroJsonOptions { union_type_tags };
                let tree = decode_to_json(&bytes, &schema, options).unwrap();
                let paths = generator.paths(&tree);
                let capture = Capture::fields(paths.iter().map(|path| path.iter().map(String::as_str).collect()));
                let written = decode_to_quoted_json(&bytes, &schema, options, &capture)
                    .unwrap()
                    .expect("a record");
                let text = serde_json::to_string(&tree).unwrap();
                assert_eq!(
                    written.text.quoted(),
                    serde_json::to_string(&text).unwrap().as_bytes(),
                    "case {case}"
                );
                assert_eq!(written.text.text_len(), text.len(), "case {case}");
                for path in &paths {
                    for suffix in ["", "[*]", "[0]"] {
                        let path: crate::json_path::JsonPath = format!("$.{}{suffix}", path.join(".")).parse().unwrap();
                        assert_eq!(
                            capture.select(&written.captured, &path),
                            path.select(&tree),
                            "case {case}: {path}"
                        );
                        assert_eq!(
                            capture.select_one(&written.captured, &path),
                            path.select_one(&tree),
                            "case {case}: {path}"
                        );
                        captured_values += path.select(&tree).len();
                    }
                }
                let cut = &bytes[..generator.truncate_at(bytes.len())];
                if let Err(error) = decode_to_json(cut, &schema, options) {
                    assert_eq!(
                        decode_to_quoted_json(cut, &schema, options, &capture).err(),
                        Some(error),
                        "case {case}, cut to {} bytes",
                        cut.len()
                    );
                }
            }
        }
        assert!(
            captured_values > 3000,
            "the paths selected too little to check: {captured_values}"
        );
    }

    #[test]
    fn only_records_are_written_straight() {
        let capture = Capture::fields([vec!["a"]]);
        let options = AvroJsonOptions::default();
        let string = Schema::parse_str(r#""string""#).unwrap();
        assert!(
            decode_to_quoted_json(&encode(&string, Avro::String("x".into())), &string, options, &capture)
                .unwrap()
                .is_none()
        );
    }

    /// A map's keys come sorted, and of a key written twice the last value stays, in the text as in the tree;
    /// here in two blocks, nested in another map, and next to a field after it.
    #[test]
    fn maps_in_text_sort_keys_and_keep_the_last_of_a_repeated_one() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[
                {"name":"m","type":{"type":"map","values":{"type":"map","values":"long"}}},
                {"name":"after","type":"string"}]}"#,
        )
        .unwrap();
        // Avro's binary encoding by hand, since no writer writes a key twice: blocks of (key, value) pairs with a
        // zigzag count, ended by a count of 0.
        let inner = |pairs: &[(&str, u8)]| {
            let mut bytes = vec![u8::try_from(pairs.len() * 2).unwrap()];
            for (key, value) in pairs {
                bytes.push(u8::try_from(key.len() * 2).unwrap());
                bytes.extend_from_slice(key.as_bytes());
                bytes.push(value * 2);
            }
            bytes.push(0);
            bytes
        };
        let mut bytes = vec![4, 2, b'y'];
        bytes.extend(inner(&[("b", 1), ("a", 2)]));
        bytes.extend([2, b'x']);
        bytes.extend(inner(&[("b", 3), ("a", 4), ("b", 5)]));
        bytes.extend([2, 2, b'y']);
        // In order, but twice.
        bytes.extend(inner(&[("c", 6), ("c", 7)]));
        bytes.push(0);
        bytes.extend([4, b'o', b'k']);
        let options = AvroJsonOptions::default();
        let tree = decode_to_json(&bytes, &schema, options).unwrap();
        assert_eq!(
            tree,
            serde_json::json!({"m": {"x": {"a": 4, "b": 5}, "y": {"c": 7}}, "after": "ok"})
        );
        let written = decode_to_quoted_json(&bytes, &schema, options, &Capture::fields([vec!["after"]]))
            .unwrap()
            .unwrap();
        let text = serde_json::to_string(&tree).unwrap();
        assert_eq!(written.text.quoted(), serde_json::to_string(&text).unwrap().as_bytes());
        assert_eq!(written.text.text_len(), text.len());
    }

    #[test]
    fn captures_merge_and_a_whole_field_keeps_everything_below() {
        let capture = Capture::fields([vec!["a", "b"], vec!["a"], vec!["a", "c"], vec!["d", "e"]]);
        let field = |name: &str, slot, kept| CapturedField {
            name: name.into(),
            slot,
            kept,
        };
        assert_eq!(
            capture,
            Capture {
                fields: vec![
                    field("a", 0, Kept::Whole),
                    field("d", 1, Kept::Fields(vec![field("e", 2, Kept::Whole)])),
                ],
                slots: 3,
            }
        );
    }
}
