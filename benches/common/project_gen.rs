//! Synthetic dbt-compatible projects: `n` models in layers, each with 1-3
//! refs to earlier layers, a macro call, a var, a config block and two
//! column tests (`unique`, `not_null`). The same folder is valid for lake
//! and for dbt-core + dbt-duckdb.

use std::fmt::Write as _;
use std::path::Path;

/// Number of layers the models are spread over.
pub const LAYERS: usize = 10;

/// A small deterministic generator (no `rand` dependency, stable across
/// platforms and runs).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub fn model_name(layer: usize, i: usize) -> String {
    format!("m_{layer}_{i}")
}

/// Writes the project into `dir` (which must be empty or absent).
pub fn generate(dir: &Path, n: usize) -> std::io::Result<()> {
    let per_layer = n.div_ceil(LAYERS);
    std::fs::create_dir_all(dir.join("seeds"))?;
    std::fs::create_dir_all(dir.join("macros"))?;
    std::fs::write(
        dir.join("dbt_project.yml"),
        "name: bench\nversion: '1.0'\nconfig-version: 2\nprofile: bench\n\
         model-paths: [models]\nseed-paths: [seeds]\nmacro-paths: [macros]\n\
         vars:\n  run_label: nightly\n\
         models:\n  bench:\n    +materialized: view\n",
    )?;
    std::fs::write(
        dir.join("profiles.yml"),
        "bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: bench.duckdb\n      threads: 1\n",
    )?;
    let mut seed = String::from("id,value,category\n");
    for i in 0..100 {
        let _ = writeln!(seed, "{i},{},{}", i * 7 % 13, ["a", "b", "c"][i % 3]);
    }
    std::fs::write(dir.join("seeds/base.csv"), seed)?;
    std::fs::write(
        dir.join("macros/helpers.sql"),
        "{% macro scaled(column, factor=2) -%}\n    ({{ column }} * {{ factor }})\n{%- endmacro %}\n",
    )?;
    let mut rng = Lcg(0x5eed);
    let mut made = 0;
    for layer in 0..LAYERS {
        let layer_dir = dir.join(format!("models/layer_{layer:02}"));
        std::fs::create_dir_all(&layer_dir)?;
        let mut schema = String::from("version: 2\n\nmodels:\n");
        for i in 0..per_layer {
            if made == n {
                break;
            }
            made += 1;
            let name = model_name(layer, i);
            let refs: Vec<String> = if layer == 0 {
                vec!["base".to_string()]
            } else {
                let count = 1 + rng.below(3);
                let mut picked: Vec<String> = Vec::new();
                for _ in 0..count {
                    let l = rng.below(layer);
                    let r = model_name(l, rng.below(per_layer.min(n - l * per_layer).max(1)));
                    if !picked.contains(&r) {
                        picked.push(r);
                    }
                }
                picked
            };
            let materialized = if layer % 3 == 2 { "table" } else { "view" };
            let mut sql = format!(
                "{{{{ config(materialized='{materialized}', tags=['layer_{layer}']) }}}}\n\nselect\n    r0.id,\n    {{{{ scaled('r0.value') }}}} as value,\n    '{{{{ var(\"run_label\") }}}}' as run_label\nfrom {{{{ ref('{}') }}}} as r0\n",
                refs[0]
            );
            for (k, r) in refs.iter().enumerate().skip(1) {
                let _ = writeln!(
                    sql,
                    "left join {{{{ ref('{r}') }}}} as r{k} on r{k}.id = r0.id"
                );
            }
            std::fs::write(layer_dir.join(format!("{name}.sql")), sql)?;
            let _ = writeln!(
                schema,
                "  - name: {name}\n    description: Model {i} of layer {layer}.\n    columns:\n      - name: id\n        data_tests: [unique, not_null]\n"
            );
        }
        std::fs::write(layer_dir.join("schema.yml"), schema)?;
    }
    Ok(())
}
