//! lake's own Flight commands (`proto/lake/v1/features.proto`): their
//! protobuf messages, written by hand from the .proto file (a test checks
//! that both agree), and their JSON form.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_flight::sql::Any;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::reader::StreamReader;
use prost::Message;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::ServeError;

/// The type URL of [`Command`] inside a `google.protobuf.Any`.
pub const COMMAND_TYPE_URL: &str = "type.googleapis.com/lake.v1.Command";

const TRAINING_TICKET_MAGIC: &[u8] = b"lake-training-set/1:";

#[derive(Clone, PartialEq, Message)]
pub struct Command {
    #[prost(oneof = "command::Kind", tags = "1, 2, 3")]
    pub kind: Option<command::Kind>,
}

pub mod command {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        TrainingSet(super::TrainingSetRequest),
        #[prost(message, tag = "2")]
        OnlineFeatures(super::OnlineFeaturesRequest),
        #[prost(message, tag = "3")]
        FeatureServices(super::ListFeatureServices),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct TrainingSetRequest {
    #[prost(string, optional, tag = "1")]
    pub feature_service: Option<String>,
    #[prost(string, repeated, tag = "2")]
    pub features: Vec<String>,
    #[prost(message, optional, tag = "3")]
    pub spine: Option<SpineSource>,
    #[prost(bool, optional, tag = "4")]
    pub full_feature_names: Option<bool>,
    #[prost(string, optional, tag = "5")]
    pub event_timestamp_column: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SpineSource {
    #[prost(oneof = "spine_source::Kind", tags = "1, 2")]
    pub kind: Option<spine_source::Kind>,
}

pub mod spine_source {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(string, tag = "1")]
        Table(String),
        #[prost(string, tag = "2")]
        Sql(String),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct OnlineFeaturesRequest {
    #[prost(string, optional, tag = "1")]
    pub feature_service: Option<String>,
    #[prost(string, repeated, tag = "2")]
    pub features: Vec<String>,
    #[prost(bytes = "vec", tag = "3")]
    pub entities_ipc: Vec<u8>,
    #[prost(bool, optional, tag = "4")]
    pub full_feature_names: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListFeatureServices {}

#[derive(Clone, PartialEq, Message)]
pub struct TrainingSetTicket {
    #[prost(message, optional, tag = "1")]
    pub request: Option<TrainingSetRequest>,
    #[prost(btree_map = "string, uint64", tag = "2")]
    pub versions: BTreeMap<String, u64>,
    #[prost(btree_map = "string, string", tag = "3")]
    pub views: BTreeMap<String, String>,
    #[prost(uint64, tag = "4")]
    pub spine_offset: u64,
    #[prost(uint64, tag = "5")]
    pub spine_rows: u64,
}

impl TrainingSetTicket {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = TRAINING_TICKET_MAGIC.to_vec();
        self.encode_raw(&mut bytes);
        bytes
    }

    /// `None` when the bytes are not a training-set ticket at all.
    pub fn decode(bytes: &[u8]) -> Option<Result<TrainingSetTicket, ServeError>> {
        let body = bytes.strip_prefix(TRAINING_TICKET_MAGIC)?;
        Some(TrainingSetTicket::decode_length_delimited_raw(body))
    }

    fn decode_length_delimited_raw(body: &[u8]) -> Result<TrainingSetTicket, ServeError> {
        <TrainingSetTicket as Message>::decode(body)
            .map_err(|e| ServeError::BadRequest(format!("a damaged training-set ticket: {e}")))
    }
}

/// The JSON form of [`Command`]: one key naming the command.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum JsonCommand {
    TrainingSet(JsonTrainingSet),
    OnlineFeatures(JsonOnlineFeatures),
    FeatureServices(#[allow(dead_code)] serde_json::Map<String, Json>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTrainingSet {
    feature_service: Option<String>,
    #[serde(default)]
    features: Vec<String>,
    spine: Option<JsonSpine>,
    full_feature_names: Option<bool>,
    event_timestamp_column: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum JsonSpine {
    Table(String),
    Sql(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonOnlineFeatures {
    feature_service: Option<String>,
    #[serde(default)]
    features: Vec<String>,
    entities: serde_json::Map<String, Json>,
    full_feature_names: Option<bool>,
}

/// A lake command as the server handles it (entities already as Arrow).
#[derive(Debug, Clone)]
pub enum LakeCommand {
    TrainingSet(TrainingSetRequest),
    OnlineFeatures {
        request: OnlineFeaturesRequest,
        entities: RecordBatch,
    },
    FeatureServices,
}

impl LakeCommand {
    pub fn name(&self) -> &'static str {
        match self {
            LakeCommand::TrainingSet(_) => "TrainingSet",
            LakeCommand::OnlineFeatures { .. } => "OnlineFeatures",
            LakeCommand::FeatureServices => "FeatureServices",
        }
    }

    /// The command in `bytes` (a descriptor's `cmd` or a ticket), or `None`
    /// when they hold something else (a Flight SQL command).
    pub fn parse(bytes: &[u8]) -> Option<Result<LakeCommand, ServeError>> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
        if *first == b'{' {
            return Some(parse_json(bytes));
        }
        let any = Any::decode(bytes).ok()?;
        if any.type_url != COMMAND_TYPE_URL {
            return None;
        }
        Some(
            Command::decode(any.value)
                .map_err(|e| ServeError::BadRequest(format!("a malformed lake.v1.Command: {e}")))
                .and_then(from_proto),
        )
    }
}

/// Wraps a command in a `google.protobuf.Any` (what protobuf clients send).
pub fn command_as_any(command: &Command) -> Vec<u8> {
    Any {
        type_url: COMMAND_TYPE_URL.to_string(),
        value: command.encode_to_vec().into(),
    }
    .encode_to_vec()
}

fn from_proto(command: Command) -> Result<LakeCommand, ServeError> {
    match command.kind {
        Some(command::Kind::TrainingSet(t)) => Ok(LakeCommand::TrainingSet(t)),
        Some(command::Kind::OnlineFeatures(request)) => {
            let entities = entities_from_ipc(&request.entities_ipc)?;
            Ok(LakeCommand::OnlineFeatures { request, entities })
        }
        Some(command::Kind::FeatureServices(_)) => Ok(LakeCommand::FeatureServices),
        None => Err(ServeError::BadRequest(
            "an empty lake.v1.Command: set training_set, online_features or feature_services"
                .into(),
        )),
    }
}

fn parse_json(bytes: &[u8]) -> Result<LakeCommand, ServeError> {
    let command: JsonCommand = serde_json::from_slice(bytes).map_err(|e| {
        ServeError::BadRequest(format!(
            "not a lake command: {e}\n  hint: send {{\"training_set\": {{...}}}}, {{\"online_features\": {{...}}}} or {{\"feature_services\": {{}}}} (see docs/features.md)"
        ))
    })?;
    Ok(match command {
        JsonCommand::TrainingSet(t) => LakeCommand::TrainingSet(TrainingSetRequest {
            feature_service: t.feature_service,
            features: t.features,
            spine: t.spine.map(|s| SpineSource {
                kind: Some(match s {
                    JsonSpine::Table(t) => spine_source::Kind::Table(t),
                    JsonSpine::Sql(s) => spine_source::Kind::Sql(s),
                }),
            }),
            full_feature_names: t.full_feature_names,
            event_timestamp_column: t.event_timestamp_column,
        }),
        JsonCommand::OnlineFeatures(o) => {
            let entities = entities_from_json(&o.entities)?;
            LakeCommand::OnlineFeatures {
                request: OnlineFeaturesRequest {
                    feature_service: o.feature_service,
                    features: o.features,
                    entities_ipc: Vec::new(),
                    full_feature_names: o.full_feature_names,
                },
                entities,
            }
        }
        JsonCommand::FeatureServices(_) => LakeCommand::FeatureServices,
    })
}

fn entities_from_ipc(bytes: &[u8]) -> Result<RecordBatch, ServeError> {
    let bad = |e: &dyn std::fmt::Display| {
        ServeError::BadRequest(format!("entities_ipc is not an Arrow IPC stream: {e}"))
    };
    let reader = StreamReader::try_new(bytes, None).map_err(|e| bad(&e))?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| bad(&e))?;
    datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| bad(&e))
}

/// `{"customer_id": [1, 2, 3]}` as a batch: integers, floats or strings,
/// NULLs allowed; every column as long as the first.
fn entities_from_json(entities: &serde_json::Map<String, Json>) -> Result<RecordBatch, ServeError> {
    let bad =
        |message: String| ServeError::BadRequest(format!("online_features.entities: {message}"));
    if entities.is_empty() {
        return Err(bad(
            "no join key given\n  hint: {\"customer_id\": [1, 2, 3]}".into(),
        ));
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    let mut rows = None;
    for (key, values) in entities {
        let Json::Array(values) = values else {
            return Err(bad(format!("'{key}' must be a list of values")));
        };
        if *rows.get_or_insert(values.len()) != values.len() {
            return Err(bad(format!(
                "'{key}' has {} values, the first key {}",
                values.len(),
                rows.unwrap_or(0)
            )));
        }
        let present = || values.iter().filter(|v| !v.is_null());
        let (data_type, column): (DataType, ArrayRef) = if present().all(Json::is_i64) {
            (
                DataType::Int64,
                Arc::new(Int64Array::from_iter(values.iter().map(Json::as_i64))),
            )
        } else if present().all(Json::is_number) {
            (
                DataType::Float64,
                Arc::new(Float64Array::from_iter(values.iter().map(Json::as_f64))),
            )
        } else if present().all(Json::is_string) {
            (
                DataType::Utf8,
                Arc::new(StringArray::from_iter(values.iter().map(Json::as_str))),
            )
        } else {
            return Err(bad(format!(
                "'{key}' mixes types: give all integers, all numbers or all strings"
            )));
        };
        fields.push(Field::new(key, data_type, true));
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_protobuf_forms_parse_alike() {
        let json = br#"{"training_set": {"feature_service": "churn_v1", "spine": {"table": "raw.spine"}, "full_feature_names": false}}"#;
        let Some(Ok(LakeCommand::TrainingSet(from_json))) = LakeCommand::parse(json) else {
            panic!("json form");
        };
        let proto = command_as_any(&Command {
            kind: Some(command::Kind::TrainingSet(from_json.clone())),
        });
        let Some(Ok(LakeCommand::TrainingSet(from_proto))) = LakeCommand::parse(&proto) else {
            panic!("protobuf form");
        };
        assert_eq!(from_json, from_proto);
        assert_eq!(from_json.full_feature_names, Some(false));

        let online = br#"{"online_features": {"features": ["v:f"], "entities": {"id": [1, null, 3], "name": ["a", "b", null]}}}"#;
        let Some(Ok(LakeCommand::OnlineFeatures { entities, .. })) = LakeCommand::parse(online)
        else {
            panic!("online");
        };
        assert_eq!(entities.num_rows(), 3);
        assert_eq!(entities.schema().field(1).data_type(), &DataType::Utf8);
    }

    #[test]
    fn other_bytes_are_not_lake_commands_and_bad_json_says_why() {
        // A Flight SQL command (an Any of another type).
        let sql =
            arrow_flight::sql::ProstMessageExt::as_any(&arrow_flight::sql::CommandStatementQuery {
                query: "select 1".into(),
                transaction_id: None,
            })
            .encode_to_vec();
        assert!(LakeCommand::parse(&sql).is_none());
        let Some(Err(e)) = LakeCommand::parse(br#"{"training_sett": {}}"#) else {
            panic!("bad json");
        };
        assert!(e.to_string().contains("training_sett"), "{e}");
        let Some(Err(e)) =
            LakeCommand::parse(br#"{"online_features": {"entities": {"id": [1, "x"]}}}"#)
        else {
            panic!("mixed types");
        };
        assert!(e.to_string().contains("mixes types"), "{e}");
    }

    #[test]
    fn tickets_round_trip() {
        let ticket = TrainingSetTicket {
            request: Some(TrainingSetRequest {
                features: vec!["v:f".into()],
                ..Default::default()
            }),
            versions: [("raw.spine".to_string(), 3)].into(),
            views: BTreeMap::new(),
            spine_offset: 10,
            spine_rows: 5,
        };
        let bytes = ticket.encode();
        assert_eq!(TrainingSetTicket::decode(&bytes).unwrap().unwrap(), ticket);
        assert!(TrainingSetTicket::decode(b"lake-ticket/1:xyz").is_none());
    }

    /// The hand-written messages name the same fields with the same numbers
    /// as proto/lake/v1/features.proto, message by message.
    #[test]
    fn messages_match_the_proto_file() {
        let proto = include_str!("../../../proto/lake/v1/features.proto");
        let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut message = String::new();
        for line in proto.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("message ") {
                message = name
                    .trim_end_matches(" {}")
                    .trim_end_matches(" {")
                    .to_string();
                found.entry(message.clone()).or_default();
            } else if !message.is_empty()
                && !line.starts_with("//")
                && line.ends_with(';')
                && line.contains(" = ")
            {
                found
                    .entry(message.clone())
                    .or_default()
                    .push(line.to_string());
            }
        }
        let expected: BTreeMap<String, Vec<String>> = [
            (
                "Command",
                &[
                    "TrainingSetRequest training_set = 1;",
                    "OnlineFeaturesRequest online_features = 2;",
                    "ListFeatureServices feature_services = 3;",
                ][..],
            ),
            (
                "TrainingSetRequest",
                &[
                    "optional string feature_service = 1;",
                    "repeated string features = 2;",
                    "optional SpineSource spine = 3;",
                    "optional bool full_feature_names = 4;",
                    "optional string event_timestamp_column = 5;",
                ],
            ),
            ("SpineSource", &["string table = 1;", "string sql = 2;"]),
            (
                "OnlineFeaturesRequest",
                &[
                    "optional string feature_service = 1;",
                    "repeated string features = 2;",
                    "bytes entities_ipc = 3;",
                    "optional bool full_feature_names = 4;",
                ],
            ),
            ("ListFeatureServices", &[]),
            (
                "TrainingSetTicket",
                &[
                    "TrainingSetRequest request = 1;",
                    "map<string, uint64> versions = 2;",
                    "map<string, string> views = 3;",
                    "uint64 spine_offset = 4;",
                    "uint64 spine_rows = 5;",
                ],
            ),
        ]
        .into_iter()
        .map(|(m, fields)| {
            (
                m.to_string(),
                fields.iter().map(|f| f.to_string()).collect(),
            )
        })
        .collect();
        assert_eq!(
            found, expected,
            "features.proto and commands.rs disagree: change both"
        );
    }
}
