//! The subcommands, one file each: each reads its flags, builds what it needs and writes its
//! outputs. Nothing outside this folder imports a command.

pub mod bench;
pub mod sample;
pub mod schedule;
pub mod score;
pub mod shards;
pub mod tune;
