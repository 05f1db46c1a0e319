//! # securescore — a map of the modules (read this first)
//!
//! securescore serves the Microsoft Defender for Cloud secure score API (ARM provider
//! `Microsoft.Security`, api-version 2020-01-01) and the assessments API that feeds it, and
//! computes the scores itself from the assessments users push.
//!
//! A request travels: [`server`] (TCP/TLS, HTTP/1.1 + h2) → [`api::router`] (outer layers: ARM
//! headers, request-head limits, panics and timeouts as CloudErrors) →
//! [`api::route::Endpoint::parse`] (the path becomes a typed endpoint; [`arm`] checks
//! api-version, ids, paging) → `api::auth` (what the endpoint needs) and [`identity`] (who asks,
//! and may they) → a handler in [`api`] → [`store::Store`] (reads: cached [`store::ScoreView`]s;
//! writes: one transaction that also maintains the per-control counters and the score history)
//! → the engine (SQLite, or PostgreSQL for several replicas).
//!
//! | module | owns |
//! |---|---|
//! | [`arm`] | ARM conventions: typed resource ids, api-versions, the CloudError catalogue, paging, headers, time format; extractors and the one body limit, their rejections as CloudErrors (`arm::extract`) |
//! | [`api`] | routers and handlers, one module per resource family (sub-assessments, 2019-01-01-preview: `api::sub_assessments`; the operations list: `api::operations`; the dashboard's embedded `web/` assets at `/` and `/ui/`: `api::dashboard`; Resource Graph queries: `api::resource_graph`; management groups and the scores at resource-group and management-group scope: `api::management_groups`, `api::scores`; automations and how export events render: `api::automations`); the extension API (`api::ext`; what to fix first, what changed and exemptions: `api::improvements`, `api::changes`, `api::exemptions`, their scopes: `api::scope`) and its OpenAPI document generated from the handlers (`api::openapi`) |
//! | [`score`] | the scoring engine of docs/SCORING.md: pure, no I/O, property-tested |
//! | [`catalog`] | the built-in controls and assessment metadata (data files + provenance) |
//! | [`store`] | one `Store` handle over a crate-private engine trait (identity records: `store::identity`); group commit of the API's single writes, many requests per transaction (`store::batch`); two engines with one schema and encoding: SQLite, embedded (`store::sqlite`: its connections, write transactions, faults), and PostgreSQL, shared by replicas (`store::postgres`: connections, row locking of the subscriptions a write touches, faults; its LISTEN/NOTIFY change feed: `store::postgres::feed`); the SQL both run, written once (`store::sql`: one way to run a statement on either, the engine side `SqlBackend`; subscriptions, `apply` and the reads: `store::sql::core`; the one place counters step and transitions are logged: `store::sql::tracker`; identity, verification, sub-assessments, the export outbox and deliveries, management groups and resource-group counters, exemptions and their rows, status-transition reads: `store::sql::{identity, verify, sub_assessments, automation, management_groups, exemptions, exemption_rows, changes}`; row mapping: `store::rows`); moving a data directory's tables into PostgreSQL (`store::transfer`); the automations and export records: `store::automation`; management groups, the cached hierarchy and the score views of resource groups and management groups: `store::management_groups`; the read model; verification and repair of the maintained counters, and their rebuild when the catalogue changes (`store::verify`); exemptions and the one *effective status* decision every counter follows (`store::exemptions`); the status-transition log (`store::changes`); a conformance suite every engine runs (PostgreSQL when `SECURESCORE_TEST_POSTGRES` names a server) |
//! | [`automation`] | continuous export: what a valid `Microsoft.Security/automations` body is (`automation::model`), JPath and rule operators (`automation::rules`), the delivery worker of the serve process (`automation::worker`: outbox routing, snapshots, webhook retries with backoff) and the NDJSON export files in Log Analytics shapes (`automation::files`); what an event carries (`automation::render`; how a resource looks is the API's `Render`); the handlers are `api::automations`, the storage `store::automation` / `store::sql::automation` |
//! | [`assessment`] | what a valid assessment write is: the PUT body checks, shared by the PUT handler and bulk ingest |
//! | [`sub_assessment`] | what a valid sub-assessment write is (2019-01-01-preview; PUT body or import line), its `additionalData` checked by kind; sub-assessments never move a score |
//! | [`ingest`] | bulk ingest of NDJSON assessments (also Azure's export shape), below the API and the CLI: bounded lines, batches time-sliced so other writers get the lock, a WAL checkpoint at the end |
//! | [`wire`] | documents both the server and the CLI speak: the import report and progress events, a subscription of the extension API; the shapes of the extension API's answers for its OpenAPI document (`wire::schema`) |
//! | [`identity`] | the built-in Entra ID-compatible authority (tokens, JWKS, sign-in page; the authorization-code flow with PKCE: `identity::code_flow`), authentication of every request (JWT; verified tokens cached until their expiry or a change of the key ring: `identity::authn`) apart from authorization (RBAC, decided from plain data the API computes), trusted external issuers, `--auth` modes; below `api` and `server`, which import it, never the reverse |
//! | [`graph`] | Azure Resource Graph apart from HTTP: the KQL subset (`graph::kql`: tokenizer, recursive-descent parser, AST), its evaluation over JSON rows (`graph::eval`), the tables and their columns (`graph::table`); the endpoint is `api::resource_graph` |
//! | [`demo`] | `serve --demo`: the official example data, written through the normal write path (its principals, the service principal and the dashboard's demo user: `identity::demo`) |
//! | [`tls`] | the local CA and server certificate, or the user's PEM files; the process's crypto provider |
//! | [`server`] | `Application::build` (refuses `--auth any` off loopback, resolves the public URL, binds, port 0 friendly; starts the store's upkeep: exemption expiry and change-log retention) and `run_until` (drains on shutdown); `server::connections`: the connection cap (sheds the longest-idle connection), TLS handshake, header-read and idle timeouts, hyper's limits |
//! | [`cli`] | command definitions (`cli::structs`, `cli::identity_structs`, `cli::insights_structs`) apart from their execution (`cli::cmd`, `cli::identity`, `cli::import`, `cli::insights`, `cli::management_groups` — improvements, changes, exemptions —, `cli::read`, `cli::verify`, `cli::migrate` — a data directory into PostgreSQL, through `store::transfer`) |
//! | `cli::client` | the CLI's HTTP client for `--endpoint` (pages followed to the end) |

pub mod api;
pub mod arm;
pub mod assessment;
pub mod automation;
pub mod catalog;
pub mod cli;
pub mod demo;
pub mod graph;
pub mod identity;
pub mod ingest;
pub mod score;
pub mod server;
pub mod store;
pub mod sub_assessment;
pub mod tls;
pub mod wire;
