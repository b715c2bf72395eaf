//! Feature views over a lake: point-in-time-correct training sets and
//! online tables.
//!
//! - [`PointInTimeJoin`]: the join itself, a streaming operator over a
//!   spine and the feature views' sources (Feast's rule, see the module
//!   docs of `pit`).
//! - [`TrainingSet`]: a training set from the manifest's feature views and
//!   services over a lake session: the spine from a table, a query or
//!   uploaded batches; the Delta version of every table it read.
//! - [`OnlineRefresh`] and [`OnlineStore`]: the online table of each feature
//!   view in the `features` zone (latest values per entity key, merged
//!   incrementally by `lake build`), and an in-memory copy of them for
//!   lookups.

mod error;
mod keys;
mod online;
mod pit;
mod selection;
mod time;
mod training_set;

pub use error::{FeatureError, Result};
pub use online::{ONLINE_ZONE, OnlineOutcome, OnlineRefresh, OnlineStore, online_table_name};
pub use pit::{PointInTimeJoin, ViewJoin, ViewJoinSpec, output_schema};
pub use selection::{FeatureSelection, ViewFeatures};
pub use time::{is_time_type, to_epoch_nanos};
pub use training_set::{DEFAULT_EVENT_TIMESTAMP, Spine, TrainingSet};
