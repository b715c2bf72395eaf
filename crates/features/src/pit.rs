//! The point-in-time join, as a streaming operator.
//!
//! For each spine row (join keys, event time) and each feature view: among
//! the view's rows with equal keys and `event - ttl <= timestamp <= event`
//! (both ends inclusive), the one with the latest timestamp, ties broken by
//! the latest created timestamp (then by the row read last); no match gives
//! NULLs. Every spine row comes out exactly once, in spine order, with all
//! its own columns.
//!
//! How: the spine is the build side. Its rows are grouped by key and
//! sorted by event time within a key, one *slot* per spine row. Each
//! feature row then goes to exactly one slot, the first spine row of its
//! key whose event time is at or after the feature's timestamp, and a slot
//! keeps only the best row it was given. A spine row's answer is the best
//! row over its own slot and the earlier slots of its key (a running
//! maximum); since the latest row wins, the ttl only has to be checked on
//! that one row. So the feature tables are read once, in any order, in
//! parallel partitions, and never sorted; memory holds the spine and, per
//! slot, the best row so far (the batches that hold those rows are
//! compacted whenever they outgrow a budget), so a feature table larger
//! than memory streams through.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, RecordBatchOptions, new_null_array,
};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use crate::error::{FeatureError, Result};
use crate::keys::{KeyInterner, NO_GROUP};
use crate::time::{is_time_type, to_epoch_nanos};

/// No slot, or no feature row in a slot.
const NONE: u32 = u32::MAX;

/// Feature rows kept per view and partition before their batches are
/// compacted into one.
const RETAINED_BUDGET_BYTES: usize = 64 << 20;

/// One feature view's side of the join.
pub struct ViewJoin {
    /// The view's name, for messages.
    pub name: String,
    /// Key columns, named alike in the spine and in the source.
    pub join_keys: Vec<String>,
    pub timestamp_field: String,
    pub created_timestamp_field: Option<String>,
    /// `None`: unbounded.
    pub ttl: Option<Duration>,
    /// The source's feature columns, and their names in the output.
    pub features: Vec<(String, String)>,
    /// The source's rows, in as many partitions as it likes; every stream
    /// has `source_schema`.
    pub source_schema: SchemaRef,
    pub partitions: Vec<SendableRecordBatchStream>,
}

impl std::fmt::Debug for ViewJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewJoin")
            .field("name", &self.name)
            .field("join_keys", &self.join_keys)
            .field("timestamp_field", &self.timestamp_field)
            .field("ttl", &self.ttl)
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

/// The columns a view's join reads, by index in its source.
#[derive(Debug, Clone)]
struct ViewColumns {
    name: String,
    keys: Vec<usize>,
    spine_keys: Vec<usize>,
    timestamp: usize,
    created: Option<usize>,
    features: Vec<usize>,
    feature_types: Vec<DataType>,
    ttl_nanos: Option<i64>,
}

/// The point-in-time join of a spine with feature views; `.execute()`
/// runs it.
pub struct PointInTimeJoin {
    spine_schema: SchemaRef,
    spine: Vec<RecordBatch>,
    event_timestamp: String,
    views: Vec<ViewJoin>,
    pool: Option<Arc<dyn MemoryPool>>,
}

impl std::fmt::Debug for PointInTimeJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointInTimeJoin")
            .field(
                "spine_rows",
                &self.spine.iter().map(|b| b.num_rows()).sum::<usize>(),
            )
            .field("event_timestamp", &self.event_timestamp)
            .field("views", &self.views)
            .finish()
    }
}

fn column_index(
    schema: &Schema,
    column: &str,
    what: impl FnOnce() -> String,
    table: impl FnOnce() -> String,
) -> Result<usize> {
    schema.index_of(column).map_err(|_| {
        let names = schema.fields().iter().map(|f| f.name().as_str());
        FeatureError::UnknownColumn {
            what: what(),
            column: column.to_string(),
            table: table(),
            suggestions: lake_compiler::suggest(column, names),
            hint: String::new(),
        }
    })
}

fn time_column(schema: &Schema, index: usize, what: &str, table: &str) -> Result<()> {
    let field = schema.field(index);
    if is_time_type(field.data_type()) {
        Ok(())
    } else {
        Err(FeatureError::NotATime {
            what: what.to_string(),
            column: field.name().clone(),
            table: table.to_string(),
            data_type: field.data_type().clone(),
        })
    }
}

