//! The transaction coordinator core: producer ids, epochs, two-phase commit.
