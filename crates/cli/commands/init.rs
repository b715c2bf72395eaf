//! `lake init DIR`: a new project that compiles and builds as it is.

use std::path::Path;

use anyhow::anyhow;

use crate::args::InitArgs;
use crate::{CmdResult, Failure};

const PROJECT_FILE: &str = r#"# The project file (dbt-compatible: an existing dbt_project.yml works too).
name: {name}
version: "1.0"

model-paths: [models]
seed-paths: [seeds]
macro-paths: [macros]
test-paths: [tests]

vars:
  min_orders: 1

models:
  {name}:
    staging:
      +materialized: view
    marts:
      +materialized: table

lake:
  root: .lake          # local disk by default; any object_store URL works
"#;

const SEED: &str = "customer_id,first_name,last_name,signup_date,orders
1,Ada,Lovelace,2026-01-04,3
2,Alan,Turing,2026-02-11,1
3,Grace,Hopper,2026-02-28,5
4,Edsger,Dijkstra,2026-03-15,0
";

const STAGING_MODEL: &str = "-- One row per customer, cleaned.
select
    customer_id,
    first_name || ' ' || last_name as full_name,
    signup_date,
    orders
from {{ ref('customers') }}
";

const MART_MODEL: &str = "-- Customers with at least `min_orders` orders.
select
    customer_id,
    full_name,
    orders
from {{ ref('stg_customers') }}
where orders >= {{ var('min_orders') }}
";

const SCHEMA: &str = "version: 2

models:
  - name: stg_customers
    description: One row per customer.
    columns:
      - name: customer_id
        data_tests: [unique, not_null]
  - name: active_customers
    description: Customers who ordered at least `min_orders` times.
    columns:
      - name: customer_id
        data_tests:
          - unique
          - relationships:
              arguments:
                to: ref('stg_customers')
                field: customer_id
";

pub fn run(args: InitArgs) -> CmdResult {
    let dir = &args.dir;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(Failure::User(anyhow!(
            "{} already exists and is not empty\n  hint: pick a new folder name, for example `lake init my_lake`",
            dir.display()
        )));
    }
    let name = match &args.name {
        Some(n) => n.clone(),
        None => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "my_lake".into()),
    };
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Failure::User(anyhow!(
            "'{name}' is not a valid project name\n  hint: use letters, digits and underscores, starting with a letter (--name)"
        )));
    }
    let files: [(&str, String); 5] = [
        ("lake_project.yml", PROJECT_FILE.replace("{name}", &name)),
        ("seeds/customers.csv", SEED.into()),
        ("models/staging/stg_customers.sql", STAGING_MODEL.into()),
        ("models/marts/active_customers.sql", MART_MODEL.into()),
        ("models/schema.yml", SCHEMA.into()),
    ];
    for (path, content) in &files {
        write(&dir.join(path), content)?;
    }
    for empty in ["macros", "tests"] {
        std::fs::create_dir_all(dir.join(empty))?;
    }
    write(&dir.join(".gitignore"), "target/\n.lake/\n")?;
    println!("Created project '{name}' in {}", dir.display());
    println!("Next: lake build --project-dir {}", dir.display());
    Ok(())
}

fn write(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, content)
}
