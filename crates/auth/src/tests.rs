//! Tests of the auth file, the authenticator and revocation, against real
//! files in a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
use tempfile::TempDir;

use crate::*;

/// An argon2id hash with the smallest parameters: fast even in debug builds.
/// (Verification uses the parameters in the hash.)
fn cheap_hash(password: &str) -> String {
    let params = Params::new(Params::MIN_M_COST, 1, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

/// An auth file in a temporary directory that tests rewrite; every write
/// gets a distinct modification time, so a reload never depends on the
/// file system's timestamp granularity.
struct AuthFile {
    _dir: TempDir,
    path: PathBuf,
    writes: u64,
}

impl AuthFile {
    fn new(yaml: &str) -> AuthFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.yaml");
        let mut file = AuthFile {
            _dir: dir,
            path,
            writes: 0,
        };
        file.write(yaml);
        file
    }

    fn write(&mut self, yaml: &str) {
        self.writes += 1;
        fs::write(&self.path, yaml).unwrap();
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + self.writes);
        fs::File::options()
            .write(true)
            .open(&self.path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }

    /// An authenticator that looks at the file on every call.
    fn load(&self) -> Authenticator {
        Authenticator::load(&self.path)
            .unwrap()
            .with_reload_interval(Duration::ZERO)
    }
}

fn password_principal(name: &str, role: &str, hash: &str) -> String {
    format!("  - name: {name}\n    role: {role}\n    password_hash: \"{hash}\"\n")
}

fn token_principal(name: &str, role: &str, sha: &str) -> String {
    format!("  - name: {name}\n    role: {role}\n    token_sha256: \"{sha}\"\n")
}

fn principals(items: &[String]) -> String {
    format!("principals:\n{}", items.concat())
}

fn assert_denied<T: std::fmt::Debug>(result: Result<T, AuthError>, what: &str) {
    match result {
        Err(AuthError::Denied) => {
            assert_eq!(AuthError::Denied.to_string(), "authentication failed");
        }
        other => panic!("{what}: expected Denied, got {other:?}"),
    }
}

fn principal(name: &str, role: Role) -> Principal {
    Principal {
        name: name.to_owned(),
        role,
    }
}

#[test]
fn authenticator_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Authenticator>();
    assert_send_sync::<std::sync::Arc<Authenticator>>();
}

#[test]
fn hash_password_makes_an_argon2id_phc_string_that_verifies() {
    // The only hash with the default (slow) parameters in the tests.
    let hash = hash_password("correct horse battery staple").unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let file = AuthFile::new(&principals(&[password_principal("alice", "reader", &hash)]));
    let auth = file.load();
    assert_eq!(
        auth.authenticate_basic("alice", "correct horse battery staple")
            .unwrap(),
        principal("alice", Role::Reader)
    );
    assert_denied(
        auth.authenticate_basic("alice", "Correct horse battery staple"),
        "wrong",
    );
}

#[test]
fn authenticate_basic_denies_every_failure_alike() {
    let (token, sha) = new_api_token();
    let file = AuthFile::new(&principals(&[
        password_principal("alice", "reader", &cheap_hash("alice-pw")),
        password_principal("ops", "admin", &cheap_hash("ops-pw")),
        token_principal("bot", "trainer", &sha),
    ]));
    let auth = file.load();
    assert_eq!(
        auth.authenticate_basic("alice", "alice-pw").unwrap(),
        principal("alice", Role::Reader)
    );
    assert_eq!(
        auth.authenticate_basic("ops", "ops-pw").unwrap(),
        principal("ops", Role::Admin)
    );
    let failures = [
        ("alice", "wrong"),
        ("alice", ""),
        ("alice", "ops-pw"),
        ("Alice", "alice-pw"),
        ("nobody", "alice-pw"),
        ("", ""),
        ("bot", token.as_str()),
        ("bot", sha.as_str()),
        ("bot", ""),
    ];
    let mut messages = Vec::new();
    for (user, password) in failures {
        let err = auth.authenticate_basic(user, password).unwrap_err();
        assert!(matches!(err, AuthError::Denied), "{user}: {err:?}");
        messages.push(err.to_string());
    }
    assert!(
        messages.iter().all(|m| m == "authentication failed"),
        "{messages:?}"
    );
}

