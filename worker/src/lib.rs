//! The Kafdo Worker.
