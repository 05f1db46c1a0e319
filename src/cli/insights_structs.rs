//! Definitions of the commands of issue 11 (what to fix first, what changed, exemptions);
//! their execution is `cli::insights`.

use clap::{Args, Subcommand, ValueEnum};

use super::args::ReadArgs;

#[derive(Debug, Args)]
pub struct ImprovementsArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// A resource group of the subscription (/subscriptions/GUID/resourceGroups/NAME), or a
    /// management group the subscription lies below
    /// (/providers/Microsoft.Management/managementGroups/NAME: every subscription below it
    /// counts); default: the whole subscription.
    #[arg(long)]
    pub scope: Option<String>,
}

/// Which way the changes are listed.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ChangeOrder {
    /// Newest first.
    Desc,
    /// Oldest first.
    Asc,
}

#[derive(Debug, Args)]
pub struct ChangesArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Start (RFC 3339); default 30 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// End (RFC 3339); default now.
    #[arg(long)]
    pub to: Option<String>,
    /// Newest first (desc, the default) or oldest first (asc).
    #[arg(long, value_enum, default_value = "desc")]
    pub order: ChangeOrder,
}

#[derive(Debug, Subcommand)]
pub enum ExemptionsCommand {
    /// List the exemptions you may read (at or around --scope when given).
    List {
        #[command(flatten)]
        read: ReadArgs,
        /// Only exemptions at, below or covering this subscription, resource group or resource
        /// id, or management group (/providers/Microsoft.Management/managementGroups/NAME).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Create or replace an exemption: the matching assessments count as not applicable.
    Create(CreateExemptionArgs),
    /// Delete an exemption: the assessments it exempted count with their own status again.
    Delete {
        #[command(flatten)]
        read: ReadArgs,
        /// The exemption name.
        name: String,
    },
}

/// Why an assessment is exempt.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExemptionCategory {
    /// The risk is accepted.
    Waiver,
    /// The risk is handled by other means.
    Mitigated,
}

#[derive(Debug, Args)]
pub struct CreateExemptionArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// The exemption name (letters, digits, '-', '_', '.').
    pub name: String,
    /// What it covers: a subscription, resource group or resource id, or a management group
    /// (/providers/Microsoft.Management/managementGroups/NAME: every subscription below it, as
    /// they are placed at any time).
    #[arg(long)]
    pub scope: String,
    /// The assessment (recommendation) metadata name to exempt.
    #[arg(long)]
    pub assessment: String,
    /// Waiver or Mitigated.
    #[arg(long, value_enum)]
    pub category: ExemptionCategory,
    /// When it ends by itself (RFC 3339, in the future); default: never.
    #[arg(long)]
    pub expires_on: Option<String>,
    /// Why.
    #[arg(long)]
    pub description: String,
}
