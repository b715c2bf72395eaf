//! lake-flight end to end: servers on 127.0.0.1 port 0 in this process,
//! arrow-flight's Flight SQL client over tonic.

mod auth;
mod features;
mod ingest;
mod metadata;
mod queries;
mod support;
mod tls;
