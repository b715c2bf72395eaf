//! Who may do what on a lake server: the auth file (principals with a role
//! and a password hash or an API token hash), argon2 password hashing,
//! API tokens, bearer tokens issued at the handshake, and the role policy
//! (which zones a role reads, who may fetch training sets or ingest).
//!
//! No tokio, arrow or DataFusion here: `lake-flight` and the CLI use it.
//!
//! The auth file is YAML:
//!
//! ```yaml
//! principals:
//!   - name: alice
//!     role: reader
//!     password_hash: "$argon2id$v=19$..."   # printed by `lake auth hash-password`
//!   - name: nightly-training
//!     role: trainer
//!     token_sha256: "9f86d0..."             # `lake auth new-token` prints a token and this hash
//! ```
//!
//! Each principal has a unique `name`, a [`Role`] and exactly one of
//! `password_hash` (an argon2 PHC string, see [`hash_password`]) and
//! `token_sha256` (see [`new_api_token`]). The file never holds a password or
//! a token, and this crate never puts one (or a hash) in an error or a `Debug`
//! string.
//!
//! The server's flow: [`parse_authorization`] splits the `authorization`
//! header; a Basic handshake goes to [`Authenticator::authenticate_basic`],
//! which is answered with a token from [`Authenticator::issue_bearer`]; every
//! later call's bearer token (or an API token) goes to
//! [`Authenticator::check_bearer`]. The [`Principal`]'s [`Role`] then decides
//! what the call may do. The [`Authenticator`] notices edits of the auth file
//! and revokes the bearer tokens of principals that were removed or whose
//! credential changed.

mod authenticator;
mod error;
mod file;
mod role;
mod secret;

pub use authenticator::{Authenticator, DEFAULT_RELOAD_INTERVAL, DEFAULT_SESSION_TTL};
pub use error::AuthError;
pub use role::{ParseRoleError, Principal, Role};
pub use secret::{
    API_TOKEN_PREFIX, Credentials, hash_password, new_api_token, parse_authorization, token_sha256,
};

#[cfg(test)]
mod tests;
