//! The [`Authenticator`]: the loaded auth file, the bearer tokens issued at the
//! handshake, and reloading the file when an operator edits it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use argon2::{Argon2, PasswordHash, PasswordVerifier as _};
use subtle::ConstantTimeEq as _;

use crate::file::{self, Credential, Entry};
use crate::secret::{self, is_well_formed_token};
use crate::{AuthError, Principal};

/// How long a bearer token from [`Authenticator::issue_bearer`] is accepted
/// unless [`Authenticator::with_session_ttl`] says otherwise: 12 hours.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// How often, at most, calls look at the auth file's modification time and
/// length unless [`Authenticator::with_reload_interval`] says otherwise: 1 second.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Checks credentials against the auth file and issues bearer tokens.
///
/// `Send + Sync`: share one in an `Arc`. Every call to
/// [`authenticate_basic`](Self::authenticate_basic) or
/// [`check_bearer`](Self::check_bearer) re-reads the file if its modification
/// time or length changed (looked at no more than once per reload interval).
/// After a reload, a bearer token stays valid only while its principal's name
/// and credential hash are unchanged; its role follows the file. An edited
/// file that is invalid (or a missing one) is reported once on stderr and the
/// previous principals are kept.
pub struct Authenticator {
    path: PathBuf,
    session_ttl: Duration,
    reload_interval: Duration,
    /// The principals in force; replaced whole on a reload.
    snapshot: RwLock<Arc<Snapshot>>,
    /// Bearer tokens from `issue_bearer`, by the SHA-256 of the token.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    /// When the file was last looked at, and what was seen then.
    watch: Mutex<Watch>,
}

/// The principals of one successfully loaded version of the file.
struct Snapshot {
    entries: HashMap<String, Entry>,
    /// A real password hash to verify against when the user is unknown (or
    /// token-only), so that such failures take as long as a wrong password.
    decoy: Option<String>,
}

impl Snapshot {
    fn new(entries: Vec<Entry>) -> Snapshot {
        let decoy = entries.iter().find_map(|entry| match &entry.credential {
            Credential::Password(phc) => Some(phc.clone()),
            Credential::Token(_) => None,
        });
        Snapshot {
            entries: entries
                .into_iter()
                .map(|entry| (entry.name.clone(), entry))
                .collect(),
            decoy,
        }
    }

    /// Whether a session issued for `name` with this credential fingerprint is
    /// still good; returns the principal with its current role.
    fn session_principal(&self, session: &Session) -> Option<Principal> {
        let entry = self.entries.get(&session.name)?;
        let same = entry.credential.fingerprint().ct_eq(&session.credential);
        bool::from(same).then(|| Principal {
            name: entry.name.clone(),
            role: entry.role,
        })
    }
}

/// A bearer token issued at the handshake (only its hash is kept, as the key).
#[derive(Clone)]
struct Session {
    name: String,
    /// [`Credential::fingerprint`] of the principal's credential at issue time.
    credential: [u8; 32],
    /// `None`: a TTL too large to represent, i.e. never.
    expires: Option<Instant>,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|expires| now >= expires)
    }
}

/// What identifies a version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
    })
}

