//! Confluent-framed Protobuf (magic byte 0, a big-endian 4-byte schema id, the message indexes, the message) decoded
//! to protobuf's canonical JSON, and JSON encoded to it. The schema and the schemas it imports (its references) are fetched from the
//! registry once per id and compiled with protox; a registry may hold a schema as `.proto` text or, as Apicurio
//! keeps what confluent-kafka's serializers register, as a base64 `FileDescriptorProto`: both are read. Google's
//! well-known types are protox's own.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use schema_registry_converter::async_impl::schema_registry::{
    get_referenced_schema, get_schema_by_id, get_schema_by_subject, SrSettings,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    RegisteredSchema, SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde_json::Value;
use tokio::sync::RwLock;

use super::encode::{classify, EncodeError, WriterSchema};
use super::registry::{classified, confluent_header, describe};
use super::DecodeError;

/// A schema compiled, with the name of its own file in the pool.
struct Compiled {
    pool: DescriptorPool,
    file: String,
}

pub(crate) struct ProtobufRecordDecoder {
    settings: SrSettings,
    /// By schema id; a schema that cannot be used is kept as its error, so that its records fail without asking the
    /// registry each time. An unreachable registry is not kept.
    compiled: RwLock<HashMap<u32, Result<Arc<Compiled>, String>>>,
}

impl std::fmt::Debug for ProtobufRecordDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtobufRecordDecoder").finish_non_exhaustive()
    }
}

impl ProtobufRecordDecoder {
    pub(crate) fn new(settings: SrSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            compiled: RwLock::default(),
        })
    }

    pub(crate) async fn decode(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        let (schema_id, framed) = confluent_header(bytes, "Protobuf")?;
        let failed = |reason: String| DecodeError::Protobuf { schema_id, reason };
        let (indexes, message) = message_indexes(framed).map_err(failed)?;
        let compiled = self.compiled(schema_id).await?;
        let descriptor = message_at(&compiled, &indexes).map_err(failed)?;
        let decoded = DynamicMessage::decode(descriptor.clone(), message)
            .map_err(|error| failed(format!("not a valid `{}`: {error}", descriptor.full_name())))?;
        serde_json::to_value(&decoded).map_err(|error| failed(error.to_string()))
    }

    async fn compiled(&self, schema_id: u32) -> Result<Arc<Compiled>, DecodeError> {
        let failed = |reason: &String| DecodeError::Protobuf {
            schema_id,
            reason: reason.clone(),
        };
        if let Some(known) = self.compiled.read().await.get(&schema_id) {
            return known.as_ref().map(Arc::clone).map_err(failed);
        }
        let compiled = match self.fetch(schema_id).await {
            Ok(compiled) => Ok(Arc::new(compiled)),
            Err(Fetch::Registry(error)) => {
                return Err(classified(schema_id, &error, |schema_id, reason| {
                    DecodeError::Protobuf { schema_id, reason }
                }))
            }
            Err(Fetch::Schema(reason)) => Err(reason),
        };
        self.compiled.write().await.insert(schema_id, compiled.clone());
        compiled.map_err(|reason| failed(&reason))
    }

    async fn fetch(&self, schema_id: u32) -> Result<Compiled, Fetch> {
        let schema = get_schema_by_id(schema_id, &self.settings).await.map_err(Fetch::from)?;
        compile(&self.settings, &schema, schema_id).await
    }
}

/// A registered Protobuf schema compiled with the schemas it imports (its references, and those they import, each
/// under the name it is imported by).
async fn compile(settings: &SrSettings, schema: &RegisteredSchema, schema_id: u32) -> Result<Compiled, Fetch> {
    if schema.schema_type != SchemaType::Protobuf {
        return Err(Fetch::Schema(format!(
            "schema id {schema_id} is a {:?} schema, not Protobuf",
            schema.schema_type
        )));
    }
    let mut files = HashMap::new();
    let mut pending: Vec<_> = schema.references.clone();
    while let Some(reference) = pending.pop() {
        if files.contains_key(&reference.name) {
            continue;
        }
        let referenced = get_referenced_schema(settings, &reference).await.map_err(Fetch::from)?;
        pending.extend(referenced.references.iter().cloned());
        let file = schema_file(&reference.name, &referenced.schema).map_err(Fetch::Schema)?;
        files.insert(reference.name.clone(), file);
    }
    let main = schema_file(&format!("schema-{schema_id}.proto"), &schema.schema).map_err(Fetch::Schema)?;
    let name = main.name().to_owned();
    files.insert(name.clone(), main);
    let mut resolver = ChainFileResolver::new();
    resolver.add(Files(files));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler
        .open_file(&name)
        .map_err(|error| Fetch::Schema(format!("the schema does not compile: {error}")))?;
    Ok(Compiled {
        pool: compiler.descriptor_pool(),
        file: name,
    })
}

