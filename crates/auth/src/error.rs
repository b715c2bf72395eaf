//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong. No variant ever carries a password, a token or a hash.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The one message a client sees for any failed authentication: nothing
    /// about which part (user, password, token, header) was wrong.
    #[error("authentication failed")]
    Denied,
    /// A bad auth file: names the file, the principal (index and name when
    /// known), the field, and a hint.
    #[error("auth file {}: {message}", .path.display())]
    File {
        /// The auth file.
        path: PathBuf,
        /// What is wrong and where, without any secret from the file.
        message: String,
    },
    /// Password hashing failed (the OS RNG or argon2 itself).
    #[error("password hashing failed: {0}")]
    Hash(String),
}
