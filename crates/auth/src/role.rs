//! Roles, principals and the policy table: which zones a role reads, who fetches training
//! sets, who ingests, who sees PII.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a principal may do. Spelled in lowercase in the auth file and on the
/// command line (`reader`, `trainer`, `writer`, `admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries the `curated` and `features` zones.
    Reader,
    /// A reader that may also fetch training sets and online features.
    Trainer,
    /// A reader that may also bulk-ingest into the `raw` zone.
    Writer,
    /// Everything, in every zone (`raw`, `curated`, `features`, `audit`),
    /// and the only role that sees PII columns unmasked.
    Admin,
}

/// The zones every role reads.
const SHARED_ZONES: &[&str] = &["curated", "features"];
/// The zones an admin reads (an admin may read any zone; these are the known ones).
const ALL_ZONES: &[&str] = &["raw", "curated", "features", "audit"];

impl Role {
    /// The four roles, least to most privileged (reader, trainer, writer, admin).
    pub const ALL: [Role; 4] = [Role::Reader, Role::Trainer, Role::Writer, Role::Admin];

    /// The role's name as written in the auth file (lowercase).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Trainer => "trainer",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    /// Whether the role may query tables of `zone`: an admin any zone, every
    /// other role only `curated` and `features` (exact, lowercase names).
    pub fn can_read_zone(self, zone: &str) -> bool {
        self == Role::Admin || SHARED_ZONES.contains(&zone)
    }

    /// Whether the role may fetch training sets and online features (trainer, admin).
    pub fn can_fetch_training_sets(self) -> bool {
        matches!(self, Role::Trainer | Role::Admin)
    }

    /// Whether the role may bulk-ingest into the `raw` zone (writer, admin).
    pub fn can_ingest(self) -> bool {
        matches!(self, Role::Writer | Role::Admin)
    }

    /// Whether PII-tagged columns come back unmasked (admin only).
    pub fn sees_pii(self) -> bool {
        self == Role::Admin
    }

    /// The known zones the role reads, for listings (`raw`, `curated`,
    /// `features`, `audit` for an admin; `curated`, `features` otherwise).
    pub fn readable_zones(self) -> &'static [&'static str] {
        match self {
            Role::Admin => ALL_ZONES,
            Role::Reader | Role::Trainer | Role::Writer => SHARED_ZONES,
        }
    }

    /// The role closest to a misspelled name, if one is close enough to suggest.
    pub(crate) fn suggest(given: &str) -> Option<Role> {
        let given = given.trim().to_ascii_lowercase();
        let mut best: Option<(usize, Role)> = None;
        for role in Role::ALL {
            let distance = edit_distance(&given, role.as_str());
            if best.is_none_or(|(d, _)| distance < d) {
                best = Some((distance, role));
            }
        }
        let (distance, role) = best?;
        let common_prefix = given
            .chars()
            .zip(role.as_str().chars())
            .take_while(|(a, b)| a == b)
            .count();
        (distance <= 2 || common_prefix >= 4).then_some(role)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ParseRoleError;

    /// Parses the lowercase name (`reader`, `trainer`, `writer`, `admin`).
    fn from_str(s: &str) -> Result<Role, ParseRoleError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| ParseRoleError {
                given: s.to_owned(),
                suggestion: Role::suggest(s),
            })
    }
}

/// A role name that is not one of the four; says which role was probably meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseRoleError {
    /// The name as given.
    pub given: String,
    /// The closest role, when one is close enough to suggest.
    pub suggestion: Option<Role>,
}

impl fmt::Display for ParseRoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.given.chars().count() <= 32 {
            write!(f, "unknown role {:?}", self.given)?;
        } else {
            f.write_str("unknown role (a long value)")?;
        }
        if let Some(role) = self.suggestion {
            write!(f, "; did you mean `{role}`?")?;
        }
        f.write_str(" (roles: reader, trainer, writer, admin)")
    }
}

impl std::error::Error for ParseRoleError {}

/// Someone authenticated: the name from the auth file and the role it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The principal's `name` in the auth file.
    pub name: String,
    /// The principal's `role` in the auth file.
    pub role: Role,
}

impl Principal {
    /// The name of [`Principal::local_admin`].
    pub const LOCAL_ADMIN_NAME: &'static str = "local";

    /// The principal of a server started without `--auth`: `local`, an admin.
    pub fn local_admin() -> Principal {
        Principal {
            name: Principal::LOCAL_ADMIN_NAME.to_owned(),
            role: Role::Admin,
        }
    }
}

/// Levenshtein distance over chars (the inputs are a handful of characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        // (role, curated, features, raw, audit, training sets, ingest, pii)
        let table = [
            (Role::Reader, true, true, false, false, false, false, false),
            (Role::Trainer, true, true, false, false, true, false, false),
            (Role::Writer, true, true, false, false, false, true, false),
            (Role::Admin, true, true, true, true, true, true, true),
        ];
        for (role, curated, features, raw, audit, training, ingest, pii) in table {
            assert_eq!(role.can_read_zone("curated"), curated, "{role} curated");
            assert_eq!(role.can_read_zone("features"), features, "{role} features");
            assert_eq!(role.can_read_zone("raw"), raw, "{role} raw");
            assert_eq!(role.can_read_zone("audit"), audit, "{role} audit");
            assert_eq!(role.can_fetch_training_sets(), training, "{role} training");
            assert_eq!(role.can_ingest(), ingest, "{role} ingest");
            assert_eq!(role.sees_pii(), pii, "{role} pii");
            for zone in role.readable_zones() {
                assert!(role.can_read_zone(zone), "{role} lists {zone}");
            }
        }
        assert_eq!(Role::Reader.readable_zones(), ["curated", "features"]);
        assert_eq!(
            Role::Admin.readable_zones(),
            ["raw", "curated", "features", "audit"]
        );
        assert!(Role::Admin.can_read_zone("some_new_zone"));
        assert!(!Role::Writer.can_read_zone("Curated"));
        assert!(!Role::Reader.can_read_zone(""));
    }

    #[test]
    fn local_admin_is_an_admin_named_local() {
        let local = Principal::local_admin();
        assert_eq!(local.name, "local");
        assert_eq!(local.role, Role::Admin);
        assert!(local.role.sees_pii());
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
            let yaml = serde_yaml::to_string(&role).unwrap();
            assert_eq!(yaml.trim(), role.as_str());
            assert_eq!(serde_yaml::from_str::<Role>(&yaml).unwrap(), role);
        }
        assert!(serde_yaml::from_str::<Role>("Admin").is_err());
    }

    #[test]
    fn unknown_role_suggests_the_closest() {
        let cases = [
            ("raeder", Some(Role::Reader)),
            ("Reader", Some(Role::Reader)),
            ("read", Some(Role::Reader)),
            ("training", Some(Role::Trainer)),
            ("write", Some(Role::Writer)),
            ("admn", Some(Role::Admin)),
            ("superuser", None),
            ("", None),
        ];
        for (given, suggestion) in cases {
            let err = given.parse::<Role>().unwrap_err();
            assert_eq!(err.suggestion, suggestion, "{given:?}");
            let message = err.to_string();
            assert!(message.contains("roles: reader, trainer, writer, admin"));
            if let Some(role) = suggestion {
                assert!(
                    message.contains(&format!("did you mean `{role}`?")),
                    "{message}"
                );
            } else {
                assert!(!message.contains("did you mean"), "{message}");
            }
        }
    }
}