/// A Glue schema version's definition (`.proto` text, importing at most Google's well-known types) compiled, and
/// every message of its file in Glue's order: all of them, nested ones included, sorted by full name (the index a
/// Glue record names its message by).
pub(crate) fn compile_glue_schema(definition: &str) -> Result<Vec<MessageDescriptor>, String> {
    let name = "glue-schema.proto";
    let file = File::from_source(name, definition).map_err(|error| format!("the schema does not parse: {error}"))?;
    let mut resolver = ChainFileResolver::new();
    resolver.add(Files(HashMap::from([(name.to_owned(), file)])));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler
        .open_file(name)
        .map_err(|error| format!("the schema does not compile: {error}"))?;
    let pool = compiler.descriptor_pool();
    let file = pool
        .get_file_by_name(name)
        .ok_or_else(|| format!("the compiled schema has no file `{name}`"))?;
    let mut messages: Vec<MessageDescriptor> = Vec::new();
    let mut level: Vec<MessageDescriptor> = file.messages().collect();
    while !level.is_empty() {
        let next = level.iter().flat_map(MessageDescriptor::child_messages).collect();
        messages.append(&mut level);
        level = next;
    }
    messages.sort_by(|left, right| left.full_name().cmp(right.full_name()));
    Ok(messages)
}

/// A Glue Protobuf payload (the message's index as a varint, then the message) as canonical JSON.
pub(crate) fn decode_glue_message(messages: &[MessageDescriptor], payload: &[u8]) -> Result<Value, String> {
    let (index, message) = varint(payload).ok_or("the message index ends early")?;
    let descriptor = usize::try_from(index)
        .ok()
        .and_then(|index| messages.get(index))
        .ok_or_else(|| {
            format!(
                "message index {index} does not exist: the schema has {} messages",
                messages.len()
            )
        })?;
    let decoded = DynamicMessage::decode(descriptor.clone(), message)
        .map_err(|error| format!("not a valid `{}`: {error}", descriptor.full_name()))?;
    serde_json::to_value(&decoded).map_err(|error| error.to_string())
}

/// An unsigned varint and the bytes after it.
fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value: u64 = 0;
    for (at, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * at);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[at + 1..]));
        }
    }
    None
}

/// Why a schema could not be had: the registry (which may answer later), or the schema itself.
enum Fetch {
    Registry(SRCError),
    Schema(String),
}

impl From<SRCError> for Fetch {
    fn from(error: SRCError) -> Self {
        if error.retriable {
            Self::Registry(error)
        } else {
            Self::Schema(describe(&error))
        }
    }
}

/// The registry's files, by name.
struct Files(HashMap<String, File>);

impl FileResolver for Files {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| protox::Error::file_not_found(name))
    }
}

/// A schema as the registry holds it: `.proto` text, or a base64 `FileDescriptorProto` (which names itself).
fn schema_file(name: &str, schema: &str) -> Result<File, String> {
    let serialized = (!schema.contains(char::is_whitespace))
        .then(|| base64::engine::general_purpose::STANDARD.decode(schema).ok())
        .flatten()
        .and_then(|bytes| File::decode_file_descriptor_proto(bytes.as_slice()).ok());
    match serialized {
        Some(mut file) if file.name().is_empty() => {
            file = File::from_file_descriptor_proto(prost_types::FileDescriptorProto {
                name: Some(name.to_owned()),
                ..file.file_descriptor_proto().clone()
            });
            Ok(file)
        }
        Some(file) => Ok(file),
        None => File::from_source(name, schema).map_err(|error| format!("`{name}` does not parse: {error}")),
    }
}