#[test]
fn issued_bearer_tokens_identify_the_principal() {
    let file = AuthFile::new(&principals(&[
        password_principal("alice", "reader", &cheap_hash("pw")),
        password_principal("ops", "admin", &cheap_hash("pw2")),
    ]));
    let auth = file.load();
    let alice = auth.authenticate_basic("alice", "pw").unwrap();
    let token = auth.issue_bearer(&alice);
    let again = auth.issue_bearer(&alice);
    assert_ne!(token, again);
    assert_eq!(token.len(), 43, "32 bytes, URL-safe base64 without padding");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token}"
    );
    assert_eq!(auth.check_bearer(&token).unwrap(), alice);
    assert_eq!(auth.check_bearer(&again).unwrap(), alice);
    let ops = auth.issue_bearer(&principal("ops", Role::Admin));
    assert_eq!(
        auth.check_bearer(&ops).unwrap(),
        principal("ops", Role::Admin)
    );

    // Through the header parser, as the server does it.
    match parse_authorization(&format!("Bearer {token}")).unwrap() {
        Credentials::Bearer(parsed) => assert_eq!(auth.check_bearer(&parsed).unwrap(), alice),
        other => panic!("{other:?}"),
    }

    // Unknown, altered, hashed, or from another authenticator: denied.
    assert_denied(auth.check_bearer(&secret::random_token()), "unknown");
    let mut altered = token.clone().into_bytes();
    altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
    assert_denied(
        auth.check_bearer(&String::from_utf8(altered).unwrap()),
        "altered",
    );
    assert_denied(auth.check_bearer(&token_sha256(&token)), "its hash");
    assert_denied(file.load().check_bearer(&token), "another authenticator");

    // A principal that is not in the file gets a token that never works.
    let local = auth.issue_bearer(&Principal::local_admin());
    assert_denied(auth.check_bearer(&local), "local admin");
}

#[test]
fn expired_bearer_tokens_are_denied() {
    let file = AuthFile::new(&principals(&[password_principal(
        "alice",
        "reader",
        &cheap_hash("pw"),
    )]));
    let alice = principal("alice", Role::Reader);

    let auth = file.load().with_session_ttl(Duration::ZERO);
    let token = auth.issue_bearer(&alice);
    assert_denied(auth.check_bearer(&token), "ttl 0");
    assert_denied(auth.check_bearer(&token), "ttl 0, asked again");

    let auth = file.load().with_session_ttl(Duration::from_millis(50));
    let token = auth.issue_bearer(&alice);
    std::thread::sleep(Duration::from_millis(60));
    assert_denied(auth.check_bearer(&token), "ttl 50 ms, 60 ms later");

    // A TTL too large for `Instant` means "never expires", not a panic.
    let auth = file.load().with_session_ttl(Duration::MAX);
    let token = auth.issue_bearer(&alice);
    assert_eq!(auth.check_bearer(&token).unwrap(), alice);

    let auth = file.load();
    assert_eq!(
        auth.check_bearer(&auth.issue_bearer(&alice)).unwrap(),
        alice
    );
}

