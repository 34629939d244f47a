//! One module per subcommand.

pub mod bench;
pub mod compile;
pub mod data;
pub mod device;
pub mod eval;
pub mod export;
pub mod infer;
pub mod init;
pub mod train;
