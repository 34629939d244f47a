//! One module per subcommand.

pub mod bench;
pub mod compile;
pub mod device;
pub mod eval;
pub mod infer;
pub mod init;