#[test]
fn api_tokens_are_accepted_as_bearer_tokens() {
    let (token, sha) = new_api_token();
    let (admin_token, admin_sha) = new_api_token();
    let file = AuthFile::new(&principals(&[
        token_principal("nightly-training", "trainer", &sha),
        // Upper-case hex is accepted too.
        token_principal("ops-bot", "admin", &admin_sha.to_uppercase()),
        password_principal("alice", "reader", &cheap_hash("pw")),
    ]));
    let auth = file.load();
    assert_eq!(
        auth.check_bearer(&token).unwrap(),
        principal("nightly-training", Role::Trainer)
    );
    assert_eq!(
        auth.check_bearer(&admin_token).unwrap(),
        principal("ops-bot", Role::Admin)
    );
    assert_denied(auth.check_bearer(&sha), "the hash instead of the token");
    assert_denied(auth.check_bearer(&new_api_token().0), "another token");
    assert_denied(auth.check_bearer(&format!("{token}x")), "longer");
    assert_denied(auth.check_bearer(&token[..token.len() - 1]), "shorter");
    assert_denied(auth.check_bearer("pw"), "a password");
}

#[test]
fn malformed_bearer_tokens_are_denied() {
    let (token, sha) = new_api_token();
    let file = AuthFile::new(&principals(&[token_principal("bot", "reader", &sha)]));
    let auth = file.load();
    for bad in [
        String::new(),
        " ".to_owned(),
        format!(" {token}"),
        format!("{token}\n"),
        format!("Bearer {token}"),
        "x".repeat(10_000),
        "caf\u{e9}".to_owned(),
    ] {
        assert_denied(auth.check_bearer(&bad), &format!("{bad:?}"));
    }
    assert!(auth.check_bearer(&token).is_ok());
}

/// Loads `yaml` and returns the error's message.
fn file_error(yaml: &str) -> (String, PathBuf) {
    let file = AuthFile::new(yaml);
    let err = Authenticator::load(&file.path).unwrap_err();
    let AuthError::File { path, .. } = &err else {
        panic!("expected AuthError::File, got {err:?}");
    };
    assert_eq!(path, &file.path);
    (err.to_string(), file.path.clone())
}

