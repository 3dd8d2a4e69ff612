//! Test peers
