//! Avro values to readable JSON, walking the value together with its writer schema (a decimal's scale lives only in
//! the schema). The mapping:
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

use apache_avro::schema::{Name, RecordSchema, Schema};
use apache_avro::types::Value as Avro;
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat};
use serde_json::{Map, Number, Value as Json};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AvroJsonError {
    #[error("the value does not fit its schema at {path}: {detail}")]
    Mismatch { path: String, detail: String },
    #[error("{what} out of range at {path}")]
    OutOfRange { what: &'static str, path: String },
    #[error("named type `{0}` is not defined in the schema")]
    UnknownName(String),
}

#[derive(Debug, Clone, Copy, Default)]
pub struct AvroJsonOptions {
    pub union_type_tags: bool,
}

/// Converts `value`, written with `schema`, to JSON. The value is consumed: its strings move into the JSON
/// instead of being copied.
pub fn to_json(value: Avro, schema: &Schema, options: AvroJsonOptions) -> Result<Json, AvroJsonError> {
    Converter { root: schema, options }
        .convert(value, schema)
        .map_err(|error| error.within("$"))
}

impl AvroJsonError {
    /// The error as seen from the enclosing value: paths are written from the inside out, so that the path of the
    /// failing value is formatted only when something fails.
    fn within(mut self, segment: &str) -> Self {
        match &mut self {
            Self::Mismatch { path, .. } | Self::OutOfRange { path, .. } => path.insert_str(0, segment),
            Self::UnknownName(_) => {}
        }
        self
    }
}

struct Converter<'s> {
    root: &'s Schema,
    options: AvroJsonOptions,
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
fn branch_name(schema: &Schema) -> String {
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

impl<'s> Converter<'s> {
    fn resolve(&self, schema: &'s Schema) -> Result<&'s Schema, AvroJsonError> {
        match schema {
            Schema::Ref { name } => {
                find_named(self.root, name).ok_or_else(|| AvroJsonError::UnknownName(name.fullname(None)))
            }
            other => Ok(other),
        }
    }

    fn mismatch(value: &Avro, schema: &Schema) -> AvroJsonError {
        AvroJsonError::Mismatch {
            path: String::new(),
            detail: format!("{value:?} against {}", branch_name(schema)),
        }
    }

    fn convert(&self, value: Avro, schema: &'s Schema) -> Result<Json, AvroJsonError> {
        let schema = self.resolve(schema)?;
        Ok(match (value, schema) {
            (Avro::Union(index, inner), Schema::Union(union)) => {
                let Some(branch) = union.variants().get(index as usize) else {
                    return Err(Self::mismatch(&Avro::Union(index, inner), schema));
                };
                let converted = self.convert(*inner, branch)?;
                let branch = self.resolve(branch)?;
                if self.options.union_type_tags && !matches!(branch, Schema::Null) {
                    let mut tagged = Map::new();
                    tagged.insert(branch_name(branch), converted);
                    Json::Object(tagged)
                } else {
                    converted
                }
            }
            (Avro::Null, _) => Json::Null,
            (Avro::Boolean(flag), _) => Json::Bool(flag),
            (Avro::Int(number), _) => Json::from(number),
            (Avro::Long(number), _) => Json::from(number),
            (Avro::Float(number), _) => float(f64::from(number)),
            (Avro::Double(number), _) => float(number),
            (Avro::String(text), _) => Json::String(text),
            (Avro::Enum(_, symbol), _) => Json::String(symbol),
            (Avro::Decimal(decimal), Schema::Decimal(decimal_schema)) => {
                let unscaled = num_bigint::BigInt::from(decimal);
                Json::String(place_decimal_point(&unscaled.to_string(), decimal_schema.scale))
            }
            (Avro::BigDecimal(decimal), _) => Json::String(decimal.to_plain_string()),
            (Avro::Bytes(bytes), _) | (Avro::Fixed(_, bytes), _) => base64(&bytes),
            (Avro::Uuid(uuid), _) => Json::String(uuid.to_string()),
            (Avro::Date(days), _) => {
                let date = NaiveDate::from_epoch_days(days).ok_or_else(|| AvroJsonError::OutOfRange {
                    what: "date",
                    path: String::new(),
                })?;
                Json::String(date.format("%Y-%m-%d").to_string())
            }
            (Avro::TimeMillis(millis), _) => Json::String(time(i64::from(millis) * 1_000_000, 3)?),
            (Avro::TimeMicros(micros), _) => Json::String(time(micros * 1_000, 6)?),
            (Avro::TimestampMillis(millis), _) => {
                Json::String(timestamp(i128::from(millis) * 1_000_000, SecondsFormat::Millis, true)?)
            }
            (Avro::TimestampMicros(micros), _) => {
                Json::String(timestamp(i128::from(micros) * 1_000, SecondsFormat::Micros, true)?)
            }
            (Avro::TimestampNanos(nanos), _) => Json::String(timestamp(i128::from(nanos), SecondsFormat::Nanos, true)?),
            (Avro::LocalTimestampMillis(millis), _) => {
                Json::String(timestamp(i128::from(millis) * 1_000_000, SecondsFormat::Millis, false)?)
            }
            (Avro::LocalTimestampMicros(micros), _) => {
                Json::String(timestamp(i128::from(micros) * 1_000, SecondsFormat::Micros, false)?)
            }
            (Avro::LocalTimestampNanos(nanos), _) => {
                Json::String(timestamp(i128::from(nanos), SecondsFormat::Nanos, false)?)
            }
            (Avro::Duration(duration), _) => serde_json::json!({
                "months": u32::from(duration.months()),
                "days": u32::from(duration.days()),
                "milliseconds": u32::from(duration.millis()),
            }),
            (Avro::Array(items), Schema::Array(array)) => {
                let mut converted = Vec::with_capacity(items.len());
                for (index, item) in items.into_iter().enumerate() {
                    let item = self
                        .convert(item, &array.items)
                        .map_err(|error| error.within(&format!("[{index}]")))?;
                    converted.push(item);
                }
                Json::Array(converted)
            }
            (Avro::Map(entries), Schema::Map(map)) => {
                let mut entries: Vec<(String, Avro)> = entries.into_iter().collect();
                entries.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
                let mut converted = Map::with_capacity(entries.len());
                for (key, value) in entries {
                    let value = self
                        .convert(value, &map.types)
                        .map_err(|error| error.within(&format!("['{key}']")))?;
                    converted.insert(key, value);
                }
                Json::Object(converted)
            }
            (Avro::Record(fields), Schema::Record(record)) => self.record(fields, record)?,
            (value, schema) => return Err(Self::mismatch(&value, schema)),
        })
    }

    fn record(&self, fields: Vec<(String, Avro)>, record: &'s RecordSchema) -> Result<Json, AvroJsonError> {
        let mut converted = Map::with_capacity(fields.len());
        for (position, (name, value)) in fields.into_iter().enumerate() {
            // A decoded record has the schema's fields in the schema's order; the lookup is for anything else.
            let field = match record.fields.get(position) {
                Some(field) if field.name == name => field,
                _ => record
                    .lookup
                    .get(&name)
                    .and_then(|position| record.fields.get(*position))
                    .ok_or_else(|| AvroJsonError::Mismatch {
                        path: String::new(),
                        detail: format!("field `{name}` is not in record {}", record.name.fullname(None)),
                    })?,
            };
            let value = self
                .convert(value, &field.schema)
                .map_err(|error| error.within(&format!(".{name}")))?;
            converted.insert(name, value);
        }
        Ok(Json::Object(converted))
    }
}

fn time(nanos_of_day: i64, digits: usize) -> Result<String, AvroJsonError> {
    let out_of_range = || AvroJsonError::OutOfRange {
        what: "time of day",
        path: String::new(),
    };
    let seconds = u32::try_from(nanos_of_day.div_euclid(1_000_000_000)).map_err(|_| out_of_range())?;
    let nanos = u32::try_from(nanos_of_day.rem_euclid(1_000_000_000)).map_err(|_| out_of_range())?;
    let time = NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos).ok_or_else(out_of_range)?;
    let text = time.format("%H:%M:%S%.9f").to_string();
    // %.9f always gives nine fraction digits; keep the logical type's precision.
    Ok(text[..text.len() - (9 - digits)].to_owned())
}

fn timestamp(nanos: i128, format: SecondsFormat, utc: bool) -> Result<String, AvroJsonError> {
    let out_of_range = || AvroJsonError::OutOfRange {
        what: "timestamp",
        path: String::new(),
    };
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

    fn convert(schema: &str, value: Avro, tags: bool) -> Json {
        let schema = Schema::parse_str(schema).unwrap();
        // Round-trip through the binary encoding so that the value is what a reader really produces.
        let bytes = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap();
        let read = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .unwrap()
            .read_value(&mut bytes.as_slice())
            .unwrap();
        to_json(read, &schema, AvroJsonOptions { union_type_tags: tags }).unwrap()
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
            {"name":"id","type":{"type":"string","logicalType":"uuid"}}]}"#;
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
                Avro::Uuid("6f1f3d4e-9d0c-4c59-9a0e-3f3b5f0a6c11".parse().unwrap()),
            ),
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
    fn special_floats_become_strings() {
        assert_eq!(float(f64::NAN), json!("NaN"));
        assert_eq!(float(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(float(1.5), json!(1.5));
    }
}