#[test]
fn auth_file_errors_name_the_file_principal_and_field() {
    let hash = cheap_hash("pw");
    let (_, sha) = new_api_token();
    let ok_alice = password_principal("alice", "reader", &hash);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "bad yaml",
            "principals:\n  - name: alice\n   role: reader\n".to_owned(),
            vec!["not valid YAML", "line"],
        ),
        ("empty", String::new(), vec!["empty", "principals"]),
        (
            "no principals key",
            "users: []\n".to_owned(),
            vec!["unknown top-level key `users`", "principals"],
        ),
        (
            "principals not a list",
            "principals:\n  alice: reader\n".to_owned(),
            vec!["`principals` must be a list"],
        ),
        (
            "top level is a list",
            "- name: alice\n".to_owned(),
            vec!["expected a mapping", "principals"],
        ),
        (
            "item is not a mapping",
            "principals:\n  - alice\n".to_owned(),
            vec!["principals[0]", "expected a mapping", "`name`"],
        ),
        (
            "missing name",
            format!("principals:\n{ok_alice}  - role: reader\n    password_hash: \"{hash}\"\n"),
            vec!["principals[1] (no name)", "field `name`", "missing"],
        ),
        (
            "name not a string",
            format!("principals:\n  - name: 42\n    role: reader\n    password_hash: \"{hash}\"\n"),
            vec![
                "principals[0] (no name)",
                "field `name`",
                "must be a string",
                "quote",
            ],
        ),
        (
            "name with a colon",
            principals(&[password_principal("\"al:ice\"", "reader", &hash)]),
            vec!["principals[0] (\"al:ice\")", "field `name`", "`:`"],
        ),
        (
            "duplicate names",
            principals(&[
                ok_alice.clone(),
                token_principal("bot", "trainer", &sha),
                password_principal("alice", "admin", &hash),
            ]),
            vec![
                "principals[2] (\"alice\")",
                "field `name`",
                "duplicate",
                "principals[0]",
            ],
        ),
        (
            "unknown role",
            principals(&[ok_alice.clone(), password_principal("bob", "raeder", &hash)]),
            vec![
                "principals[1] (\"bob\")",
                "field `role`",
                "unknown role \"raeder\"",
                "did you mean `reader`?",
                "reader, trainer, writer, admin",
            ],
        ),
        (
            "unknown role, nothing close",
            principals(&[password_principal("bob", "superuser", &hash)]),
            vec![
                "principals[0] (\"bob\")",
                "field `role`",
                "unknown role \"superuser\"",
            ],
        ),
        (
            "missing role",
            format!("principals:\n  - name: bob\n    password_hash: \"{hash}\"\n"),
            vec!["principals[0] (\"bob\")", "field `role`", "missing"],
        ),
        (
            "both credentials",
            format!(
                "principals:\n  - name: bob\n    role: reader\n    password_hash: \"{hash}\"\n    token_sha256: \"{sha}\"\n"
            ),
            vec![
                "principals[0] (\"bob\")",
                "`password_hash`",
                "`token_sha256`",
                "both",
            ],
        ),
        (
            "neither credential",
            "principals:\n  - name: bob\n    role: reader\n".to_owned(),
            vec![
                "principals[0] (\"bob\")",
                "`password_hash`",
                "`token_sha256`",
                "neither",
            ],
        ),
        (
            "password_hash not a PHC string",
            principals(&[password_principal("bob", "reader", "not-a-hash")]),
            vec![
                "principals[0] (\"bob\")",
                "field `password_hash`",
                "not an argon2 PHC string",
                "lake auth hash-password",
            ],
        ),
        (
            "password_hash of another algorithm",
            principals(&[password_principal(
                "bob",
                "reader",
                "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            )]),
            vec![
                "principals[0] (\"bob\")",
                "field `password_hash`",
                "not argon2",
            ],
        ),
        (
            "password_hash without output",
            principals(&[password_principal(
                "bob",
                "reader",
                "$argon2id$v=19$m=19456,t=2,p=1",
            )]),
            vec![
                "principals[0] (\"bob\")",
                "field `password_hash`",
                "no salt or no output",
            ],
        ),
        (
            "token_sha256 too short",
            principals(&[token_principal("bot", "trainer", &sha[..63])]),
            vec![
                "principals[0] (\"bot\")",
                "field `token_sha256`",
                "63 characters",
                "64 hex",
            ],
        ),
        (
            "token_sha256 not hex",
            principals(&[token_principal("bot", "trainer", &"g".repeat(64))]),
            vec![
                "principals[0] (\"bot\")",
                "field `token_sha256`",
                "not hexadecimal",
            ],
        ),
        (
            "token_sha256 holding a token",
            principals(&[token_principal("bot", "trainer", &new_api_token().0)]),
            vec![
                "principals[0] (\"bot\")",
                "field `token_sha256`",
                "looks like an API token",
            ],
        ),
        (
            "plain password field",
            "principals:\n  - name: bob\n    role: reader\n    password: hunter2\n".to_owned(),
            vec![
                "principals[0] (\"bob\")",
                "field `password`",
                "did you mean `password_hash`?",
                "never the password",
            ],
        ),
        (
            "token field",
            "principals:\n  - name: bot\n    role: reader\n    token: abc\n".to_owned(),
            vec![
                "principals[0] (\"bot\")",
                "field `token`",
                "did you mean `token_sha256`?",
            ],
        ),
    ];
    for (what, yaml, expected) in cases {
        let (message, path) = file_error(&yaml);
        assert!(
            message.contains(&path.display().to_string()),
            "{what}: no path in {message}"
        );
        for part in expected {
            assert!(message.contains(part), "{what}: {part:?} not in {message}");
        }
    }

    // A file that is not there.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let err = Authenticator::load(&missing).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("cannot read"), "{message}");
}

#[test]
fn valid_files_load() {
    // An empty list is valid (nobody may log in), and so is `principals:` alone.
    for yaml in ["principals: []\n", "principals:\n"] {
        let file = AuthFile::new(yaml);
        let auth = file.load();
        assert_denied(auth.authenticate_basic("alice", "pw"), yaml);
    }
    // Every role, both credential kinds, quoted and unquoted values.
    let (_, sha) = new_api_token();
    let yaml = principals(&[
        password_principal("r", "reader", &cheap_hash("r")),
        password_principal("t", "trainer", &cheap_hash("t")),
        token_principal("w", "writer", &sha),
        format!(
            "  - {{name: \"a\", role: admin, password_hash: '{}'}}\n",
            cheap_hash("a")
        ),
    ]);
    let auth = AuthFile::new(&yaml).load();
    assert_eq!(
        auth.authenticate_basic("t", "t").unwrap().role,
        Role::Trainer
    );
    assert_eq!(auth.authenticate_basic("a", "a").unwrap().role, Role::Admin);
}

#[test]
fn no_secret_in_any_error_or_debug_string() {
    let hash = cheap_hash("hunter2");
    let (token, sha) = new_api_token();
    let secrets = [
        "hunter2",
        hash.as_str(),
        token.as_str(),
        sha.as_str(),
        &sha[..40],
        &hash[hash.len() - 20..],
    ];
    let bad_files = [
        "principals:\n  - name: bob\n    role: reader\n    password: hunter2\n".to_owned(),
        "principals:\n  - name: bob\n    role: reader\n    password_hash: hunter2\n".to_owned(),
        format!("principals:\n  - name: bob\n    role: reader\n    password_hash: \"{hash}\n"),
        format!("principals:\n  - name: bob\n    role: reader\n    password_hash: [\"{hash}\"]\n"),
        format!("principals:\n  - name: bob\n    role: reader\n    token_sha256: {token}\n"),
        format!("principals:\n  - name: bob\n    role: reader\n    token_sha256: {sha}zz\n"),
        format!("principals:\n  - name: bob\n    role: reader\n    token_sha256: {{{sha}: 1}}\n"),
        format!("principals:\n  - name: bob\n    role: reader\n    {sha}: 1\n"),
        format!(
            "principals:\n  - name: bob\n    role: reader\n    password_hash: \"{hash}\"\n    token_sha256: \"{sha}\"\n"
        ),
        format!(
            "principals:\n  - name: bob\n    role: reader\n    password_hash: \"{hash}\"\n    password_hash: \"{hash}\"\n"
        ),
        format!("principals:\n  - name: bob\n    role: [hunter2]\n    password_hash: \"{hash}\"\n"),
        format!("principals:\n  - name: bob\n   role: reader\n    password_hash: \"{hash}\"\n"),
        format!("{sha}: hunter2\n"),
        format!("principals: \"{hash}\"\n"),
        format!("principals:\n  - \"{hash}\"\n"),
        format!(
            "principals:\n  - name: bob\n    role: reader\n    token_sha256: {}\n",
            &sha[..60]
        ),
    ];
    let mut shown = Vec::new();
    for yaml in &bad_files {
        let file = AuthFile::new(yaml);
        let err = Authenticator::load(&file.path).unwrap_err();
        shown.push(format!("{err}"));
        shown.push(format!("{err:?}"));
    }

    let file = AuthFile::new(&principals(&[
        password_principal("alice", "reader", &hash),
        token_principal("bot", "trainer", &sha),
    ]));
    let auth = file.load();
    let bearer = auth.issue_bearer(&principal("alice", Role::Reader));
    shown.push(format!("{auth:?} {auth:#?}"));
    shown.push(format!("{:?}", auth.authenticate_basic("alice", "hunter2")));
    shown.push(format!("{:?}", auth.authenticate_basic("alice", "hunter3")));
    shown.push(format!("{:?}", auth.check_bearer(&token)));
    shown.push(format!("{:?}", auth.check_bearer(&bearer)));
    shown.push(format!("{:?}", auth.check_bearer("hunter2")));
    shown.push(format!(
        "{:?}",
        parse_authorization(&format!("Bearer {token}"))
    ));
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:hunter2");
    shown.push(format!(
        "{:?}",
        parse_authorization(&format!("Basic {basic}"))
    ));
    shown.push(format!(
        "{:?}",
        parse_authorization(&format!("Basic {basic}x"))
    ));
    shown.push(format!("{:?}", hash_password("")));

    for text in &shown {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret in: {text}");
        }
        assert!(!text.contains(&bearer), "the bearer token in: {text}");
    }
}

