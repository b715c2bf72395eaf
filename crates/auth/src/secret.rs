//! Secrets and their hashes: argon2 password hashes, API tokens and their
//! SHA-256, random bearer tokens, and the `authorization` header.

use std::fmt;

use argon2::{Argon2, PasswordHasher};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_NO_PAD};
use rand::TryRng as _;
use rand::rngs::SysRng;
use sha2::{Digest as _, Sha256};

use crate::AuthError;

/// The prefix of API tokens printed by [`new_api_token`]: makes them easy to
/// recognise (and to scan for) in logs and configs. Bearer checks do not need it.
pub const API_TOKEN_PREFIX: &str = "lake_";

/// The longest `authorization` header value or token looked at; longer is Denied.
const MAX_HEADER_LEN: usize = 8 * 1024;
const MAX_TOKEN_LEN: usize = 1024;

/// Hashes a password for the auth file's `password_hash`: argon2id with the
/// crate's default parameters and a random salt, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$...`). The password is used as given
/// (strip a trailing newline before calling); an empty password is refused.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.is_empty() {
        return Err(AuthError::Hash("the password is empty".to_owned()));
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// A fresh API token for the auth file's `token_sha256`: returns
/// `(token, token_sha256(token))`. The token is [`API_TOKEN_PREFIX`] followed by
/// 32 bytes from the OS RNG in URL-safe base64; only the hash goes in the file.
///
/// Panics if the OS random number generator fails.
pub fn new_api_token() -> (String, String) {
    let token = format!("{API_TOKEN_PREFIX}{}", random_token());
    let hash = token_sha256(&token);
    (token, hash)
}

/// The SHA-256 of a token's UTF-8 bytes, in lowercase hex (64 characters):
/// what the auth file's `token_sha256` holds.
pub fn token_sha256(token: &str) -> String {
    hex(&sha256(token))
}

/// 32 bytes from the OS RNG, URL-safe base64 without padding (43 characters).
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A token worth hashing: 1 to 1024 visible ASCII characters, no spaces.
pub(crate) fn is_well_formed_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_TOKEN_LEN && token.bytes().all(|b| b.is_ascii_graphic())
}

/// The credentials in an `authorization` header. `Debug` never shows the
/// password or the token.
#[derive(Clone)]
pub enum Credentials {
    /// `Basic base64(user:password)`: the Flight SQL handshake.
    Basic {
        /// The principal's name (everything before the first `:`).
        user: String,
        /// The password (everything after the first `:`).
        password: String,
    },
    /// `Bearer <token>`: a token from the handshake or an API token.
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &format_args!("<redacted>"))
                .finish(),
            Credentials::Bearer(_) => f
                .debug_tuple("Bearer")
                .field(&format_args!("<redacted>"))
                .finish(),
        }
    }
}

/// Parses an `authorization` header value: `Basic base64(user:password)` or
/// `Bearer <token>` (scheme case-insensitive). Anything malformed — another
/// scheme, bad base64, no `:`, an empty user, an empty or non-printable
/// token — is [`AuthError::Denied`].
pub fn parse_authorization(header: &str) -> Result<Credentials, AuthError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(AuthError::Denied);
    }
    let (scheme, rest) = header.trim().split_once(' ').ok_or(AuthError::Denied)?;
    let rest = rest.trim_start_matches(' ');
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD_PAD_INDIFFERENT
            .decode(rest)
            .map_err(|_| AuthError::Denied)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Denied)?;
        let (user, password) = decoded.split_once(':').ok_or(AuthError::Denied)?;
        if user.is_empty() {
            return Err(AuthError::Denied);
        }
        Ok(Credentials::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if !is_well_formed_token(rest) {
            return Err(AuthError::Denied);
        }
        Ok(Credentials::Bearer(rest.to_owned()))
    } else {
        Err(AuthError::Denied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD_PAD_INDIFFERENT.encode(user_pass))
    }

    #[test]
    fn token_sha256_is_lowercase_hex() {
        // SHA-256("test"), the example in the auth file docs.
        assert_eq!(
            token_sha256("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(token_sha256("").len(), 64);
    }

    #[test]
    fn new_api_tokens_are_random_and_hashed() {
        let (token, hash) = new_api_token();
        let (other, other_hash) = new_api_token();
        assert_ne!(token, other);
        assert_ne!(hash, other_hash);
        assert!(token.starts_with(API_TOKEN_PREFIX));
        assert_eq!(token.len(), API_TOKEN_PREFIX.len() + 43);
        assert!(is_well_formed_token(&token));
        assert_eq!(hash, token_sha256(&token));
        let bytes = URL_SAFE_NO_PAD
            .decode(&token[API_TOKEN_PREFIX.len()..])
            .unwrap();
        assert_eq!(bytes.len(), 32);
    }

    #[test]
    fn hash_password_refuses_an_empty_password() {
        let err = hash_password("").unwrap_err();
        assert!(matches!(err, AuthError::Hash(_)), "{err:?}");
    }

    #[test]
    fn parses_basic_and_bearer() {
        match parse_authorization(&basic("alice:s3cret:with:colons")).unwrap() {
            Credentials::Basic { user, password } => {
                assert_eq!(user, "alice");
                assert_eq!(password, "s3cret:with:colons");
            }
            other => panic!("{other:?}"),
        }
        match parse_authorization(&basic("bob:")).unwrap() {
            Credentials::Basic { user, password } => {
                assert_eq!((user.as_str(), password.as_str()), ("bob", ""));
            }
            other => panic!("{other:?}"),
        }
        // Scheme is case-insensitive, padding optional, surrounding space ignored.
        let unpadded = format!(
            "bAsIc {}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode("al:x")
        );
        assert!(matches!(
            parse_authorization(&unpadded),
            Ok(Credentials::Basic { .. })
        ));
        match parse_authorization("  bearer   abc.DEF-_~+/=  ").unwrap() {
            Credentials::Bearer(token) => assert_eq!(token, "abc.DEF-_~+/="),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_authorization_headers_are_denied() {
        let long_token = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        let cases = [
            String::new(),
            "   ".to_owned(),
            "Basic".to_owned(),
            "Bearer".to_owned(),
            "Bearer ".to_owned(),
            "Bearer two tokens".to_owned(),
            "Bearer tab\tinside".to_owned(),
            "Bearer caf\u{e9}".to_owned(),
            long_token,
            "Basic not*base64".to_owned(),
            basic("no-colon"),
            basic(":password-but-no-user"),
            format!(
                "Basic {}",
                STANDARD_PAD_INDIFFERENT.encode([0xff, 0xfe, b':'])
            ),
            "Digest username=alice".to_owned(),
            "Token abc".to_owned(),
            "alice:secret".to_owned(),
        ];
        for header in cases {
            let err = parse_authorization(&header).unwrap_err();
            assert!(matches!(err, AuthError::Denied), "{header:?}: {err:?}");
            assert_eq!(err.to_string(), "authentication failed");
        }
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let basic = parse_authorization(&basic("alice:hunter2")).unwrap();
        let shown = format!("{basic:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let bearer = Credentials::Bearer("tok-abc123".to_owned());
        let shown = format!("{bearer:?} {bearer:#?}");
        assert!(!shown.contains("tok-abc123"), "{shown}");
    }
}