/// The message indexes after the schema id, and the message after them. Confluent writes a count and that many
/// indexes as zigzag varints, and a lone 0 for the first message of the file.
fn message_indexes(bytes: &[u8]) -> Result<(Vec<usize>, &[u8]), String> {
    let mut rest = bytes;
    let mut next = || -> Result<i64, String> {
        let (value, after) = varint(rest).ok_or("the message indexes end early")?;
        rest = after;
        // Zigzag: 0, -1, 1, -2, ... as 0, 1, 2, 3, ...
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    };
    let count = next()?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if !(1..=64).contains(&count) {
        return Err(format!("{count} message indexes"));
    }
    let mut indexes = Vec::new();
    for _ in 0..count {
        let index = next()?;
        indexes.push(usize::try_from(index).map_err(|_| format!("message index {index}"))?);
    }
    Ok((indexes, rest))
}

/// The message the indexes lead to: the first into the file's messages, each next into the nested ones.
fn message_at(compiled: &Compiled, indexes: &[usize]) -> Result<MessageDescriptor, String> {
    let file = compiled
        .pool
        .get_file_by_name(&compiled.file)
        .ok_or_else(|| format!("the compiled schema has no file `{}`", compiled.file))?;
    let missing = |at: usize, count: usize, within: &str| {
        format!("message index {indexes:?} does not exist: {within} has {count} messages, no index {at}")
    };
    let mut steps = indexes.iter();
    let first = *steps.next().unwrap_or(&0);
    let mut message = file
        .messages()
        .nth(first)
        .ok_or_else(|| missing(first, file.messages().len(), file.name()))?;
    for &index in steps {
        let child = message.child_messages().nth(index);
        message = child.ok_or_else(|| missing(index, message.child_messages().len(), message.full_name()))?;
    }
    Ok(message)
}

/// Writes JSON values as Confluent-framed Protobuf: the schema registered (or looked up) once per subject or id and
/// compiled, the JSON read with protobuf's JSON mapping into the message (`message`, by default the file's first),
/// framed with the schema id and the message's indexes.
pub(crate) struct ProtobufRecordEncoder {
    settings: SrSettings,
    message: Option<String>,
    /// By the schema's subject or id.
    schemas: RwLock<HashMap<String, (u32, Arc<Compiled>)>>,
}