/// Loads `file` and sets up alice (password), bot (API token) with bearer
/// tokens for both; returns the authenticator and the tokens.
struct Revocation {
    file: AuthFile,
    auth: Authenticator,
    alice_hash: String,
    bot_token: String,
    bot_sha: String,
    alice_bearer: String,
    bot_bearer: String,
}

impl Revocation {
    fn new() -> Revocation {
        let alice_hash = cheap_hash("alice-pw");
        let (bot_token, bot_sha) = new_api_token();
        let file = AuthFile::new(&principals(&[
            password_principal("alice", "reader", &alice_hash),
            token_principal("bot", "trainer", &bot_sha),
        ]));
        let auth = file.load();
        let alice = auth.authenticate_basic("alice", "alice-pw").unwrap();
        let alice_bearer = auth.issue_bearer(&alice);
        let bot = auth.check_bearer(&bot_token).unwrap();
        let bot_bearer = auth.issue_bearer(&bot);
        assert_eq!(auth.check_bearer(&alice_bearer).unwrap(), alice);
        assert_eq!(auth.check_bearer(&bot_bearer).unwrap(), bot);
        Revocation {
            file,
            auth,
            alice_hash,
            bot_token,
            bot_sha,
            alice_bearer,
            bot_bearer,
        }
    }
}

