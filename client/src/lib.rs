//! The Kafdo Rust SDK.
