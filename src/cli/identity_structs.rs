//! Command-line definitions of the identity commands (`principals`, `roles`, `token`, `keys`).
//! Kept beside `structs` so that the identity surface reads in one place; executed by `identity`.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use uuid::Uuid;

use super::args::{Output, Target};

#[derive(Debug, Subcommand)]
pub enum PrincipalsCommand {
    /// Create a service principal (prints its client id and a generated secret, shown once) or, with --user, a user.
    Add {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Create a user with this sign-in name (e.g. alice@securescore.local) instead of a service principal.
        #[arg(long, value_name = "USER_NAME")]
        user: Option<String>,
        /// The user's password (generated when absent). Prefer the environment to the command line.
        #[arg(long, env = "SECURESCORE_USER_PASSWORD", hide_env_values = true, requires = "user")]
        password: Option<String>,
        /// Tenant (a GUID); default: the data directory's default tenant (the demo subscription's).
        #[arg(long)]
        tenant: Option<Uuid>,
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// List principals (never their secrets).
    List {
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Remove a principal and its role assignments.
    Remove {
        /// Object id, client id or user name.
        #[arg(long)]
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Replace a principal's secret (or a user's password) with a new generated one, shown once.
    ResetSecret {
        /// Object id, client id or user name.
        #[arg(long)]
        id: String,
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Grant a role to a principal at a scope (inherited below it).
    Assign {
        /// Object id, client id or user name of a local principal, or the object id of an external one.
        #[arg(long)]
        principal: String,
        /// Role name (Owner, Contributor, Reader, "Security Admin", "Security Reader",
        /// "Security Assessment Contributor") or role definition GUID.
        #[arg(long)]
        role: String,
        /// '/' (everything), '/subscriptions/{id}' or
        /// '/providers/Microsoft.Management/managementGroups/{group}' (the group and all below it).
        #[arg(long, default_value = "/")]
        scope: String,
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// List role assignments.
    List {
        /// Only this principal's (object id, client id or user name).
        #[arg(long)]
        principal: Option<String>,
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Remove a role assignment by its id.
    Remove {
        /// The assignment's id (see `roles list`).
        #[arg(long)]
        id: Uuid,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Data directory whose signing key signs the token (the server's --data-dir).
    #[arg(long, env = "SECURESCORE_DATA_DIR", default_value = "./securescore-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL database whose signing key signs the token (the servers' --database-url).
    #[arg(long, env = "SECURESCORE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Object id, client id or user name of the principal; default: the demo principal.
    #[arg(long)]
    pub principal: Option<String>,
    /// Tenant of the token (`tid`); default: the principal's.
    #[arg(long)]
    pub tenant: Option<Uuid>,
    /// Audience (`aud`).
    #[arg(long, default_value = "https://management.azure.com/")]
    pub audience: String,
    /// Authority named in the token's issuer (`{authority}/{tenant}/v2.0`): the server's URL.
    #[arg(long, env = "SECURESCORE_ENDPOINT", default_value = "https://127.0.0.1:8443")]
    pub authority: String,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys published in the JWKS.
    List {
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Make a new signing key current; the old one stays valid until its tokens expire (about an hour).
    Rotate {
        #[command(flatten)]
        target: Target,
    },
}