/// The output schema of a training set: the spine's columns, then every
/// view's features (nullable), after checking every name the join uses.
pub fn output_schema(
    spine_schema: &Schema,
    event_timestamp: &str,
    views: &[(&ViewJoinSpec<'_>, &Schema)],
) -> Result<SchemaRef> {
    Ok(resolve(spine_schema, event_timestamp, views)?.0)
}

/// What [`output_schema`] needs of a view: its names, not its rows.
#[derive(Debug, Clone, Copy)]
pub struct ViewJoinSpec<'a> {
    pub name: &'a str,
    pub join_keys: &'a [String],
    pub timestamp_field: &'a str,
    pub created_timestamp_field: Option<&'a str>,
    pub ttl: Option<Duration>,
    pub features: &'a [(String, String)],
}

impl ViewJoin {
    fn spec(&self) -> ViewJoinSpec<'_> {
        ViewJoinSpec {
            name: &self.name,
            join_keys: &self.join_keys,
            timestamp_field: &self.timestamp_field,
            created_timestamp_field: self.created_timestamp_field.as_deref(),
            ttl: self.ttl,
            features: &self.features,
        }
    }
}

fn resolve(
    spine_schema: &Schema,
    event_timestamp: &str,
    views: &[(&ViewJoinSpec<'_>, &Schema)],
) -> Result<(SchemaRef, Vec<ViewColumns>, usize)> {
    let spine = || "the spine".to_string();
    let event = column_index(
        spine_schema,
        event_timestamp,
        || "spine event timestamp".to_string(),
        spine,
    )?;
    time_column(spine_schema, event, "spine event timestamp", "the spine")?;
    let mut fields: Vec<Field> = spine_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut origin: Vec<String> = fields
        .iter()
        .map(|f| format!("spine column '{}'", f.name()))
        .collect();
    let mut columns = Vec::with_capacity(views.len());
    for (view, source) in views {
        let table = format!("the source of feature view '{}'", view.name);
        let in_source = |column: &str, what: &str| {
            column_index(
                source,
                column,
                || format!("feature view '{}' {what}", view.name),
                || table.clone(),
            )
        };
        if view.join_keys.is_empty() {
            return Err(FeatureError::BadRequest(format!(
                "feature view '{}' has no join keys",
                view.name
            )));
        }
        let mut keys = Vec::new();
        let mut spine_keys = Vec::new();
        for key in view.join_keys {
            keys.push(in_source(key, "join key")?);
            spine_keys.push(column_index(
                spine_schema,
                key,
                || format!("join key of feature view '{}'", view.name),
                spine,
            )?);
        }
        let timestamp = in_source(view.timestamp_field, "timestamp_field")?;
        time_column(source, timestamp, "timestamp_field", &table)?;
        let created = match view.created_timestamp_field {
            Some(c) => {
                let i = in_source(c, "created_timestamp_field")?;
                time_column(source, i, "created_timestamp_field", &table)?;
                Some(i)
            }
            None => None,
        };
        let mut features = Vec::new();
        let mut feature_types = Vec::new();
        for (feature, output) in view.features {
            let i = in_source(feature, "feature")?;
            features.push(i);
            feature_types.push(source.field(i).data_type().clone());
            if let Some(j) = fields.iter().position(|f| f.name() == output) {
                return Err(FeatureError::DuplicateColumn {
                    column: output.clone(),
                    first: origin[j].clone(),
                    second: format!("feature '{}:{feature}'", view.name),
                });
            }
            fields.push(
                Field::new(output, source.field(i).data_type().clone(), true)
                    .with_metadata(source.field(i).metadata().clone()),
            );
            origin.push(format!("feature '{}:{feature}'", view.name));
        }
        let ttl_nanos = view
            .ttl
            .filter(|d| !d.is_zero())
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        columns.push(ViewColumns {
            name: view.name.to_string(),
            keys,
            spine_keys,
            timestamp,
            created,
            features,
            feature_types,
            ttl_nanos,
        });
    }
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        spine_schema.metadata().clone(),
    ));
    Ok((schema, columns, event))
}

