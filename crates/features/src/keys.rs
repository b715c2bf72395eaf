//! Entity keys as group ids: the spine's distinct keys are interned once,
//! then every feature row's key is looked up. A single integer key takes
//! a fast path (an `i64` hash map); other keys, and composite ones, are
//! encoded with arrow's row format. A row with a NULL in any key column
//! never matches (SQL equality), on either side.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use hashbrown::HashMap;

use crate::error::{FeatureError, Result};

/// No group: a NULL key, or a key the spine does not have.
pub(crate) const NO_GROUP: u32 = u32::MAX;

pub(crate) struct KeyInterner {
    key_names: Vec<String>,
    spine_types: Vec<DataType>,
    map: KeyMap,
}

enum KeyMap {
    Int(HashMap<i64, u32>),
    Rows {
        converter: RowConverter,
        map: HashMap<Box<[u8]>, u32>,
    },
}

fn is_small_int(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32
    )
}

fn family(data_type: &DataType) -> &'static str {
    use DataType::*;
    match data_type {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => "integer",
        Utf8 | LargeUtf8 | Utf8View => "string",
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "binary",
        Float16 | Float32 | Float64 => "float",
        Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => "decimal",
        Date32 | Date64 => "date",
        Timestamp(..) => "timestamp",
        Boolean => "boolean",
        _ => "other",
    }
}

/// Rows with a NULL in any key column.
fn any_null(keys: &[ArrayRef], row: usize) -> bool {
    keys.iter().any(|k| k.is_null(row))
}

impl KeyInterner {
    pub fn new(key_names: Vec<String>, spine_types: Vec<DataType>) -> Result<KeyInterner> {
        let map = if spine_types.len() == 1 && is_small_int(&spine_types[0]) {
            KeyMap::Int(HashMap::new())
        } else {
            let fields = spine_types.iter().cloned().map(SortField::new).collect();
            KeyMap::Rows {
                converter: RowConverter::new(fields)?,
                map: HashMap::new(),
            }
        };
        Ok(KeyInterner {
            key_names,
            spine_types,
            map,
        })
    }

    pub fn len(&self) -> usize {
        match &self.map {
            KeyMap::Int(m) => m.len(),
            KeyMap::Rows { map, .. } => map.len(),
        }
    }

    /// The group id of every spine row, new keys getting the next ids.
    pub fn intern(&mut self, keys: &[ArrayRef]) -> Result<Vec<u32>> {
        let rows = keys.first().map_or(0, |k| k.len());
        let mut out = Vec::with_capacity(rows);
        match &mut self.map {
            KeyMap::Int(map) => {
                let values = as_i64(&keys[0])?;
                let values = values.as_primitive::<Int64Type>();
                for row in 0..rows {
                    if values.is_null(row) {
                        out.push(NO_GROUP);
                        continue;
                    }
                    let next = map.len() as u32;
                    out.push(*map.entry(values.value(row)).or_insert(next));
                }
            }
            KeyMap::Rows { converter, map } => {
                let encoded = converter.convert_columns(keys)?;
                for row in 0..rows {
                    if any_null(keys, row) {
                        out.push(NO_GROUP);
                        continue;
                    }
                    let bytes = encoded.row(row);
                    let next = map.len() as u32;
                    let id = match map.get(bytes.as_ref()) {
                        Some(id) => *id,
                        None => {
                            map.insert(bytes.as_ref().into(), next);
                            next
                        }
                    };
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Feature rows' key columns brought to the spine's types, after
    /// checking that each pair can be compared at all.
    pub fn align(&self, view: &str, keys: Vec<ArrayRef>) -> Result<Vec<ArrayRef>> {
        keys.into_iter()
            .zip(&self.spine_types)
            .zip(&self.key_names)
            .map(|((array, spine_type), name)| {
                if array.data_type() == spine_type {
                    return Ok(array);
                }
                if family(array.data_type()) != family(spine_type) {
                    return Err(FeatureError::KeyTypeMismatch {
                        view: view.to_string(),
                        key: name.clone(),
                        spine_type: spine_type.clone(),
                        view_type: array.data_type().clone(),
                    });
                }
                // A value the spine's type cannot hold (a wider integer)
                // matches no spine key: NULL, which never matches.
                let options = CastOptions {
                    safe: true,
                    ..Default::default()
                };
                Ok(cast_with_options(&array, spine_type, &options)?)
            })
            .collect()
    }

    /// The group of every feature row ([`NO_GROUP`] when none), for key
    /// columns already [aligned](Self::align).
    pub fn lookup(&self, keys: &[ArrayRef], out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        let rows = keys.first().map_or(0, |k| k.len());
        out.reserve(rows);
        match &self.map {
            KeyMap::Int(map) => {
                let values = as_i64(&keys[0])?;
                let values = values.as_primitive::<Int64Type>();
                if values.null_count() == 0 {
                    out.extend(
                        values
                            .values()
                            .iter()
                            .map(|v| map.get(v).copied().unwrap_or(NO_GROUP)),
                    );
                } else {
                    for row in 0..rows {
                        out.push(if values.is_null(row) {
                            NO_GROUP
                        } else {
                            map.get(&values.value(row)).copied().unwrap_or(NO_GROUP)
                        });
                    }
                }
            }
            KeyMap::Rows { converter, map } => {
                let encoded = converter.convert_columns(keys)?;
                for row in 0..rows {
                    out.push(if any_null(keys, row) {
                        NO_GROUP
                    } else {
                        map.get(encoded.row(row).as_ref())
                            .copied()
                            .unwrap_or(NO_GROUP)
                    });
                }
            }
        }
        Ok(())
    }
}

fn as_i64(array: &ArrayRef) -> Result<ArrayRef> {
    if array.data_type() == &DataType::Int64 {
        return Ok(array.clone());
    }
    Ok(datafusion::arrow::compute::cast(array, &DataType::Int64)?)
}
