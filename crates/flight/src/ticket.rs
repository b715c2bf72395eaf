//! Stateless tickets and prepared-statement handles: everything a server
//! needs to answer them travels inside them, so any server process over
//! the same lake answers them, and a ticket returns the same rows later.
//!
//! A [`QueryTicket`] carries the SQL (time travel already rewritten to
//! pinned names), the Delta version of every table the query reads, the
//! definitions of the views it expanded, and the bound parameters. A
//! [`PreparedHandle`] carries the SQL and, once bound, the parameters.
//! Both are protobuf messages behind a short magic prefix, so bytes from
//! elsewhere are recognised as such. Neither is trusted: a ticket is
//! planned again for the principal presenting it, with the same role checks.

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::ScalarValue;
use prost::Message;

use crate::error::ServeError;

const TICKET_MAGIC: &[u8] = b"lake-ticket/1:";
const HANDLE_MAGIC: &[u8] = b"lake-prepared/1:";

/// What DoGet needs to run a query exactly as it was planned.
#[derive(Clone, PartialEq, Message)]
pub struct QueryTicket {
    /// The statement, with time travel rewritten to pinned table names.
    #[prost(string, tag = "1")]
    pub sql: String,
    /// `zone.table` → the Delta version the query reads.
    #[prost(btree_map = "string, uint64", tag = "2")]
    pub versions: BTreeMap<String, u64>,
    /// `zone.view` → the view's SQL when the ticket was issued.
    #[prost(btree_map = "string, string", tag = "3")]
    pub views: BTreeMap<String, String>,
    /// Bound parameters: an Arrow IPC stream of one row (empty: none).
    #[prost(bytes = "vec", tag = "4")]
    pub params: Vec<u8>,
}

/// A prepared statement: its SQL and, after a DoPut bind, its parameters.
#[derive(Clone, PartialEq, Message)]
pub struct PreparedHandle {
    #[prost(string, tag = "1")]
    pub sql: String,
    /// An Arrow IPC stream of one row (empty: nothing bound yet).
    #[prost(bytes = "vec", tag = "2")]
    pub params: Vec<u8>,
}

fn encode(magic: &[u8], message: &impl Message) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(magic.len() + message.encoded_len());
    bytes.extend_from_slice(magic);
    message.encode_raw(&mut bytes);
    bytes
}

fn decode<M: Message + Default>(magic: &[u8], bytes: &[u8], what: &str) -> Result<M, ServeError> {
    let not_ours = || ServeError::BadRequest(format!("not a {what} issued by a lake server"));
    let body = bytes.strip_prefix(magic).ok_or_else(not_ours)?;
    M::decode(body).map_err(|_| not_ours())
}

impl QueryTicket {
    pub fn encode(&self) -> Vec<u8> {
        encode(TICKET_MAGIC, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<QueryTicket, ServeError> {
        decode(TICKET_MAGIC, bytes, "ticket")
    }
}

impl PreparedHandle {
    pub fn encode(&self) -> Vec<u8> {
        encode(HANDLE_MAGIC, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<PreparedHandle, ServeError> {
        decode(HANDLE_MAGIC, bytes, "prepared statement handle")
    }
}

/// Bound parameter values, one per column of the bound row, with the
/// columns' names (`$1`-style placeholders use the order, named ones the
/// names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoundParams {
    pub names: Vec<String>,
    pub values: Vec<ScalarValue>,
}

impl BoundParams {
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The parameters of the one row in `batches` (a bind sends exactly one).
    pub fn from_batches(batches: &[RecordBatch]) -> Result<BoundParams, ServeError> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows != 1 {
            return Err(ServeError::BadRequest(format!(
                "bind exactly one row of parameters to a query (got {rows}); \
                 run the statement once per row instead"
            )));
        }
        let Some(batch) = batches.iter().find(|b| b.num_rows() == 1) else {
            return Err(ServeError::BadRequest("no parameter row was sent".into()));
        };
        let mut params = BoundParams::default();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let value = ScalarValue::try_from_array(column, 0)
                .map_err(|e| ServeError::BadRequest(format!("parameter {}: {e}", field.name())))?;
            params.names.push(field.name().clone());
            params.values.push(value);
        }
        Ok(params)
    }

    /// An Arrow IPC stream holding the row (empty bytes for no parameters).
    pub fn to_ipc(&self) -> Result<Vec<u8>, ServeError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let columns = self
            .values
            .iter()
            .map(|v| v.to_array())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServeError::BadRequest(format!("cannot keep the parameters: {e}")))?;
        let batch = RecordBatch::try_from_iter(self.names.iter().cloned().zip(columns))
            .map_err(|e| ServeError::BadRequest(format!("cannot keep the parameters: {e}")))?;
        let internal = |e: datafusion::arrow::error::ArrowError| {
            ServeError::Internal(format!("encoding parameters: {e}"))
        };
        let mut bytes = Vec::new();
        let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema()).map_err(internal)?;
        writer.write(&batch).map_err(internal)?;
        writer.finish().map_err(internal)?;
        drop(writer);
        Ok(bytes)
    }

    /// The parameters kept by [`to_ipc`](Self::to_ipc).
    pub fn from_ipc(bytes: &[u8]) -> Result<BoundParams, ServeError> {
        if bytes.is_empty() {
            return Ok(BoundParams::default());
        }
        let bad = |e: datafusion::arrow::error::ArrowError| {
            ServeError::BadRequest(format!("the parameters in the ticket are unreadable: {e}"))
        };
        let reader = StreamReader::try_new(bytes, None).map_err(bad)?;
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(bad)?;
        BoundParams::from_batches(&batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_and_reject_foreign_bytes() {
        let params = BoundParams {
            names: vec!["$1".into()],
            values: vec![ScalarValue::Int64(Some(7))],
        };
        let ticket = QueryTicket {
            sql: "select 1".into(),
            versions: BTreeMap::from([("curated.orders".to_string(), 3)]),
            views: BTreeMap::new(),
            params: params.to_ipc().unwrap(),
        };
        let back = QueryTicket::decode(&ticket.encode()).unwrap();
        assert_eq!(back, ticket);
        assert_eq!(BoundParams::from_ipc(&back.params).unwrap(), params);
        assert!(QueryTicket::decode(b"garbage").is_err());
        assert!(QueryTicket::decode(&PreparedHandle::default().encode()).is_err());
        assert!(PreparedHandle::decode(b"lake-prepared/1:\xff\xff\xff").is_err());
    }
}
