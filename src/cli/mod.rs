//! The command line: definitions here (`structs`), execution in `cmd`.

pub mod cmd;
pub mod read;
pub mod structs;

pub use structs::Cli;