#[test]
fn removing_a_principal_revokes_its_tokens() {
    let mut r = Revocation::new();
    r.file.write(&principals(&[token_principal(
        "bot", "trainer", &r.bot_sha,
    )]));
    assert_denied(r.auth.check_bearer(&r.alice_bearer), "alice's bearer");
    assert_denied(
        r.auth.authenticate_basic("alice", "alice-pw"),
        "alice's password",
    );
    assert_eq!(r.auth.check_bearer(&r.bot_bearer).unwrap().name, "bot");

    r.file.write(&principals(&[password_principal(
        "alice",
        "reader",
        &r.alice_hash,
    )]));
    assert_denied(r.auth.check_bearer(&r.bot_token), "bot's API token");
    assert_denied(r.auth.check_bearer(&r.bot_bearer), "bot's bearer");
    // Putting alice back does not bring her old bearer token back.
    assert_denied(r.auth.check_bearer(&r.alice_bearer), "alice's old bearer");
    assert!(r.auth.authenticate_basic("alice", "alice-pw").is_ok());
}

#[test]
fn changing_a_token_hash_revokes_the_old_token() {
    let mut r = Revocation::new();
    let (new_token, new_sha) = new_api_token();
    // Same length as before: only the explicit mtime tells the change apart.
    r.file.write(&principals(&[
        password_principal("alice", "reader", &r.alice_hash),
        token_principal("bot", "trainer", &new_sha),
    ]));
    assert_denied(r.auth.check_bearer(&r.bot_token), "old API token");
    assert_denied(
        r.auth.check_bearer(&r.bot_bearer),
        "bearer from the old token",
    );
    assert_eq!(
        r.auth.check_bearer(&new_token).unwrap(),
        principal("bot", Role::Trainer)
    );
    assert_eq!(r.auth.check_bearer(&r.alice_bearer).unwrap().name, "alice");
}

