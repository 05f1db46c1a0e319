//! The command line: definitions here (`structs`), execution in `cmd` and its siblings
//! (`identity`, `import`, `read`, `verify`).

pub mod cmd;
pub mod identity;
pub mod identity_structs;
pub mod import;
pub mod read;
pub mod structs;
pub mod verify;

pub use structs::Cli;