impl std::fmt::Debug for ProtobufRecordEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtobufRecordEncoder")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl ProtobufRecordEncoder {
    /// `message`: the full name of the message to write (`package.Message`); `None` takes the file's first.
    pub(crate) fn new(settings: SrSettings, message: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            settings,
            message,
            schemas: RwLock::default(),
        })
    }

    pub(crate) async fn encode(
        &self,
        value: &Value,
        topic: &str,
        is_key: bool,
        schema: &WriterSchema,
    ) -> Result<Vec<u8>, EncodeError> {
        let (schema_id, compiled) = self.schema(topic, is_key, schema).await?;
        let mismatch = |reason: String| EncodeError::Mismatch { schema_id, reason };
        let file = compiled
            .pool
            .get_file_by_name(&compiled.file)
            .ok_or_else(|| mismatch(format!("the compiled schema has no file `{}`", compiled.file)))?;
        let descriptor = match &self.message {
            Some(name) => compiled
                .pool
                .get_message_by_name(name)
                .filter(|message| message.parent_file().name() == file.name())
                .ok_or_else(|| mismatch(format!("the schema has no message `{name}`")))?,
            None => file
                .messages()
                .next()
                .ok_or_else(|| mismatch("the schema has no message".to_owned()))?,
        };
        let message = DynamicMessage::deserialize(descriptor.clone(), value)
            .map_err(|error| mismatch(format!("not a `{}`: {error}", descriptor.full_name())))?;
        let mut framed = vec![0];
        framed.extend_from_slice(&schema_id.to_be_bytes());
        write_message_indexes(&indexes_of(&descriptor), &mut framed);
        framed.extend_from_slice(&message.encode_to_vec());
        Ok(framed)
    }

    async fn schema(
        &self,
        topic: &str,
        is_key: bool,
        schema: &WriterSchema,
    ) -> Result<(u32, Arc<Compiled>), EncodeError> {
        let strategy = match schema {
            WriterSchema::Supplied(text) => Some(SubjectNameStrategy::TopicNameStrategyWithSchema(
                topic.to_owned(),
                is_key,
                SuppliedSchema::new(None, SchemaType::Protobuf, text.clone()),
            )),
            WriterSchema::Subject(subject) => Some(SubjectNameStrategy::RecordNameStrategy(subject.clone())),
            WriterSchema::TopicLatest => Some(SubjectNameStrategy::TopicNameStrategy(topic.to_owned(), is_key)),
            WriterSchema::Id(_) => None,
        };
        let what = match (&strategy, schema) {
            (Some(strategy), _) => format!(
                "subject `{}`",
                strategy
                    .get_subject()
                    .map_err(|error| classify("the subject".into(), &error))?
            ),
            (None, WriterSchema::Id(id)) => format!("schema id {id}"),
            (None, _) => String::new(),
        };
        if let Some(known) = self.schemas.read().await.get(&what) {
            return Ok(known.clone());
        }
        let registered = match (&strategy, schema) {
            (Some(strategy), _) => get_schema_by_subject(&self.settings, strategy).await,
            (None, WriterSchema::Id(id)) => get_schema_by_id(*id, &self.settings).await,
            (None, _) => {
                return Err(EncodeError::Schema {
                    what,
                    reason: "no schema named".into(),
                })
            }
        }
        .map_err(|error| classify(what.clone(), &error))?;
        let compiled = match compile(&self.settings, &registered, registered.id).await {
            Ok(compiled) => Arc::new(compiled),
            Err(Fetch::Registry(error)) => return Err(classify(what, &error)),
            Err(Fetch::Schema(reason)) => return Err(EncodeError::Schema { what, reason }),
        };
        let found = (registered.id, compiled);
        self.schemas.write().await.insert(what, found.clone());
        Ok(found)
    }
}

/// The message's indexes in its file: its place among the file's messages, then among each parent's nested ones.
fn indexes_of(message: &MessageDescriptor) -> Vec<usize> {
    let mut indexes = Vec::new();
    let mut current = message.clone();
    loop {
        match current.parent_message() {
            Some(parent) => {
                let at = parent
                    .child_messages()
                    .position(|child| child.full_name() == current.full_name())
                    .unwrap_or_default();
                indexes.push(at);
                current = parent;
            }
            None => {
                let at = current
                    .parent_file()
                    .messages()
                    .position(|top| top.full_name() == current.full_name())
                    .unwrap_or_default();
                indexes.push(at);
                break;
            }
        }
    }
    indexes.reverse();
    indexes
}

/// Confluent's message indexes: a lone 0 for the file's first message, else the count and each index, as zigzag
/// varints.
fn write_message_indexes(indexes: &[usize], out: &mut Vec<u8>) {
    if indexes == [0] {
        out.push(0);
        return;
    }
    let mut write = |value: usize| {
        // Zigzag of a non-negative number: twice it.
        let mut value = (value as u64) << 1;
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    };
    write(indexes.len());
    for &index in indexes {
        write(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_indexes_are_written_as_they_are_read() {
        for indexes in [vec![0], vec![1], vec![1, 0], vec![0, 2, 70]] {
            let mut written = Vec::new();
            write_message_indexes(&indexes, &mut written);
            written.push(9);
            assert_eq!(message_indexes(&written).unwrap(), (indexes.clone(), &[9][..]));
        }
    }

    #[test]
    fn message_indexes_read_the_short_form_and_the_long_one() {
        assert_eq!(message_indexes(&[0, 9]).unwrap(), (vec![0], &[9][..]));
        // Two indexes, 1 then 0.
        assert_eq!(message_indexes(&[4, 2, 0, 9]).unwrap(), (vec![1, 0], &[9][..]));
        assert!(message_indexes(&[2]).unwrap_err().contains("end early"));
        // A negative count.
        assert!(message_indexes(&[1]).is_err());
    }
}
