//! One module per subcommand.

pub mod run;
pub mod tail;
pub mod bench;
