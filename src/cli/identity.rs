//! Execution of the identity commands defined in `identity_structs`: on a data directory (safe
//! while a server runs on it: the server sees the change within a second) or, with `--endpoint`,
//! through the server's extension API (needs a token with Owner at `/`).

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::{json, Value};

use super::client::Client;
use super::data::open_data_dir;
use super::identity_structs::{KeysCommand, PrincipalsCommand, RolesCommand, TokenArgs};
use super::structs::{Output, Target};
use crate::identity::admin::{self, assignment_json, principal_json, NewPrincipal};
use crate::identity::{demo, keys::KeyRing, token};
use crate::store::{PrincipalKind, Store};

fn client(target: &Target) -> Result<Option<Client>> {
    target.endpoint.as_deref().map(|e| Client::new(e, target)).transpose()
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print(output: Output, headers: &[&str], keys: &[&str], rows: &[Value]) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(rows)?),
        Output::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED).set_header(headers.to_vec());
            for r in rows {
                t.add_row(keys.iter().map(|k| text(r, k)).collect::<Vec<_>>());
            }
            println!("{t}");
        }
    }
    Ok(())
}

const PRINCIPAL_HEADERS: [&str; 6] =
    ["Object id", "Kind", "Name", "Client id", "User name", "Tenant"];
const PRINCIPAL_KEYS: [&str; 6] = ["id", "kind", "displayName", "appId", "userName", "tenantId"];

fn show_secret(output: Output, v: &Value) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Output::Table => {
            print(Output::Table, &PRINCIPAL_HEADERS, &PRINCIPAL_KEYS, std::slice::from_ref(v))?;
            let what = if v["kind"] == "User" { "Password" } else { "Client secret" };
            println!("{what} (shown once, store it now): {}", text(v, "secret"));
        }
    }
    Ok(())
}

pub async fn principals(cmd: PrincipalsCommand) -> Result<()> {
    match cmd {
        PrincipalsCommand::Add { name, user, password, tenant, target, output } => {
            let kind =
                if user.is_some() { PrincipalKind::User } else { PrincipalKind::ServicePrincipal };
            let new = NewPrincipal {
                display_name: name,
                kind,
                user_name: user,
                password,
                tenant_id: tenant,
            };
            let v = match client(&target)? {
                Some(c) => {
                    let body = json!({"displayName": new.display_name, "kind": kind, "userName": new.user_name, "password": new.password, "tenantId": new.tenant_id});
                    c.post_json("/securescore/v1/principals", &body).await?
                }
                None => {
                    let store = open_data_dir(&target).await?;
                    let (p, secret) = admin::create_principal(&store, new).await?;
                    admin::principal_with_secret(&p, &secret)
                }
            };
            show_secret(output, &v)
        }
        PrincipalsCommand::List { target, output } => {
            let rows: Vec<Value> = match client(&target)? {
                Some(c) => c.get_all("/securescore/v1/principals").await?,
                None => open_data_dir(&target)
                    .await?
                    .principals()
                    .await?
                    .iter()
                    .map(principal_json)
                    .collect(),
            };
            print(output, &PRINCIPAL_HEADERS, &PRINCIPAL_KEYS, &rows)
        }
        PrincipalsCommand::Remove { id, target } => {
            let removed = match client(&target)? {
                Some(c) => c.delete(&format!("/securescore/v1/principals/{}", encode(&id))).await?,
                None => {
                    let store = open_data_dir(&target).await?;
                    match admin::resolve(&store, &id).await? {
                        Some(p) => store.remove_principal(p.id).await?,
                        None => false,
                    }
                }
            };
            if !removed {
                bail!("no principal '{id}' (nothing removed)");
            }
            println!("removed principal {id} and its role assignments");
            Ok(())
        }
        PrincipalsCommand::ResetSecret { id, target, output } => {
            let v = match client(&target)? {
                Some(c) => {
                    c.post_json(
                        &format!("/securescore/v1/principals/{}/resetSecret", encode(&id)),
                        &json!({}),
                    )
                    .await?
                }
                None => {
                    let store = open_data_dir(&target).await?;
                    let Some(p) = admin::resolve(&store, &id).await? else {
                        bail!("no principal '{id}'")
                    };
                    let secret = admin::reset_secret(&store, &p).await?;
                    admin::principal_with_secret(&p, &secret)
                }
            };
            show_secret(output, &v)
        }
    }
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn values(v: Value) -> Vec<Value> {
    match v.get("value") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    }
}

const ASSIGNMENT_HEADERS: [&str; 5] = ["Id", "Principal", "Role", "Role definition", "Scope"];
const ASSIGNMENT_KEYS: [&str; 5] = ["id", "principalId", "roleName", "roleDefinitionId", "scope"];

