//! One module per subcommand, each composing the pieces (lease, keeper, supervisor) for one job.

pub mod run;
