//! Event times as one comparable number: nanoseconds since the Unix epoch,
//! UTC. Arrow timestamps with a time zone already hold UTC instants; naive
//! timestamps (no zone) are read as UTC, as Feast does; dates are midnight
//! UTC.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, PrimitiveArray};
use datafusion::arrow::datatypes::{
    ArrowTimestampType, DataType, Date32Type, Date64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Whether a column of this type can be an event time.
pub fn is_time_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    )
}

/// The column's values in nanoseconds since the epoch (UTC), nulls kept.
/// `None` when the type is not a time type. Values beyond the year 2262
/// saturate.
pub fn to_epoch_nanos(array: &ArrayRef) -> Option<Int64Array> {
    fn scaled<T: ArrowTimestampType>(array: &ArrayRef, factor: i64) -> Int64Array {
        let values: &PrimitiveArray<T> = array.as_primitive();
        values.unary(|v| v.saturating_mul(factor))
    }
    Some(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            scaled::<TimestampSecondType>(array, 1_000_000_000)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            scaled::<TimestampMillisecondType>(array, 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            scaled::<TimestampMicrosecondType>(array, 1_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => scaled::<TimestampNanosecondType>(array, 1),
        DataType::Date32 => array
            .as_primitive::<Date32Type>()
            .unary(|d| i64::from(d).saturating_mul(NANOS_PER_DAY)),
        DataType::Date64 => array
            .as_primitive::<Date64Type>()
            .unary(|ms| ms.saturating_mul(1_000_000)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Date32Array, TimestampMillisecondArray};

    use super::*;

    #[test]
    fn units_and_zones_become_utc_nanos() {
        let ms: ArrayRef = Arc::new(
            TimestampMillisecondArray::from(vec![Some(1_500), None]).with_timezone("+02:00"),
        );
        let nanos = to_epoch_nanos(&ms).unwrap();
        assert_eq!(nanos.value(0), 1_500_000_000);
        assert!(nanos.is_null(1));
        let days: ArrayRef = Arc::new(Date32Array::from(vec![1]));
        assert_eq!(to_epoch_nanos(&days).unwrap().value(0), NANOS_PER_DAY);
        let text: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec!["x"]));
        assert!(to_epoch_nanos(&text).is_none());
    }
}
