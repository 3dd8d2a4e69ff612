//! Test peers
pub mod odmr;