impl PointInTimeJoin {
    /// A join over `spine` (its rows in the order they must come out),
    /// whose event time is the column `event_timestamp`.
    pub fn new(
        spine_schema: SchemaRef,
        spine: Vec<RecordBatch>,
        event_timestamp: impl Into<String>,
    ) -> PointInTimeJoin {
        PointInTimeJoin {
            spine_schema,
            spine,
            event_timestamp: event_timestamp.into(),
            views: Vec::new(),
            pool: None,
        }
    }

    pub fn with_view(mut self, view: ViewJoin) -> Self {
        self.views.push(view);
        self
    }

    /// Accounts the join's memory (the spine index and the feature rows it
    /// keeps) in this pool: past its limit the join fails with
    /// ResourcesExhausted instead of taking the machine's memory.
    pub fn with_memory_pool(mut self, pool: Arc<dyn MemoryPool>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The schema of the rows [`execute`](Self::execute) returns.
    pub fn schema(&self) -> Result<SchemaRef> {
        Ok(self.resolved()?.0)
    }

    /// The output schema, the columns each view reads, and the spine's
    /// event time column.
    fn resolved(&self) -> Result<(SchemaRef, Vec<ViewColumns>, usize)> {
        let specs: Vec<ViewJoinSpec<'_>> = self.views.iter().map(ViewJoin::spec).collect();
        let pairs: Vec<(&ViewJoinSpec<'_>, &Schema)> = specs
            .iter()
            .zip(&self.views)
            .map(|(s, v)| (s, v.source_schema.as_ref()))
            .collect();
        resolve(&self.spine_schema, &self.event_timestamp, &pairs)
    }

    /// Reads every feature view once (their partitions in parallel) and
    /// returns the spine's rows with their features, batch for batch in
    /// spine order.
    pub async fn execute(self) -> Result<SendableRecordBatchStream> {
        let (schema, columns, event) = self.resolved()?;
        let pool = self.pool.clone();
        let reservation =
            |name: String| pool.as_ref().map(|p| MemoryConsumer::new(name).register(p));

        // One index per distinct key set: views over the same entity share it.
        let spine = Arc::new(self.spine);
        let mut indexes: Vec<(Vec<usize>, Arc<SpineIndex>)> = Vec::new();
        let mut index_memory = Vec::new();
        let mut index_of_view = Vec::with_capacity(columns.len());
        for view in &columns {
            let found = indexes
                .iter()
                .position(|(keys, _)| *keys == view.spine_keys);
            let i = match found {
                Some(i) => i,
                None => {
                    let names = view
                        .spine_keys
                        .iter()
                        .map(|i| self.spine_schema.field(*i).name().clone())
                        .collect();
                    let index = SpineIndex::build(&spine, &view.spine_keys, names, event)?;
                    if let Some(memory) = reservation(format!("PointInTimeJoin[{}]", view.name)) {
                        memory.try_grow(index.memory_size())?;
                        index_memory.push(memory);
                    }
                    indexes.push((view.spine_keys.clone(), Arc::new(index)));
                    indexes.len() - 1
                }
            };
            index_of_view.push(Arc::clone(&indexes[i].1));
        }

        // Every partition of every view at once, each keeping its own best
        // rows; merged afterwards view by view in partition order, so that
        // a tie goes to the row read last whichever task finished first.
        let mut tasks = Vec::new();
        for ((v, view), join) in columns.iter().enumerate().zip(self.views) {
            for (p, stream) in join.partitions.into_iter().enumerate() {
                let index = Arc::clone(&index_of_view[v]);
                let view = view.clone();
                let memory = reservation(format!("PointInTimeJoin[{}#{p}]", view.name));
                let task =
                    SpawnedTask::spawn(async move { probe(&index, &view, stream, memory).await });
                tasks.push((v, task));
            }
        }
        let mut per_view: Vec<Option<Winners>> = (0..columns.len()).map(|_| None).collect();
        for (v, task) in tasks {
            let winners = task.join_unwind().await.map_err(|e| {
                FeatureError::DataFusion(DataFusionError::ExecutionJoin(Box::new(e)))
            })??;
            per_view[v] = Some(match per_view[v].take() {
                None => winners,
                Some(mut so_far) => {
                    so_far.absorb(winners);
                    so_far
                }
            });
        }

        let mut answers = Vec::with_capacity(columns.len());
        for ((view, index), winners) in columns.iter().zip(index_of_view).zip(per_view) {
            answers.push(Answer::new(view, index, winners)?);
        }
        let offsets: Vec<usize> = spine
            .iter()
            .scan(0, |offset, b| {
                let start = *offset;
                *offset += b.num_rows();
                Some(start)
            })
            .collect();
        let out_schema = Arc::clone(&schema);
        let stream = futures::stream::iter((0..spine.len()).map(move |b| {
            // The reservations live as long as the rows they account for.
            let _ = &index_memory;
            output_batch(&out_schema, &spine[b], offsets[b], &answers)
                .map_err(FeatureError::into_datafusion)
        }));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The spine grouped by key, sorted by event time within a key: one slot
/// per spine row with a key and an event time.
struct SpineIndex {
    keys: KeyInterner,
    /// Slots of group `g`: `offsets[g]..offsets[g + 1]`.
    offsets: Vec<u32>,
    /// Event time (ns) of every slot.
    event: Vec<i64>,
    /// The slot of every spine row, [`NONE`] without a key or an event time.
    row_slot: Vec<u32>,
}

impl SpineIndex {
    fn build(
        spine: &[RecordBatch],
        key_columns: &[usize],
        key_names: Vec<String>,
        event_column: usize,
    ) -> Result<SpineIndex> {
        let types = key_columns
            .iter()
            .map(|i| {
                spine
                    .first()
                    .map(|b| b.schema().field(*i).data_type().clone())
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        let mut keys = KeyInterner::new(key_names, types)?;
        let rows: usize = spine.iter().map(RecordBatch::num_rows).sum();
        let mut group_of_row = Vec::with_capacity(rows);
        let mut event_of_row = Vec::with_capacity(rows);
        for batch in spine {
            let key_arrays: Vec<ArrayRef> = key_columns
                .iter()
                .map(|i| batch.column(*i).clone())
                .collect();
            let groups = keys.intern(&key_arrays)?;
            let events = to_epoch_nanos(batch.column(event_column))
                .expect("the event column was checked to be a time");
            for (row, group) in groups.into_iter().enumerate() {
                if events.is_null(row) {
                    group_of_row.push(NO_GROUP);
                } else {
                    group_of_row.push(group);
                }
                event_of_row.push(events.value(row));
            }
        }
        if rows >= NONE as usize {
            return Err(FeatureError::BadRequest(format!(
                "a spine of {rows} rows is more than one join can take ({})",
                NONE - 1
            )));
        }
        // Counting sort by group, then by event time within each group.
        let groups = keys.len();
        let mut offsets = vec![0u32; groups + 1];
        for g in &group_of_row {
            if *g != NO_GROUP {
                offsets[*g as usize + 1] += 1;
            }
        }
        for g in 0..groups {
            offsets[g + 1] += offsets[g];
        }
        let slots = offsets[groups] as usize;
        let mut fill = offsets.clone();
        let mut slot_row = vec![0u32; slots];
        for (row, g) in group_of_row.iter().enumerate() {
            if *g != NO_GROUP {
                slot_row[fill[*g as usize] as usize] = row as u32;
                fill[*g as usize] += 1;
            }
        }
        for g in 0..groups {
            let range = offsets[g] as usize..offsets[g + 1] as usize;
            slot_row[range].sort_by_key(|row| event_of_row[*row as usize]);
        }
        let mut row_slot = vec![NONE; rows];
        let mut event = Vec::with_capacity(slots);
        for (slot, row) in slot_row.iter().enumerate() {
            row_slot[*row as usize] = slot as u32;
            event.push(event_of_row[*row as usize]);
        }
        Ok(SpineIndex {
            keys,
            offsets,
            event,
            row_slot,
        })
    }

    fn slots(&self) -> usize {
        self.event.len()
    }

    fn memory_size(&self) -> usize {
        self.offsets.len() * 4
            + self.event.len() * 8
            + self.row_slot.len() * 4
            + self.keys.len() * 16
    }

    /// The slot a feature row at `time` goes to in group `group`: the
    /// first spine row at or after it, if any.
    #[inline]
    fn slot_for(&self, group: u32, time: i64) -> Option<u32> {
        let start = self.offsets[group as usize] as usize;
        let end = self.offsets[group as usize + 1] as usize;
        let events = &self.event[start..end];
        let p = events.partition_point(|e| *e < time);
        (p < events.len()).then_some((start + p) as u32)
    }
}

/// Per slot, the best feature row so far: its (timestamp, created) and
/// where it is (batch, row) among the kept batches.
#[derive(Default)]
struct Winners {
    time: Vec<i64>,
    created: Vec<i64>,
    batch: Vec<u32>,
    row: Vec<u32>,
    /// The feature columns of the batches the winning rows are in.
    batches: Vec<RecordBatch>,
    /// What `batches` and the per-slot vectors take, in the session's pool.
    memory: Vec<MemoryReservation>,
    kept_bytes: usize,
    /// After the last compaction: compacting again below twice this would
    /// only copy the same rows again.
    compacted_bytes: usize,
}

impl Winners {
    fn new(slots: usize) -> Winners {
        Winners {
            time: vec![i64::MIN; slots],
            created: vec![i64::MIN; slots],
            batch: vec![NONE; slots],
            row: vec![0; slots],
            ..Default::default()
        }
    }

    /// Offers a row to a slot: it wins on a later (timestamp, created), and
    /// on a tie, being read later.
    #[inline]
    fn offer(&mut self, slot: usize, time: i64, created: i64, batch: u32, row: u32) {
        if self.batch[slot] == NONE || (time, created) >= (self.time[slot], self.created[slot]) {
            self.time[slot] = time;
            self.created[slot] = created;
            self.batch[slot] = batch;
            self.row[slot] = row;
        }
    }

    fn keep(&mut self, batch: RecordBatch) -> u32 {
        self.kept_bytes += batch.get_array_memory_size();
        self.batches.push(batch);
        (self.batches.len() - 1) as u32
    }

    fn needs_compaction(&self) -> bool {
        self.kept_bytes > RETAINED_BUDGET_BYTES.max(2 * self.compacted_bytes)
    }

    /// Copies the rows still winning into one batch and lets go of the rest.
    fn compact(&mut self, schema: &SchemaRef) -> Result<()> {
        let live: Vec<usize> = (0..self.batch.len())
            .filter(|s| self.batch[*s] != NONE)
            .collect();
        let indices: Vec<(usize, usize)> = live
            .iter()
            .map(|s| (self.batch[*s] as usize, self.row[*s] as usize))
            .collect();
        let columns = (0..schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> =
                    self.batches.iter().map(|b| b.column(c).as_ref()).collect();
                interleave(&arrays, &indices)
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let compacted = RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(live.len())),
        )?;
        for (i, s) in live.iter().enumerate() {
            self.batch[*s] = 0;
            self.row[*s] = i as u32;
        }
        self.kept_bytes = 0;
        self.batches.clear();
        self.keep(compacted);
        self.compacted_bytes = self.kept_bytes;
        Ok(())
    }

    /// Takes in another partition's winners, which were read after ours.
    fn absorb(&mut self, other: Winners) {
        if self.batches.is_empty() {
            // Nothing won here yet: the other side's answer is the answer.
            let memory = std::mem::take(&mut self.memory);
            *self = other;
            self.memory.extend(memory);
            return;
        }
        let shift = self.batches.len() as u32;
        for slot in 0..other.batch.len() {
            if other.batch[slot] != NONE {
                self.offer(
                    slot,
                    other.time[slot],
                    other.created[slot],
                    other.batch[slot] + shift,
                    other.row[slot],
                );
            }
        }
        self.kept_bytes += other.kept_bytes;
        self.batches.extend(other.batches);
        self.memory.extend(other.memory);
    }

    /// A spine row's answer is the best row over its slot and the earlier
    /// slots of its key.
    fn running_best(&mut self, index: &SpineIndex) {
        for g in 0..index.offsets.len().saturating_sub(1) {
            let (start, end) = (index.offsets[g] as usize, index.offsets[g + 1] as usize);
            for s in start + 1..end {
                let prev = s - 1;
                if self.batch[prev] != NONE
                    && (self.batch[s] == NONE
                        || (self.time[prev], self.created[prev]) > (self.time[s], self.created[s]))
                {
                    self.time[s] = self.time[prev];
                    self.created[s] = self.created[prev];
                    self.batch[s] = self.batch[prev];
                    self.row[s] = self.row[prev];
                }
            }
        }
    }
}

/// Reads one partition of a view's source, offering each row to its slot.
async fn probe(
    index: &SpineIndex,
    view: &ViewColumns,
    mut stream: SendableRecordBatchStream,
    memory: Option<MemoryReservation>,
) -> Result<Winners> {
    let mut winners = Winners::new(index.slots());
    winners.memory.extend(memory);
    let feature_schema = Arc::new(stream.schema().project(&view.features)?);
    let mut groups = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 || index.slots() == 0 {
            continue;
        }
        let keys = view.keys.iter().map(|i| batch.column(*i).clone()).collect();
        let keys = index.keys.align(&view.name, keys)?;
        index.keys.lookup(&keys, &mut groups)?;
        let times = to_epoch_nanos(batch.column(view.timestamp))
            .expect("the timestamp column was checked to be a time");
        let created = view
            .created
            .map(|c| to_epoch_nanos(batch.column(c)).expect("checked to be a time"));
        let id = winners.batches.len() as u32;
        let mut offered = false;
        for (row, group) in groups.iter().enumerate() {
            if *group == NO_GROUP || times.is_null(row) {
                continue;
            }
            let time = times.value(row);
            let Some(slot) = index.slot_for(*group, time) else {
                continue;
            };
            let created = created.as_ref().map_or(0, |c: &Int64Array| {
                if c.is_null(row) {
                    i64::MIN
                } else {
                    c.value(row)
                }
            });
            winners.offer(slot as usize, time, created, id, row as u32);
            offered = true;
        }
        if !offered {
            continue;
        }
        winners.keep(batch.project(&view.features)?);
        if winners.needs_compaction() {
            winners.compact(&feature_schema)?;
        }
        let bytes = winners.kept_bytes + winners.batch.len() * 24;
        if let Some(memory) = winners.memory.first_mut() {
            memory.try_resize(bytes)?;
        }
    }
    // Batches no slot points at any more are not worth keeping.
    if winners.batches.len() > 1 {
        winners.compact(&feature_schema)?;
    }
    Ok(winners)
}

/// A view's answer for every spine row.
struct Answer {
    index: Arc<SpineIndex>,
    winners: Winners,
    ttl_nanos: Option<i64>,
    /// Per feature: the kept batches' column, then one NULL (for spine rows
    /// without a match).
    columns: Vec<Vec<ArrayRef>>,
}

impl Answer {
    fn new(view: &ViewColumns, index: Arc<SpineIndex>, winners: Option<Winners>) -> Result<Answer> {
        let mut winners = winners.unwrap_or_else(|| Winners::new(index.slots()));
        winners.running_best(&index);
        let mut columns = Vec::with_capacity(view.features.len());
        for (c, data_type) in view.feature_types.iter().enumerate() {
            let mut arrays: Vec<ArrayRef> = winners
                .batches
                .iter()
                .map(|b| b.column(c).clone())
                .collect();
            arrays.push(new_null_array(data_type, 1));
            columns.push(arrays);
        }
        Ok(Answer {
            index,
            winners,
            ttl_nanos: view.ttl_nanos,
            columns,
        })
    }

    /// (source, row) of the answer to each spine row in `rows`, indexing
    /// into `columns`.
    fn indices(&self, rows: std::ops::Range<usize>) -> Vec<(usize, usize)> {
        let null = (self.winners.batches.len(), 0);
        rows.map(|r| {
            let slot = self.index.row_slot[r];
            if slot == NONE {
                return null;
            }
            let slot = slot as usize;
            let batch = self.winners.batch[slot];
            if batch == NONE {
                return null;
            }
            if let Some(ttl) = self.ttl_nanos
                && self.winners.time[slot] < self.index.event[slot].saturating_sub(ttl)
            {
                return null;
            }
            (batch as usize, self.winners.row[slot] as usize)
        })
        .collect()
    }
}

fn output_batch(
    schema: &SchemaRef,
    spine: &RecordBatch,
    offset: usize,
    answers: &[Answer],
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = spine.columns().to_vec();
    for answer in answers {
        let indices = answer.indices(offset..offset + spine.num_rows());
        for arrays in &answer.columns {
            let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
            columns.push(interleave(&refs, &indices)?);
        }
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(spine.num_rows())),
    )?)
}