pub async fn roles(cmd: RolesCommand) -> Result<()> {
    match cmd {
        RolesCommand::Assign { principal, role, scope, target, output } => {
            let v = match client(&target)? {
                Some(c) => {
                    c.post_json(
                        "/securescore/v1/roleAssignments",
                        &json!({"principalId": principal, "role": role, "scope": scope}),
                    )
                    .await?
                }
                None => assignment_json(
                    &admin::assign(&open_data_dir(&target).await?, &principal, &role, &scope)
                        .await?
                        .0,
                ),
            };
            print(output, &ASSIGNMENT_HEADERS, &ASSIGNMENT_KEYS, &[v])
        }
        RolesCommand::List { principal, target, output } => {
            let rows = match client(&target)? {
                Some(c) => {
                    let q = principal
                        .map(|p| format!("?principalId={}", encode(&p)))
                        .unwrap_or_default();
                    c.get_all(&format!("/securescore/v1/roleAssignments{q}")).await?
                }
                None => {
                    let store = open_data_dir(&target).await?;
                    let id = match &principal {
                        Some(p) => Some(match admin::resolve(&store, p).await? {
                            Some(found) => found.id.to_string(),
                            None => p.to_ascii_lowercase(),
                        }),
                        None => None,
                    };
                    store
                        .role_assignments(id.as_deref())
                        .await?
                        .iter()
                        .map(assignment_json)
                        .collect()
                }
            };
            print(output, &ASSIGNMENT_HEADERS, &ASSIGNMENT_KEYS, &rows)
        }
        RolesCommand::Remove { id, target } => {
            let removed = match client(&target)? {
                Some(c) => c.delete(&format!("/securescore/v1/roleAssignments/{id}")).await?,
                None => open_data_dir(&target).await?.remove_role_assignment(id).await?,
            };
            if !removed {
                bail!("no role assignment {id} (nothing removed)");
            }
            println!("removed role assignment {id}");
            Ok(())
        }
    }
}

/// `securescore token`: sign a token for a principal with the data directory's current key.
pub async fn token(args: TokenArgs) -> Result<()> {
    let dir = &args.data_dir;
    if args.database_url.is_none() && !dir.join(crate::identity::keys::KEYS_FILE).exists() {
        bail!(
            "{} has no signing key yet: start `securescore serve --data-dir {}` once (add --demo for a demo principal)",
            dir.display(),
            dir.display()
        );
    }
    let store =
        Store::open(&super::data::existing_store(dir, args.database_url.as_deref())?).await?;
    let principal = match &args.principal {
        Some(who) => admin::resolve(&store, who)
            .await?
            .with_context(|| format!("no principal '{who}' in {}", dir.display()))?,
        None => {
            let creds = demo::read(dir)?.with_context(|| {
                format!(
                    "no demo principal in {}: start the server with --demo, or pass --principal",
                    dir.display()
                )
            })?;
            admin::resolve(&store, &creds.client_id.to_string())
                .await?
                .context("the demo principal is not in the database (was the server run with --memory?); pass --principal")?
        }
    };
    let Some(audience) = token::normalise_audience(&args.audience) else {
        bail!("--audience must be one of {}", token::ALLOWED_AUDIENCES.join(", "));
    };
    let keys = KeyRing::for_store(&store, Some(dir)).await?;
    let grant = token::Grant {
        principal: &principal,
        authority: &args.authority,
        audience,
        client_id: None,
        tenant: args.tenant,
    };
    let (token, expires_in) = token::issue(&keys, &grant)?;
    eprintln!(
        "token for {} ({}), tenant {}, valid {expires_in} s:",
        principal.display_name,
        principal.id,
        args.tenant.unwrap_or(principal.tenant_id)
    );
    println!("{token}");
    Ok(())
}

pub async fn keys(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::List { target, output } => {
            let rows = match client(&target)? {
                Some(c) => c.get_all("/securescore/v1/keys").await?,
                None => values(admin::keys_json(&local_keys(&target).await?)),
            };
            print(
                output,
                &["Key id (kid)", "Current", "Created", "Retired"],
                &["kid", "current", "created", "retired"],
                &rows,
            )
        }
        KeysCommand::Rotate { target } => {
            let kid = match client(&target)? {
                Some(c) => {
                    let v = c.post_json("/securescore/v1/keys/rotate", &json!({})).await?;
                    values(v)
                        .iter()
                        .find(|k| k["current"] == true)
                        .map(|k| text(k, "kid"))
                        .unwrap_or_default()
                }
                None => local_keys(&target).await?.rotate().await?,
            };
            println!("new signing key {kid}; the previous key stays valid until its tokens expire");
            Ok(())
        }
    }
}

