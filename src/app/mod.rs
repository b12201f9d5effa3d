//! The program: the command line (clap) and the commands it runs.

pub mod admin;
pub mod cli;
pub mod sendmail;

#[cfg(test)]
mod cli_tests;
