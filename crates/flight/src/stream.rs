//! Results going out: a DataFusion record batch stream encoded batch by
//! batch into Flight messages (never collected), each message kept well
//! under gRPC's 4 MiB default, and the running-query accounting that lives
//! exactly as long as the stream.
//!
//! Dropping the stream (a client that went away) drops the DataFusion
//! stream, which stops the query: DataFusion's own tasks are aborted when
//! their handles drop, and nothing here spawns a task that would keep it
//! running.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use arrow_flight::FlightData;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::error::ServeError;
use crate::log::{Outcome, RequestLog};

/// The target size of one Flight message: half of gRPC's default 4 MiB
/// limit, since the encoder may go a little over its target.
pub const MAX_FLIGHT_MESSAGE_BYTES: usize = 2 << 20;

/// What DoGet answers with.
pub(crate) type FlightStream = BoxStream<'static, Result<FlightData, Status>>;

/// Counters a caller can watch (tests, a metrics endpoint).
#[derive(Debug, Clone, Default)]
pub struct ServerMetrics {
    running: Arc<AtomicUsize>,
}

impl ServerMetrics {
    /// Queries whose results are being produced or sent right now.
    pub fn running_queries(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }
}

/// Admission of queries: at most `limit` at once.
#[derive(Debug, Clone)]
pub(crate) struct QueryLimit {
    limit: usize,
    permits: Arc<Semaphore>,
    metrics: ServerMetrics,
}

/// Held for the life of one query's result stream.
#[derive(Debug)]
pub(crate) struct QuerySlot {
    _permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
}

impl Drop for QuerySlot {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl QueryLimit {
    pub fn new(limit: usize, metrics: ServerMetrics) -> QueryLimit {
        let limit = limit.max(1);
        QueryLimit {
            limit,
            permits: Arc::new(Semaphore::new(limit)),
            metrics,
        }
    }

    /// A slot for one more query, or RESOURCE_EXHAUSTED at the limit.
    pub fn admit(&self) -> Result<QuerySlot, ServeError> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| ServeError::Busy { limit: self.limit })?;
        self.metrics.running.fetch_add(1, Ordering::SeqCst);
        Ok(QuerySlot {
            _permit: permit,
            running: self.metrics.running.clone(),
        })
    }
}

/// Encodes `batches` into Flight messages; `slot` (if any) is released when
/// the stream ends or is dropped.
pub(crate) fn flight_stream(
    batches: SendableRecordBatchStream,
    slot: Option<QuerySlot>,
    log: Option<RequestLog>,
) -> FlightStream {
    let schema = batches.schema();
    let counter = log.clone();
    let batches = batches.map(move |batch| match batch {
        Ok(batch) => {
            if let Some(log) = &counter {
                log.add_rows(batch.num_rows() as u64);
            }
            Ok(batch)
        }
        Err(e) => Err(FlightError::Tonic(Box::new(Status::from(
            ServeError::from(e),
        )))),
    });
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_max_flight_data_size(MAX_FLIGHT_MESSAGE_BYTES)
        .build(batches)
        .map(|data| data.map_err(Status::from));
    Box::pin(ResultStream {
        inner: Box::pin(encoded),
        slot,
    })
}

/// One batch (metadata answers) as a Flight stream.
pub(crate) fn batch_stream(batch: RecordBatch, log: Option<RequestLog>) -> FlightStream {
    let schema = batch.schema();
    let batches = RecordBatchStreamAdapter::new(schema, futures::stream::once(async { Ok(batch) }));
    flight_stream(Box::pin(batches), None, log)
}

/// The encoder's stream, holding the query's slot.
struct ResultStream {
    inner: FlightStream,
    slot: Option<QuerySlot>,
}

impl Stream for ResultStream {
    type Item = Result<FlightData, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = &next {
            // Done: release the slot now rather than when tonic drops us.
            drop(self.slot.take());
        }
        next
    }
}

/// Counts the bytes of a DoGet answer into its log, and records how it
/// ended.
pub(crate) fn logged(stream: FlightStream, log: RequestLog) -> FlightStream {
    Box::pin(LoggedStream {
        inner: stream,
        log,
        ended: false,
    })
}

struct LoggedStream {
    inner: FlightStream,
    log: RequestLog,
    ended: bool,
}

impl Stream for LoggedStream {
    type Item = Result<FlightData, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let next = self.inner.poll_next_unpin(cx);
        match &next {
            Poll::Ready(Some(Ok(data))) => self
                .log
                .add_bytes((data.data_header.len() + data.data_body.len()) as u64),
            Poll::Ready(Some(Err(status))) => {
                self.log.set_outcome(Outcome::Failed(status.code()));
                self.ended = true;
            }
            Poll::Ready(None) => {
                self.log.set_outcome(Outcome::Ok);
                self.ended = true;
            }
            Poll::Pending => {}
        }
        next
    }
}
