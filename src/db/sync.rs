//! Queries of the inbound assignee sync.
