//! lake-features' integration tests: one binary.

mod pit;