#[test]
fn changing_a_password_hash_revokes_bearer_tokens() {
    let mut r = Revocation::new();
    r.file.write(&principals(&[
        password_principal("alice", "reader", &cheap_hash("new-pw")),
        token_principal("bot", "trainer", &r.bot_sha),
    ]));
    assert_denied(r.auth.check_bearer(&r.alice_bearer), "alice's bearer");
    assert_denied(
        r.auth.authenticate_basic("alice", "alice-pw"),
        "old password",
    );
    let alice = r.auth.authenticate_basic("alice", "new-pw").unwrap();
    assert_eq!(
        r.auth.check_bearer(&r.auth.issue_bearer(&alice)).unwrap(),
        alice
    );
    assert_eq!(r.auth.check_bearer(&r.bot_bearer).unwrap().name, "bot");
}

#[test]
fn a_role_change_follows_the_file() {
    let mut r = Revocation::new();
    r.file.write(&principals(&[
        password_principal("alice", "admin", &r.alice_hash),
        token_principal("bot", "reader", &r.bot_sha),
    ]));
    assert_eq!(
        r.auth.check_bearer(&r.alice_bearer).unwrap(),
        principal("alice", Role::Admin)
    );
    assert_eq!(
        r.auth.check_bearer(&r.bot_bearer).unwrap(),
        principal("bot", Role::Reader)
    );
    assert_eq!(
        r.auth.check_bearer(&r.bot_token).unwrap(),
        principal("bot", Role::Reader)
    );
    assert_eq!(
        r.auth.authenticate_basic("alice", "alice-pw").unwrap().role,
        Role::Admin
    );
}

#[test]
fn an_invalid_edit_keeps_the_previous_principals() {
    let mut r = Revocation::new();
    let good = fs::read_to_string(&r.file.path).unwrap();
    // Drop bot and misspell alice's role: the whole edit is rejected.
    r.file.write(&principals(&[password_principal(
        "alice",
        "admn",
        &r.alice_hash,
    )]));
    assert_eq!(
        r.auth.check_bearer(&r.alice_bearer).unwrap(),
        principal("alice", Role::Reader)
    );
    assert_eq!(r.auth.check_bearer(&r.bot_token).unwrap().name, "bot");
    assert!(r.auth.authenticate_basic("alice", "alice-pw").is_ok());

    r.file.write("principals: [");
    assert_eq!(r.auth.check_bearer(&r.bot_bearer).unwrap().name, "bot");

    // A deleted file too.
    fs::remove_file(&r.file.path).unwrap();
    assert_eq!(r.auth.check_bearer(&r.bot_bearer).unwrap().name, "bot");
    assert!(r.auth.authenticate_basic("alice", "alice-pw").is_ok());

    // A fixed file is picked up again.
    r.file.write(&good.replace("role: trainer", "role: writer"));
    assert_eq!(
        r.auth.check_bearer(&r.bot_bearer).unwrap(),
        principal("bot", Role::Writer)
    );
}

#[test]
fn edits_are_looked_for_at_most_once_per_reload_interval() {
    let mut r = Revocation::new();
    let auth = Authenticator::load(&r.file.path)
        .unwrap()
        .with_reload_interval(Duration::from_secs(3600));
    let bearer = auth.issue_bearer(&principal("alice", Role::Reader));
    r.file.write(&principals(&[token_principal(
        "bot", "trainer", &r.bot_sha,
    )]));
    // Within the interval the edit is not seen yet ...
    assert_eq!(auth.check_bearer(&bearer).unwrap().name, "alice");
    // ... while an authenticator that looks every time sees it.
    assert_denied(r.auth.check_bearer(&r.alice_bearer), "alice");
    assert_eq!(DEFAULT_RELOAD_INTERVAL, Duration::from_secs(1));
    assert_eq!(DEFAULT_SESSION_TTL, Duration::from_secs(12 * 3600));
    assert_eq!(r.auth.path(), r.file.path.as_path());
    let _: &Path = auth.path();
}
