//! Deterministic simulation of all Kafdo cores and a history checker.
