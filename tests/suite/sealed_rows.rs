//! (being written: issue #22)