/// The signing keys a command works on without a server: the database's when it is shared
/// (`--database-url`), else the data directory's.
async fn local_keys(target: &Target) -> Result<KeyRing> {
    if target.database_url.is_some() {
        return KeyRing::shared(&open_data_dir(target).await?).await;
    }
    KeyRing::open(data_dir(target)?)
}

fn data_dir(target: &Target) -> Result<&std::path::Path> {
    match &target.data_dir {
        Some(d) if d.join(crate::identity::keys::KEYS_FILE).exists() => Ok(d),
        Some(d) => bail!("{} has no signing keys: start `securescore serve --data-dir {}` once", d.display(), d.display()),
        None => bail!("say where to work: --data-dir DIR (a data directory) or --endpoint URL (a running server)"),
    }
}

/// The part of `serve`'s banner that tells how to get a token and use curl, the SDK and az
/// (returned, so that the caller decides how to write it).
pub fn access_help(
    app: &crate::server::Application,
    data_dir: &std::path::Path,
    ca: Option<&str>,
    demo: bool,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let base = app.public_url().as_str();
    let sub = crate::demo::DEMO_SUBSCRIPTION;
    let ca_file = ca.unwrap_or("CA.pem");
    let cacert = ca.map(|c| format!("--cacert {c} ")).unwrap_or_default();
    let dir = data_dir.display();
    let creds = app.demo_credentials();
    let (tenant, client, secret) = match creds {
        Some(c) => (c.tenant_id.to_string(), c.client_id.to_string(), c.client_secret.clone()),
        None => ("$TENANT".into(), "$CLIENT_ID".into(), "$CLIENT_SECRET".into()),
    };
    let _ = writeln!(out);
    let _ = writeln!(out, "Dashboard: {base}/");
    if let Some(c) = creds.filter(|c| !c.user_name.is_empty()) {
        let _ = writeln!(
            out,
            "  sign in as user {}  password {}  (Reader on subscription {sub})",
            c.user_name, c.user_password
        );
    }
    match creds {
        Some(_) => {
            let _ = writeln!(
                out,
                "Demo principal (Owner on subscription {sub}), also in {dir}/{}:",
                demo::CREDENTIALS_FILE
            );
            let _ = writeln!(out, "  tenant {tenant}  client id {client}  client secret {secret}");
        }
        None if demo => {}
        None => {
            let _ = writeln!(out, "Principals: securescore principals add --data-dir {dir} --name ci   (prints CLIENT_ID and CLIENT_SECRET)");
            let _ = writeln!(out, "            securescore roles assign --data-dir {dir} --principal CLIENT_ID --role Reader --scope /subscriptions/SUB");
        }
    }
    let _ = writeln!(out, "Token for curl:");
    if creds.is_some() && app.store_is_persistent() {
        let _ = writeln!(
            out,
            "  TOKEN=$(securescore token --data-dir {dir} --authority {base} | tail -n 1)"
        );
    }
    let _ = writeln!(out,
        "  TOKEN=$(curl -s {cacert}{base}/{tenant}/oauth2/v2.0/token -d grant_type=client_credentials -d client_id={client} \
         -d client_secret={secret} -d scope=https://management.azure.com/.default | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
    );
    let _ = writeln!(out,
        "  curl {cacert}-H \"Authorization: Bearer $TOKEN\" '{base}/subscriptions/{sub}/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01'"
    );
    let _ = writeln!(out, "Python SDK (azure-identity + azure-mgmt-security):");
    let _ = writeln!(out, "  cred = ClientSecretCredential(\"{tenant}\", \"{client}\", \"{secret}\", authority=\"{base}\", disable_instance_discovery=True, connection_verify=\"{ca_file}\")");
    let _ = writeln!(out, "  SecurityCenter(cred, \"{sub}\", base_url=\"{base}\", connection_verify=\"{ca_file}\").secure_scores.get(\"ascScore\")");
    let _ = writeln!(out, "Azure CLI:");
    let _ = writeln!(out, "  cat \"$(python3 -m certifi)\" {ca_file} > securescore-bundle.pem");
    let _ = writeln!(out, "  export REQUESTS_CA_BUNDLE=$PWD/securescore-bundle.pem AZURE_CORE_INSTANCE_DISCOVERY=false AZURE_CONFIG_DIR=$(mktemp -d)");
    let _ = writeln!(out, "  az cloud register -n securescore --endpoint-resource-manager {base}/ && az cloud set -n securescore");
    let _ =
        writeln!(out, "  az login --service-principal -u {client} -p {secret} --tenant {tenant}");
    let _ = writeln!(out, "  az security secure-scores show -n ascScore --subscription {sub}");
    out
}
