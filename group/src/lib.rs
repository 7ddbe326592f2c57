//! The consumer group coordinator core: membership, assignment, offsets.
