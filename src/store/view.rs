//! The read model of one subscription: its controls' counts and scores and its secure score,
//! computed once from the maintained counters and then served from memory until a write drops it.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use super::subscription::Subscription;
use crate::catalog::{self, ControlDef};
use crate::score::{self, ControlCounts, ControlScore, SecureScore};

#[derive(Debug)]
pub struct ControlView {
    pub def: &'static ControlDef,
    pub counts: ControlCounts,
    pub score: ControlScore,
}

#[derive(Debug)]
pub struct ScoreView {
    pub subscription: Subscription,
    /// Assessed controls only (h + u + na > 0), in catalogue order.
    pub controls: Vec<ControlView>,
    /// `ascScore`: all built-in controls.
    pub secure_score: SecureScore,
    /// The subscription's custom assessment metadata: lowercase name → (name, properties).
    pub custom_metadata: BTreeMap<String, (String, serde_json::Value)>,
    /// Response bodies the API rendered from this view, kept until a write replaces the view
    /// (indexed by the API; see `api::scores`).
    pub memo: [OnceLock<Bytes>; 4],
    /// The subscription's active exemptions (`store::exemptions`): how its assessments render.
    pub exemptions: Vec<super::ExemptionRule>,
    /// Pages of the subscription's assessment lists the API rendered while this view was
    /// current, by request path and query (which decide the page): every write to the
    /// subscription replaces the view, so they are never served stale (see `api::page_memo`).
    pub pages: Mutex<HashMap<Box<str>, Bytes>>,
}

impl ScoreView {
    pub fn build(
        subscription: Subscription,
        counts: HashMap<String, ControlCounts>,
        custom_metadata: Vec<(String, serde_json::Value)>,
    ) -> Self {
        let controls: Vec<ControlView> = catalog::builtin()
            .controls()
            .iter()
            .filter_map(|def| {
                let counts = *counts.get(&def.name)?;
                counts.is_assessed().then(|| ControlView {
                    def,
                    counts,
                    score: score::control_score(def.max_score, &counts),
                })
            })
            .collect();
        let secure_score = score::secure_score(controls.iter().map(|c| &c.score));
        ScoreView {
            subscription,
            controls,
            secure_score,
            memo: Default::default(),
            pages: Mutex::default(),
            exemptions: Vec::new(),
            custom_metadata: custom_metadata
                .into_iter()
                .map(|(n, p)| (n.to_ascii_lowercase(), (n, p)))
                .collect(),
        }
    }

    pub fn control(&self, name: &str) -> Option<&ControlView> {
        self.controls.iter().find(|c| c.def.name.eq_ignore_ascii_case(name))
    }
}
