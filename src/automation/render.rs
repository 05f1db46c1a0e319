//! Export events as JSON: a change from the outbox, or the pages of a `…Snapshot` source, rendered
//! the way the resource's GET answers it. The rendering itself is the API's ([`Render`], given to
//! the worker at start-up): this module decides *what* is rendered, never how a resource looks.

use anyhow::Result;
use serde_json::Value;
use uuid::Uuid;

use super::model::Spec;
use crate::arm::ResourceId;
use crate::catalog;
use crate::score::{self as scoring, ControlCounts, ScoreDetails, SecureScore};
use crate::store::automation::assessment_from_payload;
use crate::store::{Assessment, ChangeEvent, ControlView, EventKind, ScoreView, Store};

/// How a resource looks in an export event: exactly its GET answer.
pub trait Render: Send + Sync + 'static {
    fn assessment(&self, a: &Assessment, view: &ScoreView) -> Result<Value>;
    fn score(&self, subscription: Uuid, score: &SecureScore) -> Value;
    fn control(&self, subscription: Uuid, control: &ControlView) -> Value;
}

/// An outbox row as the resource's GET shows it; `None` when its subscription is gone.
pub async fn change(render: &dyn Render, store: &Store, ev: &ChangeEvent) -> Result<Option<Value>> {
    let Some(view) = store.view(ev.subscription).await? else { return Ok(None) };
    let p = &ev.payload;
    Ok(match ev.kind {
        EventKind::Assessment => {
            let a = assessment_from_payload(p)?;
            Some(render.assessment(&a, &view)?)
        }
        EventKind::SecureScore => {
            let score = SecureScore {
                score: ScoreDetails {
                    current: p["current"].as_f64().unwrap_or_default(),
                    max: p["max"].as_i64().unwrap_or_default(),
                    percentage: p["percentage"].as_f64().unwrap_or_default(),
                },
                weight: p["weight"].as_i64().unwrap_or_default(),
            };
            Some(render.score(ev.subscription, &score))
        }
        EventKind::SecureScoreControl => {
            let name = p["control"].as_str().unwrap_or_default();
            catalog::builtin().control(name).map(|def| {
                let counts = ControlCounts {
                    healthy: p["healthy"].as_i64().unwrap_or_default(),
                    unhealthy: p["unhealthy"].as_i64().unwrap_or_default(),
                    not_applicable: p["notApplicable"].as_i64().unwrap_or_default(),
                };
                let c = ControlView {
                    def,
                    counts,
                    score: scoring::control_score(def.max_score, &counts),
                };
                render.control(ev.subscription, &c)
            })
        }
    })
}

/// The resources of one `…Snapshot` source of an automation, page by page (bounded memory).
pub struct Snapshot {
    subscription: Uuid,
    source: String,
    /// Scopes still to walk (assessments), none inside another.
    scopes: Vec<ResourceId>,
    after: Option<(String, String)>,
    done: bool,
}

impl Snapshot {
    pub fn new(subscription: Uuid, spec: &Spec, source: &str) -> Snapshot {
        let mut scopes: Vec<ResourceId> = spec
            .properties
            .scopes
            .iter()
            .filter_map(|s| ResourceId::parse(&s.scope_path).ok())
            .collect();
        let inside = |a: &ResourceId, b: &ResourceId| {
            a.key() != b.key() && a.key().starts_with(&format!("{}/", b.key()))
        };
        let all = scopes.clone();
        scopes.retain(|s| !all.iter().any(|o| inside(s, o)));
        scopes.sort_by(|a, b| a.key().cmp(b.key()));
        scopes.dedup_by(|a, b| a.key() == b.key());
        Snapshot { subscription, source: source.to_string(), scopes, after: None, done: false }
    }

    /// The next page of (lowercase resource id, resource JSON); `None` at the end.
    pub async fn next_page(
        &mut self,
        render: &dyn Render,
        store: &Store,
        limit: usize,
    ) -> Result<Option<Vec<(String, Value)>>> {
        if self.done {
            return Ok(None);
        }
        let Some(view) = store.view(self.subscription).await? else { return Ok(None) };
        let sub = self.subscription;
        match self.source.as_str() {
            "SecureScoresSnapshot" => {
                self.done = true;
                let body = render.score(sub, &view.secure_score);
                let key = body["id"].as_str().unwrap_or_default().to_ascii_lowercase();
                Ok(Some(vec![(key, body)]))
            }
            "SecureScoreControlsSnapshot" => {
                self.done = true;
                Ok(Some(
                    view.controls
                        .iter()
                        .map(|c| {
                            let body = render.control(sub, c);
                            (body["id"].as_str().unwrap_or_default().to_ascii_lowercase(), body)
                        })
                        .collect(),
                ))
            }
            "AssessmentsSnapshot" => loop {
                let Some(scope) = self.scopes.first().cloned() else {
                    self.done = true;
                    return Ok(None);
                };
                let rows = store.assessments(&scope, self.after.as_ref(), limit).await?;
                if rows.len() < limit {
                    self.scopes.remove(0);
                    self.after = None;
                } else {
                    self.after = rows
                        .last()
                        .map(|a| (a.resource_id.to_ascii_lowercase(), a.name.to_ascii_lowercase()));
                }
                if rows.is_empty() {
                    continue;
                }
                let mut page = Vec::with_capacity(rows.len());
                for a in &rows {
                    let body = render.assessment(a, &view)?;
                    page.push((body["id"].as_str().unwrap_or_default().to_ascii_lowercase(), body));
                }
                return Ok(Some(page));
            },
            _ => {
                self.done = true;
                Ok(None)
            }
        }
    }
}
