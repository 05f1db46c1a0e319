//! The command line: definitions here (`structs`), execution in `cmd`.

pub mod cmd;
pub mod identity;
pub mod identity_structs;
pub mod read;
pub mod structs;

pub use structs::Cli;
