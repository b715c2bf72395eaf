//! Which features a request names (a feature service, or `view:feature`
//! and whole-`view` names), grouped by view with their output column names:
//! what training sets and online lookups both start from.

use lake_compiler::{FeatureView, Manifest};
use serde::{Deserialize, Serialize};

use crate::error::{FeatureError, Result};

/// Which features a training set or a lookup has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSelection {
    /// A feature service of the project.
    Service(String),
    /// `view:feature` or whole `view` names.
    Features(Vec<String>),
}

/// One view's share of a selection: (feature, output column) pairs.
#[derive(Debug, Clone)]
pub struct ViewFeatures<'m> {
    pub view: &'m FeatureView,
    pub features: Vec<(String, String)>,
}

impl FeatureSelection {
    /// The selected features grouped by view, in order, each named
    /// `<view>__<feature>` in the output when `full_names`, else by the
    /// feature's own name.
    pub fn by_view<'m>(
        &self,
        manifest: &'m Manifest,
        full_names: bool,
    ) -> Result<Vec<ViewFeatures<'m>>> {
        let refs = match self {
            FeatureSelection::Service(name) => manifest.feature_service_refs(name),
            FeatureSelection::Features(names) => manifest.resolve_features(names),
        }
        .map_err(FeatureError::BadRequest)?;
        if refs.is_empty() {
            return Err(FeatureError::BadRequest(
                "the request names no feature\n  hint: give a feature service or `view:feature` names"
                    .into(),
            ));
        }
        let mut views: Vec<ViewFeatures<'m>> = Vec::new();
        for r in refs {
            let output = if full_names {
                format!("{}__{}", r.view, r.feature)
            } else {
                r.feature.clone()
            };
            let pair = (r.feature, output);
            match views.iter_mut().find(|v| v.view.name == r.view) {
                Some(v) if v.features.contains(&pair) => {}
                Some(v) => v.features.push(pair),
                None => views.push(ViewFeatures {
                    view: &manifest.feature_views[&r.view],
                    features: vec![pair],
                }),
            }
        }
        Ok(views)
    }
}
