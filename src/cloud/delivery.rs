//! See the module's documentation (`crate::cloud`).
