//! The command line: definitions here (`structs`), execution in `cmd` and its siblings
//! (`identity`, `import`, `insights`, `management_groups`, `read`, `verify`).

pub mod args;
pub mod client;
pub mod cmd;
pub mod data;
pub mod identity;
pub mod identity_structs;
pub mod import;
pub mod insights;
pub mod insights_structs;
pub mod management_groups;
pub mod migrate;
pub mod read;
pub mod show;
pub mod structs;
pub mod verify;

pub use structs::Cli;