struct Watch {
    last_check: Instant,
    /// The stamp of the last version looked at, loaded or rejected
    /// (`None`: the file could not be examined).
    seen: Option<Stamp>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Authenticator {
    /// Reads and validates the auth file. Errors name the file, the principal
    /// and the field, and never quote a hash.
    pub fn load(path: &Path) -> Result<Authenticator, AuthError> {
        let seen = stamp(path);
        let entries = file::read(path)?;
        Ok(Authenticator {
            path: path.to_path_buf(),
            session_ttl: DEFAULT_SESSION_TTL,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            snapshot: RwLock::new(Arc::new(Snapshot::new(entries))),
            sessions: Mutex::new(HashMap::new()),
            watch: Mutex::new(Watch {
                last_check: Instant::now(),
                seen,
            }),
        })
    }

    /// How long bearer tokens issued from now on are accepted (default 12 h;
    /// zero: never).
    pub fn with_session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// How often, at most, calls look for a changed auth file (default 1 s;
    /// zero: on every call, for tests).
    pub fn with_reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    /// The auth file this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Basic credentials (the Flight SQL handshake), checked against the
    /// principal's argon2 hash (slow on purpose: tens of milliseconds). Any
    /// failure — unknown user, wrong password, a token-only principal — is
    /// the same [`AuthError::Denied`], after about the same time.
    pub fn authenticate_basic(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
        self.maybe_reload();
        let snapshot = self.snapshot();
        let entry = snapshot.entries.get(user);
        if let Some(Entry {
            name,
            role,
            credential: Credential::Password(phc),
        }) = entry
        {
            if verify_password(phc, password) {
                return Ok(Principal {
                    name: name.clone(),
                    role: *role,
                });
            }
            return Err(AuthError::Denied);
        }
        if let Some(decoy) = &snapshot.decoy {
            // Same work as a wrong password; the outcome is ignored.
            let _ = verify_password(decoy, password);
        }
        Err(AuthError::Denied)
    }

    /// A new bearer token for a principal that just authenticated: 32 bytes
    /// from the OS RNG in URL-safe base64, kept in memory only as its SHA-256,
    /// accepted by [`check_bearer`](Self::check_bearer) until the session TTL
    /// passes or the principal's name or credential changes in the file. A
    /// principal that is not in the file (e.g. [`Principal::local_admin`])
    /// gets a token that is never accepted.
    ///
    /// Panics if the OS random number generator fails.
    pub fn issue_bearer(&self, principal: &Principal) -> String {
        let token = secret::random_token();
        let credential = self
            .snapshot()
            .entries
            .get(&principal.name)
            .map(|entry| entry.credential.fingerprint());
        if let Some(credential) = credential {
            let now = Instant::now();
            let session = Session {
                name: principal.name.clone(),
                credential,
                expires: now.checked_add(self.session_ttl),
            };
            let mut sessions = lock(&self.sessions);
            sessions.retain(|_, session| !session.expired(now));
            sessions.insert(secret::sha256(&token), session);
        }
        token
    }

    /// The principal behind `authorization: Bearer <token>`: a token from
    /// [`issue_bearer`](Self::issue_bearer) that has not expired or been
    /// revoked by an edit of the file, or an API token whose SHA-256 is a
    /// principal's `token_sha256` (compared in constant time). Anything else
    /// is [`AuthError::Denied`]. The role is the one in the file now.
    pub fn check_bearer(&self, token: &str) -> Result<Principal, AuthError> {
        if !is_well_formed_token(token) {
            return Err(AuthError::Denied);
        }
        self.maybe_reload();
        let snapshot = self.snapshot();
        let hash = secret::sha256(token);

        // Sessions are looked up by the SHA-256 of a 256-bit random token:
        // timing of the map lookup can reveal nothing usable about a token.
        let session = {
            let mut sessions = lock(&self.sessions);
            match sessions.get(&hash) {
                Some(session) if session.expired(Instant::now()) => {
                    sessions.remove(&hash);
                    return Err(AuthError::Denied);
                }
                Some(session) => Some(session.clone()),
                None => None,
            }
        };
        if let Some(session) = session {
            return match snapshot.session_principal(&session) {
                Some(principal) => Ok(principal),
                None => {
                    lock(&self.sessions).remove(&hash);
                    Err(AuthError::Denied)
                }
            };
        }

        // API tokens: compare with every token hash, in constant time each.
        let mut found = None;
        for entry in snapshot.entries.values() {
            if let Credential::Token(expected) = &entry.credential
                && bool::from(expected.ct_eq(&hash))
            {
                found = Some(entry);
            }
        }
        found
            .map(|entry| Principal {
                name: entry.name.clone(),
                role: entry.role,
            })
            .ok_or(AuthError::Denied)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the file if it changed, at most once per reload interval. A
    /// call that finds another one checking goes on with the current state.
    fn maybe_reload(&self) {
        let mut watch = match self.watch.try_lock() {
            Ok(watch) => watch,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let now = Instant::now();
        if now.duration_since(watch.last_check) < self.reload_interval {
            return;
        }
        watch.last_check = now;
        let current = stamp(&self.path);
        if current == watch.seen {
            return;
        }
        watch.seen = current;
        if current.is_none() {
            eprintln!(
                "lake-auth: cannot read the auth file {}; keeping the principals loaded before",
                self.path.display()
            );
            return;
        }
        match file::read(&self.path) {
            Ok(entries) => self.replace(Snapshot::new(entries)),
            Err(e) => eprintln!("lake-auth: {e}; keeping the principals loaded before"),
        }
    }

    /// Puts a newly loaded file in force and drops the sessions it revokes.
    fn replace(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::clone(&snapshot);
        let now = Instant::now();
        lock(&self.sessions).retain(|_, session| {
            !session.expired(now) && snapshot.session_principal(session).is_some()
        });
    }
}

fn verify_password(phc: &str, password: &str) -> bool {
    // The PHC string was validated when the file was loaded.
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let principals = self.snapshot().entries.len();
        f.debug_struct("Authenticator")
            .field("path", &self.path)
            .field("principals", &principals)
            .field("session_ttl", &self.session_ttl)
            .field("reload_interval", &self.reload_interval)
            .finish_non_exhaustive()
    }
}
