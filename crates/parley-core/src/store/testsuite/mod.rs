//! Store conformance suite; filled in by the store work.
